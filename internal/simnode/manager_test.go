package simnode

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startManager(t *testing.T, cs *fake.Clientset, cfg Config) *Manager {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(cs, 0)
	cfg.Logger = quiet()
	m, err := New(cs, factory, cfg)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
	return m
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestManagerRegistersAndRenews(t *testing.T) {
	cs := fake.NewClientset()
	// A real node stays untouched, and a name clash with it is skipped.
	real := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "sim-1"}}
	if _, err := cs.CoreV1().Nodes().Create(context.Background(), real, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startManager(t, cs, Config{Count: 3, StartDelay: 10 * time.Millisecond, LeaseDuration: 2 * time.Second, RenewInterval: 100 * time.Millisecond,
		Labels: map[string]string{"pool": "a"}})
	ctx := context.Background()
	start := time.Now()
	defer func() { t.Logf("took %v", time.Since(start)) }()
	eventually(t, 5*time.Second, "nodes", func() bool {
		l, _ := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return len(l.Items) == 3
	})
	n, err := cs.CoreV1().Nodes().Get(ctx, "sim-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels[corev1.LabelHostname] != "sim-0" || n.Labels[corev1.LabelInstanceTypeStable] != InstanceType || n.Labels["pool"] != "a" ||
		n.Annotations[AnnotationSimulated] != DefaultOwner || n.Spec.PodCIDR == "" || !nodeHealthy(n) ||
		n.Status.NodeInfo.KubeletVersion != KubeletVersion || nodeIP(n) == "" {
		t.Fatalf("node: %+v", n)
	}
	if r, _ := cs.CoreV1().Nodes().Get(ctx, "sim-1", metav1.GetOptions{}); len(r.Annotations) != 0 || len(r.Status.Conditions) != 0 {
		t.Fatalf("real node touched: %+v", r)
	}
	// Leases have their own queue: the node may be registered a moment before its lease.
	var l *coordinationv1.Lease
	eventually(t, 5*time.Second, "lease", func() bool {
		var err error
		l, err = cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "sim-0", metav1.GetOptions{})
		return err == nil
	})
	// (The fake clientset sets no UIDs, so the lease has no owner reference here.)
	if *l.Spec.HolderIdentity != "sim-0" || *l.Spec.LeaseDurationSeconds != 2 {
		t.Fatalf("lease: %+v", l.Spec)
	}
	first := l.Spec.RenewTime.Time
	t.Logf("registered after %v", time.Since(start))
	eventually(t, 5*time.Second, "lease renewal", func() bool {
		l, err := cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "sim-0", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(first)
	})
	if _, err := cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "sim-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("lease for the real node: %v", err)
	}

	// Someone marks a node Unknown: the simulated kubelet posts Ready again.
	n.Status.Conditions[3].Status = corev1.ConditionUnknown
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "ready again", func() bool {
		n, _ := cs.CoreV1().Nodes().Get(ctx, "sim-0", metav1.GetOptions{})
		return nodeHealthy(n)
	})

	// Paused: renewals stop.
	n, _ = cs.CoreV1().Nodes().Get(ctx, "sim-2", metav1.GetOptions{})
	n.Annotations[AnnotationPaused] = "true"
	if _, err := cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	l1, _ := cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "sim-2", metav1.GetOptions{})
	time.Sleep(400 * time.Millisecond)
	l2, _ := cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "sim-2", metav1.GetOptions{})
	if !l2.Spec.RenewTime.Equal(l1.Spec.RenewTime) {
		t.Fatal("paused node still renews its lease")
	}

	// A deleted node loses its lease.
	if err := cs.CoreV1().Nodes().Delete(ctx, "sim-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "lease deleted", func() bool {
		_, err := cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "sim-0", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func bindPod(t *testing.T, cs *fake.Clientset, name, node string, policy corev1.RestartPolicy, ann map[string]string) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Annotations: ann},
		Spec:       corev1.PodSpec{NodeName: node, RestartPolicy: policy, Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getPod(cs *fake.Clientset, name string) *corev1.Pod {
	p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return p
}

func TestManagerRunsPods(t *testing.T) {
	cs := fake.NewClientset()
	m := startManager(t, cs, Config{Count: 2, StartDelay: 50 * time.Millisecond, StopDelay: 100 * time.Millisecond})
	eventually(t, 5*time.Second, "nodes", func() bool { return len(m.Nodes()) == 2 })

	bindPod(t, cs, "web", "sim-0", corev1.RestartPolicyAlways, nil)
	bindPod(t, cs, "web2", "sim-0", corev1.RestartPolicyAlways, nil)
	bindPod(t, cs, "other", "elsewhere", corev1.RestartPolicyAlways, nil)
	bindPod(t, cs, "job", "sim-1", corev1.RestartPolicyNever, map[string]string{AnnotationExitCode: "0", AnnotationExitAfter: "100ms"})
	bindPod(t, cs, "fail", "sim-1", corev1.RestartPolicyNever, map[string]string{AnnotationExitCode: "1"})
	bindPod(t, cs, "retry", "sim-1", corev1.RestartPolicyOnFailure, map[string]string{AnnotationExitCode: "1", AnnotationExitAfter: "50ms"})

	eventually(t, 5*time.Second, "web running", func() bool {
		p := getPod(cs, "web")
		return p.Status.Phase == corev1.PodRunning && podCondition(&p.Status, corev1.PodReady).Status == corev1.ConditionTrue
	})
	web, web2 := getPod(cs, "web"), getPod(cs, "web2")
	node, _ := cs.CoreV1().Nodes().Get(context.Background(), "sim-0", metav1.GetOptions{})
	if web.Status.PodIP == "" || web.Status.PodIP == web2.Status.PodIP || web.Status.HostIP != nodeIP(node) {
		t.Fatalf("addresses: %q %q host %q", web.Status.PodIP, web2.Status.PodIP, web.Status.HostIP)
	}
	eventually(t, 5*time.Second, "job succeeded", func() bool { return getPod(cs, "job").Status.Phase == corev1.PodSucceeded })
	eventually(t, 5*time.Second, "fail failed", func() bool { return getPod(cs, "fail").Status.Phase == corev1.PodFailed })
	eventually(t, 5*time.Second, "retry restarted", func() bool {
		p := getPod(cs, "retry")
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2 && p.Status.Phase == corev1.PodRunning
	})
	if p := getPod(cs, "other"); p.Status.Phase != corev1.PodPending {
		t.Fatalf("pod on a foreign node touched: %s", p.Status.Phase)
	}

	// Graceful deletion: the API sets a deletionTimestamp; the kubelet finishes the delete.
	web = getPod(cs, "web")
	ts := metav1.Now()
	grace := int64(30)
	web.DeletionTimestamp, web.DeletionGracePeriodSeconds = &ts, &grace
	if _, err := cs.CoreV1().Pods("default").Update(context.Background(), web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "web deleted", func() bool { return getPod(cs, "web") == nil })
}

func TestAddPicksFreeNames(t *testing.T) {
	cs := fake.NewClientset()
	ctx := context.Background()
	cfg := Config{Count: 2, Prefix: "n-", Logger: quiet()}
	names, err := Add(ctx, cs, cfg)
	if err != nil || len(names) != 2 || names[0] != "n-0" || names[1] != "n-1" {
		t.Fatalf("first add: %v %v", names, err)
	}
	cfg.Count = 3
	names, err = Add(ctx, cs, cfg)
	if err != nil || len(names) != 3 || names[0] != "n-2" || names[2] != "n-4" {
		t.Fatalf("second add: %v %v", names, err)
	}
	l, _ := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	cidrs := map[string]bool{}
	for _, n := range l.Items {
		if cidrs[n.Spec.PodCIDR] {
			t.Fatalf("podCIDR %s reused", n.Spec.PodCIDR)
		}
		cidrs[n.Spec.PodCIDR] = true
	}
	if _, err := cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "n-4", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Pod status writes that take long (a busy API server) do not hold lease renewals up: nodes
// would otherwise go NotReady in the middle of a burst of pods.
func TestLeasesRenewWhilePodWritesStall(t *testing.T) {
	cs := fake.NewClientset()
	slow := &stallingClient{Clientset: cs, stalled: make(chan struct{}, 1), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(cs, 0)
	m, err := New(slow, factory, Config{Count: 2, Workers: 1, StartDelay: time.Millisecond,
		LeaseDuration: 2 * time.Second, RenewInterval: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() {
		close(slow.release) // the pod worker is stuck until then
		cancel()
		<-done
		factory.Shutdown()
	})
	eventually(t, 5*time.Second, "nodes", func() bool { return len(m.Nodes()) == 2 })
	for i := range 5 {
		bindPod(t, cs, fmt.Sprint("p", i), "sim-0", corev1.RestartPolicyAlways, nil)
	}
	select {
	case <-slow.stalled:
	case <-time.After(5 * time.Second):
		t.Fatal("no pod status write")
	}
	renewed := func(name string) time.Time {
		l, err := cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return time.Time{}
		}
		return l.Spec.RenewTime.Time
	}
	since := time.Now()
	eventually(t, 5*time.Second, "leases renewed while pod writes are stuck", func() bool {
		return renewed("sim-0").After(since) && renewed("sim-1").After(since)
	})
}

// stallingClient blocks every pod status write until release is closed.
type stallingClient struct {
	*fake.Clientset
	stalled chan struct{}
	release chan struct{}
}

func (c *stallingClient) CoreV1() typedcorev1.CoreV1Interface {
	return stallingCore{c.Clientset.CoreV1(), c}
}

type stallingCore struct {
	typedcorev1.CoreV1Interface
	c *stallingClient
}

func (s stallingCore) Pods(ns string) typedcorev1.PodInterface {
	return stallingPods{s.CoreV1Interface.Pods(ns), s.c}
}

type stallingPods struct {
	typedcorev1.PodInterface
	c *stallingClient
}

func (p stallingPods) UpdateStatus(ctx context.Context, pod *corev1.Pod, opts metav1.UpdateOptions) (*corev1.Pod, error) {
	select {
	case p.c.stalled <- struct{}{}:
	default:
	}
	<-p.c.release
	return p.PodInterface.UpdateStatus(ctx, pod, opts)
}
