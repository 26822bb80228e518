package autoscaling

import (
	"reflect"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func resource2(t *testing.T, version string) *registry.Resource {
	t.Helper()
	for _, r := range Resources() {
		if r.Version == version {
			return r
		}
	}
	t.Fatalf("no version %q", version)
	return nil
}

func errStrings(errs field.ErrorList) []string {
	out := []string{}
	for _, e := range errs {
		out = append(out, string(e.Type)+" "+e.Field+": "+e.Detail)
	}
	return out
}

var target = autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}

func TestDefaultsV2(t *testing.T) {
	tests := []struct {
		name string
		spec autoscalingv2.HorizontalPodAutoscalerSpec
		want autoscalingv2.HorizontalPodAutoscalerSpec
	}{{
		name: "minimal",
		spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: target, MaxReplicas: 5},
		want: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MaxReplicas: 5, MinReplicas: new(int32(1)),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{Name: "cpu", Target: autoscalingv2.MetricTarget{
					Type: autoscalingv2.UtilizationMetricType, AverageUtilization: new(int32(80)),
				}},
			}},
		},
	}, {
		name: "partial behavior",
		spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MaxReplicas: 5, MinReplicas: new(int32(2)),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{Name: "memory", Target: autoscalingv2.MetricTarget{
					Type: autoscalingv2.AverageValueMetricType, AverageValue: new(resource.MustParse("500Mi")),
				}},
			}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: new(int32(60))},
			},
		},
		want: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MaxReplicas: 5, MinReplicas: new(int32(2)),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{Name: "memory", Target: autoscalingv2.MetricTarget{
					Type: autoscalingv2.AverageValueMetricType, AverageValue: new(resource.MustParse("500Mi")),
				}},
			}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: new(int32(0)),
					SelectPolicy:               new(autoscalingv2.MaxChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
						{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
					},
				},
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: new(int32(60)),
					SelectPolicy:               new(autoscalingv2.MaxChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
					},
				},
			},
		},
	}}
	r := resource2(t, "v2")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &autoscalingv2.HorizontalPodAutoscaler{Spec: tt.spec}
			r.Default(h)
			if !reflect.DeepEqual(h.Spec, tt.want) {
				t.Errorf("spec:\n%#v\nwant:\n%#v", h.Spec, tt.want)
			}
			if errs := r.Validate(h); len(errs) != 0 {
				t.Errorf("unexpected errors %v", errs)
			}
		})
	}
}

func TestDefaultsV1(t *testing.T) {
	h := &autoscalingv1.HorizontalPodAutoscaler{Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web"}, MaxReplicas: 3}}
	r := resource2(t, "v1")
	r.Default(h)
	if *h.Spec.MinReplicas != 1 || h.Spec.TargetCPUUtilizationPercentage != nil {
		t.Errorf("spec %+v", h.Spec)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		version string
		obj     runtime.Object
		want    []string
	}{{
		name:    "max below min",
		version: "v2",
		obj: &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MinReplicas: new(int32(4)), MaxReplicas: 2}},
		want: []string{"FieldValueInvalid spec.maxReplicas: must be greater than or equal to `minReplicas`"},
	}, {
		name:    "target missing",
		version: "v2",
		obj:     &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 0}},
		want: []string{
			"FieldValueInvalid spec.maxReplicas: must be greater than 0",
			"FieldValueRequired spec.scaleTargetRef.kind: ",
			"FieldValueRequired spec.scaleTargetRef.name: ",
		},
	}, {
		name:    "zero min replicas",
		version: "v2",
		obj: &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MinReplicas: new(int32(0)), MaxReplicas: 2}},
		want: []string{
			"FieldValueInvalid spec.minReplicas: must be greater than or equal to 1",
			"FieldValueForbidden spec.metrics: must specify at least one Object or External metric to support scaling to zero replicas",
		},
	}, {
		name:    "pods metric without target",
		version: "v2",
		obj: &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MaxReplicas: 2,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "qps"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType}}}}}},
		want: []string{"FieldValueRequired spec.metrics[0].pods.target.averageValue: must specify a positive target averageValue"},
	}, {
		name:    "bad policy",
		version: "v2",
		obj: &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MaxReplicas: 2, Metrics: []autoscalingv2.MetricSpec{cpuMetric(50)},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{
				Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 0, PeriodSeconds: 3600}}}}}},
		want: []string{
			"FieldValueInvalid spec.behavior.scaleUp.policies[0].value: must be greater than zero",
			"FieldValueInvalid spec.behavior.scaleUp.policies[0].periodSeconds: must be less than or equal to 1800",
		},
	}, {
		name:    "v1 target utilization",
		version: "v1",
		obj: &autoscalingv1.HorizontalPodAutoscaler{Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
			MaxReplicas:    2, TargetCPUUtilizationPercentage: new(int32(0))}},
		want: []string{"FieldValueInvalid spec.metrics[0].resource.target.averageUtilization: must be greater than 0"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errStrings(resource2(t, tt.version).Validate(tt.obj)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestRows(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	meta := metav1.ObjectMeta{Name: "web", CreationTimestamp: metav1.NewTime(now.Add(-5 * time.Hour))}
	cpu := cpuMetric(80)
	mem := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: "memory", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: new(resource.MustParse("500Mi"))}}}
	pods := autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "qps"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: new(resource.MustParse("10"))}}}
	ext := autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "queue"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: new(resource.MustParse("30"))}}}
	tests := []struct {
		name    string
		version string
		obj     runtime.Object
		want    []interface{}
	}{{
		name:    "cpu, nothing measured yet",
		version: "v2",
		obj: &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MinReplicas: new(int32(1)), MaxReplicas: 10, Metrics: []autoscalingv2.MetricSpec{cpu}}},
		want: []interface{}{"web", "Deployment/web", "cpu: <unknown>/80%", "1", int64(10), int64(0), "5h"},
	}, {
		name:    "cpu measured",
		version: "v2",
		obj: &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta,
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: target, MinReplicas: new(int32(2)), MaxReplicas: 10, Metrics: []autoscalingv2.MetricSpec{cpu, mem}},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 3, CurrentMetrics: []autoscalingv2.MetricStatus{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: "cpu", Current: autoscalingv2.MetricValueStatus{AverageUtilization: new(int32(50))}}},
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: "memory", Current: autoscalingv2.MetricValueStatus{AverageValue: new(resource.MustParse("200Mi"))}}},
			}}},
		want: []interface{}{"web", "Deployment/web", "cpu: 50%/80%, memory: 200Mi/500Mi", "2", int64(10), int64(3), "5h"},
	}, {
		name:    "more than two metrics",
		version: "v2",
		obj: &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: target, MaxReplicas: 4, Metrics: []autoscalingv2.MetricSpec{pods, ext, cpu, mem}}},
		want: []interface{}{"web", "Deployment/web", "<unknown>/10, <unknown>/30 (avg) + 2 more...", "<unset>", int64(4), int64(0), "5h"},
	}, {
		name:    "v1 with a target",
		version: "v1",
		obj: &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: meta,
			Spec: autoscalingv1.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
				MinReplicas: new(int32(1)), MaxReplicas: 5, TargetCPUUtilizationPercentage: new(int32(60))},
			Status: autoscalingv1.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, CurrentCPUUtilizationPercentage: new(int32(35))}},
		want: []interface{}{"web", "Deployment/web", "cpu: 35%/60%", "1", int64(5), int64(2), "5h"},
	}, {
		name:    "v1 without a target",
		version: "v1",
		obj: &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: meta,
			Spec: autoscalingv1.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
				MinReplicas: new(int32(1)), MaxReplicas: 5}},
		want: []interface{}{"web", "Deployment/web", "cpu: <unknown>/80%", "1", int64(5), int64(0), "5h"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resource2(t, tt.version)
			got := r.Row(tt.obj, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("row %#v\nwant %#v", got, tt.want)
			}
			if len(got) != len(r.Columns) {
				t.Errorf("%d cells for %d columns", len(got), len(r.Columns))
			}
		})
	}
}
