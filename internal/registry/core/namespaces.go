package core

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func namespaces() *registry.Resource {
	r := newResource("namespaces", "Namespace", "namespace", false,
		func() runtime.Object { return &corev1.Namespace{} },
		func() runtime.Object { return &corev1.NamespaceList{} })
	r.ShortNames = []string{"ns"}
	// Namespaces cannot be deleted as a collection.
	r.Verbs = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	r.HasStatus = true
	r.NoGeneration = true
	r.ValidateName = apivalidation.NameIsDNSLabel
	r.PrepareForCreate = func(obj runtime.Object) { prepareNamespaceForCreate(obj.(*corev1.Namespace)) }
	r.PrepareForUpdate = func(obj, old runtime.Object) {
		ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
		// spec.finalizers only change through the finalize subresource.
		ns.Spec.Finalizers = oldNs.Spec.Finalizers
		ns.Status = oldNs.Status
	}
	r.Default = func(obj runtime.Object) { defaultNamespace(obj.(*corev1.Namespace)) }
	r.Validate = func(obj runtime.Object) field.ErrorList { return validateNamespace(obj.(*corev1.Namespace)) }
	r.ValidateStatusUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validateNamespaceStatusUpdate(obj.(*corev1.Namespace))
	}
	r.Fields = func(obj runtime.Object) fields.Set {
		ns := obj.(*corev1.Namespace)
		return fields.Set{"status.phase": string(ns.Status.Phase), "name": ns.Name}
	}
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		col("Status", "string", "The status of the namespace", 0),
		registry.AgeCol,
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		ns := obj.(*corev1.Namespace)
		return []interface{}{ns.Name, string(ns.Status.Phase), registry.Age(ns.CreationTimestamp, now)}
	}
	return r
}

func defaultNamespace(ns *corev1.Namespace) {
	if ns.Name != "" {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
	}
	if ns.Status.Phase == "" {
		ns.Status.Phase = corev1.NamespaceActive
	}
}

func prepareNamespaceForCreate(ns *corev1.Namespace) {
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			defaultNamespace(ns)
			return
		}
	}
	ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	defaultNamespace(ns)
}

var standardFinalizers = map[string]bool{
	string(corev1.FinalizerKubernetes): true,
	metav1.FinalizerOrphanDependents:   true,
	metav1.FinalizerDeleteDependents:   true,
}

// validateFinalizerName accepts the standard finalizers and domain-qualified names.
func validateFinalizerName(name string, p *field.Path) field.ErrorList {
	errs := apivalidation.ValidateFinalizerName(name, p)
	if len(errs) == 0 && !containsSlash(name) && !standardFinalizers[name] {
		errs = append(errs, field.Invalid(p, name, "name is neither a standard finalizer name nor is it fully qualified"))
	}
	return errs
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	var errs field.ErrorList
	for _, f := range ns.Spec.Finalizers {
		errs = append(errs, validateFinalizerName(string(f), field.NewPath("spec", "finalizers"))...)
	}
	return errs
}

func validateNamespaceStatusUpdate(ns *corev1.Namespace) field.ErrorList {
	p := field.NewPath("status", "Phase")
	if ns.DeletionTimestamp.IsZero() {
		if ns.Status.Phase != corev1.NamespaceActive {
			return field.ErrorList{field.Invalid(p, ns.Status.Phase, "may only be 'Active' if `deletionTimestamp` is empty")}
		}
	} else if ns.Status.Phase != corev1.NamespaceTerminating {
		return field.ErrorList{field.Invalid(p, ns.Status.Phase, "may only be 'Terminating' if `deletionTimestamp` is not empty")}
	}
	return nil
}
