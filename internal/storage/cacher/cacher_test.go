package cacher_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/cacher"
	"github.com/skiff-sh/skiff/internal/storage/etcd3"
	"github.com/skiff-sh/skiff/internal/storage/storagetest"
)

const prefix = "/registry/core/pods/"

func attrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	p := obj.(*corev1.Pod)
	return labels.Set(p.Labels), fields.Set{"metadata.name": p.Name, "metadata.namespace": p.Namespace, "spec.nodeName": p.Spec.NodeName}, nil
}

func newCacher(t *testing.T, capacity int) (*cacher.Cacher, *etcd3.Store) {
	t.Helper()
	client := storagetest.Start(t)
	st := etcd3.New(client, protobuf.NewSerializer(scheme.Scheme, scheme.Scheme), corev1.SchemeGroupVersion.WithKind("Pod"),
		func() runtime.Object { return &corev1.Pod{} })
	c := cacher.New(cacher.Config{Store: st, Prefix: prefix, NewFunc: func() runtime.Object { return &corev1.Pod{} },
		NewListFunc: func() runtime.Object { return &corev1.PodList{} }, GetAttrs: attrs, EventCapacity: capacity})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx)
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	return c, st
}

func pod(ns, name string, lbl map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl}}
}

func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return watch.Event{}
}

func TestWatchFromResourceVersionAndSelectors(t *testing.T) {
	c, _ := newCacher(t, 100)
	ctx := context.Background()
	out := &corev1.Pod{}
	if err := c.Create(ctx, prefix+"a/p1", pod("a", "p1", map[string]string{"app": "web"}), out); err != nil {
		t.Fatal(err)
	}
	rv1 := out.ResourceVersion

	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	w, err := c.Watch(ctx, prefix+"a/", storage.ListOptions{ResourceVersion: rv1, Recursive: true,
		Predicate: storage.SelectionPredicate{Label: sel, GetAttrs: attrs}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Another namespace and a non-matching pod are not seen.
	if err := c.Create(ctx, prefix+"b/p2", pod("b", "p2", map[string]string{"app": "web"}), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, prefix+"a/p3", pod("a", "p3", map[string]string{"app": "db"}), nil); err != nil {
		t.Fatal(err)
	}
	// p3 starts matching: ADDED; p1 stops matching: DELETED (as Kubernetes reports).
	if err := c.GuaranteedUpdate(ctx, prefix+"a/p3", &corev1.Pod{}, nil, func(cur runtime.Object) (runtime.Object, error) {
		cur.(*corev1.Pod).Labels["app"] = "web"
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.GuaranteedUpdate(ctx, prefix+"a/p1", &corev1.Pod{}, nil, func(cur runtime.Object) (runtime.Object, error) {
		cur.(*corev1.Pod).Labels["app"] = "other"
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ  watch.EventType
		name string
	}{{watch.Added, "p3"}, {watch.Deleted, "p1"}} {
		ev := next(t, w)
		if ev.Type != want.typ || ev.Object.(*corev1.Pod).Name != want.name {
			t.Fatalf("got %s %s, want %s %s", ev.Type, ev.Object.(*corev1.Pod).Name, want.typ, want.name)
		}
	}
}

func TestWatchInitialStateAndDelete(t *testing.T) {
	c, _ := newCacher(t, 100)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := c.Create(ctx, fmt.Sprintf("%sns/p%d", prefix, i), pod("ns", fmt.Sprintf("p%d", i), nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Watch(ctx, prefix, storage.ListOptions{ResourceVersion: "0", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := 0; i < 3; i++ {
		if ev := next(t, w); ev.Type != watch.Added {
			t.Fatalf("initial event %d: %s", i, ev.Type)
		}
	}
	last := &corev1.Pod{}
	if err := c.Delete(ctx, prefix+"ns/p1", last, nil, nil); err != nil {
		t.Fatal(err)
	}
	ev := next(t, w)
	if ev.Type != watch.Deleted || ev.Object.(*corev1.Pod).Name != "p1" {
		t.Fatalf("got %s", ev.Type)
	}
	if ev.Object.(*corev1.Pod).ResourceVersion != last.ResourceVersion {
		t.Fatalf("deleted object rv %s, want the deletion revision %s", ev.Object.(*corev1.Pod).ResourceVersion, last.ResourceVersion)
	}
}

func TestTooOldResourceVersionIsExpired(t *testing.T) {
	c, _ := newCacher(t, 4)
	ctx := context.Background()
	first := &corev1.Pod{}
	if err := c.Create(ctx, prefix+"ns/p0", pod("ns", "p0", nil), first); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 10; i++ {
		if err := c.Create(ctx, fmt.Sprintf("%sns/p%d", prefix, i), pod("ns", fmt.Sprintf("p%d", i), nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Let the cache see every event.
	list := &corev1.PodList{}
	if err := c.GetList(ctx, prefix, storage.ListOptions{ResourceVersion: "", Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	_, err := c.Watch(ctx, prefix, storage.ListOptions{ResourceVersion: first.ResourceVersion, Recursive: true})
	if !storage.IsCode(err, storage.ErrCodeExpired) {
		t.Fatalf("watch from an evicted revision: got %v, want expired", err)
	}
}

func TestListFromCacheWithFieldSelector(t *testing.T) {
	c, _ := newCacher(t, 100)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		p := pod("ns", fmt.Sprintf("p%d", i), nil)
		if i%2 == 0 {
			p.Spec.NodeName = "n1"
		}
		if err := c.Create(ctx, fmt.Sprintf("%sns/p%d", prefix, i), p, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, rv := range []string{"", "0"} {
		list := &corev1.PodList{}
		pred := storage.SelectionPredicate{Field: fields.OneTermEqualSelector("spec.nodeName", "n1"), GetAttrs: attrs}
		if err := c.GetList(ctx, prefix, storage.ListOptions{ResourceVersion: rv, Recursive: true, Predicate: pred}, list); err != nil {
			t.Fatal(err)
		}
		if rv == "" && len(list.Items) != 3 {
			t.Fatalf("consistent list: %d items, want 3", len(list.Items))
		}
		if list.ResourceVersion == "" {
			t.Fatal("list has no resourceVersion")
		}
	}
}

func TestBookmarksAdvance(t *testing.T) {
	c, _ := newCacher(t, 100)
	ctx := context.Background()
	w, err := c.Watch(ctx, prefix, storage.ListOptions{ResourceVersion: "0", Recursive: true, AllowBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// A write to another resource moves etcd's revision; a progress notification carries it
	// to this cache, and watchers that asked for bookmarks hear of it.
	if err := c.Create(ctx, "/registry/other/x/y", pod("x", "y", nil), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Bookmark {
				return
			}
		case <-deadline:
			t.Fatal("no bookmark within 10s")
		}
	}
}

// Updates through the cacher start from its copy of the object; concurrent ones (whose copies
// are stale by the time they write) still lose nothing.
func TestGuaranteedUpdateFromCacheLosesNoWrites(t *testing.T) {
	c, _ := newCacher(t, 100)
	ctx := context.Background()
	key := prefix + "ns/counter"
	created := &corev1.Pod{}
	if err := c.Create(ctx, key, pod("ns", "counter", nil), created); err != nil {
		t.Fatal(err)
	}
	// Let the cache see the pod, so updates start from its copy.
	if err := c.GetList(ctx, prefix, storage.ListOptions{ResourceVersion: created.ResourceVersion, Recursive: true,
		Predicate: storage.SelectionPredicate{Label: labels.Everything(), GetAttrs: attrs}}, &corev1.PodList{}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			errs <- c.GuaranteedUpdate(ctx, key, &corev1.Pod{}, nil, func(cur runtime.Object) (runtime.Object, error) {
				p := cur.(*corev1.Pod)
				count := 0
				fmt.Sscan(p.Annotations["count"], &count)
				p.Annotations = map[string]string{"count": fmt.Sprint(count + 1)}
				return p, nil
			})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := &corev1.Pod{}
	if err := c.Get(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations["count"] != fmt.Sprint(n) {
		t.Fatalf("count = %s, want %d", got.Annotations["count"], n)
	}
}
