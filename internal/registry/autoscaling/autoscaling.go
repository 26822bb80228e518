// Package autoscaling describes horizontalpodautoscalers in autoscaling/v1 and autoscaling/v2,
// with Kubernetes' defaults, validation and table columns. The two versions are separate
// Resources; autoscaling/v1 objects are validated through their autoscaling/v2 form, so errors
// carry the paths Kubernetes reports (Kubernetes validates its internal, v2-shaped, type).
package autoscaling

import (
	"fmt"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns horizontalpodautoscalers in autoscaling/v1 and autoscaling/v2.
func Resources() []*registry.Resource {
	return []*registry.Resource{v1Resource(), v2Resource()}
}

func newResource(version string, newObj, newList func() runtime.Object) *registry.Resource {
	return &registry.Resource{
		Group:        autoscalingv2.GroupName,
		Version:      version,
		Resource:     "horizontalpodautoscalers",
		Kind:         "HorizontalPodAutoscaler",
		ListKind:     "HorizontalPodAutoscalerList",
		SingularName: "horizontalpodautoscaler",
		Namespaced:   true,
		ShortNames:   []string{"hpa"},
		Categories:   []string{"all"},
		New:          newObj,
		NewList:      newList,
		HasStatus:    true,
		// Kubernetes' autoscaler strategy does not track metadata.generation.
		NoGeneration: true,
		Columns: []metav1.TableColumnDefinition{
			registry.NameCol,
			registry.Col("Reference", "string", autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()["scaleTargetRef"], 0),
			registry.Col("Targets", "string", autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()["metrics"], 0),
			registry.Col("MinPods", "string", autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()["minReplicas"], 0),
			registry.Col("MaxPods", "string", autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()["maxReplicas"], 0),
			registry.Col("Replicas", "string", autoscalingv2.HorizontalPodAutoscalerStatus{}.SwaggerDoc()["currentReplicas"], 0),
			registry.AgeCol,
		},
	}
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// row is the table row of an autoscaler in its v2 form.
func row(meta *metav1.ObjectMeta, spec *autoscalingv2.HorizontalPodAutoscalerSpec, status *autoscalingv2.HorizontalPodAutoscalerStatus, now time.Time) []interface{} {
	minPods := "<unset>"
	if spec.MinReplicas != nil {
		minPods = fmt.Sprintf("%d", *spec.MinReplicas)
	}
	return []interface{}{
		meta.Name,
		fmt.Sprintf("%s/%s", spec.ScaleTargetRef.Kind, spec.ScaleTargetRef.Name),
		formatMetrics(spec.Metrics, status.CurrentMetrics),
		minPods,
		int64(spec.MaxReplicas),
		int64(status.CurrentReplicas),
		registry.Age(meta.CreationTimestamp, now),
	}
}

// str prints an optional quantity, <unknown> when it is missing.
func str(q *resource.Quantity) string {
	if q == nil {
		return "<unknown>"
	}
	return q.String()
}

func percent(p *int32, missing string) string {
	if p == nil {
		return missing
	}
	return fmt.Sprintf("%d%%", *p)
}

// formatMetrics prints the Targets cell: each metric's current value against its target,
// the first two of them and a count of the rest. A metric's status is the one at the same
// index in status.currentMetrics.
func formatMetrics(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	var list []string
	for i, spec := range specs {
		var st *autoscalingv2.MetricStatus
		if i < len(statuses) {
			st = &statuses[i]
		}
		current := "<unknown>"
		switch spec.Type {
		case autoscalingv2.ExternalMetricSourceType:
			t := spec.External.Target
			if t.AverageValue != nil {
				if st != nil && st.External != nil && st.External.Current.AverageValue != nil {
					current = st.External.Current.AverageValue.String()
				}
				list = append(list, fmt.Sprintf("%s/%s (avg)", current, t.AverageValue.String()))
			} else {
				if st != nil && st.External != nil {
					current = str(st.External.Current.Value)
				}
				list = append(list, fmt.Sprintf("%s/%s", current, str(t.Value)))
			}
		case autoscalingv2.PodsMetricSourceType:
			if st != nil && st.Pods != nil {
				current = str(st.Pods.Current.AverageValue)
			}
			list = append(list, fmt.Sprintf("%s/%s", current, str(spec.Pods.Target.AverageValue)))
		case autoscalingv2.ObjectMetricSourceType:
			t := spec.Object.Target
			if t.AverageValue != nil {
				if st != nil && st.Object != nil && st.Object.Current.AverageValue != nil {
					current = st.Object.Current.AverageValue.String()
				}
				list = append(list, fmt.Sprintf("%s/%s (avg)", current, t.AverageValue.String()))
			} else {
				if st != nil && st.Object != nil {
					current = str(st.Object.Current.Value)
				}
				list = append(list, fmt.Sprintf("%s/%s", current, str(t.Value)))
			}
		case autoscalingv2.ResourceMetricSourceType:
			t := spec.Resource.Target
			if t.AverageValue != nil {
				if st != nil && st.Resource != nil {
					current = str(st.Resource.Current.AverageValue)
				}
				list = append(list, fmt.Sprintf("%s: %s/%s", spec.Resource.Name, current, t.AverageValue.String()))
			} else {
				if st != nil && st.Resource != nil {
					current = percent(st.Resource.Current.AverageUtilization, current)
				}
				list = append(list, fmt.Sprintf("%s: %s/%s", spec.Resource.Name, current, percent(t.AverageUtilization, "<auto>")))
			}
		case autoscalingv2.ContainerResourceMetricSourceType:
			t := spec.ContainerResource.Target
			if t.AverageValue != nil {
				if st != nil && st.ContainerResource != nil {
					current = str(st.ContainerResource.Current.AverageValue)
				}
				list = append(list, fmt.Sprintf("%s: %s/%s", spec.ContainerResource.Name, current, t.AverageValue.String()))
			} else {
				if st != nil && st.ContainerResource != nil {
					current = percent(st.ContainerResource.Current.AverageUtilization, current)
				}
				list = append(list, fmt.Sprintf("%s: %s/%s", spec.ContainerResource.Name, current, percent(t.AverageUtilization, "<auto>")))
			}
		default:
			list = append(list, "<unknown type>")
		}
	}
	const max = 2
	if len(list) > max {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:max], ", "), len(list)-max)
	}
	return strings.Join(list, ", ")
}

// v1ToV2 gives an autoscaling/v1 autoscaler its autoscaling/v2 form, as Kubernetes converts
// it: targetCPUUtilizationPercentage is a CPU utilization metric.
func v1ToV2(in *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: in.ObjectMeta,
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference(in.Spec.ScaleTargetRef),
			MinReplicas:    in.Spec.MinReplicas,
			MaxReplicas:    in.Spec.MaxReplicas,
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			ObservedGeneration: in.Status.ObservedGeneration,
			LastScaleTime:      in.Status.LastScaleTime,
			CurrentReplicas:    in.Status.CurrentReplicas,
			DesiredReplicas:    in.Status.DesiredReplicas,
		},
	}
	if in.Spec.TargetCPUUtilizationPercentage != nil {
		out.Spec.Metrics = []autoscalingv2.MetricSpec{cpuMetric(*in.Spec.TargetCPUUtilizationPercentage)}
	}
	if in.Status.CurrentCPUUtilizationPercentage != nil {
		out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{
				Name:    "cpu",
				Current: autoscalingv2.MetricValueStatus{AverageUtilization: in.Status.CurrentCPUUtilizationPercentage},
			},
		}}
	}
	return out
}

// cpuMetric is an average CPU utilization target.
func cpuMetric(percent int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name:   "cpu",
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: new(percent)},
		},
	}
}
