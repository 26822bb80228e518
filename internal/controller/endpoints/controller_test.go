package endpoints

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

type fixture struct {
	c   *Controller
	cs  *fake.Clientset
	rec *record.FakeRecorder
	f   informers.SharedInformerFactory
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	cs := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(cs, 0)
	rec := record.NewFakeRecorder(10)
	core := f.Core().V1()
	c := NewController(slog.New(slog.NewTextHandler(io.Discard, nil)), cs, core.Services(), core.Pods(), core.Endpoints(), rec, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("not synced")
	}
	return &fixture{c: c, cs: cs, rec: rec, f: f}
}

func (fx *fixture) writes() []string {
	var out []string
	for _, a := range fx.cs.Actions() {
		if a.GetResource().Resource == "endpoints" && a.GetVerb() != "list" && a.GetVerb() != "watch" && a.GetVerb() != "get" {
			out = append(out, a.GetVerb())
		}
	}
	return out
}

// waitCached waits until the endpoints cache agrees with the API (after a write).
func (fx *fixture) waitCached(t *testing.T, ns, name string, present bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		want, err := fx.cs.CoreV1().Endpoints(ns).Get(context.Background(), name, metav1.GetOptions{})
		got, err2 := fx.c.eps.Endpoints(ns).Get(name)
		if !present && apierrors.IsNotFound(err) && apierrors.IsNotFound(err2) {
			return
		}
		if present && err == nil && err2 == nil && got.ResourceVersion == want.ResourceVersion {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("endpoints %s/%s cache never caught up", ns, name)
}

func TestSyncCreatesThenNoOp(t *testing.T) {
	svc := testService(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone })
	fx := newFixture(t, svc, testPod("a", "10.1.0.2"), testPod("b", "10.1.0.3", notReady))
	ctx := context.Background()
	if err := fx.c.sync(ctx, "ns/web"); err != nil {
		t.Fatal(err)
	}
	ep, err := fx.cs.CoreV1().Endpoints("ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.OwnerReferences) != 0 || ep.Labels["team"] != "a" || ep.Labels[LabelManagedBy] != Name {
		t.Fatalf("metadata %+v", ep.ObjectMeta)
	}
	if _, ok := ep.Labels[LabelHeadless]; !ok {
		t.Fatalf("headless label missing: %v", ep.Labels)
	}
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 1 || ep.Subsets[0].Addresses[0].IP != "10.1.0.2" ||
		len(ep.Subsets[0].NotReadyAddresses) != 1 || ep.Subsets[0].NotReadyAddresses[0].IP != "10.1.0.3" {
		t.Fatalf("subsets %+v", ep.Subsets)
	}
	fx.waitCached(t, "ns", "web", true)
	// The same endpoints stored in another grouping: still no write.
	s0 := ep.Subsets[0]
	ep.Subsets = []corev1.EndpointSubset{{NotReadyAddresses: s0.NotReadyAddresses, Ports: s0.Ports}, {Addresses: s0.Addresses, Ports: s0.Ports}}
	if _, err := fx.cs.CoreV1().Endpoints("ns").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	fx.waitCached(t, "ns", "web", true)
	before := len(fx.writes())
	for i := 0; i < 3; i++ {
		if err := fx.c.sync(ctx, "ns/web"); err != nil {
			t.Fatal(err)
		}
	}
	if w := fx.writes(); len(w) != before {
		t.Fatalf("no-op syncs wrote: %v", w[before:])
	}
}

func TestSyncUpdatesOnReadinessChange(t *testing.T) {
	svc := testService()
	a := testPod("a", "10.1.0.2")
	fx := newFixture(t, svc, a)
	ctx := context.Background()
	if err := fx.c.sync(ctx, "ns/web"); err != nil {
		t.Fatal(err)
	}
	fx.waitCached(t, "ns", "web", true)
	notReady(a)
	if _, err := fx.cs.CoreV1().Pods("ns").UpdateStatus(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _ := fx.c.pods.Pods("ns").Get("a")
		if p != nil && !IsPodReady(p) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod cache")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := fx.c.sync(ctx, "ns/web"); err != nil {
		t.Fatal(err)
	}
	ep, _ := fx.cs.CoreV1().Endpoints("ns").Get(ctx, "web", metav1.GetOptions{})
	want := []corev1.EndpointSubset{{NotReadyAddresses: []corev1.EndpointAddress{addr(a, "")}, Ports: httpPort(8080)}}
	if !apiequality.Semantic.DeepEqual(ep.Subsets, want) {
		t.Fatalf("subsets %+v", ep.Subsets)
	}
}

func TestSyncLeavesUnmanagedEndpoints(t *testing.T) {
	manual := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "manual"},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}}}}}
	orphanManual := manual.DeepCopy()
	orphanManual.Name = "gone-manual"
	orphanManaged := manual.DeepCopy()
	orphanManaged.Name, orphanManaged.Labels = "gone", map[string]string{LabelManagedBy: Name}
	lostSelector := orphanManaged.DeepCopy()
	lostSelector.Name = "nosel"
	kube := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes", Labels: map[string]string{LabelManagedBy: Name}}}
	fx := newFixture(t,
		testService(func(s *corev1.Service) { s.Name, s.Spec.Selector = "manual", nil }),
		testService(func(s *corev1.Service) { s.Name, s.Spec.Selector = "nosel", nil }),
		manual, orphanManual, orphanManaged, lostSelector, kube, testPod("a", "10.1.0.2"))
	ctx := context.Background()
	for _, key := range []string{"ns/manual", "ns/gone-manual", "ns/gone", "ns/nosel", "default/kubernetes"} {
		if err := fx.c.sync(ctx, key); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	var deleted []string
	for _, a := range fx.cs.Actions() {
		switch a.GetVerb() {
		case "delete":
			deleted = append(deleted, a.(clienttesting.DeleteAction).GetName())
		case "create", "update", "patch":
			t.Errorf("unexpected %s", a.GetVerb())
		}
	}
	if strings.Join(deleted, ",") != "gone,nosel" {
		t.Fatalf("deleted %v", deleted)
	}
}

func TestSyncFailureEvent(t *testing.T) {
	fx := newFixture(t, testService(), testPod("a", "10.1.0.2"))
	fx.cs.PrependReactor("create", "endpoints", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("boom")
	})
	if err := fx.c.sync(context.Background(), "ns/web"); err == nil {
		t.Fatal("no error")
	}
	select {
	case e := <-fx.rec.Events:
		if !strings.Contains(e, "Warning "+ReasonFailedToUpdate) || !strings.Contains(e, "boom") {
			t.Fatalf("event %q", e)
		}
	default:
		t.Fatal("no event")
	}
}
