package hpa

import (
	"context"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// ReplicaCalculator turns pod metrics into a replica count, following the documented
// autoscaling algorithm: desired = ceil(current × usage/target), no change within the
// tolerance, missing metrics counted conservatively and not-yet-ready pods left out of a
// scale up.
type ReplicaCalculator struct {
	Metrics MetricsClient
	Pods    corelisters.PodLister
	// Tolerance is the ratio band around 1.0 within which nothing changes (0.1).
	Tolerance float64
	// CPUInitializationPeriod: after a pod starts, its CPU samples count only once it is
	// ready and the sample was taken after it became ready (5m).
	CPUInitializationPeriod time.Duration
	// InitialReadinessDelay: a pod that turned unready within this delay after start is
	// taken as not yet ready (30s).
	InitialReadinessDelay time.Duration
	Now                   func() time.Time
}

func (rc *ReplicaCalculator) now() time.Time {
	if rc.Now != nil {
		return rc.Now()
	}
	return time.Now()
}

// groupPods sorts the pods: ignored (being deleted, failed), unready (pending, or — for
// cpu — not yet ready after start), missing (no sample); it returns how many pods are
// ready with a sample.
func (rc *ReplicaCalculator) groupPods(pods []*corev1.Pod, metrics PodMetricsInfo, resource corev1.ResourceName) (ready int, unready, missing, ignored sets.Set[string]) {
	unready, missing, ignored = sets.New[string](), sets.New[string](), sets.New[string]()
	now := rc.now()
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
			ignored.Insert(pod.Name)
			continue
		}
		if pod.Status.Phase == corev1.PodPending {
			unready.Insert(pod.Name)
			continue
		}
		m, ok := metrics[pod.Name]
		if !ok {
			missing.Insert(pod.Name)
			continue
		}
		if resource == corev1.ResourceCPU && rc.cpuUnready(pod, m, now) {
			unready.Insert(pod.Name)
			continue
		}
		ready++
	}
	return ready, unready, missing, ignored
}

func (rc *ReplicaCalculator) cpuUnready(pod *corev1.Pod, m PodMetric, now time.Time) bool {
	var cond *corev1.PodCondition
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			cond = &pod.Status.Conditions[i]
		}
	}
	if cond == nil || pod.Status.StartTime == nil {
		return true
	}
	start := pod.Status.StartTime.Time
	if start.Add(rc.CPUInitializationPeriod).After(now) {
		// Still initializing: only a ready pod's samples taken after it became ready count.
		return cond.Status != corev1.ConditionTrue || m.Timestamp.Before(cond.LastTransitionTime.Add(m.Window))
	}
	// Past initialization: a pod that has never been ready since start is not yet ready.
	return cond.Status == corev1.ConditionFalse && start.Add(rc.InitialReadinessDelay).After(cond.LastTransitionTime.Time)
}

// podRequests sums each pod's container requests of the resource.
func podRequests(pods []*corev1.Pod, resource corev1.ResourceName) (map[string]int64, error) {
	out := make(map[string]int64, len(pods))
	for _, pod := range pods {
		var sum int64
		for _, c := range pod.Spec.Containers {
			q, ok := c.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, c.Name, pod.Name)
			}
			sum += q.MilliValue()
		}
		out[pod.Name] = sum
	}
	return out, nil
}

func within(ratio, tolerance float64) bool { return math.Abs(1.0-ratio) <= tolerance }

// UtilizationResult is a utilization-based recommendation.
type UtilizationResult struct {
	Replicas    int32
	Utilization int32 // percent of requests, over the pods with samples
	RawAverage  int64 // average usage in milli-units
	Timestamp   time.Time
}

// ResourceReplicas recommends a replica count for a target utilization (percent of
// requests) of the resource by the pods the selector picks.
func (rc *ReplicaCalculator) ResourceReplicas(ctx context.Context, current int32, target int32, resource corev1.ResourceName, namespace string, selector labels.Selector) (UtilizationResult, error) {
	metrics, ts, err := rc.Metrics.PodResourceMetrics(ctx, resource, namespace, selector)
	if err != nil {
		return UtilizationResult{}, fmt.Errorf("unable to get metrics for resource %s: %w", resource, err)
	}
	pods, err := rc.Pods.Pods(namespace).List(selector)
	if err != nil {
		return UtilizationResult{}, fmt.Errorf("unable to get pods while calculating replica count: %w", err)
	}
	if len(pods) == 0 {
		return UtilizationResult{}, fmt.Errorf("no pods returned by selector while calculating replica count")
	}
	ready, unready, missing, ignored := rc.groupPods(pods, metrics, resource)
	metrics = without(metrics, ignored, unready)
	requests, err := podRequests(pods, resource)
	if err != nil {
		return UtilizationResult{}, err
	}
	if len(metrics) == 0 {
		return UtilizationResult{}, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, utilization, raw, err := utilizationRatio(metrics, requests, target)
	if err != nil {
		return UtilizationResult{}, err
	}
	res := UtilizationResult{Replicas: current, Utilization: utilization, RawAverage: raw, Timestamp: ts}
	scaleUpWithUnready := unready.Len() > 0 && ratio > 1.0
	if !scaleUpWithUnready && missing.Len() == 0 {
		if !within(ratio, rc.Tolerance) {
			res.Replicas = int32(math.Ceil(ratio * float64(ready)))
		}
		return res, nil
	}
	// Fill in the unknowns on the side that argues against the change.
	if missing.Len() > 0 {
		for name := range missing {
			if ratio < 1.0 {
				metrics[name] = PodMetric{Value: requests[name]}
			} else {
				metrics[name] = PodMetric{Value: 0}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = PodMetric{Value: 0}
		}
	}
	newRatio, _, _, err := utilizationRatio(metrics, requests, target)
	if err != nil {
		return UtilizationResult{}, err
	}
	res.Replicas = settle(current, ratio, newRatio, len(metrics), rc.Tolerance)
	return res, nil
}

// settle is the recommendation after unknowns were filled in: none when the new ratio is
// within tolerance or points the other way, nor when the count would move against the
// original direction.
func settle(current int32, ratio, newRatio float64, n int, tolerance float64) int32 {
	if within(newRatio, tolerance) || (ratio > 1.0) != (newRatio > 1.0) {
		return current
	}
	replicas := int32(math.Ceil(newRatio * float64(n)))
	if (newRatio < 1.0 && replicas > current) || (newRatio > 1.0 && replicas < current) {
		return current
	}
	return replicas
}

func without(m PodMetricsInfo, drop ...sets.Set[string]) PodMetricsInfo {
	out := make(PodMetricsInfo, len(m))
	for name, v := range m {
		skip := false
		for _, s := range drop {
			if s.Has(name) {
				skip = true
			}
		}
		if !skip {
			out[name] = v
		}
	}
	return out
}

// utilizationRatio is usage/requests over the pods with samples, against the target percent.
func utilizationRatio(metrics PodMetricsInfo, requests map[string]int64, target int32) (ratio float64, utilization int32, rawAverage int64, err error) {
	var usage, requested int64
	n := 0
	for name, m := range metrics {
		req, ok := requests[name]
		if !ok {
			continue // a pod that disappeared between the two reads
		}
		usage += m.Value
		requested += req
		n++
	}
	if requested == 0 || n == 0 {
		return 0, 0, 0, fmt.Errorf("no metrics returned matched known pods")
	}
	u := int32(usage * 100 / requested)
	return float64(u) / float64(target), u, usage / int64(n), nil
}

// RawResult is an average-value recommendation.
type RawResult struct {
	Replicas   int32
	RawAverage int64 // milli-units
	Timestamp  time.Time
}

// RawResourceReplicas recommends a replica count for a target average usage (milli-units)
// of the resource per pod.
func (rc *ReplicaCalculator) RawResourceReplicas(ctx context.Context, current int32, target int64, resource corev1.ResourceName, namespace string, selector labels.Selector) (RawResult, error) {
	metrics, ts, err := rc.Metrics.PodResourceMetrics(ctx, resource, namespace, selector)
	if err != nil {
		return RawResult{}, fmt.Errorf("unable to get metrics for resource %s: %w", resource, err)
	}
	pods, err := rc.Pods.Pods(namespace).List(selector)
	if err != nil {
		return RawResult{}, fmt.Errorf("unable to get pods while calculating replica count: %w", err)
	}
	if len(pods) == 0 {
		return RawResult{}, fmt.Errorf("no pods returned by selector while calculating replica count")
	}
	ready, unready, missing, ignored := rc.groupPods(pods, metrics, resource)
	metrics = without(metrics, ignored, unready)
	if len(metrics) == 0 {
		return RawResult{}, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	avg := func(m PodMetricsInfo) int64 {
		var sum int64
		for _, v := range m {
			sum += v.Value
		}
		return sum / int64(len(m))
	}
	raw := avg(metrics)
	ratio := float64(raw) / float64(target)
	res := RawResult{Replicas: current, RawAverage: raw, Timestamp: ts}
	scaleUpWithUnready := unready.Len() > 0 && ratio > 1.0
	if !scaleUpWithUnready && missing.Len() == 0 {
		if !within(ratio, rc.Tolerance) {
			res.Replicas = int32(math.Ceil(ratio * float64(ready)))
		}
		return res, nil
	}
	for name := range missing {
		if ratio < 1.0 {
			metrics[name] = PodMetric{Value: target}
		} else {
			metrics[name] = PodMetric{Value: 0}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = PodMetric{Value: 0}
		}
	}
	newRatio := float64(avg(metrics)) / float64(target)
	res.Replicas = settle(current, ratio, newRatio, len(metrics), rc.Tolerance)
	return res, nil
}
