package apps

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func deployments() *registry.Resource {
	r := newResource("deployments", "Deployment", "deployment", []string{"deploy"},
		func() runtime.Object { return &appsv1.Deployment{} },
		func() runtime.Object { return &appsv1.DeploymentList{} })
	r.Categories = []string{"all"}
	r.HasStatus = true
	r.Scale = &registry.ScaleAccess{
		SpecReplicas: func(obj runtime.Object) int32 { return deref(obj.(*appsv1.Deployment).Spec.Replicas, 0) },
		SetSpecReplicas: func(obj runtime.Object, n int32) {
			obj.(*appsv1.Deployment).Spec.Replicas = new(n)
		},
		StatusReplicas: func(obj runtime.Object) int32 { return obj.(*appsv1.Deployment).Status.Replicas },
		Selector:       func(obj runtime.Object) string { return selectorString(obj.(*appsv1.Deployment).Spec.Selector) },
	}
	r.Default = func(obj runtime.Object) { defaultDeployment(obj.(*appsv1.Deployment)) }
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateDeploymentSpec(&obj.(*appsv1.Deployment).Spec, field.NewPath("spec"))
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		// apps/v1 made the selector immutable.
		return immutable(obj.(*appsv1.Deployment).Spec.Selector, old.(*appsv1.Deployment).Spec.Selector, field.NewPath("spec", "selector"))
	}
	r.ValidateStatusUpdate = func(obj, old runtime.Object) field.ErrorList {
		d, o := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
		p := field.NewPath("status")
		errs := validateDeploymentStatus(&d.Status, p)
		return append(errs, decremented(d.Status.CollisionCount, o.Status.CollisionCount, p.Child("collisionCount"))...)
	}
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		registry.Col("Ready", "string", readyDesc, 0),
		registry.Col("Up-to-date", "string", appsv1.DeploymentStatus{}.SwaggerDoc()["updatedReplicas"], 0),
		registry.Col("Available", "string", appsv1.DeploymentStatus{}.SwaggerDoc()["availableReplicas"], 0),
		registry.AgeCol,
		registry.Col("Containers", "string", containersDesc, 1),
		registry.Col("Images", "string", imagesDesc, 1),
		registry.Col("Selector", "string", appsv1.DeploymentSpec{}.SwaggerDoc()["selector"], 1),
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		d := obj.(*appsv1.Deployment)
		names, images := containerCells(d.Spec.Template.Spec.Containers)
		return []interface{}{
			d.Name,
			fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, deref(d.Spec.Replicas, 0)),
			int64(d.Status.UpdatedReplicas),
			int64(d.Status.AvailableReplicas),
			registry.Age(d.CreationTimestamp, now),
			names, images, selectorString(d.Spec.Selector),
		}
	}
	return r
}

// defaultDeployment applies the apps/v1 Deployment defaults.
func defaultDeployment(d *appsv1.Deployment) {
	s := &d.Spec
	if s.Replicas == nil {
		s.Replicas = new(int32(1))
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.Strategy.RollingUpdate == nil {
			s.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if s.Strategy.RollingUpdate.MaxUnavailable == nil {
			s.Strategy.RollingUpdate.MaxUnavailable = new(intstr.FromString("25%"))
		}
		if s.Strategy.RollingUpdate.MaxSurge == nil {
			s.Strategy.RollingUpdate.MaxSurge = new(intstr.FromString("25%"))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = new(int32(10))
	}
	if s.ProgressDeadlineSeconds == nil {
		s.ProgressDeadlineSeconds = new(int32(600))
	}
	DefaultPodTemplate(&s.Template)
}

func validateDeploymentSpec(spec *appsv1.DeploymentSpec, fldPath *field.Path) field.ErrorList {
	errs := nonNegative(int64(deref(spec.Replicas, 0)), fldPath.Child("replicas"))
	errs = append(errs, strictSelector(spec.Selector, "deployment", fldPath.Child("selector"))...)
	if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err != nil {
		errs = append(errs, field.Invalid(fldPath.Child("selector"), spec.Selector, "invalid label selector"))
	} else {
		errs = append(errs, validateReplicatedTemplate(&spec.Template, sel, fldPath.Child("template"))...)
	}
	errs = append(errs, validateDeploymentStrategy(&spec.Strategy, fldPath.Child("strategy"))...)
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.RevisionHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*spec.RevisionHistoryLimit), fldPath.Child("revisionHistoryLimit"))...)
	}
	if spec.ProgressDeadlineSeconds != nil {
		p := fldPath.Child("progressDeadlineSeconds")
		errs = append(errs, nonNegative(int64(*spec.ProgressDeadlineSeconds), p)...)
		if *spec.ProgressDeadlineSeconds <= spec.MinReadySeconds {
			errs = append(errs, field.Invalid(p, *spec.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

func validateDeploymentStrategy(s *appsv1.DeploymentStrategy, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(fldPath.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if s.RollingUpdate == nil {
			errs = append(errs, field.Required(fldPath.Child("rollingUpdate"), "this should be defaulted and never be nil"))
			break
		}
		p := fldPath.Child("rollingUpdate")
		maxUnavailable := deref(s.RollingUpdate.MaxUnavailable, intstr.IntOrString{})
		maxSurge := deref(s.RollingUpdate.MaxSurge, intstr.IntOrString{})
		errs = append(errs, validatePositiveIntOrPercent(maxUnavailable, p.Child("maxUnavailable"))...)
		errs = append(errs, validatePositiveIntOrPercent(maxSurge, p.Child("maxSurge"))...)
		if intOrPercentValue(maxUnavailable) == 0 && intOrPercentValue(maxSurge) == 0 {
			errs = append(errs, field.Invalid(p.Child("maxUnavailable"), maxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
		errs = append(errs, notMoreThan100Percent(maxUnavailable, p.Child("maxUnavailable"))...)
	default:
		errs = append(errs, field.NotSupported(fldPath, s, []string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)}))
	}
	return errs
}

func validateDeploymentStatus(s *appsv1.DeploymentStatus, p *field.Path) field.ErrorList {
	errs := nonNegative(s.ObservedGeneration, p.Child("observedGeneration"))
	errs = append(errs, nonNegative(int64(s.Replicas), p.Child("replicas"))...)
	errs = append(errs, nonNegative(int64(s.UpdatedReplicas), p.Child("updatedReplicas"))...)
	errs = append(errs, nonNegative(int64(s.ReadyReplicas), p.Child("readyReplicas"))...)
	errs = append(errs, nonNegative(int64(s.AvailableReplicas), p.Child("availableReplicas"))...)
	errs = append(errs, nonNegative(int64(s.UnavailableReplicas), p.Child("unavailableReplicas"))...)
	if s.TerminatingReplicas != nil {
		errs = append(errs, nonNegative(int64(*s.TerminatingReplicas), p.Child("terminatingReplicas"))...)
	}
	if s.CollisionCount != nil {
		errs = append(errs, nonNegative(int64(*s.CollisionCount), p.Child("collisionCount"))...)
	}
	errs = append(errs, notGreater(s.UpdatedReplicas, s.Replicas, p.Child("updatedReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.ReadyReplicas, s.Replicas, p.Child("readyReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.AvailableReplicas, s.Replicas, p.Child("availableReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.AvailableReplicas, s.ReadyReplicas, p.Child("availableReplicas"), "readyReplicas")...)
	return errs
}
