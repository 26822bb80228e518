package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/util/retry"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/nodelifecycle"
	"github.com/skiff-sh/skiff/internal/controller/podgc"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

const nlGrace = 3 * time.Second

func nlCluster(t *testing.T, simNodes int) *skifftest.Cluster {
	t.Helper()
	return simCluster(t, simnode.Config{Count: simNodes, StartDelay: 100 * time.Millisecond, StopDelay: 200 * time.Millisecond},
		skifftest.Options{
			Controllers:       []controlplane.ComponentFactory{nodelifecycle.New, podgc.New},
			ControllerOptions: controller.Options{NodeMonitorGracePeriod: nlGrace},
		})
}

// nlCreateSilentNode registers a node that posts Ready and a lease once, then never again:
// a kubelet that died.
func nlCreateSilentNode(t *testing.T, c *skifftest.Cluster, name string) {
	t.Helper()
	ctx := context.Background()
	now := metav1.Now()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10"), corev1.ResourceCPU: resource.MustParse("2")},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now},
			},
		},
	}
	created, err := c.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Status.Conditions) == 0 {
		created.Status = n.Status
		if _, err := c.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	holder, secs, renew := name, int32(40), metav1.NewMicroTime(time.Now())
	if _, err := c.Client.CoordinationV1().Leases("kube-node-lease").Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-node-lease"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &renew},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func nlNode(t *testing.T, c *skifftest.Cluster, name string) *corev1.Node {
	t.Helper()
	n, err := c.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func nlReady(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func nlTaint(n *corev1.Node, key string, effect corev1.TaintEffect) *corev1.Taint {
	for i := range n.Spec.Taints {
		if n.Spec.Taints[i].Key == key && n.Spec.Taints[i].Effect == effect {
			return &n.Spec.Taints[i]
		}
	}
	return nil
}

// nlMarkRunning posts a running, ready status for a pod, as a kubelet would have.
func nlMarkRunning(t *testing.T, c *skifftest.Cluster, ns, name string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := simGetPod(t, c, ns, name)
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now})
		_, err := c.Client.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNodeLifecycleSilentNodeIsTaintedAndEvicted(t *testing.T) {
	c := nlCluster(t, 3)
	simReadyNodes(t, c, 3)
	ctx := context.Background()
	start := time.Now()
	nlCreateSilentNode(t, c, "silent-1")
	short := int64(1)
	p := simPod("short", corev1.RestartPolicyAlways, nil)
	p.Spec.Tolerations = []corev1.Toleration{
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &short},
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &short},
	}
	simCreateAndBind(t, c, "default", p, "silent-1")
	simCreateAndBind(t, c, "default", simPod("patient", corev1.RestartPolicyAlways, nil), "silent-1") // default 300s tolerations
	nlMarkRunning(t, c, "default", "short")
	nlMarkRunning(t, c, "default", "patient")

	simEventually(t, 30*time.Second, "node Unknown with taints", func() (bool, string) {
		n := nlNode(t, c, "silent-1")
		r := nlReady(n)
		ne := nlTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
		return r != nil && r.Status == corev1.ConditionUnknown && ne != nil && ne.TimeAdded != nil &&
				nlTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule) != nil,
			fmt.Sprintf("ready=%+v taints=%+v", r, n.Spec.Taints)
	})
	unknownAfter := time.Since(start)
	t.Logf("node Unknown and tainted after %v (grace %v)", unknownAfter.Round(time.Millisecond), nlGrace)
	if unknownAfter < nlGrace {
		t.Fatalf("marked Unknown after %v, before the grace period", unknownAfter)
	}
	n := nlNode(t, c, "silent-1")
	if r := nlReady(n); r.Reason != "NodeStatusUnknown" || r.Message != "Kubelet stopped posting node status." {
		t.Fatalf("ready condition: %+v", r)
	}
	for _, cond := range n.Status.Conditions {
		if cond.Status != corev1.ConditionUnknown {
			t.Fatalf("condition %s still %s", cond.Type, cond.Status)
		}
	}

	simEventually(t, 30*time.Second, "short-tolerating pod evicted", func() (bool, string) {
		p := simGetPod(t, c, "default", "short")
		if p == nil {
			return true, "gone"
		}
		return p.DeletionTimestamp != nil, "not deleted"
	})
	patient := simGetPod(t, c, "default", "patient")
	if patient == nil || patient.DeletionTimestamp != nil {
		t.Fatal("pod with the default 300s toleration evicted")
	}
	if simPodCondition(patient, corev1.PodReady) != corev1.ConditionFalse {
		t.Fatalf("pod on the unknown node still ready: %+v", patient.Status.Conditions)
	}
	simEventually(t, 30*time.Second, "eviction event", func() (bool, string) {
		evs, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "short").String()})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Reason == "TaintManagerEviction" && e.Message == "Marking for deletion Pod default/short" {
				return true, ""
			}
			seen = append(seen, e.Reason)
		}
		return false, fmt.Sprint(seen)
	})
	// Healthy simulated nodes are untouched.
	for _, name := range []string{"sim-0", "sim-1", "sim-2"} {
		if n := nlNode(t, c, name); nlReady(n).Status != corev1.ConditionTrue || len(n.Spec.Taints) != 0 {
			t.Fatalf("%s: %+v %+v", name, nlReady(n), n.Spec.Taints)
		}
	}
}

func nlSetPaused(t *testing.T, c *skifftest.Cluster, name string, paused bool) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n := nlNode(t, c, name)
		if paused {
			n.Annotations[simnode.AnnotationPaused] = "true"
		} else {
			delete(n.Annotations, simnode.AnnotationPaused)
		}
		_, err := c.Client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNodeLifecyclePausedSimNodeRecovers(t *testing.T) {
	c := simCluster(t, simnode.Config{Count: 4, StartDelay: 100 * time.Millisecond, LeaseDuration: 2 * time.Second, RenewInterval: 500 * time.Millisecond},
		skifftest.Options{
			Controllers:       []controlplane.ComponentFactory{nodelifecycle.New},
			ControllerOptions: controller.Options{NodeMonitorGracePeriod: nlGrace},
		})
	simReadyNodes(t, c, 4)
	simCreateAndBind(t, c, "default", simPod("app", corev1.RestartPolicyAlways, nil), "sim-1")
	simEventually(t, 15*time.Second, "pod ready", func() (bool, string) {
		p := simGetPod(t, c, "default", "app")
		return simPodCondition(p, corev1.PodReady) == corev1.ConditionTrue, string(p.Status.Phase)
	})
	// Healthy nodes stay Ready well past the grace period: renewals keep them alive.
	time.Sleep(nlGrace + time.Second)
	if r := nlReady(nlNode(t, c, "sim-1")); r.Status != corev1.ConditionTrue {
		t.Fatalf("renewing node marked %s", r.Status)
	}

	nlSetPaused(t, c, "sim-1", true)
	simEventually(t, 30*time.Second, "paused node unreachable", func() (bool, string) {
		n := nlNode(t, c, "sim-1")
		return nlReady(n).Status == corev1.ConditionUnknown && nlTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) != nil,
			fmt.Sprintf("%s %+v", nlReady(n).Status, n.Spec.Taints)
	})
	simEventually(t, 15*time.Second, "pod marked not ready", func() (bool, string) {
		p := simGetPod(t, c, "default", "app")
		return simPodCondition(p, corev1.PodReady) == corev1.ConditionFalse, string(simPodCondition(p, corev1.PodReady))
	})

	nlSetPaused(t, c, "sim-1", false)
	simEventually(t, 30*time.Second, "node ready again, taints gone", func() (bool, string) {
		n := nlNode(t, c, "sim-1")
		return nlReady(n).Status == corev1.ConditionTrue && len(n.Spec.Taints) == 0, fmt.Sprintf("%s %+v", nlReady(n).Status, n.Spec.Taints)
	})
	simEventually(t, 15*time.Second, "pod ready again", func() (bool, string) {
		p := simGetPod(t, c, "default", "app")
		return simPodCondition(p, corev1.PodReady) == corev1.ConditionTrue && p.DeletionTimestamp == nil, string(simPodCondition(p, corev1.PodReady))
	})
}

func TestPodGCCollectsPodsOfDeletedNode(t *testing.T) {
	c := nlCluster(t, 2)
	simReadyNodes(t, c, 2)
	ctx := context.Background()
	simCreateAndBind(t, c, "default", simPod("orphan", corev1.RestartPolicyAlways, nil), "sim-1")
	simCreateAndBind(t, c, "default", simPod("survivor", corev1.RestartPolicyAlways, nil), "sim-0")
	simEventually(t, 15*time.Second, "pods running", func() (bool, string) {
		a, b := simGetPod(t, c, "default", "orphan"), simGetPod(t, c, "default", "survivor")
		return a.Status.Phase == corev1.PodRunning && b.Status.Phase == corev1.PodRunning, string(a.Status.Phase) + "/" + string(b.Status.Phase)
	})
	if err := c.Client.CoreV1().Nodes().Delete(ctx, "sim-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	simEventually(t, 60*time.Second, "orphaned pod collected", func() (bool, string) {
		p := simGetPod(t, c, "default", "orphan")
		if p == nil {
			return true, ""
		}
		return false, fmt.Sprintf("%s deletion=%v", p.Status.Phase, p.DeletionTimestamp)
	})
	t.Logf("orphaned pod collected %v after its node was deleted", time.Since(start).Round(time.Millisecond))
	if p := simGetPod(t, c, "default", "survivor"); p == nil || p.DeletionTimestamp != nil {
		t.Fatal("pod on a live node collected")
	}
}
