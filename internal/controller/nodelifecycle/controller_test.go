package nodelifecycle

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

type fakeClock struct{ ns atomic.Int64 }

func (f *fakeClock) Now() time.Time          { return time.Unix(0, f.ns.Load()) }
func (f *fakeClock) Set(t time.Time)         { f.ns.Store(t.UnixNano()) }
func (f *fakeClock) Advance(d time.Duration) { f.ns.Add(int64(d)) }

var t0 = time.Unix(1_000_000, 0)

type env struct {
	t      *testing.T
	cs     *fake.Clientset
	c      *Controller
	clock  *fakeClock
	events *record.FakeRecorder
	ctx    context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory := informers.NewSharedInformerFactory(cs, 0)
	events := record.NewFakeRecorder(100)
	cctx := &controller.Context{Client: cs, Informers: factory, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Recorder: func(string) record.EventRecorder { return events }}
	c, err := NewWithConfig(cctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	clock.Set(t0)
	c.now = clock.Now
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return &env{t: t, cs: cs, c: c, clock: clock, events: events, ctx: ctx}
}

func (e *env) eventually(what string, f func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) addNode(name string, zone string) {
	e.t.Helper()
	beat := metav1.NewTime(t0)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "uid-" + "node", CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour)),
		Labels: map[string]string{corev1.LabelTopologyZone: zone}}}
	n.Status.Conditions = []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: beat, LastTransitionTime: beat},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: beat},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: beat},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: beat},
	}
	if _, err := e.cs.CoreV1().Nodes().Create(e.ctx, n, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.renew(name, t0)
	e.eventually("node cached", func() bool { _, err := e.c.nodes.Get(name); return err == nil })
}

func (e *env) renew(name string, at time.Time) {
	e.t.Helper()
	rt := metav1.NewMicroTime(at)
	holder := name
	l, err := e.cs.CoordinationV1().Leases(NodeLeaseNamespace).Get(e.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: NodeLeaseNamespace},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &rt}}
		_, err = e.cs.CoordinationV1().Leases(NodeLeaseNamespace).Create(e.ctx, l, metav1.CreateOptions{})
	} else if err == nil {
		l.Spec.RenewTime = &rt
		_, err = e.cs.CoordinationV1().Leases(NodeLeaseNamespace).Update(e.ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.eventually("lease cached", func() bool {
		l, err := e.c.leases.Leases(NodeLeaseNamespace).Get(name)
		return err == nil && l.Spec.RenewTime.Time.Equal(at)
	})
}

func (e *env) node(name string) *corev1.Node {
	n, err := e.cs.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) syncNode(name string) {
	e.t.Helper()
	if err := e.c.syncNode(e.ctx, name); err != nil {
		e.t.Fatalf("sync %s: %v", name, err)
	}
}

// waitCached waits until the controller's cache shows the node as the API does.
func (e *env) waitCached(name string) {
	e.t.Helper()
	want := e.node(name)
	e.eventually("node cache", func() bool {
		n, err := e.c.nodes.Get(name)
		return err == nil && equality.Semantic.DeepEqual(n.Spec, want.Spec) && equality.Semantic.DeepEqual(n.Status, want.Status)
	})
}

func taintKeys(n *corev1.Node) map[string]*corev1.Taint {
	out := map[string]*corev1.Taint{}
	for i, t := range n.Spec.Taints {
		out[t.Key+":"+string(t.Effect)] = &n.Spec.Taints[i]
	}
	return out
}

func (e *env) addPod(name, node string, ready bool, tols ...corev1.Toleration) {
	e.t.Helper()
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-pod"},
		Spec:   corev1.PodSpec{NodeName: node, Tolerations: tols, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	if _, err := e.cs.CoreV1().Pods("default").Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.eventually("pod cached", func() bool { _, ok, _ := e.c.pods.GetByKey("default/" + name); return ok })
}

func (e *env) pod(name string) *corev1.Pod {
	p, err := e.cs.CoreV1().Pods("default").Get(e.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) syncPod(name string) {
	e.t.Helper()
	if err := e.c.syncPod(e.ctx, "default/"+name); err != nil {
		e.t.Fatalf("sync pod %s: %v", name, err)
	}
}

func tol(key string, s *int64) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: s}
}

func TestSilentNodeGoesUnknownTaintedAndEvicts(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"a", "b", "c"} {
		e.addNode(n, "z1")
	}
	e.syncNode("a")
	e.clock.Advance(39 * time.Second)
	e.syncNode("a")
	if readyStatus(e.node("a")) != corev1.ConditionTrue {
		t.Fatal("marked unknown within the grace period")
	}
	// b keeps renewing; a does not.
	e.renew("b", t0.Add(39*time.Second))
	e.clock.Set(t0.Add(41 * time.Second))
	e.syncNode("a")
	e.syncNode("b")
	a := e.node("a")
	if readyStatus(a) != corev1.ConditionUnknown || condition(a, corev1.NodeReady).Reason != "NodeStatusUnknown" ||
		condition(a, corev1.NodeMemoryPressure).Status != corev1.ConditionUnknown {
		t.Fatalf("a: %+v", a.Status.Conditions)
	}
	tk := taintKeys(a)
	ne := tk[corev1.TaintNodeUnreachable+":NoExecute"]
	if tk[corev1.TaintNodeUnreachable+":NoSchedule"] == nil || ne == nil || ne.TimeAdded == nil || !ne.TimeAdded.Time.Equal(t0.Add(41*time.Second)) {
		t.Fatalf("a taints: %+v", a.Spec.Taints)
	}
	if b := e.node("b"); readyStatus(b) != corev1.ConditionTrue || len(b.Spec.Taints) != 0 {
		t.Fatalf("b touched: %+v %+v", b.Status.Conditions, b.Spec.Taints)
	}
	select {
	case ev := <-e.events.Events:
		if ev != "Normal NodeNotReady Node a status is now: NodeNotReady" {
			t.Fatalf("event %q", ev)
		}
	default:
		t.Fatal("no NodeNotReady event")
	}

	// Eviction.
	e.waitCached("a")
	e.addPod("untolerated", "a", true)
	e.addPod("thirty", "a", true, tol(corev1.TaintNodeUnreachable, secs(30)))
	e.addPod("forever", "a", true, tol(corev1.TaintNodeUnreachable, nil))
	e.addPod("healthy-node", "b", true)
	for _, p := range []string{"untolerated", "thirty", "forever", "healthy-node"} {
		e.syncPod(p)
	}
	if e.pod("untolerated") != nil {
		t.Fatal("untolerated pod not evicted")
	}
	th := e.pod("thirty")
	if th == nil || podReady(th) {
		t.Fatalf("thirty: gone or still ready: %+v", th)
	}
	if hp := e.pod("healthy-node"); hp == nil || !podReady(hp) {
		t.Fatal("pod on a healthy node touched")
	}
	e.clock.Set(t0.Add(41*time.Second + 29*time.Second))
	e.eventually("pod cached", func() bool { p, _, _ := e.c.pods.GetByKey("default/thirty"); return !podReady(p.(*corev1.Pod)) })
	e.syncPod("thirty")
	if e.pod("thirty") == nil {
		t.Fatal("evicted before its toleration ran out")
	}
	e.clock.Set(t0.Add(41*time.Second + 30*time.Second))
	e.syncPod("thirty")
	if e.pod("thirty") != nil {
		t.Fatal("not evicted when its toleration ran out")
	}
	e.syncPod("forever")
	if e.pod("forever") == nil {
		t.Fatal("pod tolerating forever evicted")
	}
	var evictions int
	for len(e.events.Events) > 0 {
		if ev := <-e.events.Events; ev == "Normal TaintManagerEviction Marking for deletion Pod default/thirty" ||
			ev == "Normal TaintManagerEviction Marking for deletion Pod default/untolerated" {
			evictions++
		}
	}
	if evictions != 2 {
		t.Fatalf("eviction events: %d", evictions)
	}

	// Recovery: the kubelet renews and posts Ready; the taints go.
	e.clock.Set(t0.Add(100 * time.Second))
	e.renew("a", t0.Add(100*time.Second))
	a = e.node("a")
	beat := metav1.NewTime(t0.Add(100 * time.Second))
	for i := range a.Status.Conditions {
		c := &a.Status.Conditions[i]
		c.Status, c.Reason, c.LastHeartbeatTime = corev1.ConditionFalse, "", beat
		if c.Type == corev1.NodeReady {
			c.Status = corev1.ConditionTrue
		}
	}
	if _, err := e.cs.CoreV1().Nodes().UpdateStatus(e.ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitCached("a")
	e.syncNode("a")
	if a := e.node("a"); len(a.Spec.Taints) != 0 || readyStatus(a) != corev1.ConditionTrue {
		t.Fatalf("after recovery: %+v %+v", a.Spec.Taints, a.Status.Conditions)
	}
}

func TestNotReadyNodeGetsNotReadyTaints(t *testing.T) {
	e := newEnv(t)
	e.addNode("a", "")
	e.addNode("b", "")
	a := e.node("a")
	a.Status.Conditions[0].Status = corev1.ConditionFalse
	if _, err := e.cs.CoreV1().Nodes().UpdateStatus(e.ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitCached("a")
	e.syncNode("a")
	tk := taintKeys(e.node("a"))
	if tk[corev1.TaintNodeNotReady+":NoSchedule"] == nil || tk[corev1.TaintNodeNotReady+":NoExecute"] == nil || len(tk) != 2 {
		t.Fatalf("taints: %v", tk)
	}
}

func TestAllNodesDownWithholdsNoExecute(t *testing.T) {
	e := newEnv(t)
	e.addNode("only", "")
	e.syncNode("only")
	e.clock.Advance(41 * time.Second)
	e.syncNode("only")
	e.waitCached("only")
	e.c.zonePass(e.clock.Now())
	e.syncNode("only")
	n := e.node("only")
	tk := taintKeys(n)
	if readyStatus(n) != corev1.ConditionUnknown || tk[corev1.TaintNodeUnreachable+":NoSchedule"] == nil || tk[corev1.TaintNodeUnreachable+":NoExecute"] != nil {
		t.Fatalf("single dead node: ready=%s taints=%v", readyStatus(n), tk)
	}
	if !e.c.allDisrupted {
		t.Fatal("not in disruption mode")
	}
}

func TestStartupGracePeriod(t *testing.T) {
	e := newEnv(t)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new", CreationTimestamp: metav1.NewTime(t0)}}
	if _, err := e.cs.CoreV1().Nodes().Create(e.ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.addNode("healthy", "")
	e.eventually("cached", func() bool { _, err := e.c.nodes.Get("new"); return err == nil })
	e.clock.Set(t0.Add(50 * time.Second))
	e.syncNode("new")
	if len(e.node("new").Status.Conditions) != 0 {
		t.Fatal("marked within the startup grace period")
	}
	e.clock.Set(t0.Add(61 * time.Second))
	e.syncNode("new")
	got := e.node("new")
	if c := condition(got, corev1.NodeReady); c == nil || c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusNeverUpdated" {
		t.Fatalf("after startup grace: %+v", got.Status.Conditions)
	}
}

func TestConfigFromOptions(t *testing.T) {
	c := ConfigFromOptions(controller.Options{NodeMonitorGracePeriod: 4 * time.Second}).withDefaults()
	if c.MonitorGracePeriod != 4*time.Second || c.StartupGracePeriod != 6*time.Second || c.MonitorPeriod != 500*time.Millisecond {
		t.Fatalf("%+v", c)
	}
	d := ConfigFromOptions(controller.Options{}).withDefaults()
	if d.MonitorGracePeriod != 40*time.Second || d.StartupGracePeriod != 60*time.Second || d.MonitorPeriod != 5*time.Second || d.Workers != 5 {
		t.Fatalf("%+v", d)
	}
}
