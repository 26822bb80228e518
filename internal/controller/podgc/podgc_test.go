package podgc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiff-sh/skiff/internal/controller"
)

type fakeClock struct{ ns atomic.Int64 }

func (f *fakeClock) Now() time.Time          { return time.Unix(0, f.ns.Load()) }
func (f *fakeClock) Advance(d time.Duration) { f.ns.Add(int64(d)) }

func setup(t *testing.T, cfg Config, objs ...runtime.Object) (*Controller, *fake.Clientset, *fakeClock, context.Context) {
	return setupWith(t, cfg, nil, objs...)
}

// setupWith runs prep on the clientset before the informers start.
func setupWith(t *testing.T, cfg Config, prep func(*fake.Clientset), objs ...runtime.Object) (*Controller, *fake.Clientset, *fakeClock, context.Context) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	if prep != nil {
		prep(cs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory := informers.NewSharedInformerFactory(cs, 0)
	c, err := NewWithConfig(&controller.Context{Client: cs, Informers: factory, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	clock.ns.Store(time.Unix(1_000_000, 0).UnixNano())
	c.now = clock.Now
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return c, cs, clock, ctx
}

func pod(name, node string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "u-" + "x"},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
}

func exists(t *testing.T, cs *fake.Clientset, name string) *corev1.Pod {
	p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOrphanedPodsAfterQuarantine(t *testing.T) {
	live := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "live"}}
	c, cs, clock, ctx := setup(t, Config{Quarantine: 10 * time.Second},
		live, pod("orphan", "gone", corev1.PodRunning), pod("fine", "live", corev1.PodRunning), pod("done", "gone", corev1.PodSucceeded))
	var statusWrites []string
	cs.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" {
			p := a.(k8stesting.UpdateAction).GetObject().(*corev1.Pod)
			statusWrites = append(statusWrites, fmt.Sprintf("%s:%s", p.Name, p.Status.Phase))
		}
		return false, nil, nil
	})
	c.pass(ctx)
	// Within the quarantine nothing happens.
	if err := c.syncNode(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if exists(t, cs, "orphan") == nil {
		t.Fatal("deleted during quarantine")
	}
	clock.Advance(11 * time.Second)
	if err := c.syncNode(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if exists(t, cs, "orphan") != nil || exists(t, cs, "done") != nil {
		t.Fatal("orphans not collected")
	}
	if exists(t, cs, "fine") == nil {
		t.Fatal("pod on a live node collected")
	}
	if len(statusWrites) != 1 || statusWrites[0] != "orphan:Failed" {
		t.Fatalf("status writes: %v", statusWrites)
	}
}

func TestNodeMissingFromCacheOnly(t *testing.T) {
	late := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "late"}}
	// The node exists in the API, but the cache never lists it.
	c, cs, clock, ctx := setupWith(t, Config{Quarantine: time.Second}, func(cs *fake.Clientset) {
		cs.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, &corev1.NodeList{}, nil
		})
		cs.PrependWatchReactor("nodes", func(k8stesting.Action) (bool, watch.Interface, error) {
			return true, watch.NewFake(), nil
		})
	}, late, pod("p", "late", corev1.PodRunning))
	if _, err := c.nodes.Get("late"); !apierrors.IsNotFound(err) {
		t.Fatalf("node in cache: %v", err)
	}
	c.suspect("late")
	clock.Advance(2 * time.Second)
	if err := c.syncNode(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	if exists(t, cs, "p") == nil {
		t.Fatal("pod collected although its node exists")
	}
}

func TestTerminatedPodThreshold(t *testing.T) {
	var objs []runtime.Object
	objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}})
	base := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		p := pod(fmt.Sprintf("done-%d", i), "n", corev1.PodSucceeded)
		p.CreationTimestamp = metav1.NewTime(base.Add(time.Duration(i) * time.Minute))
		objs = append(objs, p)
	}
	objs = append(objs, pod("running", "n", corev1.PodRunning))
	c, cs, _, ctx := setup(t, Config{TerminatedPodThreshold: 3}, objs...)
	c.pass(ctx)
	for i := 0; i < 5; i++ {
		got := exists(t, cs, fmt.Sprintf("done-%d", i)) != nil
		if got != (i >= 2) {
			t.Errorf("done-%d exists=%v", i, got)
		}
	}
	if exists(t, cs, "running") == nil {
		t.Fatal("running pod collected")
	}
}

func TestOutOfServiceTerminatingPods(t *testing.T) {
	now := metav1.Now()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "dead"},
		Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute}}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}}
	term := pod("terminating", "dead", corev1.PodRunning)
	term.DeletionTimestamp = &now
	c, cs, _, ctx := setup(t, Config{}, n, term, pod("running", "dead", corev1.PodRunning))
	if err := c.syncNode(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	if exists(t, cs, "terminating") != nil || exists(t, cs, "running") == nil {
		t.Fatal("out-of-service collection wrong")
	}
}
