package hpa

import (
	"context"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// fakeMetrics serves fixed samples.
type fakeMetrics struct {
	values map[string]int64
	at     time.Time
	err    error
}

func (f *fakeMetrics) PodResourceMetrics(_ context.Context, _ corev1.ResourceName, _ string, _ labels.Selector) (PodMetricsInfo, time.Time, error) {
	if f.err != nil {
		return nil, time.Time{}, f.err
	}
	out := PodMetricsInfo{}
	for name, v := range f.values {
		out[name] = PodMetric{Timestamp: f.at, Window: 30 * time.Second, Value: v}
	}
	return out, f.at, nil
}

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

type podSpec struct {
	name    string
	request string // cpu request
	phase   corev1.PodPhase
	ready   bool
	started time.Duration // how long before t0 it started
	deleted bool
}

func lister(t *testing.T, pods ...podSpec) corelisters.PodLister {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range pods {
		phase := p.phase
		if phase == "" {
			phase = corev1.PodRunning
		}
		started := p.started
		if started == 0 {
			started = time.Hour
		}
		status := corev1.ConditionFalse
		if p.ready {
			status = corev1.ConditionTrue
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: p.name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(p.request)}}}}},
			Status: corev1.PodStatus{Phase: phase, StartTime: &metav1.Time{Time: t0.Add(-started)},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status,
					LastTransitionTime: metav1.NewTime(t0.Add(-started + 10*time.Second))}}},
		}
		if p.deleted {
			pod.DeletionTimestamp = &metav1.Time{Time: t0}
		}
		if err := idx.Add(pod); err != nil {
			t.Fatal(err)
		}
	}
	return corelisters.NewPodLister(idx)
}

func calc(pods corelisters.PodLister, m MetricsClient) *ReplicaCalculator {
	return &ReplicaCalculator{Metrics: m, Pods: pods, Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute,
		InitialReadinessDelay: 30 * time.Second, Now: func() time.Time { return t0 }}
}

func ready(name string) podSpec { return podSpec{name: name, request: "100m", ready: true} }

func TestResourceReplicas(t *testing.T) {
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	for _, tc := range []struct {
		name     string
		pods     []podSpec
		usage    map[string]int64
		current  int32
		target   int32
		want     int32
		wantUtil int32
		wantErr  string
	}{
		{name: "scale up", pods: []podSpec{ready("a"), ready("b")}, usage: map[string]int64{"a": 90, "b": 90},
			current: 2, target: 50, want: 4, wantUtil: 90},
		{name: "within tolerance", pods: []podSpec{ready("a"), ready("b")}, usage: map[string]int64{"a": 54, "b": 54},
			current: 2, target: 50, want: 2, wantUtil: 54},
		{name: "just outside tolerance", pods: []podSpec{ready("a"), ready("b")}, usage: map[string]int64{"a": 56, "b": 56},
			current: 2, target: 50, want: 3, wantUtil: 56},
		{name: "scale down", pods: []podSpec{ready("a"), ready("b"), ready("c"), ready("d")},
			usage: map[string]int64{"a": 10, "b": 10, "c": 10, "d": 10}, current: 4, target: 50, want: 1, wantUtil: 10},
		{name: "missing metrics count as 100% when scaling down",
			pods:  []podSpec{ready("a"), ready("b"), ready("c")},
			usage: map[string]int64{"a": 10, "b": 10}, current: 3, target: 50,
			// (10+10+100)/300 = 40% → ratio 0.8 → ceil(0.8*3) = 3: no change
			want: 3, wantUtil: 10},
		{name: "missing metrics count as 0% when scaling up",
			pods:  []podSpec{ready("a"), ready("b"), ready("c"), ready("d")},
			usage: map[string]int64{"a": 100, "b": 100}, current: 4, target: 50,
			// (100+100+0+0)/400 = 50% → within tolerance: no change
			want: 4, wantUtil: 100},
		{name: "unready pods are left out of a scale up",
			pods:  []podSpec{ready("a"), {name: "b", request: "100m", phase: corev1.PodPending}},
			usage: map[string]int64{"a": 200}, current: 2, target: 50,
			// ratio 4 with a alone; with b at 0: 100% → ratio 2 → ceil(2*2)=4
			want: 4, wantUtil: 200},
		{name: "pods being deleted are ignored", pods: []podSpec{ready("a"), {name: "b", request: "100m", ready: true, deleted: true}},
			usage: map[string]int64{"a": 100, "b": 0}, current: 2, target: 50, want: 2, wantUtil: 100},
		{name: "cpu of a pod that just became ready after start does not count",
			pods:  []podSpec{ready("a"), {name: "b", request: "100m", ready: true, started: 20 * time.Second}},
			usage: map[string]int64{"a": 100, "b": 100}, current: 2, target: 50,
			// b's sample predates readiness+window: b counts as unready (0) → (100+0)/200 = 50%
			want: 2, wantUtil: 100},
		{name: "no metrics", pods: []podSpec{{name: "a", request: "100m", phase: corev1.PodPending}}, usage: map[string]int64{"a": 5},
			current: 1, target: 50, wantErr: "did not receive metrics for targeted pods (pods might be unready)"},
		{name: "no pods", usage: map[string]int64{"x": 5}, current: 1, target: 50,
			wantErr: "no pods returned by selector while calculating replica count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := calc(lister(t, tc.pods...), &fakeMetrics{values: tc.usage, at: t0})
			got, err := rc.ResourceReplicas(context.Background(), tc.current, tc.target, corev1.ResourceCPU, "ns", sel)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Replicas != tc.want || got.Utilization != tc.wantUtil {
				t.Fatalf("got %d replicas at %d%%, want %d at %d%%", got.Replicas, got.Utilization, tc.want, tc.wantUtil)
			}
		})
	}
}

func TestResourceReplicasErrors(t *testing.T) {
	sel := labels.Everything()
	rc := calc(lister(t, ready("a")), &fakeMetrics{err: errNoMetrics})
	_, err := rc.ResourceReplicas(context.Background(), 1, 50, corev1.ResourceCPU, "ns", sel)
	if want := "unable to get metrics for resource cpu: no metrics returned from resource metrics API"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	rc = calc(lister(t, podSpec{name: "a", ready: true, request: "100m"}), &fakeMetrics{values: map[string]int64{"a": 1}})
	if _, err := rc.ResourceReplicas(context.Background(), 1, 50, corev1.ResourceMemory, "ns", sel); err == nil ||
		err.Error() != "missing request for memory in container c of Pod a" {
		t.Fatalf("err = %v", err)
	}
}

func TestRawResourceReplicas(t *testing.T) {
	rc := calc(lister(t, ready("a"), ready("b")), &fakeMetrics{values: map[string]int64{"a": 300, "b": 300}, at: t0})
	got, err := rc.RawResourceReplicas(context.Background(), 2, 100, corev1.ResourceCPU, "ns", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if got.Replicas != 6 || got.RawAverage != 300 {
		t.Fatalf("got %+v, want 6 replicas at 300m", got)
	}
}

func policies(sel autoscalingv2.ScalingPolicySelect, window int32, ps ...autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window, SelectPolicy: &sel, Policies: ps}
}

func TestNormalize(t *testing.T) {
	upDefault, downDefault := rules(nil, 300*time.Second)
	t.Run("scale-down stabilization keeps the highest recent recommendation", func(t *testing.T) {
		h := &history{}
		got, able, _ := h.normalize(t0, 4, 4, 1, 10, upDefault, downDefault)
		if got != 4 || able.reason != "ReadyForNewScale" {
			t.Fatalf("got %d %s", got, able.reason)
		}
		got, able, _ = h.normalize(t0.Add(time.Minute), 4, 1, 1, 10, upDefault, downDefault)
		if got != 4 || able.reason != "ScaleDownStabilized" {
			t.Fatalf("within the window: got %d %s, want 4 ScaleDownStabilized", got, able.reason)
		}
		got, _, _ = h.normalize(t0.Add(301*time.Second), 4, 1, 1, 10, upDefault, downDefault)
		if got != 1 {
			t.Fatalf("after the window: got %d, want 1", got)
		}
	})
	t.Run("default scale-up allows max(4 pods, 100%) per 15s", func(t *testing.T) {
		h := &history{}
		got, _, lim := h.normalize(t0, 2, 20, 1, 50, upDefault, downDefault)
		if got != 6 || lim.reason != "ScaleUpLimit" {
			t.Fatalf("got %d %s, want 6 ScaleUpLimit", got, lim.reason)
		}
		h.record(t0, 4, longestPeriod(upDefault, downDefault))
		// 5s later the period still holds the +4: start is 2 → limit 6 again.
		got, _, _ = h.normalize(t0.Add(5*time.Second), 6, 20, 1, 50, upDefault, downDefault)
		if got != 6 {
			t.Fatalf("within the period: got %d, want 6", got)
		}
		got, _, _ = h.normalize(t0.Add(16*time.Second), 6, 20, 1, 50, upDefault, downDefault)
		if got != 12 {
			t.Fatalf("next period: got %d, want 12", got)
		}
	})
	t.Run("max replicas", func(t *testing.T) {
		h := &history{}
		got, _, lim := h.normalize(t0, 4, 8, 1, 5, upDefault, downDefault)
		if got != 5 || lim.reason != "TooManyReplicas" {
			t.Fatalf("got %d %s", got, lim.reason)
		}
	})
	t.Run("min replicas", func(t *testing.T) {
		h := &history{}
		noWindow := policies(autoscalingv2.MaxChangePolicySelect, 0, autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15})
		got, _, lim := h.normalize(t0, 4, 1, 2, 5, upDefault, noWindow)
		if got != 2 || lim.reason != "TooFewReplicas" {
			t.Fatalf("got %d %s", got, lim.reason)
		}
	})
	t.Run("scale-down policies: Min select picks the smaller change", func(t *testing.T) {
		h := &history{}
		down := policies(autoscalingv2.MinChangePolicySelect, 0,
			autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60},
			autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 50, PeriodSeconds: 60})
		got, _, lim := h.normalize(t0, 10, 1, 1, 20, upDefault, down)
		if got != 9 || lim.reason != "ScaleDownLimit" {
			t.Fatalf("got %d %s, want 9 ScaleDownLimit", got, lim.reason)
		}
		down.SelectPolicy = new(autoscalingv2.MaxChangePolicySelect)
		got, _, _ = (&history{}).normalize(t0, 10, 1, 1, 20, upDefault, down)
		if got != 5 {
			t.Fatalf("Max select: got %d, want 5", got)
		}
		down.SelectPolicy = new(autoscalingv2.DisabledPolicySelect)
		got, _, _ = (&history{}).normalize(t0, 10, 1, 1, 20, upDefault, down)
		if got != 10 {
			t.Fatalf("Disabled: got %d, want 10", got)
		}
	})
	t.Run("scale-up stabilization window keeps the lowest recent recommendation", func(t *testing.T) {
		h := &history{}
		up := policies(autoscalingv2.MaxChangePolicySelect, 60, autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15})
		h.normalize(t0, 2, 2, 1, 10, up, downDefault)
		got, able, _ := h.normalize(t0.Add(30*time.Second), 2, 4, 1, 10, up, downDefault)
		if got != 2 || able.reason != "ScaleUpStabilized" {
			t.Fatalf("got %d %s", got, able.reason)
		}
	})
	t.Run("behavior fills in defaults", func(t *testing.T) {
		up, down := rules(&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: new(int32(10))}}, 300*time.Second)
		if *down.StabilizationWindowSeconds != 10 || len(down.Policies) != 1 || len(up.Policies) != 2 {
			t.Fatalf("up %+v down %+v", up, down)
		}
		_, down = rules(nil, 7*time.Second)
		if *down.StabilizationWindowSeconds != 7 {
			t.Fatalf("configured default window not applied: %d", *down.StabilizationWindowSeconds)
		}
	})
}

func TestMilliQuantity(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		res  corev1.ResourceName
		want string
	}{{450, corev1.ResourceCPU, "450m"}, {2000, corev1.ResourceCPU, "2"}, {64 * 1024 * 1024 * 1000, corev1.ResourceMemory, "64Mi"}} {
		if got := milliQuantity(tc.v, tc.res).String(); got != tc.want {
			t.Errorf("%d %s: %s, want %s", tc.v, tc.res, got, tc.want)
		}
	}
}
