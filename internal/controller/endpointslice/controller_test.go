package endpointslice

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

func newTestController(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(cs, 0)
	rec := record.NewFakeRecorder(10)
	core := f.Core().V1()
	c, err := NewController(slog.New(slog.NewTextHandler(io.Discard, nil)), cs, core.Services(), core.Pods(), core.Nodes(),
		f.Discovery().V1().EndpointSlices(), rec, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("not synced")
	}
	return c, cs, rec
}

func slice(name, svc, managedBy string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name),
			Labels: map[string]string{discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: managedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
}

func deletedSlices(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		if a.GetResource().Resource != "endpointslices" {
			continue
		}
		switch a.GetVerb() {
		case "delete":
			out = append(out, a.(clienttesting.DeleteAction).GetName())
		case "create", "update", "patch":
			out = append(out, a.GetVerb()+"!")
		}
	}
	sort.Strings(out)
	return out
}

func TestSyncDeletesOnlyManagedSlices(t *testing.T) {
	nosel := testService(func(s *corev1.Service) { s.Name, s.Spec.Selector = "nosel", nil })
	c, cs, _ := newTestController(t, nosel,
		slice("gone-a", "gone", ControllerName), slice("gone-b", "gone", "someone-else"),
		slice("nosel-a", "nosel", ControllerName), slice("nosel-b", "nosel", "someone-else"),
		slice("kubernetes", "kubernetes", "skiff-apiserver"))
	ctx := context.Background()
	for _, key := range []string{"ns/gone", "ns/nosel", "ns/kubernetes"} {
		if err := c.sync(ctx, key); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	if got := strings.Join(deletedSlices(cs), ","); got != "gone-a,nosel-a" {
		t.Fatalf("writes: %s", got)
	}
}

func TestSyncFailureEvent(t *testing.T) {
	c, cs, rec := newTestController(t, testService(), testPod("a", "10.1.0.2"))
	cs.PrependReactor("create", "endpointslices", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("boom")
	})
	if err := c.sync(context.Background(), "ns/web"); err == nil {
		t.Fatal("no error")
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, "Warning "+ReasonFailedToUpdate) || !strings.Contains(e, "boom") {
			t.Fatalf("event %q", e)
		}
	default:
		t.Fatal("no event")
	}
}

func TestSyncStaleCacheWaits(t *testing.T) {
	c, cs, _ := newTestController(t, testService(), testPod("a", "10.1.0.2"))
	// Pretend a slice was just created and the cache has not seen it yet.
	c.tracker.wrote("ns/web", &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{UID: "new", Generation: 1}})
	if err := c.sync(context.Background(), "ns/web"); !errors.Is(err, errStale) {
		t.Fatalf("err %v", err)
	}
	if w := deletedSlices(cs); len(w) != 0 {
		t.Fatalf("wrote on a stale cache: %v", w)
	}
}
