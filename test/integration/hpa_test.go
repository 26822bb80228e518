package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/controller/deployment"
	"github.com/skiff-sh/skiff/internal/controller/hpa"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// hpaMetrics is an injected metrics source: every running pod the selector picks uses the
// same CPU, set by the test.
type hpaMetrics struct {
	mu     sync.Mutex
	client kubernetes.Interface
	milli  int64
	err    error
}

func (m *hpaMetrics) set(milli int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.milli, m.err = milli, err
}

func (m *hpaMetrics) PodResourceMetrics(ctx context.Context, res corev1.ResourceName, ns string, sel labels.Selector) (hpa.PodMetricsInfo, time.Time, error) {
	m.mu.Lock()
	client, milli, err := m.client, m.milli, m.err
	m.mu.Unlock()
	if err != nil {
		return nil, time.Time{}, err
	}
	if client == nil {
		return nil, time.Time{}, errors.New("no client yet")
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, time.Time{}, err
	}
	now := time.Now()
	out := hpa.PodMetricsInfo{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning {
			out[p.Name] = hpa.PodMetric{Timestamp: now, Window: time.Millisecond, Value: milli}
		}
	}
	if len(out) == 0 {
		return nil, time.Time{}, errors.New("no metrics returned from resource metrics API")
	}
	return out, now, nil
}

func hpaCluster(t *testing.T) (*skifftest.Cluster, *hpaMetrics) {
	t.Helper()
	m := &hpaMetrics{}
	c := skifftest.Start(t, skifftest.Options{
		Controllers: []controlplane.ComponentFactory{
			deployment.New, replicaset.New, scheduler.New,
			hpa.NewFactory(hpa.Config{SyncPeriod: 200 * time.Millisecond, DownscaleStabilization: time.Second, Metrics: m}),
		},
		NodeComponents: []controlplane.ComponentFactory{simnode.NewFactory(simnode.Config{Count: 2, StartDelay: 100 * time.Millisecond})},
	})
	m.mu.Lock()
	m.client = c.Client
	m.mu.Unlock()
	return c, m
}

func hpaDeployment(name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "skiff.local/web:v1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
			},
		},
	}
}

func hpaFor(name string, minR, maxR, cpu int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    &minR, MaxReplicas: maxR,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &cpu}}}},
		},
	}
}

func hpaEventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

func hpaEventMessages(t *testing.T, c *skifftest.Cluster, ns, name string) []string {
	t.Helper()
	list, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.kind": "HorizontalPodAutoscaler", "involvedObject.name": name}.String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out
}

func hpaCond(h *autoscalingv2.HorizontalPodAutoscaler, ct autoscalingv2.HorizontalPodAutoscalerConditionType) autoscalingv2.HorizontalPodAutoscalerCondition {
	for _, c := range h.Status.Conditions {
		if c.Type == ct {
			return c
		}
	}
	return autoscalingv2.HorizontalPodAutoscalerCondition{}
}

// hpaWaitRunning waits for n running pods of the app.
func hpaWaitRunning(t *testing.T, c *skifftest.Cluster, ns, app string, n int) {
	t.Helper()
	hpaEventually(t, 20*time.Second, fmt.Sprintf("%d running pods", n), func() (bool, string) {
		pods, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		return running == n && len(pods.Items) == n, fmt.Sprintf("%d running of %d", running, len(pods.Items))
	})
}

func hpaGet(t *testing.T, c *skifftest.Cluster, ns, name string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	h, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHPAScalesUpAndDownOnCPU(t *testing.T) {
	c, m := hpaCluster(t)
	ctx := context.Background()
	ns := "default"
	m.set(40, nil) // 40% of request: within tolerance of nothing, below 50%
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, hpaDeployment("web", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpaWaitRunning(t, c, ns, "web", 2)
	m.set(48, nil) // 48% of 50%: within the 10% tolerance, no change
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpaFor("web", 1, 5, 50), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpaEventually(t, 10*time.Second, "status with the current metric", func() (bool, string) {
		h := hpaGet(t, c, ns, "web")
		ok := len(h.Status.CurrentMetrics) == 1 && h.Status.CurrentMetrics[0].Resource != nil &&
			h.Status.CurrentMetrics[0].Resource.Current.AverageUtilization != nil &&
			*h.Status.CurrentMetrics[0].Resource.Current.AverageUtilization == 48
		return ok && h.Status.DesiredReplicas == 2 && h.Status.CurrentReplicas == 2 &&
			hpaCond(h, autoscalingv2.ScalingActive).Reason == "ValidMetricFound" &&
			hpaCond(h, autoscalingv2.AbleToScale).Status == corev1.ConditionTrue &&
			hpaCond(h, autoscalingv2.ScalingLimited).Reason == "DesiredWithinRange", fmt.Sprintf("%+v", h.Status)
	})
	if h := hpaGet(t, c, ns, "web"); h.Status.LastScaleTime != nil || h.Status.ObservedGeneration == nil {
		t.Fatalf("no rescale expected yet: %+v", h.Status)
	}

	// 90% against 50%: ceil(2 × 1.8) = 4.
	m.set(90, nil)
	hpaEventually(t, 10*time.Second, "SuccessfulRescale to 4", func() (bool, string) {
		ev := hpaEventMessages(t, c, ns, "web")
		for _, e := range ev {
			if e == "SuccessfulRescale: New size: 4; reason: cpu resource utilization (percentage of request) above target" {
				return true, ""
			}
		}
		return false, strings.Join(ev, "\n")
	})
	// The four pods at 90% want 8: capped at maxReplicas 5.
	hpaWaitRunning(t, c, ns, "web", 5)
	hpaEventually(t, 10*time.Second, "limited at max", func() (bool, string) {
		h := hpaGet(t, c, ns, "web")
		lim := hpaCond(h, autoscalingv2.ScalingLimited)
		return h.Status.DesiredReplicas == 5 && lim.Status == corev1.ConditionTrue && lim.Reason == "TooManyReplicas" &&
			h.Status.LastScaleTime != nil, fmt.Sprintf("%+v", h.Status)
	})

	// 10%: ceil(5 × 0.2) = 1 once the (1s) scale-down stabilization window has passed.
	m.set(10, nil)
	hpaWaitRunning(t, c, ns, "web", 1)
	hpaEventually(t, 10*time.Second, "scale-down event", func() (bool, string) {
		ev := hpaEventMessages(t, c, ns, "web")
		for _, e := range ev {
			if e == "SuccessfulRescale: New size: 1; reason: All metrics below target" {
				return true, ""
			}
		}
		return false, strings.Join(ev, "\n")
	})

	// Metrics unavailable: ScalingActive false, FailedGetResourceMetric, no rescale.
	m.set(0, errors.New("no metrics returned from resource metrics API"))
	hpaEventually(t, 10*time.Second, "FailedGetResourceMetric", func() (bool, string) {
		h := hpaGet(t, c, ns, "web")
		act := hpaCond(h, autoscalingv2.ScalingActive)
		return act.Status == corev1.ConditionFalse && act.Reason == "FailedGetResourceMetric" &&
				strings.Contains(act.Message, "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"),
			fmt.Sprintf("%+v", act)
	})
	found := false
	for _, e := range hpaEventMessages(t, c, ns, "web") {
		if strings.HasPrefix(e, "FailedGetResourceMetric: failed to get cpu utilization") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no FailedGetResourceMetric event: %v", hpaEventMessages(t, c, ns, "web"))
	}
	if d, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); *d.Spec.Replicas != 1 {
		t.Fatalf("replicas changed without metrics: %d", *d.Spec.Replicas)
	}
}

func TestHPAMinMaxAndDisabled(t *testing.T) {
	c, m := hpaCluster(t)
	ctx := context.Background()
	ns := "default"
	m.set(50, nil)
	// Below minReplicas: raised to the minimum whatever the metrics say.
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, hpaDeployment("low", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpaFor("low", 3, 6, 50), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpaEventually(t, 10*time.Second, "raised to min", func() (bool, string) {
		for _, e := range hpaEventMessages(t, c, ns, "low") {
			if e == "SuccessfulRescale: New size: 3; reason: Current number of replicas below Spec.MinReplicas" {
				return true, ""
			}
		}
		return false, strings.Join(hpaEventMessages(t, c, ns, "low"), "\n")
	})
	hpaWaitRunning(t, c, ns, "low", 3)

	// A target scaled to zero disables autoscaling.
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, hpaDeployment("zero", 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpaFor("zero", 1, 3, 50), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpaEventually(t, 10*time.Second, "ScalingDisabled", func() (bool, string) {
		h := hpaGet(t, c, ns, "zero")
		act := hpaCond(h, autoscalingv2.ScalingActive)
		return act.Status == corev1.ConditionFalse && act.Reason == "ScalingDisabled" && h.Status.DesiredReplicas == 0, fmt.Sprintf("%+v", h.Status)
	})

	// A missing target: AbleToScale false with FailedGetScale.
	if _, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpaFor("ghost", 1, 3, 50), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpaEventually(t, 10*time.Second, "FailedGetScale", func() (bool, string) {
		h := hpaGet(t, c, ns, "ghost")
		able := hpaCond(h, autoscalingv2.AbleToScale)
		return able.Status == corev1.ConditionFalse && able.Reason == "FailedGetScale", fmt.Sprintf("%+v", h.Status)
	})
}
