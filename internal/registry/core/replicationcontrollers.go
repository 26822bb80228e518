package core

import (
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func replicationControllers() *registry.Resource {
	r := newResource("replicationcontrollers", "ReplicationController", "replicationcontroller", true,
		func() runtime.Object { return &corev1.ReplicationController{} },
		func() runtime.Object { return &corev1.ReplicationControllerList{} })
	r.ShortNames = []string{"rc"}
	r.Categories = []string{"all"}
	r.HasStatus = true
	r.Scale = &registry.ScaleAccess{
		SpecReplicas: func(obj runtime.Object) int32 {
			return registry.Int32Ptr(obj.(*corev1.ReplicationController).Spec.Replicas)
		},
		SetSpecReplicas: func(obj runtime.Object, n int32) {
			obj.(*corev1.ReplicationController).Spec.Replicas = int32Ptr(n)
		},
		StatusReplicas: func(obj runtime.Object) int32 { return obj.(*corev1.ReplicationController).Status.Replicas },
		Selector: func(obj runtime.Object) string {
			return labels.SelectorFromSet(obj.(*corev1.ReplicationController).Spec.Selector).String()
		},
	}
	r.Default = func(obj runtime.Object) { defaultReplicationController(obj.(*corev1.ReplicationController)) }
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateReplicationController(obj.(*corev1.ReplicationController))
	}
	r.ValidateStatusUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validateReplicationControllerStatus(&obj.(*corev1.ReplicationController).Status)
	}
	r.Fields = func(obj runtime.Object) fields.Set {
		return fields.Set{"status.replicas": strconv.Itoa(int(obj.(*corev1.ReplicationController).Status.Replicas))}
	}
	spec := corev1.ReplicationControllerSpec{}.SwaggerDoc()
	status := corev1.ReplicationControllerStatus{}.SwaggerDoc()
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		col("Desired", "integer", spec["replicas"], 0),
		col("Current", "integer", status["replicas"], 0),
		col("Ready", "integer", status["readyReplicas"], 0),
		registry.AgeCol,
		col("Containers", "string", "Names of each container in the template.", 1),
		col("Images", "string", "Images referenced by each container in the template.", 1),
		col("Selector", "string", spec["selector"], 1),
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		rc := obj.(*corev1.ReplicationController)
		var ctrs []corev1.Container
		if rc.Spec.Template != nil {
			ctrs = rc.Spec.Template.Spec.Containers
		}
		names, images := containerCells(ctrs)
		return []interface{}{
			rc.Name, int64(registry.Int32Ptr(rc.Spec.Replicas)), int64(rc.Status.Replicas), int64(rc.Status.ReadyReplicas),
			registry.Age(rc.CreationTimestamp, now), names, images, labels.FormatLabels(rc.Spec.Selector),
		}
	}
	return r
}

// containerCells lays out container names and images for the wide columns of workloads.
func containerCells(ctrs []corev1.Container) (names, images string) {
	n := make([]string, len(ctrs))
	im := make([]string, len(ctrs))
	for i, c := range ctrs {
		n[i], im[i] = c.Name, c.Image
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}

func copyLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func defaultReplicationController(rc *corev1.ReplicationController) {
	if rc.Spec.Template != nil {
		if l := rc.Spec.Template.Labels; l != nil {
			if len(rc.Spec.Selector) == 0 {
				rc.Spec.Selector = copyLabels(l)
			}
			if len(rc.Labels) == 0 {
				rc.Labels = copyLabels(l)
			}
		}
		DefaultPodTemplateSpec(rc.Spec.Template)
	}
	if rc.Spec.Replicas == nil {
		rc.Spec.Replicas = int32Ptr(1)
	}
}

func validateReplicationController(rc *corev1.ReplicationController) field.ErrorList {
	specPath := field.NewPath("spec")
	errs := validateNonnegative(int64(rc.Spec.MinReadySeconds), specPath.Child("minReadySeconds"))
	selector := labels.Set(rc.Spec.Selector).AsSelector()
	if selector.Empty() {
		errs = append(errs, field.Required(specPath.Child("selector"), ""))
	}
	errs = append(errs, validateNonnegative(int64(registry.Int32Ptr(rc.Spec.Replicas)), specPath.Child("replicas"))...)
	tp := specPath.Child("template")
	t := rc.Spec.Template
	if t == nil {
		return append(errs, field.Required(tp, ""))
	}
	if !selector.Empty() && !selector.Matches(labels.Set(t.Labels)) {
		errs = append(errs, field.Invalid(tp.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
	}
	errs = append(errs, ValidatePodTemplateSpec(t, tp)...)
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(tp.Child("spec", "restartPolicy"), t.Spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(tp.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in ReplicationController is not Supported"))
	}
	return errs
}

func validateReplicationControllerStatus(st *corev1.ReplicationControllerStatus) field.ErrorList {
	p := field.NewPath("status")
	errs := validateNonnegative(int64(st.Replicas), p.Child("replicas"))
	errs = append(errs, validateNonnegative(int64(st.FullyLabeledReplicas), p.Child("fullyLabeledReplicas"))...)
	errs = append(errs, validateNonnegative(int64(st.ReadyReplicas), p.Child("readyReplicas"))...)
	errs = append(errs, validateNonnegative(int64(st.AvailableReplicas), p.Child("availableReplicas"))...)
	errs = append(errs, validateNonnegative(st.ObservedGeneration, p.Child("observedGeneration"))...)
	msg := "cannot be greater than status.replicas"
	if st.FullyLabeledReplicas > st.Replicas {
		errs = append(errs, field.Invalid(p.Child("fullyLabeledReplicas"), st.FullyLabeledReplicas, msg))
	}
	if st.ReadyReplicas > st.Replicas {
		errs = append(errs, field.Invalid(p.Child("readyReplicas"), st.ReadyReplicas, msg))
	}
	if st.AvailableReplicas > st.Replicas {
		errs = append(errs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, msg))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		errs = append(errs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return errs
}
