package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// schedCluster runs the API server with the scheduler as its only component.
func schedCluster(t *testing.T) *skifftest.Cluster {
	t.Helper()
	return skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{scheduler.New}})
}

// schedNode is a Ready node with the given allocatable cpu and memory; its status is
// kept on create, so no kubelet is needed.
func schedNode(name, cpu, memory string, taints ...corev1.Taint) *corev1.Node {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(memory),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{
			Capacity: res, Allocatable: res,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		},
	}
}

func schedPod(name, cpu, memory string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.k8s.io/pause:3.10",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}},
		}}},
	}
}

func schedCreateNodes(t *testing.T, c *skifftest.Cluster, nodes ...*corev1.Node) {
	t.Helper()
	for _, n := range nodes {
		if _, err := c.Client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create node %s: %v", n.Name, err)
		}
	}
}

func schedCreatePod(t *testing.T, c *skifftest.Cluster, p *corev1.Pod) {
	t.Helper()
	if _, err := c.Client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
}

func schedEventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func schedCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func TestSchedulerBindsAndSpreadsByLeastAllocated(t *testing.T) {
	c := schedCluster(t)
	ctx := context.Background()
	schedCreateNodes(t, c, schedNode("node-a", "4", "8Gi"), schedNode("node-b", "4", "8Gi"), schedNode("node-c", "4", "8Gi"))
	const n = 6
	for i := range n {
		schedCreatePod(t, c, schedPod(fmt.Sprintf("web-%d", i), "1", "1Gi"))
	}
	perNode := map[string]int{}
	schedEventually(t, "every pod bound", 60*time.Second, func() (bool, string) {
		clear(perNode)
		pods, err := c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		bound := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				bound++
				perNode[p.Spec.NodeName]++
			}
		}
		return bound == n, fmt.Sprintf("%d/%d bound: %v", bound, n, perNode)
	})
	for _, node := range []string{"node-a", "node-b", "node-c"} {
		if perNode[node] != 2 {
			t.Fatalf("least-allocated scoring should spread 2 pods per node: %v", perNode)
		}
	}
	p, err := c.Client.CoreV1().Pods("default").Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cond := schedCondition(p); cond == nil || cond.Status != corev1.ConditionTrue {
		t.Fatalf("PodScheduled after binding: %+v", cond)
	}
	want := fmt.Sprintf("Successfully assigned default/web-0 to %s", p.Spec.NodeName)
	schedEventually(t, "Scheduled event", 30*time.Second, func() (bool, string) {
		evs, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "web-0" && e.Reason == "Scheduled" {
				if e.Type != corev1.EventTypeNormal || e.Message != want || e.Source.Component != "default-scheduler" {
					t.Fatalf("Scheduled event: type %q message %q source %q", e.Type, e.Message, e.Source.Component)
				}
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(evs.Items))
	})
}

func TestSchedulerUnschedulableUntilNodeAdded(t *testing.T) {
	c := schedCluster(t)
	ctx := context.Background()
	controlPlane := corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}
	schedCreateNodes(t, c, schedNode("cp", "8", "16Gi", controlPlane), schedNode("w1", "1", "4Gi"), schedNode("w2", "1", "4Gi"))
	schedCreatePod(t, c, schedPod("big", "2", "1Gi"))

	want := "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. " +
		"preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
	schedEventually(t, "PodScheduled=False/Unschedulable", 60*time.Second, func() (bool, string) {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "big", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond := schedCondition(p)
		if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable {
			return false, fmt.Sprintf("condition %+v", cond)
		}
		if cond.Message != want {
			t.Fatalf("condition message\n got  %q\n want %q", cond.Message, want)
		}
		return true, ""
	})
	schedEventually(t, "FailedScheduling event", 30*time.Second, func() (bool, string) {
		evs, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "big" && e.Reason == "FailedScheduling" {
				if e.Type != corev1.EventTypeWarning || e.Message != want {
					t.Fatalf("FailedScheduling event: type %q message %q", e.Type, e.Message)
				}
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(evs.Items))
	})

	schedCreateNodes(t, c, schedNode("w3", "4", "8Gi"))
	schedEventually(t, "pending pod scheduled on the new node", 60*time.Second, func() (bool, string) {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "big", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Spec.NodeName == "w3", fmt.Sprintf("nodeName %q", p.Spec.NodeName)
	})
}
