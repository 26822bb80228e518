package apps

import (
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func replicaSets() *registry.Resource {
	r := newResource("replicasets", "ReplicaSet", "replicaset", []string{"rs"},
		func() runtime.Object { return &appsv1.ReplicaSet{} },
		func() runtime.Object { return &appsv1.ReplicaSetList{} })
	r.Categories = []string{"all"}
	r.HasStatus = true
	r.Scale = &registry.ScaleAccess{
		SpecReplicas: func(obj runtime.Object) int32 { return deref(obj.(*appsv1.ReplicaSet).Spec.Replicas, 0) },
		SetSpecReplicas: func(obj runtime.Object, n int32) {
			obj.(*appsv1.ReplicaSet).Spec.Replicas = new(n)
		},
		StatusReplicas: func(obj runtime.Object) int32 { return obj.(*appsv1.ReplicaSet).Status.Replicas },
		Selector:       func(obj runtime.Object) string { return selectorString(obj.(*appsv1.ReplicaSet).Spec.Selector) },
	}
	r.Default = func(obj runtime.Object) {
		rs := obj.(*appsv1.ReplicaSet)
		if rs.Spec.Replicas == nil {
			rs.Spec.Replicas = new(int32(1))
		}
		DefaultPodTemplate(&rs.Spec.Template)
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateReplicaSetSpec(&obj.(*appsv1.ReplicaSet).Spec, field.NewPath("spec"))
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return immutable(obj.(*appsv1.ReplicaSet).Spec.Selector, old.(*appsv1.ReplicaSet).Spec.Selector, field.NewPath("spec", "selector"))
	}
	r.ValidateStatusUpdate = func(obj, _ runtime.Object) field.ErrorList {
		return validateReplicaSetStatus(&obj.(*appsv1.ReplicaSet).Status, field.NewPath("status"))
	}
	r.Fields = func(obj runtime.Object) fields.Set {
		return fields.Set{"status.replicas": strconv.Itoa(int(obj.(*appsv1.ReplicaSet).Status.Replicas))}
	}
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		registry.Col("Desired", "integer", appsv1.ReplicaSetSpec{}.SwaggerDoc()["replicas"], 0),
		registry.Col("Current", "integer", appsv1.ReplicaSetStatus{}.SwaggerDoc()["replicas"], 0),
		registry.Col("Ready", "integer", appsv1.ReplicaSetStatus{}.SwaggerDoc()["readyReplicas"], 0),
		registry.AgeCol,
		registry.Col("Containers", "string", containersDesc, 1),
		registry.Col("Images", "string", imagesDesc, 1),
		registry.Col("Selector", "string", appsv1.ReplicaSetSpec{}.SwaggerDoc()["selector"], 1),
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		rs := obj.(*appsv1.ReplicaSet)
		names, images := containerCells(rs.Spec.Template.Spec.Containers)
		return []interface{}{
			rs.Name,
			int64(deref(rs.Spec.Replicas, 0)),
			int64(rs.Status.Replicas),
			int64(rs.Status.ReadyReplicas),
			registry.Age(rs.CreationTimestamp, now),
			names, images, metav1.FormatLabelSelector(rs.Spec.Selector),
		}
	}
	return r
}

func validateReplicaSetSpec(spec *appsv1.ReplicaSetSpec, fldPath *field.Path) field.ErrorList {
	errs := nonNegative(int64(deref(spec.Replicas, 0)), fldPath.Child("replicas"))
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	// Kubernetes reports an empty ReplicaSet selector with the deployment wording.
	errs = append(errs, strictSelector(spec.Selector, "deployment", fldPath.Child("selector"))...)
	if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err != nil {
		errs = append(errs, field.Invalid(fldPath.Child("selector"), spec.Selector, "invalid label selector"))
	} else {
		errs = append(errs, validateReplicatedTemplate(&spec.Template, sel, fldPath.Child("template"))...)
	}
	return errs
}

func validateReplicaSetStatus(s *appsv1.ReplicaSetStatus, p *field.Path) field.ErrorList {
	errs := nonNegative(int64(s.Replicas), p.Child("replicas"))
	errs = append(errs, nonNegative(int64(s.FullyLabeledReplicas), p.Child("fullyLabeledReplicas"))...)
	errs = append(errs, nonNegative(int64(s.ReadyReplicas), p.Child("readyReplicas"))...)
	errs = append(errs, nonNegative(int64(s.AvailableReplicas), p.Child("availableReplicas"))...)
	errs = append(errs, nonNegative(s.ObservedGeneration, p.Child("observedGeneration"))...)
	if s.TerminatingReplicas != nil {
		errs = append(errs, nonNegative(int64(*s.TerminatingReplicas), p.Child("terminatingReplicas"))...)
	}
	errs = append(errs, notGreater(s.FullyLabeledReplicas, s.Replicas, p.Child("fullyLabeledReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.ReadyReplicas, s.Replicas, p.Child("readyReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.AvailableReplicas, s.Replicas, p.Child("availableReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.AvailableReplicas, s.ReadyReplicas, p.Child("availableReplicas"), "readyReplicas")...)
	return errs
}
