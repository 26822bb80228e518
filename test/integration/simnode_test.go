package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller/nodelifecycle"
	"github.com/skiff-sh/skiff/internal/controller/podgc"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// simEventually polls f until it holds; the last detail it returned explains a timeout.
func simEventually(t *testing.T, timeout time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// simCluster starts a control plane with simulated nodes and the given controllers only.
func simCluster(t *testing.T, cfg simnode.Config, opts skifftest.Options) *skifftest.Cluster {
	t.Helper()
	if opts.Controllers == nil {
		opts.Controllers = []controlplane.ComponentFactory{}
	}
	opts.NodeComponents = append(opts.NodeComponents, simnode.NewFactory(cfg))
	return skifftest.Start(t, opts)
}

func simReadyNodes(t *testing.T, c *skifftest.Cluster, want int) []corev1.Node {
	t.Helper()
	var nodes []corev1.Node
	simEventually(t, 60*time.Second, fmt.Sprintf("%d ready simulated nodes", want), func() (bool, string) {
		l, err := c.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range l.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		nodes = l.Items
		return ready == want && len(l.Items) == want, fmt.Sprintf("%d nodes, %d ready", len(l.Items), ready)
	})
	return nodes
}

func TestSimNodesRegisterReadyWithLeases(t *testing.T) {
	start := time.Now()
	c := simCluster(t, simnode.Config{Count: 50}, skifftest.Options{})
	nodes := simReadyNodes(t, c, 50)
	t.Logf("50 simulated nodes ready in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	cidrs, ips := map[string]bool{}, map[string]bool{}
	for _, n := range nodes {
		if n.Annotations[simnode.AnnotationSimulated] != simnode.DefaultOwner || n.Labels[corev1.LabelHostname] != n.Name ||
			n.Labels[corev1.LabelOSStable] != "linux" || n.Labels[corev1.LabelArchStable] != "amd64" ||
			n.Labels[corev1.LabelInstanceTypeStable] != simnode.InstanceType {
			t.Fatalf("node %s metadata: %v %v", n.Name, n.Labels, n.Annotations)
		}
		if n.Status.NodeInfo.KubeletVersion != simnode.KubeletVersion || n.Status.NodeInfo.ContainerRuntimeVersion != simnode.RuntimeVersion ||
			n.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
			t.Fatalf("node %s info: %+v", n.Name, n.Status.NodeInfo)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods, corev1.ResourceEphemeralStorage} {
			if _, ok := n.Status.Allocatable[r]; !ok {
				t.Fatalf("node %s: no allocatable %s", n.Name, r)
			}
		}
		if q := n.Status.Capacity[corev1.ResourcePods]; q.Value() != 110 {
			t.Fatalf("node %s: pods capacity %v", n.Name, q.String())
		}
		var ready *corev1.NodeCondition
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == corev1.NodeReady {
				ready = &n.Status.Conditions[i]
			}
		}
		if ready.Reason != "KubeletReady" || ready.Message != "kubelet is posting ready status" {
			t.Fatalf("node %s ready condition: %+v", n.Name, ready)
		}
		if cidrs[n.Spec.PodCIDR] || n.Spec.PodCIDR == "" {
			t.Fatalf("node %s: podCIDR %q missing or shared", n.Name, n.Spec.PodCIDR)
		}
		cidrs[n.Spec.PodCIDR] = true
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				if ips[a.Address] {
					t.Fatalf("node %s: InternalIP %s shared", n.Name, a.Address)
				}
				ips[a.Address] = true
			}
		}
		l, err := c.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("lease of %s: %v", n.Name, err)
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != n.Name || l.Spec.LeaseDurationSeconds == nil ||
			*l.Spec.LeaseDurationSeconds != 40 || l.Spec.RenewTime == nil || time.Since(l.Spec.RenewTime.Time) > time.Minute {
			t.Fatalf("lease of %s: %+v", n.Name, l.Spec)
		}
		if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != n.UID {
			t.Fatalf("lease of %s owner: %+v", n.Name, l.OwnerReferences)
		}
	}
	if len(ips) != 50 {
		t.Fatalf("%d InternalIPs", len(ips))
	}
}

func TestSimNodesRenewLeases(t *testing.T) {
	c := simCluster(t, simnode.Config{Count: 5, LeaseDuration: 2 * time.Second, RenewInterval: 300 * time.Millisecond}, skifftest.Options{})
	simReadyNodes(t, c, 5)
	ctx := context.Background()
	// Leases have their own queue: a node may be Ready a moment before its lease exists.
	var first time.Time
	simEventually(t, 10*time.Second, "lease", func() (bool, string) {
		l, err := c.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "sim-4", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		first = l.Spec.RenewTime.Time
		return true, ""
	})
	simEventually(t, 10*time.Second, "renewal", func() (bool, string) {
		l, err := c.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "sim-4", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return l.Spec.RenewTime.After(first), l.Spec.RenewTime.String()
	})
}

func simPod(name string, policy corev1.RestartPolicy, ann map[string]string) *corev1.Pod {
	grace := int64(30)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PodSpec{
			RestartPolicy:                 policy,
			TerminationGracePeriodSeconds: &grace,
			InitContainers:                []corev1.Container{{Name: "setup", Image: "busybox:1.36"}},
			Containers:                    []corev1.Container{{Name: "app", Image: "nginx:1.27"}, {Name: "log", Image: "fluent/fluent-bit"}},
		},
	}
}

// simCreateAndBind creates a pod and binds it to a node, as the scheduler would.
func simCreateAndBind(t *testing.T, c *skifftest.Cluster, ns string, p *corev1.Pod, node string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	created, err := c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Client.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, UID: created.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bind %s to %s: %v", p.Name, node, err)
	}
	return created
}

func simGetPod(t *testing.T, c *skifftest.Cluster, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := c.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func simPodCondition(p *corev1.Pod, ct corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == ct {
			return c.Status
		}
	}
	return ""
}

func TestSimPodRunsAndDeletesGracefully(t *testing.T) {
	c := simCluster(t, simnode.Config{Count: 4, StartDelay: 200 * time.Millisecond, StopDelay: 500 * time.Millisecond}, skifftest.Options{})
	nodes := simReadyNodes(t, c, 4)
	ctx := context.Background()
	var node corev1.Node
	for _, n := range nodes {
		if n.Name == "sim-2" {
			node = n
		}
	}
	cidr := netip.MustParsePrefix(node.Spec.PodCIDR)
	bound := time.Now()
	simCreateAndBind(t, c, "default", simPod("web", corev1.RestartPolicyAlways, nil), "sim-2")
	simCreateAndBind(t, c, "default", simPod("web2", corev1.RestartPolicyAlways, nil), "sim-2")
	var p *corev1.Pod
	simEventually(t, 15*time.Second, "pod running and ready", func() (bool, string) {
		p = simGetPod(t, c, "default", "web")
		return p.Status.Phase == corev1.PodRunning && simPodCondition(p, corev1.PodReady) == corev1.ConditionTrue, string(p.Status.Phase)
	})
	if d := time.Since(bound); d < 200*time.Millisecond {
		t.Fatalf("running after %v, before the start delay", d)
	}
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !cidr.Contains(ip) || len(p.Status.PodIPs) != 1 {
		t.Fatalf("pod IP %q not in %s", p.Status.PodIP, cidr)
	}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && p.Status.HostIP != a.Address {
			t.Fatalf("hostIP %s, node %s", p.Status.HostIP, a.Address)
		}
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
		if simPodCondition(p, ct) != corev1.ConditionTrue {
			t.Errorf("condition %s = %q", ct, simPodCondition(p, ct))
		}
	}
	if p.Status.StartTime == nil || len(p.Status.ContainerStatuses) != 2 || len(p.Status.InitContainerStatuses) != 1 {
		t.Fatalf("status: %+v", p.Status)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready || cs.Started == nil || !*cs.Started || cs.State.Running == nil || cs.ImageID == "" ||
			len(cs.ContainerID) < len("skiff-sim://") || cs.ContainerID[:len("skiff-sim://")] != "skiff-sim://" {
			t.Fatalf("container status: %+v", cs)
		}
	}
	if ic := p.Status.InitContainerStatuses[0]; ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" {
		t.Fatalf("init container: %+v", ic)
	}
	simEventually(t, 15*time.Second, "second pod running", func() (bool, string) {
		p2 := simGetPod(t, c, "default", "web2")
		return p2.Status.Phase == corev1.PodRunning && p2.Status.PodIP != "" && p2.Status.PodIP != p.Status.PodIP, p2.Status.PodIP
	})

	// Graceful deletion: the pod terminates for a moment, then the kubelet removes it.
	start := time.Now()
	if err := c.Client.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := simGetPod(t, c, "default", "web"); p != nil && p.DeletionTimestamp == nil {
		t.Fatal("pod on a node deleted without grace")
	}
	simEventually(t, 15*time.Second, "pod gone", func() (bool, string) {
		p := simGetPod(t, c, "default", "web")
		if p == nil {
			return true, ""
		}
		return false, fmt.Sprintf("phase %s deletionTimestamp %v", p.Status.Phase, p.DeletionTimestamp)
	})
	t.Logf("graceful delete completed in %v", time.Since(start).Round(time.Millisecond))
	if time.Since(start) > 10*time.Second {
		t.Fatal("graceful deletion waited for the whole grace period")
	}
}

func TestSimPodScriptedExits(t *testing.T) {
	c := simCluster(t, simnode.Config{Count: 2, StartDelay: 100 * time.Millisecond}, skifftest.Options{})
	simReadyNodes(t, c, 2)
	simCreateAndBind(t, c, "default", simPod("ok", corev1.RestartPolicyNever,
		map[string]string{simnode.AnnotationExitCode: "0", simnode.AnnotationExitAfter: "300ms"}), "sim-0")
	simCreateAndBind(t, c, "default", simPod("bad", corev1.RestartPolicyNever,
		map[string]string{simnode.AnnotationExitCode: "3", simnode.AnnotationExitAfter: "300ms"}), "sim-1")
	simCreateAndBind(t, c, "default", simPod("retry", corev1.RestartPolicyOnFailure,
		map[string]string{simnode.AnnotationExitCode: "1", simnode.AnnotationExitAfter: "300ms"}), "sim-1")
	simEventually(t, 15*time.Second, "ok Succeeded", func() (bool, string) {
		p := simGetPod(t, c, "default", "ok")
		return p.Status.Phase == corev1.PodSucceeded, string(p.Status.Phase)
	})
	ok := simGetPod(t, c, "default", "ok")
	for _, cs := range ok.Status.ContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.State.Terminated.Reason != "Completed" || cs.Ready {
			t.Fatalf("ok container: %+v", cs)
		}
	}
	if simPodCondition(ok, corev1.PodReady) != corev1.ConditionFalse {
		t.Fatal("finished pod still ready")
	}
	simEventually(t, 15*time.Second, "bad Failed", func() (bool, string) {
		p := simGetPod(t, c, "default", "bad")
		return p.Status.Phase == corev1.PodFailed, string(p.Status.Phase)
	})
	if cs := simGetPod(t, c, "default", "bad").Status.ContainerStatuses[0]; cs.State.Terminated.ExitCode != 3 || cs.State.Terminated.Reason != "Error" {
		t.Fatalf("bad container: %+v", cs.State.Terminated)
	}
	simEventually(t, 15*time.Second, "retry restarted", func() (bool, string) {
		p := simGetPod(t, c, "default", "retry")
		if len(p.Status.ContainerStatuses) == 0 {
			return false, "no statuses"
		}
		cs := p.Status.ContainerStatuses[0]
		return p.Status.Phase == corev1.PodRunning && cs.RestartCount >= 2 && cs.LastTerminationState.Terminated != nil &&
			cs.LastTerminationState.Terminated.ExitCode == 1, fmt.Sprintf("%s restarts=%d", p.Status.Phase, cs.RestartCount)
	})
	// A finished pod is deleted at once: no grace period for it.
	if err := c.Client.CoreV1().Pods("default").Delete(context.Background(), "ok", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if simGetPod(t, c, "default", "ok") != nil {
		t.Fatal("finished pod still there after delete")
	}
}

func TestSimAddNodesToRunningCluster(t *testing.T) {
	c := simCluster(t, simnode.Config{Count: 2}, skifftest.Options{})
	simReadyNodes(t, c, 2)
	names, err := simnode.Add(context.Background(), c.Client, simnode.Config{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 || names[0] != "sim-2" || names[2] != "sim-4" {
		t.Fatalf("added %v", names)
	}
	// The running manager of the same owner adopts them: pods on them run.
	simReadyNodes(t, c, 5)
	simCreateAndBind(t, c, "default", simPod("on-added", corev1.RestartPolicyAlways, nil), "sim-4")
	simEventually(t, 15*time.Second, "pod on an added node running", func() (bool, string) {
		p := simGetPod(t, c, "default", "on-added")
		return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase)
	})
}

// TestSimScaleIdleCost measures what idle simulated nodes cost the whole process (API
// server, etcd and simulator together). Set SKIFF_SIM_SCALE=1000 to run it, and
// SKIFF_SIM_CONTROLLERS=1 to add the node lifecycle controller and pod GC.
func TestSimScaleIdleCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SKIFF_SIM_SCALE"))
	if n <= 0 {
		t.Skip("set SKIFF_SIM_SCALE=<nodes> to measure")
	}
	window := 60 * time.Second
	if s := os.Getenv("SKIFF_SIM_WINDOW"); s != "" {
		window, _ = time.ParseDuration(s)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var opts skifftest.Options
	if os.Getenv("SKIFF_SIM_CONTROLLERS") != "" {
		// With the node lifecycle controller and pod GC watching them.
		opts.Controllers = []controlplane.ComponentFactory{nodelifecycle.New, podgc.New}
	}
	c0, start := cpu(), time.Now()
	c := simCluster(t, simnode.Config{Count: n}, opts)
	simEventually(t, 10*time.Minute, "nodes registered", func() (bool, string) {
		l, err := c.Client.CoordinationV1().Leases("kube-node-lease").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(l.Items) >= n, strconv.Itoa(len(l.Items))
	})
	t.Logf("%d nodes registered in %v using %v CPU", n, time.Since(start).Round(time.Millisecond), (cpu() - c0).Round(time.Millisecond))
	time.Sleep(15 * time.Second) // let the first renewals settle
	c1, t1 := cpu(), time.Now()
	time.Sleep(window)
	used, wall := cpu()-c1, time.Since(t1)
	t.Logf("%d idle nodes: %v CPU over %v = %.1f%% of one core", n, used.Round(time.Millisecond), wall.Round(time.Millisecond),
		100*used.Seconds()/wall.Seconds())
}
