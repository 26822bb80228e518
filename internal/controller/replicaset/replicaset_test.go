package replicaset

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func pod(name string, mods ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
		Labels: map[string]string{"app": "web"}, CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))}}
	for _, m := range mods {
		m(p)
	}
	return p
}

func onNode(n string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func phase(ph corev1.PodPhase) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}
func readyAt(t time.Time) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t)}}
	}
}
func restarts(n int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: n}} }
}
func created(t time.Time) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}
func cost(c string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{PodDeletionCostAnnotation: c} }
}

func TestPodDeletionRanking(t *testing.T) {
	running := func(t time.Time) []func(*corev1.Pod) {
		return []func(*corev1.Pod){onNode("n1"), phase(corev1.PodRunning), readyAt(t)}
	}
	for _, tc := range []struct {
		name        string
		first, then *corev1.Pod
	}{
		{"unassigned before assigned", pod("a", phase(corev1.PodPending)), pod("b", onNode("n1"), phase(corev1.PodPending))},
		{"pending before unknown", pod("a", onNode("n1"), phase(corev1.PodPending)), pod("b", onNode("n1"), phase(corev1.PodUnknown))},
		{"unknown before running", pod("a", onNode("n1"), phase(corev1.PodUnknown)), pod("b", onNode("n1"), phase(corev1.PodRunning))},
		{"not ready before ready", pod("a", onNode("n1"), phase(corev1.PodRunning)), pod("b", running(now.Add(-time.Hour))...)},
		{"lower deletion cost first", pod("a", append(running(now.Add(-time.Hour)), cost("-5"))...), pod("b", running(now.Add(-time.Minute))...)},
		{"ready shorter before longer", pod("a", running(now.Add(-time.Minute))...), pod("b", running(now.Add(-10*time.Hour))...)},
		{"more restarts first", pod("a", append(running(now.Add(-time.Hour)), restarts(3))...), pod("b", running(now.Add(-time.Hour))...)},
		{"newer before older", pod("a", append(running(now.Add(-time.Hour)), created(now.Add(-2*time.Minute)))...),
			pod("b", append(running(now.Add(-time.Hour)), created(now.Add(-48*time.Hour)))...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range [][]*corev1.Pod{{tc.first, tc.then}, {tc.then, tc.first}} {
				got := podsToDelete(order, nil, 1, now)
				if got[0].Name != tc.first.Name {
					t.Fatalf("deleted %s first, want %s", got[0].Name, tc.first.Name)
				}
			}
		})
	}
	t.Run("doubled up on a node first", func(t *testing.T) {
		a := pod("a", onNode("busy"), phase(corev1.PodRunning), readyAt(now.Add(-time.Hour)))
		b := pod("b", onNode("quiet"), phase(corev1.PodRunning), readyAt(now.Add(-time.Hour)))
		other := pod("c", onNode("busy"), phase(corev1.PodRunning))
		got := podsToDelete([]*corev1.Pod{b, a}, []*corev1.Pod{a, b, other}, 1, now)
		if got[0].Name != "a" {
			t.Fatalf("deleted %s, want a", got[0].Name)
		}
	})
	t.Run("picks diff pods", func(t *testing.T) {
		pods := []*corev1.Pod{pod("r1", running(now.Add(-time.Hour))...), pod("p1", phase(corev1.PodPending)), pod("r2", running(now.Add(-time.Hour))...), pod("p2", phase(corev1.PodPending))}
		got := podsToDelete(pods, nil, 2, now)
		names := map[string]bool{got[0].Name: true, got[1].Name: true}
		if !names["p1"] || !names["p2"] {
			t.Fatalf("deleted %v, want the pending ones", names)
		}
	})
}

func TestCalculateStatus(t *testing.T) {
	rs := newRS("web", 3)
	rs.Spec.MinReadySeconds = 30
	rs.Generation = 4
	pods := []*corev1.Pod{
		pod("a", readyAt(now.Add(-time.Minute))),                                 // available
		pod("b", readyAt(now.Add(-10*time.Second))),                              // ready, not yet available
		pod("c", func(p *corev1.Pod) { p.Labels = map[string]string{"x": "y"} }), // not fully labelled
	}
	st := calculateStatus(rs, pods, nil, false, now)
	if st.Replicas != 3 || st.FullyLabeledReplicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 || st.ObservedGeneration != 4 {
		t.Fatalf("status %+v", st)
	}
	rs.Status = calculateStatus(rs, pods, fmt.Errorf("exceeded quota"), true, now)
	if c := replicaFailure(rs.Status.Conditions); c == nil || c.Reason != "FailedCreate" || c.Message != "exceeded quota" {
		t.Fatalf("conditions %+v", rs.Status.Conditions)
	}
	if st := calculateStatus(rs, pods, nil, true, now); len(st.Conditions) != 0 {
		t.Fatalf("ReplicaFailure kept after success: %+v", st.Conditions)
	}
}

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "x"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}},
			},
		},
	}
}

type harness struct {
	c       *Controller
	client  *fake.Clientset
	creates atomic.Int32
	deletes atomic.Int32
}

func newHarness(t *testing.T, objs ...runtime.Object) *harness {
	h := &harness{client: fake.NewSimpleClientset(objs...)} // the plain tracker: much faster than NewClientset
	var seq atomic.Int32
	h.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			p.Name = fmt.Sprintf("%s%05d", p.GenerateName, seq.Add(1))
		}
		h.creates.Add(1)
		return false, nil, nil
	})
	h.client.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		h.deletes.Add(1)
		return false, nil, nil
	})
	cctx := &controller.Context{
		Client:    h.client,
		Informers: informers.NewSharedInformerFactory(h.client, 0),
		Recorder:  func(string) record.EventRecorder { return record.NewFakeRecorder(1000) },
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	c, err := newController(cctx, "replicaset-controller", newRSKind(cctx))
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return now }
	h.c = c
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.ReplicaSet:
			_ = c.kind.informer().GetIndexer().Add(o)
			_ = c.rsInf.GetIndexer().Add(o)
		case *corev1.Pod:
			_ = c.podInf.GetIndexer().Add(o)
		}
	}
	return h
}

func owned(rs *appsv1.ReplicaSet) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}
	}
}

func TestSyncCreatesWithExpectations(t *testing.T) {
	rs := newRS("web", 5)
	h := newHarness(t, rs)
	ctx := context.Background()
	if err := h.c.sync(ctx, "ns/web"); err != nil {
		t.Fatal(err)
	}
	if h.creates.Load() != 5 {
		t.Fatalf("created %d pods, want 5", h.creates.Load())
	}
	pods, _ := h.client.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		ref := metav1.GetControllerOf(&p)
		if p.GenerateName != "web-" || ref == nil || ref.UID != rs.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion ||
			p.Labels["app"] != "web" || p.Annotations["note"] != "x" {
			t.Fatalf("pod %+v", p.ObjectMeta)
		}
	}
	// The cache has not seen the pods yet: a second sync must not create more.
	if err := h.c.sync(ctx, "ns/web"); err != nil {
		t.Fatal(err)
	}
	if h.creates.Load() != 5 {
		t.Fatalf("second sync created more: %d", h.creates.Load())
	}
	// The informer delivers them; expectations are met and nothing more is created.
	for i := range pods.Items {
		_ = h.c.podInf.GetIndexer().Add(&pods.Items[i])
		h.c.podEvents.OnAdd(&pods.Items[i], false)
	}
	if !h.c.exp.Satisfied("ns/web") {
		t.Fatal("expectations not satisfied after observing every pod")
	}
	if err := h.c.sync(ctx, "ns/web"); err != nil {
		t.Fatal(err)
	}
	if h.creates.Load() != 5 || h.deletes.Load() != 0 {
		t.Fatalf("creates %d deletes %d", h.creates.Load(), h.deletes.Load())
	}
	got, _ := h.client.AppsV1().ReplicaSets("ns").Get(ctx, "web", metav1.GetOptions{})
	if got.Status.Replicas != 5 {
		t.Fatalf("status.replicas = %d", got.Status.Replicas)
	}
}

func TestSyncDeletesAndAdopts(t *testing.T) {
	rs := newRS("web", 2)
	objs := []runtime.Object{rs,
		pod("p1", owned(rs), onNode("n"), phase(corev1.PodRunning), readyAt(now.Add(-time.Hour))),
		pod("p2", owned(rs), phase(corev1.PodPending)),
		pod("p3", owned(rs), onNode("n"), phase(corev1.PodRunning), readyAt(now.Add(-time.Hour))),
		pod("orphan", onNode("n"), phase(corev1.PodRunning), readyAt(now.Add(-time.Hour))),
		pod("done", owned(rs), phase(corev1.PodSucceeded)),
		pod("stray", owned(rs), func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} }),
	}
	h := newHarness(t, objs...)
	ctx := context.Background()
	if err := h.c.sync(ctx, "ns/web"); err != nil {
		t.Fatal(err)
	}
	// 4 active matching pods (3 owned + 1 adopted) for 2 replicas: the pending one and one
	// other go.
	if h.deletes.Load() != 2 {
		t.Fatalf("deleted %d, want 2", h.deletes.Load())
	}
	if _, err := h.client.CoreV1().Pods("ns").Get(ctx, "p2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pending pod p2 not deleted first: %v", err)
	}
	orphan, _ := h.client.CoreV1().Pods("ns").Get(ctx, "orphan", metav1.GetOptions{})
	if _, err := h.client.CoreV1().Pods("ns").Get(ctx, "orphan", metav1.GetOptions{}); err == nil {
		if ref := metav1.GetControllerOf(orphan); ref == nil || ref.UID != rs.UID {
			t.Fatalf("orphan not adopted: %+v", orphan.OwnerReferences)
		}
	}
	stray, _ := h.client.CoreV1().Pods("ns").Get(ctx, "stray", metav1.GetOptions{})
	if metav1.GetControllerOf(stray) != nil {
		t.Fatalf("non-matching pod not released: %+v", stray.OwnerReferences)
	}
	if _, dels, _ := h.c.exp.Pending("ns/web"); dels != 2 {
		t.Fatalf("pending deletions %d, want 2", dels)
	}
	if h.c.exp.Satisfied("ns/web") {
		t.Fatal("satisfied before deletions observed")
	}
}

func TestSyncQuotaFailure(t *testing.T) {
	rs := newRS("web", 10)
	h := newHarness(t, rs)
	var n atomic.Int32
	h.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if n.Add(1) > 3 {
			return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", fmt.Errorf("exceeded quota"))
		}
		return false, nil, nil
	})
	ctx := context.Background()
	if err := h.c.sync(ctx, "ns/web"); err == nil {
		t.Fatal("expected an error to requeue")
	}
	// Batches 1, 2, 4: the third batch fails; the rest are never attempted.
	if got := n.Load(); got != 7 {
		t.Fatalf("attempted %d creates, want 7 (1+2+4)", got)
	}
	if adds, _, _ := h.c.exp.Pending("ns/web"); adds != 3 {
		t.Fatalf("pending creations %d, want 3 (the successful ones)", adds)
	}
	got, _ := h.client.AppsV1().ReplicaSets("ns").Get(ctx, "web", metav1.GetOptions{})
	if c := replicaFailure(got.Status.Conditions); c == nil || c.Reason != "FailedCreate" {
		t.Fatalf("no ReplicaFailure condition: %+v", got.Status)
	}
}

func TestReplicationControllerView(t *testing.T) {
	two := int32(2)
	rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "rc", Namespace: "ns", UID: "u"},
		Spec: corev1.ReplicationControllerSpec{Replicas: &two, Selector: map[string]string{"app": "web"},
			Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}}}}
	rs := rcToRS(rc)
	if *rs.Spec.Replicas != 2 || !selectorOf(rs).Matches(labels.Set{"app": "web"}) {
		t.Fatalf("view %+v", rs.Spec)
	}
	rc.Spec.Selector = nil
	if selectorOf(rcToRS(rc)).Matches(labels.Set{"app": "web"}) {
		t.Fatal("an empty selector must match nothing")
	}
}
