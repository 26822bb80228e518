package autoscaling

import (
	"fmt"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

const (
	// defaultCPUUtilization is the target of an autoscaler that names no metric.
	defaultCPUUtilization = 80
	// minReplicasLowerBound is 1: scaling to zero (HPAScaleToZero) is an alpha feature.
	minReplicasLowerBound         = 1
	maxPeriodSeconds              = 1800
	maxStabilizationWindowSeconds = 3600
)

func v2Resource() *registry.Resource {
	r := newResource("v2",
		func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
		func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscalerList{} })
	r.Default = func(obj runtime.Object) { defaultV2(obj.(*autoscalingv2.HorizontalPodAutoscaler)) }
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateSpec(&obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec, field.NewPath("spec"))
	}
	r.ValidateStatusUpdate = func(obj, _ runtime.Object) field.ErrorList {
		s := &obj.(*autoscalingv2.HorizontalPodAutoscaler).Status
		return validateStatus(s.CurrentReplicas, s.DesiredReplicas)
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		h := obj.(*autoscalingv2.HorizontalPodAutoscaler)
		return row(&h.ObjectMeta, &h.Spec, &h.Status, now)
	}
	return r
}

func v1Resource() *registry.Resource {
	r := newResource("v1",
		func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscaler{} },
		func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscalerList{} })
	// autoscaling/v1 defaults minReplicas only; targetCPUUtilizationPercentage stays unset.
	r.Default = func(obj runtime.Object) {
		h := obj.(*autoscalingv1.HorizontalPodAutoscaler)
		if h.Spec.MinReplicas == nil {
			h.Spec.MinReplicas = new(int32(1))
		}
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateSpec(&v1ToV2(obj.(*autoscalingv1.HorizontalPodAutoscaler)).Spec, field.NewPath("spec"))
	}
	r.ValidateStatusUpdate = func(obj, _ runtime.Object) field.ErrorList {
		s := &obj.(*autoscalingv1.HorizontalPodAutoscaler).Status
		return validateStatus(s.CurrentReplicas, s.DesiredReplicas)
	}
	r.Stored = &registry.StorageConversion{
		Group: autoscalingv2.GroupName, Version: "v2",
		ToStorage: func(obj, cur runtime.Object) runtime.Object {
			in := obj.(*autoscalingv1.HorizontalPodAutoscaler)
			out := v1ToV2(in)
			out.TypeMeta = metav1.TypeMeta{Kind: "HorizontalPodAutoscaler", APIVersion: "autoscaling/v2"}
			if c, ok := cur.(*autoscalingv2.HorizontalPodAutoscaler); ok && c != nil {
				// Keep what v1 cannot say: behavior, and metrics other than the CPU target.
				out.Spec.Behavior = c.Spec.Behavior
				for _, m := range c.Spec.Metrics {
					if !isCPUUtilization(m) {
						out.Spec.Metrics = append(out.Spec.Metrics, m)
					}
				}
				out.Status.Conditions = c.Status.Conditions
				for _, m := range c.Status.CurrentMetrics {
					if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil || m.Resource.Name != "cpu" {
						out.Status.CurrentMetrics = append(out.Status.CurrentMetrics, m)
					}
				}
			}
			defaultV2(out)
			return out
		},
		FromStorage: func(stored runtime.Object) runtime.Object {
			return V2ToV1(stored.(*autoscalingv2.HorizontalPodAutoscaler))
		},
		NewStored: func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
		NewList:   func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscalerList{} },
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		h := v1ToV2(obj.(*autoscalingv1.HorizontalPodAutoscaler))
		if len(h.Spec.Metrics) == 0 {
			// Without a target the autoscaler uses its default policy, 80% CPU, which is
			// what Kubernetes shows for such an autoscaler.
			h.Spec.Metrics = []autoscalingv2.MetricSpec{cpuMetric(defaultCPUUtilization)}
		}
		return row(&h.ObjectMeta, &h.Spec, &h.Status, now)
	}
	return r
}

// defaultV2 applies the autoscaling/v2 defaults: one replica at least, a CPU utilization
// target of 80% when no metric is given, and the default scaling rules for whatever part of
// spec.behavior is left out.
func defaultV2(h *autoscalingv2.HorizontalPodAutoscaler) {
	if h.Spec.MinReplicas == nil {
		h.Spec.MinReplicas = new(int32(1))
	}
	if len(h.Spec.Metrics) == 0 {
		h.Spec.Metrics = []autoscalingv2.MetricSpec{cpuMetric(defaultCPUUtilization)}
	}
	if b := h.Spec.Behavior; b != nil {
		b.ScaleUp = fillRules(b.ScaleUp, autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: new(int32(0)),
			SelectPolicy:               new(autoscalingv2.MaxChangePolicySelect),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			},
		})
		// The scale-down stabilization window is left to the controller's own default.
		b.ScaleDown = fillRules(b.ScaleDown, autoscalingv2.HPAScalingRules{
			SelectPolicy: new(autoscalingv2.MaxChangePolicySelect),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			},
		})
	}
}

// fillRules returns the given rules with their unset fields taken from the defaults.
func fillRules(given *autoscalingv2.HPAScalingRules, defaults autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	if given == nil {
		return &defaults
	}
	if given.SelectPolicy != nil {
		defaults.SelectPolicy = given.SelectPolicy
	}
	if given.StabilizationWindowSeconds != nil {
		defaults.StabilizationWindowSeconds = given.StabilizationWindowSeconds
	}
	if given.Policies != nil {
		defaults.Policies = given.Policies
	}
	if given.Tolerance != nil {
		defaults.Tolerance = given.Tolerance
	}
	return &defaults
}

func validateStatus(current, desired int32) field.ErrorList {
	p := field.NewPath("status")
	errs := apivalidation.ValidateNonnegativeField(int64(current), p.Child("currentReplicas"))
	return append(errs, apivalidation.ValidateNonnegativeField(int64(desired), p.Child("desiredReplicas"))...)
}

func validateSpec(spec *autoscalingv2.HorizontalPodAutoscalerSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.MinReplicas != nil && *spec.MinReplicas < minReplicasLowerBound {
		errs = append(errs, field.Invalid(fldPath.Child("minReplicas"), *spec.MinReplicas,
			fmt.Sprintf("must be greater than or equal to %d", minReplicasLowerBound)))
	}
	if spec.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("maxReplicas"), spec.MaxReplicas, "must be greater than 0"))
	}
	if spec.MinReplicas != nil && spec.MaxReplicas < *spec.MinReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("maxReplicas"), spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	// Like Kubernetes, metrics are only looked at once the target is fine, and the behavior
	// once the metrics are.
	if e := validateReference(spec.ScaleTargetRef, fldPath.Child("scaleTargetRef")); len(e) > 0 {
		return append(errs, e...)
	}
	if e := validateMetrics(spec.Metrics, spec.MinReplicas, fldPath.Child("metrics")); len(e) > 0 {
		return append(errs, e...)
	}
	if b := spec.Behavior; b != nil {
		errs = append(errs, validateRules(b.ScaleUp, fldPath.Child("behavior", "scaleUp"))...)
		errs = append(errs, validateRules(b.ScaleDown, fldPath.Child("behavior", "scaleDown"))...)
	}
	return errs
}

func validateReference(ref autoscalingv2.CrossVersionObjectReference, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, requiredPathSegment(ref.Kind, fldPath.Child("kind"), "")...)
	errs = append(errs, requiredPathSegment(ref.Name, fldPath.Child("name"), "")...)
	return errs
}

func requiredPathSegment(v string, fldPath *field.Path, required string) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(fldPath, required)}
	}
	var errs field.ErrorList
	for _, msg := range content.IsPathSegmentName(v) {
		errs = append(errs, field.Invalid(fldPath, v, msg))
	}
	return errs
}

var metricTypes = []string{
	string(autoscalingv2.ContainerResourceMetricSourceType), string(autoscalingv2.ExternalMetricSourceType),
	string(autoscalingv2.ObjectMetricSourceType), string(autoscalingv2.PodsMetricSourceType),
	string(autoscalingv2.ResourceMetricSourceType),
}

func validateMetrics(metrics []autoscalingv2.MetricSpec, minReplicas *int32, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	hasObjectOrExternal := false
	for i, m := range metrics {
		errs = append(errs, validateMetric(&m, fldPath.Index(i))...)
		if m.Type == autoscalingv2.ObjectMetricSourceType || m.Type == autoscalingv2.ExternalMetricSourceType {
			hasObjectOrExternal = true
		}
	}
	if minReplicas != nil && *minReplicas == 0 && !hasObjectOrExternal {
		errs = append(errs, field.Forbidden(fldPath, "must specify at least one Object or External metric to support scaling to zero replicas"))
	}
	return errs
}

func validateMetric(m *autoscalingv2.MetricSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Type == "" {
		errs = append(errs, field.Required(fldPath.Child("type"), "must specify a metric source type"))
	}
	known := false
	for _, t := range metricTypes {
		known = known || string(m.Type) == t
	}
	if !known {
		errs = append(errs, field.NotSupported(fldPath.Child("type"), m.Type, metricTypes))
	}
	// The sources that are set, in Kubernetes' order; only the first is validated.
	var present []string
	add := func(name string, set bool, validate func() field.ErrorList) {
		if !set {
			return
		}
		present = append(present, name)
		if len(present) == 1 {
			errs = append(errs, validate()...)
		}
	}
	add("object", m.Object != nil, func() field.ErrorList { return validateObjectSource(m.Object, fldPath.Child("object")) })
	add("external", m.External != nil, func() field.ErrorList { return validateExternalSource(m.External, fldPath.Child("external")) })
	add("pods", m.Pods != nil, func() field.ErrorList { return validatePodsSource(m.Pods, fldPath.Child("pods")) })
	add("resource", m.Resource != nil, func() field.ErrorList {
		return validateResourceSource(string(m.Resource.Name), "", false, m.Resource.Target, fldPath.Child("resource"))
	})
	add("containerResource", m.ContainerResource != nil, func() field.ErrorList {
		return validateResourceSource(string(m.ContainerResource.Name), m.ContainerResource.Container, true, m.ContainerResource.Target, fldPath.Child("containerResource"))
	})

	var expected string
	switch m.Type {
	case autoscalingv2.ObjectMetricSourceType:
		expected = "object"
		if m.Object == nil {
			errs = append(errs, field.Required(fldPath.Child("object"), "must populate information for the given metric source"))
		}
	case autoscalingv2.ExternalMetricSourceType:
		expected = "external"
		if m.External == nil {
			errs = append(errs, field.Required(fldPath.Child("external"), "must populate information for the given metric source"))
		}
	case autoscalingv2.PodsMetricSourceType:
		expected = "pods"
		if m.Pods == nil {
			errs = append(errs, field.Required(fldPath.Child("pods"), "must populate information for the given metric source"))
		}
	case autoscalingv2.ResourceMetricSourceType:
		expected = "resource"
		if m.Resource == nil {
			errs = append(errs, field.Required(fldPath.Child("resource"), "must populate information for the given metric source"))
		}
	case autoscalingv2.ContainerResourceMetricSourceType:
		expected = "containerResource"
		if m.ContainerResource == nil {
			errs = append(errs, field.Required(fldPath.Child("containerResource"), "must populate information for the given metric source"))
		}
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("type"), m.Type, metricTypes))
	}
	if len(present) > 1 {
		for _, name := range present {
			if name != expected {
				errs = append(errs, field.Forbidden(fldPath.Child(name), "must populate the given metric source only"))
			}
		}
	}
	return errs
}

func validateObjectSource(src *autoscalingv2.ObjectMetricSource, fldPath *field.Path) field.ErrorList {
	errs := validateReference(src.DescribedObject, fldPath.Child("describedObject"))
	errs = append(errs, validateIdentifier(src.Metric, fldPath.Child("metric"))...)
	errs = append(errs, validateTarget(src.Target, fldPath.Child("target"))...)
	if src.Target.Value == nil && src.Target.AverageValue == nil {
		errs = append(errs, field.Required(fldPath.Child("target", "averageValue"), "must set either a target value or averageValue"))
	}
	return errs
}

func validateExternalSource(src *autoscalingv2.ExternalMetricSource, fldPath *field.Path) field.ErrorList {
	errs := validateIdentifier(src.Metric, fldPath.Child("metric"))
	errs = append(errs, validateTarget(src.Target, fldPath.Child("target"))...)
	if src.Target.Value == nil && src.Target.AverageValue == nil {
		errs = append(errs, field.Required(fldPath.Child("target", "averageValue"), "must set either a target value for metric or a per-pod target"))
	}
	if src.Target.Value != nil && src.Target.AverageValue != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("target", "value"), "may not set both a target value for metric and a per-pod target"))
	}
	return errs
}

func validatePodsSource(src *autoscalingv2.PodsMetricSource, fldPath *field.Path) field.ErrorList {
	errs := validateIdentifier(src.Metric, fldPath.Child("metric"))
	errs = append(errs, validateTarget(src.Target, fldPath.Child("target"))...)
	if src.Target.AverageValue == nil {
		errs = append(errs, field.Required(fldPath.Child("target", "averageValue"), "must specify a positive target averageValue"))
	}
	return errs
}

func validateResourceSource(name, container string, isContainer bool, target autoscalingv2.MetricTarget, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), "must specify a resource name"))
	} else {
		errs = append(errs, validateContainerResourceName(name, fldPath.Child("name"))...)
	}
	if isContainer {
		if container == "" {
			errs = append(errs, field.Required(fldPath.Child("container"), "must specify a container"))
		} else {
			for _, msg := range content.IsDNS1123Label(container) {
				errs = append(errs, field.Invalid(fldPath.Child("container"), container, msg))
			}
		}
	}
	errs = append(errs, validateTarget(target, fldPath.Child("target"))...)
	if target.AverageUtilization == nil && target.AverageValue == nil {
		errs = append(errs, field.Required(fldPath.Child("target", "averageUtilization"), "must set either a target raw value or a target utilization"))
	}
	if target.AverageUtilization != nil && target.AverageValue != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("target", "averageValue"), "may not set both a target raw value and a target utilization"))
	}
	return errs
}

// validateContainerResourceName accepts the standard container resources (cpu, memory,
// ephemeral-storage, hugepages-*) and domain-qualified extended resources.
func validateContainerResourceName(name string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range content.IsQualifiedName(name) {
		errs = append(errs, field.Invalid(fldPath, name, msg))
	}
	if len(errs) > 0 {
		return errs
	}
	switch {
	case name == string(corev1.ResourceCPU), name == string(corev1.ResourceMemory),
		name == string(corev1.ResourceEphemeralStorage), strings.HasPrefix(name, corev1.ResourceHugePagesPrefix):
	case strings.Contains(name, "/") && !strings.Contains(name, "kubernetes.io/"):
	default:
		errs = append(errs, field.Invalid(fldPath, name, "must be a standard resource for containers"))
	}
	return errs
}

func validateIdentifier(id autoscalingv2.MetricIdentifier, fldPath *field.Path) field.ErrorList {
	return requiredPathSegment(id.Name, fldPath.Child("name"), "must specify a metric name")
}

func validateTarget(t autoscalingv2.MetricTarget, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Type == "" {
		errs = append(errs, field.Required(fldPath.Child("type"), "must specify a metric target type"))
	}
	if t.Type != autoscalingv2.UtilizationMetricType && t.Type != autoscalingv2.ValueMetricType && t.Type != autoscalingv2.AverageValueMetricType {
		errs = append(errs, field.Invalid(fldPath.Child("type"), t.Type, "must be either Utilization, Value, or AverageValue"))
	}
	if t.Value != nil && t.Value.Sign() != 1 {
		errs = append(errs, field.Invalid(fldPath.Child("value"), t.Value, "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() != 1 {
		errs = append(errs, field.Invalid(fldPath.Child("averageValue"), t.AverageValue, "must be positive"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("averageUtilization"), *t.AverageUtilization, "must be greater than 0"))
	}
	return errs
}

func validateRules(rules *autoscalingv2.HPAScalingRules, fldPath *field.Path) field.ErrorList {
	if rules == nil {
		return nil
	}
	var errs field.ErrorList
	if w := rules.StabilizationWindowSeconds; w != nil {
		if *w < 0 {
			errs = append(errs, field.Invalid(fldPath.Child("stabilizationWindowSeconds"), *w, "must be greater than or equal to zero"))
		}
		if *w > maxStabilizationWindowSeconds {
			errs = append(errs, field.Invalid(fldPath.Child("stabilizationWindowSeconds"), *w,
				fmt.Sprintf("must be less than or equal to %v", maxStabilizationWindowSeconds)))
		}
	}
	if p := rules.SelectPolicy; p != nil {
		switch *p {
		case autoscalingv2.DisabledPolicySelect, autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect:
		default:
			errs = append(errs, field.NotSupported(fldPath.Child("selectPolicy"), *p, []autoscalingv2.ScalingPolicySelect{
				autoscalingv2.DisabledPolicySelect, autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect}))
		}
	}
	pp := fldPath.Child("policies")
	if len(rules.Policies) == 0 {
		errs = append(errs, field.Required(pp, "must specify at least one Policy"))
	}
	for i, p := range rules.Policies {
		ip := pp.Index(i)
		if p.Type != autoscalingv2.PodsScalingPolicy && p.Type != autoscalingv2.PercentScalingPolicy {
			errs = append(errs, field.NotSupported(ip.Child("type"), p.Type, []autoscalingv2.HPAScalingPolicyType{
				autoscalingv2.PercentScalingPolicy, autoscalingv2.PodsScalingPolicy}))
		}
		if p.Value <= 0 {
			errs = append(errs, field.Invalid(ip.Child("value"), p.Value, "must be greater than zero"))
		}
		if p.PeriodSeconds <= 0 {
			errs = append(errs, field.Invalid(ip.Child("periodSeconds"), p.PeriodSeconds, "must be greater than zero"))
		}
		if p.PeriodSeconds > maxPeriodSeconds {
			errs = append(errs, field.Invalid(ip.Child("periodSeconds"), p.PeriodSeconds,
				fmt.Sprintf("must be less than or equal to %v", maxPeriodSeconds)))
		}
	}
	if t := rules.Tolerance; t != nil && t.Sign() < 0 {
		errs = append(errs, field.Invalid(fldPath.Child("tolerance"), t, "must be greater than or equal to zero"))
	}
	return errs
}

func isCPUUtilization(m autoscalingv2.MetricSpec) bool {
	return m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == "cpu" &&
		m.Resource.Target.Type == autoscalingv2.UtilizationMetricType
}

// V2ToV1 is the autoscaling/v1 view of a stored autoscaler: its CPU utilization target and
// current CPU utilization; other metrics have no v1 form.
func V2ToV1(in *autoscalingv2.HorizontalPodAutoscaler) *autoscalingv1.HorizontalPodAutoscaler {
	out := &autoscalingv1.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{Kind: "HorizontalPodAutoscaler", APIVersion: "autoscaling/v1"},
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference(in.Spec.ScaleTargetRef),
			MinReplicas:    in.Spec.MinReplicas,
			MaxReplicas:    in.Spec.MaxReplicas,
		},
		Status: autoscalingv1.HorizontalPodAutoscalerStatus{
			ObservedGeneration: in.Status.ObservedGeneration,
			LastScaleTime:      in.Status.LastScaleTime,
			CurrentReplicas:    in.Status.CurrentReplicas,
			DesiredReplicas:    in.Status.DesiredReplicas,
		},
	}
	for _, m := range in.Spec.Metrics {
		if isCPUUtilization(m) && m.Resource.Target.AverageUtilization != nil {
			v := *m.Resource.Target.AverageUtilization
			out.Spec.TargetCPUUtilizationPercentage = &v
		}
	}
	for _, m := range in.Status.CurrentMetrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == "cpu" && m.Resource.Current.AverageUtilization != nil {
			v := *m.Resource.Current.AverageUtilization
			out.Status.CurrentCPUUtilizationPercentage = &v
		}
	}
	return out
}
