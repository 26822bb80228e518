package etcd3_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/etcd3"
	"github.com/skiff-sh/skiff/internal/storage/storagetest"
)

func newStore(t *testing.T) *etcd3.Store {
	return etcd3.New(storagetest.Start(t), protobuf.NewSerializer(scheme.Scheme, scheme.Scheme),
		corev1.SchemeGroupVersion.WithKind("ConfigMap"), func() runtime.Object { return &corev1.ConfigMap{} })
}

func cm(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}, Data: map[string]string{"k": "v"}}
}

const prefix = "/registry/core/configmaps/"

func TestCreateGetConflict(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	out := &corev1.ConfigMap{}
	if err := s.Create(ctx, prefix+"ns/a", cm("a"), out); err != nil {
		t.Fatal(err)
	}
	if out.ResourceVersion == "" || out.Kind != "ConfigMap" {
		t.Fatalf("created object: rv %q kind %q", out.ResourceVersion, out.Kind)
	}
	if err := s.Create(ctx, prefix+"ns/a", cm("a"), nil); !storage.IsCode(err, storage.ErrCodeKeyExists) {
		t.Fatalf("second create: %v, want key exists", err)
	}
	got := &corev1.ConfigMap{}
	if err := s.Get(ctx, prefix+"ns/a", got); err != nil || got.Data["k"] != "v" || got.ResourceVersion != out.ResourceVersion {
		t.Fatalf("get: %v %+v", err, got)
	}
	if err := s.Get(ctx, prefix+"ns/missing", got); !storage.IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
	// A stale resourceVersion precondition fails; a UID mismatch too.
	stale := "1"
	err := s.GuaranteedUpdate(ctx, prefix+"ns/a", &corev1.ConfigMap{}, &storage.Preconditions{ResourceVersion: &stale},
		func(cur runtime.Object) (runtime.Object, error) { return cur, nil })
	if !storage.IsCode(err, storage.ErrCodeInvalidObj) {
		t.Fatalf("stale precondition: %v", err)
	}
	uid := types.UID("other")
	if err := s.Delete(ctx, prefix+"ns/a", &corev1.ConfigMap{}, &storage.Preconditions{UID: &uid}, nil); !storage.IsCode(err, storage.ErrCodeInvalidObj) {
		t.Fatalf("uid precondition: %v", err)
	}
	last := &corev1.ConfigMap{}
	if err := s.Delete(ctx, prefix+"ns/a", last, nil, nil); err != nil || last.Name != "a" {
		t.Fatalf("delete: %v", err)
	}
}

// Concurrent read-modify-write through GuaranteedUpdate loses no increment.
func TestGuaranteedUpdateNoLostWrites(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Create(ctx, prefix+"ns/counter", cm("counter"), nil); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.GuaranteedUpdate(ctx, prefix+"ns/counter", &corev1.ConfigMap{}, nil, func(cur runtime.Object) (runtime.Object, error) {
				c := cur.(*corev1.ConfigMap)
				c.Annotations = map[string]string{"count": fmt.Sprint(atoi(c.Annotations["count"]) + 1)}
				return c, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := &corev1.ConfigMap{}
	if err := s.Get(ctx, prefix+"ns/counter", got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations["count"] != fmt.Sprint(n) {
		t.Fatalf("count = %s, want %d", got.Annotations["count"], n)
	}
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

func TestPagedListIsConsistent(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		c := cm(fmt.Sprintf("c%02d", i))
		if i%5 == 0 {
			c.Labels = map[string]string{"five": "yes"}
		}
		if err := s.Create(ctx, fmt.Sprintf("%sns/c%02d", prefix, i), c, nil); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	cont := ""
	first := ""
	for pages := 0; ; pages++ {
		list := &corev1.ConfigMapList{}
		err := s.GetList(ctx, prefix, storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 10, Continue: cont}}, list)
		if err != nil {
			t.Fatal(err)
		}
		if pages == 0 {
			first = list.ResourceVersion
			// Writes after the first page do not show up in later pages.
			if err := s.Create(ctx, prefix+"ns/c99", cm("c99"), nil); err != nil {
				t.Fatal(err)
			}
		} else if list.ResourceVersion != first {
			t.Fatalf("page %d at rv %s, first page at %s", pages, list.ResourceVersion, first)
		}
		for _, it := range list.Items {
			names = append(names, it.Name)
		}
		cont = list.Continue
		if cont == "" {
			break
		}
		if pages == 0 && (list.RemainingItemCount == nil || *list.RemainingItemCount != 15) {
			t.Fatalf("remainingItemCount = %v, want 15", list.RemainingItemCount)
		}
	}
	if len(names) != 25 {
		t.Fatalf("paged list returned %d items, want 25: %v", len(names), names)
	}
	// A selector filters across pages.
	list := &corev1.ConfigMapList{}
	sel := labels.SelectorFromSet(labels.Set{"five": "yes"})
	if err := s.GetList(ctx, prefix, storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Label: sel, Limit: 2,
		GetAttrs: func(o runtime.Object) (labels.Set, fields.Set, error) {
			return labels.Set(o.(*corev1.ConfigMap).Labels), nil, nil
		}}}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Continue == "" {
		t.Fatalf("selector page: %d items, continue %q", len(list.Items), list.Continue)
	}
}

// GuaranteedUpdateFrom with a stale copy behaves as GuaranteedUpdate: the update lands on the
// current object, and errors and no-ops are decided on it, not on the copy.
func TestGuaranteedUpdateFromStaleCopy(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	key := prefix + "ns/s"
	v1 := &corev1.ConfigMap{}
	if err := s.Create(ctx, key, cm("s"), v1); err != nil {
		t.Fatal(err)
	}
	set := func(k, v string) storage.UpdateFunc {
		return func(cur runtime.Object) (runtime.Object, error) {
			c := cur.(*corev1.ConfigMap)
			c.Data[k] = v
			return c, nil
		}
	}
	v2 := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdate(ctx, key, v2, nil, set("k", "v2")); err != nil {
		t.Fatal(err)
	}
	stale := v1.DeepCopy()

	// A write from the stale copy keeps the newer data.
	out := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdateFrom(ctx, key, out, nil, set("x", "1"), stale); err != nil {
		t.Fatal(err)
	}
	if out.Data["k"] != "v2" || out.Data["x"] != "1" || out.ResourceVersion == v2.ResourceVersion {
		t.Fatalf("update from stale copy: %v rv %s", out.Data, out.ResourceVersion)
	}
	if stale.Data["x"] != "" || stale.ResourceVersion != v1.ResourceVersion {
		t.Fatal("the suggested copy was modified")
	}

	// A resourceVersion check that fails on the stale copy passes on the current object.
	cur := out.DeepCopy()
	rvCheck := func(want string) storage.UpdateFunc {
		return func(o runtime.Object) (runtime.Object, error) {
			c := o.(*corev1.ConfigMap)
			if c.ResourceVersion != want {
				return nil, fmt.Errorf("conflict: have %s want %s", c.ResourceVersion, want)
			}
			c.Data["y"] = "1"
			return c, nil
		}
	}
	out2 := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdateFrom(ctx, key, out2, nil, rvCheck(cur.ResourceVersion), stale); err != nil || out2.Data["y"] != "1" {
		t.Fatalf("rv check from stale copy: %v %v", err, out2.Data)
	}
	// And one that fails on the current object fails.
	if err := s.GuaranteedUpdateFrom(ctx, key, &corev1.ConfigMap{}, nil, rvCheck(v1.ResourceVersion), stale); err == nil {
		t.Fatal("stale resourceVersion accepted")
	}

	// Setting what the stale copy lacks but the current object has is no change: no write.
	noop := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdateFrom(ctx, key, noop, nil, set("k", "v2"), stale); err != nil {
		t.Fatal(err)
	}
	if noop.ResourceVersion != out2.ResourceVersion {
		t.Fatalf("no-op wrote a new revision: %s after %s", noop.ResourceVersion, out2.ResourceVersion)
	}

	// Preconditions are checked against the current object.
	rv := out2.ResourceVersion
	if err := s.GuaranteedUpdateFrom(ctx, key, &corev1.ConfigMap{}, &storage.Preconditions{ResourceVersion: &rv}, set("z", "1"), stale); err != nil {
		t.Fatalf("current precondition refused on stale copy: %v", err)
	}
	old := v1.ResourceVersion
	if err := s.GuaranteedUpdateFrom(ctx, key, &corev1.ConfigMap{}, &storage.Preconditions{ResourceVersion: &old}, set("z", "2"), stale); !storage.IsCode(err, storage.ErrCodeInvalidObj) {
		t.Fatalf("stale precondition: %v", err)
	}

	// A current copy updates in place; a copy of a deleted object ends in NotFound.
	now := &corev1.ConfigMap{}
	if err := s.Get(ctx, key, now); err != nil {
		t.Fatal(err)
	}
	if err := s.GuaranteedUpdateFrom(ctx, key, out, nil, set("w", "1"), now); err != nil || out.Data["w"] != "1" || out.Data["z"] != "1" {
		t.Fatalf("update from current copy: %v %v", err, out.Data)
	}
	if err := s.Delete(ctx, key, &corev1.ConfigMap{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.GuaranteedUpdateFrom(ctx, key, out, nil, set("w", "2"), now); !storage.IsNotFound(err) {
		t.Fatalf("update of deleted object: %v", err)
	}
}
