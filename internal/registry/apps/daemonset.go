package apps

import (
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func daemonSets() *registry.Resource {
	r := newResource("daemonsets", "DaemonSet", "daemonset", []string{"ds"},
		func() runtime.Object { return &appsv1.DaemonSet{} },
		func() runtime.Object { return &appsv1.DaemonSetList{} })
	r.Categories = []string{"all"}
	r.HasStatus = true
	// apps/v1 carries the internal spec.templateGeneration in the
	// deprecated.daemonset.template.generation annotation: 1 on create, +1 whenever the pod
	// template changes. Having these hooks, they also reset and keep status themselves.
	r.PrepareForCreate = func(obj runtime.Object) {
		ds := obj.(*appsv1.DaemonSet)
		ds.Status = appsv1.DaemonSetStatus{}
		if templateGeneration(ds) < 1 {
			setTemplateGeneration(ds, 1)
		}
	}
	r.PrepareForUpdate = func(obj, old runtime.Object) {
		ds, o := obj.(*appsv1.DaemonSet), old.(*appsv1.DaemonSet)
		ds.Status = o.Status
		gen := templateGeneration(o)
		if !apiequality.Semantic.DeepEqual(ds.Spec.Template, o.Spec.Template) {
			gen++
		}
		if gen > 0 {
			setTemplateGeneration(ds, gen)
		} else {
			delete(ds.Annotations, appsv1.DeprecatedTemplateGeneration)
		}
	}
	r.Default = func(obj runtime.Object) { defaultDaemonSet(obj.(*appsv1.DaemonSet)) }
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateDaemonSetSpec(&obj.(*appsv1.DaemonSet).Spec, field.NewPath("spec"))
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return immutable(obj.(*appsv1.DaemonSet).Spec.Selector, old.(*appsv1.DaemonSet).Spec.Selector, field.NewPath("spec", "selector"))
	}
	r.ValidateStatusUpdate = func(obj, old runtime.Object) field.ErrorList {
		ds, o := obj.(*appsv1.DaemonSet), old.(*appsv1.DaemonSet)
		p := field.NewPath("status")
		errs := validateDaemonSetStatus(&ds.Status, p)
		return append(errs, decremented(ds.Status.CollisionCount, o.Status.CollisionCount, p.Child("collisionCount"))...)
	}
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		registry.Col("Desired", "integer", appsv1.DaemonSetStatus{}.SwaggerDoc()["desiredNumberScheduled"], 0),
		registry.Col("Current", "integer", appsv1.DaemonSetStatus{}.SwaggerDoc()["currentNumberScheduled"], 0),
		registry.Col("Ready", "integer", appsv1.DaemonSetStatus{}.SwaggerDoc()["numberReady"], 0),
		registry.Col("Up-to-date", "integer", appsv1.DaemonSetStatus{}.SwaggerDoc()["updatedNumberScheduled"], 0),
		registry.Col("Available", "integer", appsv1.DaemonSetStatus{}.SwaggerDoc()["numberAvailable"], 0),
		registry.Col("Node Selector", "string", corev1.PodSpec{}.SwaggerDoc()["nodeSelector"], 0),
		registry.AgeCol,
		registry.Col("Containers", "string", containersDesc, 1),
		registry.Col("Images", "string", imagesDesc, 1),
		registry.Col("Selector", "string", appsv1.DaemonSetSpec{}.SwaggerDoc()["selector"], 1),
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		ds := obj.(*appsv1.DaemonSet)
		names, images := containerCells(ds.Spec.Template.Spec.Containers)
		return []interface{}{
			ds.Name,
			int64(ds.Status.DesiredNumberScheduled),
			int64(ds.Status.CurrentNumberScheduled),
			int64(ds.Status.NumberReady),
			int64(ds.Status.UpdatedNumberScheduled),
			int64(ds.Status.NumberAvailable),
			labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
			registry.Age(ds.CreationTimestamp, now),
			names, images, metav1.FormatLabelSelector(ds.Spec.Selector),
		}
	}
	return r
}

func templateGeneration(ds *appsv1.DaemonSet) int64 {
	n, err := strconv.ParseInt(ds.Annotations[appsv1.DeprecatedTemplateGeneration], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func setTemplateGeneration(ds *appsv1.DaemonSet, n int64) {
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[appsv1.DeprecatedTemplateGeneration] = strconv.FormatInt(n, 10)
}

// defaultDaemonSet applies the apps/v1 DaemonSet defaults.
func defaultDaemonSet(ds *appsv1.DaemonSet) {
	us := &ds.Spec.UpdateStrategy
	if us.Type == "" {
		us.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if us.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if us.RollingUpdate == nil {
			us.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if us.RollingUpdate.MaxUnavailable == nil {
			us.RollingUpdate.MaxUnavailable = new(intstr.FromInt32(1))
		}
		if us.RollingUpdate.MaxSurge == nil {
			us.RollingUpdate.MaxSurge = new(intstr.FromInt32(0))
		}
	}
	if ds.Spec.RevisionHistoryLimit == nil {
		ds.Spec.RevisionHistoryLimit = new(int32(10))
	}
	DefaultPodTemplate(&ds.Spec.Template)
}

func validateDaemonSetSpec(spec *appsv1.DaemonSetSpec, fldPath *field.Path) field.ErrorList {
	errs := metavalidation.ValidateLabelSelector(spec.Selector, metavalidation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))
	if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err == nil && !sel.Matches(labels.Set(spec.Template.Labels)) {
		errs = append(errs, field.Invalid(fldPath.Child("template", "metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	if spec.Selector != nil && len(spec.Selector.MatchLabels)+len(spec.Selector.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(fldPath.Child("selector"), spec.Selector, "empty selector is invalid for daemonset"))
	}
	errs = append(errs, ValidatePodTemplate(&spec.Template, fldPath.Child("template"))...)
	errs = append(errs, restartAlways(&spec.Template, fldPath.Child("template", "spec"), "DaemonSet")...)
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)

	us := &spec.UpdateStrategy
	usPath := fldPath.Child("updateStrategy")
	switch us.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		if us.RollingUpdate == nil {
			errs = append(errs, field.Required(usPath.Child("rollingUpdate"), ""))
			break
		}
		p := usPath.Child("rollingUpdate")
		maxUnavailable := deref(us.RollingUpdate.MaxUnavailable, intstr.IntOrString{})
		maxSurge := deref(us.RollingUpdate.MaxSurge, intstr.IntOrString{})
		errs = append(errs, validatePositiveIntOrPercent(maxUnavailable, p.Child("maxUnavailable"))...)
		errs = append(errs, validatePositiveIntOrPercent(maxSurge, p.Child("maxSurge"))...)
		errs = append(errs, notMoreThan100Percent(maxUnavailable, p.Child("maxUnavailable"))...)
		errs = append(errs, notMoreThan100Percent(maxSurge, p.Child("maxSurge"))...)
		hasUnavailable := intOrPercentValue(maxUnavailable) != 0
		hasSurge := intOrPercentValue(maxSurge) != 0
		switch {
		case hasUnavailable && hasSurge:
			errs = append(errs, field.Invalid(p.Child("maxSurge"), maxSurge, "may not be set when maxUnavailable is non-zero"))
		case !hasUnavailable && !hasSurge:
			errs = append(errs, field.Required(p.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
		}
	default:
		errs = append(errs, field.NotSupported(usPath, us, []string{string(appsv1.RollingUpdateDaemonSetStrategyType), string(appsv1.OnDeleteDaemonSetStrategyType)}))
	}
	if spec.RevisionHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*spec.RevisionHistoryLimit), fldPath.Child("revisionHistoryLimit"))...)
	}
	return errs
}

func validateDaemonSetStatus(s *appsv1.DaemonSetStatus, p *field.Path) field.ErrorList {
	errs := nonNegative(int64(s.CurrentNumberScheduled), p.Child("currentNumberScheduled"))
	errs = append(errs, nonNegative(int64(s.NumberMisscheduled), p.Child("numberMisscheduled"))...)
	errs = append(errs, nonNegative(int64(s.DesiredNumberScheduled), p.Child("desiredNumberScheduled"))...)
	errs = append(errs, nonNegative(int64(s.NumberReady), p.Child("numberReady"))...)
	errs = append(errs, nonNegative(s.ObservedGeneration, p.Child("observedGeneration"))...)
	errs = append(errs, nonNegative(int64(s.UpdatedNumberScheduled), p.Child("updatedNumberScheduled"))...)
	errs = append(errs, nonNegative(int64(s.NumberAvailable), p.Child("numberAvailable"))...)
	errs = append(errs, nonNegative(int64(s.NumberUnavailable), p.Child("numberUnavailable"))...)
	if s.CollisionCount != nil {
		errs = append(errs, nonNegative(int64(*s.CollisionCount), p.Child("collisionCount"))...)
	}
	return errs
}
