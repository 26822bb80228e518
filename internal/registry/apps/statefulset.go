package apps

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func statefulSets() *registry.Resource {
	r := newResource("statefulsets", "StatefulSet", "statefulset", []string{"sts"},
		func() runtime.Object { return &appsv1.StatefulSet{} },
		func() runtime.Object { return &appsv1.StatefulSetList{} })
	r.Categories = []string{"all"}
	r.HasStatus = true
	// Pods are named <statefulset>-<ordinal>, so the name must be a DNS label.
	r.ValidateName = apivalidation.NameIsDNSLabel
	r.Scale = &registry.ScaleAccess{
		SpecReplicas: func(obj runtime.Object) int32 { return deref(obj.(*appsv1.StatefulSet).Spec.Replicas, 0) },
		SetSpecReplicas: func(obj runtime.Object, n int32) {
			obj.(*appsv1.StatefulSet).Spec.Replicas = new(n)
		},
		StatusReplicas: func(obj runtime.Object) int32 { return obj.(*appsv1.StatefulSet).Status.Replicas },
		Selector:       func(obj runtime.Object) string { return selectorString(obj.(*appsv1.StatefulSet).Spec.Selector) },
	}
	r.Default = func(obj runtime.Object) { defaultStatefulSet(obj.(*appsv1.StatefulSet)) }
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateStatefulSetSpec(&obj.(*appsv1.StatefulSet).Spec, field.NewPath("spec"))
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validateStatefulSetUpdate(obj.(*appsv1.StatefulSet), old.(*appsv1.StatefulSet))
	}
	r.ValidateStatusUpdate = func(obj, old runtime.Object) field.ErrorList {
		s, o := obj.(*appsv1.StatefulSet), old.(*appsv1.StatefulSet)
		p := field.NewPath("status")
		errs := validateStatefulSetStatus(&s.Status, p)
		return append(errs, decremented(s.Status.CollisionCount, o.Status.CollisionCount, p.Child("collisionCount"))...)
	}
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		registry.Col("Ready", "string", readyDesc, 0),
		registry.AgeCol,
		registry.Col("Containers", "string", containersDesc, 1),
		registry.Col("Images", "string", imagesDesc, 1),
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		s := obj.(*appsv1.StatefulSet)
		names, images := containerCells(s.Spec.Template.Spec.Containers)
		return []interface{}{
			s.Name,
			fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, deref(s.Spec.Replicas, 0)),
			registry.Age(s.CreationTimestamp, now),
			names, images,
		}
	}
	return r
}

// defaultStatefulSet applies the apps/v1 StatefulSet defaults, including those of its pod
// template and volume claim templates.
func defaultStatefulSet(s *appsv1.StatefulSet) {
	spec := &s.Spec
	if spec.PodManagementPolicy == "" {
		spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if spec.UpdateStrategy.Type == "" {
		spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		if spec.UpdateStrategy.RollingUpdate == nil {
			spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
	}
	if ru := spec.UpdateStrategy.RollingUpdate; spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && ru != nil {
		if ru.Partition == nil {
			ru.Partition = new(int32(0))
		}
		// MaxUnavailableStatefulSet is beta and on by default.
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = new(intstr.FromInt32(1))
		}
	}
	if spec.PersistentVolumeClaimRetentionPolicy == nil {
		spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted == "" {
		spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if spec.PersistentVolumeClaimRetentionPolicy.WhenScaled == "" {
		spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if spec.Replicas == nil {
		spec.Replicas = new(int32(1))
	}
	if spec.RevisionHistoryLimit == nil {
		spec.RevisionHistoryLimit = new(int32(10))
	}
	DefaultPodTemplate(&spec.Template)
	for i := range spec.VolumeClaimTemplates {
		DefaultPersistentVolumeClaim(&spec.VolumeClaimTemplates[i])
	}
}

func validateStatefulSetSpec(spec *appsv1.StatefulSetSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch spec.PodManagementPolicy {
	case "":
		errs = append(errs, field.Required(fldPath.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.Invalid(fldPath.Child("podManagementPolicy"), spec.PodManagementPolicy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)))
	}

	us := fldPath.Child("updateStrategy")
	switch spec.UpdateStrategy.Type {
	case "":
		errs = append(errs, field.Required(us, ""))
	case appsv1.OnDeleteStatefulSetStrategyType:
		if spec.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Invalid(us.Child("rollingUpdate"), spec.UpdateStrategy.RollingUpdate,
				fmt.Sprintf("only allowed for updateStrategy '%s'", appsv1.RollingUpdateStatefulSetStrategyType)))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := spec.UpdateStrategy.RollingUpdate; ru != nil {
			p := us.Child("rollingUpdate")
			errs = append(errs, nonNegative(int64(deref(ru.Partition, 0)), p.Child("partition"))...)
			if ru.MaxUnavailable != nil {
				mu := p.Child("maxUnavailable")
				errs = append(errs, validatePositiveIntOrPercent(*ru.MaxUnavailable, mu)...)
				if intOrPercentValue(*ru.MaxUnavailable) == 0 {
					errs = append(errs, field.Invalid(mu, *ru.MaxUnavailable, "cannot be 0"))
				}
				errs = append(errs, notMoreThan100Percent(*ru.MaxUnavailable, mu)...)
			}
		}
	default:
		errs = append(errs, field.Invalid(us, spec.UpdateStrategy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType)))
	}

	if p := spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		pp := fldPath.Child("persistentVolumeClaimRetentionPolicy")
		errs = append(errs, validateRetentionPolicyType(p.WhenDeleted, pp.Child("whenDeleted"))...)
		errs = append(errs, validateRetentionPolicyType(p.WhenScaled, pp.Child("whenScaled"))...)
	}

	errs = append(errs, nonNegative(int64(deref(spec.Replicas, 0)), fldPath.Child("replicas"))...)
	errs = append(errs, nonNegative(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.Ordinals != nil {
		errs = append(errs, nonNegative(int64(spec.Ordinals.Start), fldPath.Child("ordinals", "start"))...)
	}
	errs = append(errs, strictSelector(spec.Selector, "statefulset", fldPath.Child("selector"))...)

	tp := fldPath.Child("template")
	if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err != nil {
		errs = append(errs, field.Invalid(fldPath.Child("selector"), spec.Selector, ""))
	} else {
		t := &spec.Template
		if !sel.Empty() && !sel.Matches(labels.Set(t.Labels)) {
			errs = append(errs, field.Invalid(tp.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
		}
		// Like Kubernetes, the pod spec itself is not validated here: its volume mounts may
		// refer to volume claim templates, which a pod template validation would reject.
		errs = append(errs, metavalidation.ValidateLabels(t.Labels, tp.Child("labels"))...)
		errs = append(errs, apivalidation.ValidateAnnotations(t.Annotations, tp.Child("annotations"))...)
	}
	errs = append(errs, restartAlways(&spec.Template, tp.Child("spec"), "StatefulSet")...)
	return errs
}

func validateRetentionPolicyType(t appsv1.PersistentVolumeClaimRetentionPolicyType, fldPath *field.Path) field.ErrorList {
	switch t {
	case appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType:
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, t, []string{
		string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType),
		string(appsv1.DeletePersistentVolumeClaimRetentionPolicyType),
	})}
}

// validateStatefulSetUpdate allows spec changes only to the fields Kubernetes lets change.
func validateStatefulSetUpdate(s, old *appsv1.StatefulSet) field.ErrorList {
	spec := *s.Spec.DeepCopy()
	spec.Replicas = old.Spec.Replicas
	spec.Template = old.Spec.Template
	spec.UpdateStrategy = old.Spec.UpdateStrategy
	spec.MinReadySeconds = old.Spec.MinReadySeconds
	spec.Ordinals = old.Spec.Ordinals
	spec.PersistentVolumeClaimRetentionPolicy = old.Spec.PersistentVolumeClaimRetentionPolicy
	if apiequality.Semantic.DeepEqual(spec, old.Spec) {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")}
}

func validateStatefulSetStatus(s *appsv1.StatefulSetStatus, p *field.Path) field.ErrorList {
	errs := nonNegative(int64(s.Replicas), p.Child("replicas"))
	errs = append(errs, nonNegative(int64(s.ReadyReplicas), p.Child("readyReplicas"))...)
	errs = append(errs, nonNegative(int64(s.CurrentReplicas), p.Child("currentReplicas"))...)
	errs = append(errs, nonNegative(int64(s.UpdatedReplicas), p.Child("updatedReplicas"))...)
	errs = append(errs, nonNegative(int64(s.AvailableReplicas), p.Child("availableReplicas"))...)
	errs = append(errs, nonNegative(s.ObservedGeneration, p.Child("observedGeneration"))...)
	if s.CollisionCount != nil {
		errs = append(errs, nonNegative(int64(*s.CollisionCount), p.Child("collisionCount"))...)
	}
	errs = append(errs, notGreater(s.ReadyReplicas, s.Replicas, p.Child("readyReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.CurrentReplicas, s.Replicas, p.Child("currentReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.UpdatedReplicas, s.Replicas, p.Child("updatedReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.AvailableReplicas, s.Replicas, p.Child("availableReplicas"), "status.replicas")...)
	errs = append(errs, notGreater(s.AvailableReplicas, s.ReadyReplicas, p.Child("availableReplicas"), "status.readyReplicas")...)
	return errs
}
