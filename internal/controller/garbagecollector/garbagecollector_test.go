package garbagecollector

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	fakemetadata "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/record"
)

var (
	configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secrets    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	nodes      = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	events     = schema.GroupVersionResource{Version: "v1", Resource: "events"}
)

func discoveryLists() []*metav1.APIResourceList {
	all := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	return []*metav1.APIResourceList{{
		GroupVersion: "v1",
		APIResources: []metav1.APIResource{
			{Name: "configmaps", Namespaced: true, Kind: "ConfigMap", Verbs: all},
			{Name: "secrets", Namespaced: true, Kind: "Secret", Verbs: all},
			{Name: "nodes", Namespaced: false, Kind: "Node", Verbs: all},
			{Name: "nodes/status", Namespaced: false, Kind: "Node", Verbs: []string{"get", "patch", "update"}},
			{Name: "events", Namespaced: true, Kind: "Event", Verbs: all},
		},
	}}
}

type env struct {
	t      *testing.T
	gc     *GarbageCollector
	md     *fakemetadata.FakeMetadataClient
	cancel context.CancelFunc
}

func newScheme() *runtime.Scheme {
	s := fakemetadata.NewTestScheme()
	for _, k := range []string{"ConfigMap", "Secret", "Node", "Event"} {
		s.AddKnownTypeWithName(schema.GroupVersionKind{Version: "v1", Kind: k}, &metav1.PartialObjectMetadata{})
		s.AddKnownTypeWithName(schema.GroupVersionKind{Version: "v1", Kind: k + "List"}, &metav1.PartialObjectMetadataList{})
	}
	return s
}

func start(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	md := fakemetadata.NewSimpleMetadataClient(newScheme(), objs...)
	factory := metadatainformer.NewSharedInformerFactory(md, 0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gc := NewGarbageCollector(log, md, func() ([]*metav1.APIResourceList, error) { return discoveryLists(), nil },
		factory, record.NewFakeRecorder(100), 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = gc.Run(ctx) }()
	e := &env{t: t, gc: gc, md: md, cancel: cancel}
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func obj(kind, ns, name, uid string, mods ...func(*metav1.PartialObjectMetadata)) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), ResourceVersion: "1"},
	}
	for _, m := range mods {
		m(o)
	}
	return o
}

func ownedBy(kind, name, uid string, block bool) func(*metav1.PartialObjectMetadata) {
	return func(o *metav1.PartialObjectMetadata) {
		b := block
		o.OwnerReferences = append(o.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: kind, Name: name,
			UID: types.UID(uid), BlockOwnerDeletion: &b})
	}
}

func deleting(finalizers ...string) func(*metav1.PartialObjectMetadata) {
	return func(o *metav1.PartialObjectMetadata) {
		now := metav1.Now()
		o.DeletionTimestamp = &now
		o.Finalizers = finalizers
	}
}

func (e *env) get(gvr schema.GroupVersionResource, ns, name string) (*metav1.PartialObjectMetadata, error) {
	return e.md.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
}

// eventually waits for cond.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		e.t.Fatalf("timed out waiting: %s", what)
	}
}

func (e *env) gone(gvr schema.GroupVersionResource, ns, name string) func() bool {
	return func() bool {
		_, err := e.get(gvr, ns, name)
		return apierrors.IsNotFound(err)
	}
}

// consistently checks that cond holds for a while.
func (e *env) consistently(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if !cond() {
			e.t.Fatalf("no longer true: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) exists(gvr schema.GroupVersionResource, ns, name string) func() bool {
	return func() bool {
		_, err := e.get(gvr, ns, name)
		return err == nil
	}
}

func TestDeletesDependentsOfAbsentOwner(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "child", "c1", ownedBy("ConfigMap", "parent", "p1", false)),
		obj("Secret", "ns", "child2", "c2", ownedBy("ConfigMap", "parent", "p1", true)),
	)
	e.eventually("dependents of a missing owner deleted", func() bool {
		return e.gone(configMaps, "ns", "child")() && e.gone(secrets, "ns", "child2")()
	})
	// Deletion was background and guarded by preconditions.
	for _, a := range e.md.Actions() {
		if a.GetVerb() != "delete" {
			continue
		}
		opts := a.(interface{ GetDeleteOptions() metav1.DeleteOptions }).GetDeleteOptions()
		if opts.PropagationPolicy == nil || *opts.PropagationPolicy != metav1.DeletePropagationBackground {
			t.Errorf("delete without background propagation: %+v", opts)
		}
		if opts.Preconditions == nil || opts.Preconditions.UID == nil {
			t.Errorf("delete without UID precondition: %+v", opts)
		}
	}
}

func TestKeepsDependentsOfLiveOwner(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "parent", "p1"),
		obj("ConfigMap", "ns", "child", "c1", ownedBy("ConfigMap", "parent", "p1", false)),
		obj("Node", "", "n1", "n1"),
		obj("ConfigMap", "ns", "child-of-node", "c2", ownedBy("Node", "n1", "n1", false)),
	)
	e.consistently("dependents of live owners kept", func() bool {
		return e.exists(configMaps, "ns", "child")() && e.exists(configMaps, "ns", "child-of-node")()
	})
	// Deleting the owner (as the API server would) collects the dependent.
	if err := e.md.Resource(configMaps).Namespace("ns").Delete(context.Background(), "parent", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("dependent deleted after its owner", e.gone(configMaps, "ns", "child"))
	if !e.exists(configMaps, "ns", "child-of-node")() {
		t.Fatal("dependent of a live cluster-scoped owner deleted")
	}
}

func TestUIDMismatchIsAbsentOwner(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "parent", "new-uid"),
		obj("ConfigMap", "ns", "child", "c1", ownedBy("ConfigMap", "parent", "old-uid", false)),
	)
	e.eventually("dependent of a replaced owner deleted", e.gone(configMaps, "ns", "child"))
	if !e.exists(configMaps, "ns", "parent")() {
		t.Fatal("replacement owner deleted")
	}
}

func TestOwnerInOtherNamespaceIsAbsent(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "a", "parent", "p1"),
		obj("ConfigMap", "b", "child", "c1", ownedBy("ConfigMap", "parent", "p1", false)),
	)
	e.eventually("dependent naming an owner of another namespace deleted", e.gone(configMaps, "b", "child"))
}

func TestRemovesDanglingReferenceBesideLiveOwner(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "alive", "a1"),
		obj("ConfigMap", "ns", "child", "c1", ownedBy("ConfigMap", "alive", "a1", false), ownedBy("ConfigMap", "gone", "g1", false)),
	)
	e.eventually("dangling reference removed", func() bool {
		o, err := e.get(configMaps, "ns", "child")
		return err == nil && len(o.OwnerReferences) == 1 && o.OwnerReferences[0].UID == "a1"
	})
}

func TestClusterScopedDependentOfNamespacedOwnerKept(t *testing.T) {
	e := start(t,
		obj("Node", "", "n1", "n1", ownedBy("ConfigMap", "parent", "p1", false)),
	)
	e.consistently("invalid reference does not delete", e.exists(nodes, "", "n1"))
}

func TestUnknownOwnerKindKept(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "child", "c1", func(o *metav1.PartialObjectMetadata) {
			o.OwnerReferences = []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: "w1"}}
		}),
	)
	e.consistently("dependent of an unserved kind kept", e.exists(configMaps, "ns", "child"))
}

func TestOrphan(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "parent", "p1", deleting(metav1.FinalizerOrphanDependents, "example.com/keep")),
		obj("ConfigMap", "ns", "child", "c1", ownedBy("ConfigMap", "parent", "p1", true)),
		obj("Secret", "ns", "child2", "c2", ownedBy("ConfigMap", "parent", "p1", false), ownedBy("ConfigMap", "other", "o1", false)),
		obj("ConfigMap", "ns", "other", "o1"),
	)
	e.eventually("orphan finalizer removed", func() bool {
		o, err := e.get(configMaps, "ns", "parent")
		return err == nil && len(o.Finalizers) == 1 && o.Finalizers[0] == "example.com/keep"
	})
	c, err := e.get(configMaps, "ns", "child")
	if err != nil || len(c.OwnerReferences) != 0 {
		t.Fatalf("child not orphaned: %v %+v", err, c)
	}
	c2, err := e.get(secrets, "ns", "child2")
	if err != nil || len(c2.OwnerReferences) != 1 || c2.OwnerReferences[0].UID != "o1" {
		t.Fatalf("child2 lost the wrong reference: %v %+v", err, c2)
	}
}

func TestForeground(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "parent", "p1", deleting(metav1.FinalizerDeleteDependents)),
		obj("ConfigMap", "ns", "blocker", "b1", ownedBy("ConfigMap", "parent", "p1", true)),
		obj("Secret", "ns", "plain", "s1", ownedBy("ConfigMap", "parent", "p1", false)),
	)
	e.eventually("dependents deleted", func() bool {
		return e.gone(configMaps, "ns", "blocker")() && e.gone(secrets, "ns", "plain")()
	})
	e.eventually("foreground finalizer removed", func() bool {
		o, err := e.get(configMaps, "ns", "parent")
		return err == nil && len(o.Finalizers) == 0
	})
}

func TestForegroundWaitsForBlockingDependent(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "parent", "p1", deleting(metav1.FinalizerDeleteDependents)),
		// The blocking dependent is itself being deleted and held by a finalizer.
		obj("ConfigMap", "ns", "blocker", "b1", ownedBy("ConfigMap", "parent", "p1", true), deleting("example.com/hold")),
	)
	e.consistently("owner waits for its blocking dependent", func() bool {
		o, err := e.get(configMaps, "ns", "parent")
		return err == nil && len(o.Finalizers) == 1
	})
	if err := e.md.Resource(configMaps).Namespace("ns").Delete(context.Background(), "blocker", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("finalizer removed once the blocker is gone", func() bool {
		o, err := e.get(configMaps, "ns", "parent")
		return err == nil && len(o.Finalizers) == 0
	})
}

func TestForegroundChainDeletesMiddleInForeground(t *testing.T) {
	e := start(t,
		obj("ConfigMap", "ns", "top", "t1", deleting(metav1.FinalizerDeleteDependents)),
		obj("ConfigMap", "ns", "middle", "m1", ownedBy("ConfigMap", "top", "t1", true)),
		obj("ConfigMap", "ns", "bottom", "b1", ownedBy("ConfigMap", "middle", "m1", true)),
	)
	e.eventually("middle deleted in the foreground", func() bool {
		for _, a := range e.md.Actions() {
			if a.GetVerb() == "delete" {
				d := a.(interface {
					GetName() string
					GetDeleteOptions() metav1.DeleteOptions
				})
				if d.GetName() == "middle" {
					p := d.GetDeleteOptions().PropagationPolicy
					return p != nil && *p == metav1.DeletePropagationForeground
				}
			}
		}
		return false
	})
}

func TestDiscoveryMonitorsDeletableResourcesOnly(t *testing.T) {
	e := start(t)
	e.gc.mu.Lock()
	defer e.gc.mu.Unlock()
	for _, gvr := range []schema.GroupVersionResource{configMaps, secrets, nodes} {
		if e.gc.monitors[gvr] == nil {
			t.Errorf("%s not monitored", gvr)
		}
	}
	if e.gc.monitors[events] != nil {
		t.Error("events monitored")
	}
	if len(e.gc.monitors) != 3 {
		t.Errorf("monitors: %v", len(e.gc.monitors))
	}
	if _, ok := e.gc.mapping[schema.GroupKind{Kind: "Node"}]; !ok {
		t.Error("Node kind not mapped")
	}
}

func TestGraphTracksOwnerChanges(t *testing.T) {
	gc := NewGarbageCollector(slog.New(slog.NewTextHandler(io.Discard, nil)), nil,
		func() ([]*metav1.APIResourceList, error) { return nil, nil }, nil, record.NewFakeRecorder(1), 1)
	cm := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	apply := func(typ eventType, o *metav1.PartialObjectMetadata) {
		gc.applyEvent(&graphEvent{typ: typ, obj: o, gvk: cm})
	}
	apply(addEvent, obj("ConfigMap", "ns", "child", "c1", ownedBy("ConfigMap", "parent", "p1", true)))
	if n := gc.graph.info("p1"); !n.exists || n.observed || len(n.dependents) != 1 || !n.dependents[0].blocking {
		t.Fatalf("virtual owner: %+v", n)
	}
	apply(addEvent, obj("ConfigMap", "ns", "parent", "p1"))
	if n := gc.graph.info("p1"); !n.observed {
		t.Fatalf("owner not observed: %+v", n)
	}
	// The reference goes away: the owner has no dependents.
	apply(updateEvent, obj("ConfigMap", "ns", "child", "c1"))
	if n := gc.graph.info("p1"); len(n.dependents) != 0 {
		t.Fatalf("stale dependent: %+v", n)
	}
	// A reference to a missing owner leaves a virtual node, which goes with its last dependent.
	apply(updateEvent, obj("ConfigMap", "ns", "child", "c1", ownedBy("ConfigMap", "ghost", "g1", false)))
	if n := gc.graph.info("g1"); !n.exists {
		t.Fatal("no virtual node")
	}
	apply(deleteEvent, obj("ConfigMap", "ns", "child", "c1", ownedBy("ConfigMap", "ghost", "g1", false)))
	if gc.graph.info("g1").exists || gc.graph.info("c1").exists {
		t.Fatal("nodes left behind")
	}
	if gc.graph.len() != 1 {
		t.Fatalf("graph has %d nodes, want 1 (parent)", gc.graph.len())
	}
	if !gc.absent.has(absentKey{uid: "c1"}) {
		t.Fatal("deleted object not recorded as absent")
	}
}

func TestDiffOwners(t *testing.T) {
	tr, fa := true, false
	a := []metav1.OwnerReference{{UID: "1"}, {UID: "2", BlockOwnerDeletion: &tr}, {UID: "3"}}
	b := []metav1.OwnerReference{{UID: "2", BlockOwnerDeletion: &fa}, {UID: "3"}, {UID: "4"}}
	added, removed, changed := diffOwners(a, b)
	if len(added) != 1 || added[0].UID != "4" || len(removed) != 1 || removed[0].UID != "1" || len(changed) != 1 || changed[0].UID != "2" {
		t.Fatalf("added %v removed %v changed %v", added, removed, changed)
	}
}

func TestAbsentCacheBounded(t *testing.T) {
	c := newAbsentCache(2)
	c.add(absentKey{uid: "a"})
	c.add(absentKey{uid: "b"})
	c.has(absentKey{uid: "a"})
	c.add(absentKey{uid: "c"})
	if !c.has(absentKey{uid: "a"}) || c.has(absentKey{uid: "b"}) || !c.has(absentKey{uid: "c"}) {
		t.Fatal("LRU eviction wrong")
	}
}

func TestRediscovery(t *testing.T) {
	md := fakemetadata.NewSimpleMetadataClient(newScheme())
	served := discoveryLists()[0].APIResources[:1] // configmaps only
	gc := NewGarbageCollector(slog.New(slog.NewTextHandler(io.Discard, nil)), md, func() ([]*metav1.APIResourceList, error) {
		return []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: served}}, nil
	}, metadatainformer.NewSharedInformerFactory(md, 0), record.NewFakeRecorder(1), 1)
	if len(gc.monitors) != 1 || gc.monitors[configMaps] == nil {
		t.Fatalf("monitors: %v", gc.monitors)
	}
	if _, err := gc.resourceFor("v1", "Secret"); err == nil {
		t.Fatal("unserved kind mapped")
	}
	served = discoveryLists()[0].APIResources[1:2] // secrets only
	if err := gc.resync(); err != nil {
		t.Fatal(err)
	}
	if len(gc.monitors) != 1 || gc.monitors[secrets] == nil {
		t.Fatalf("monitors after re-discovery: %v", gc.monitors)
	}
	if _, err := gc.resourceFor("v1", "Secret"); err != nil {
		t.Fatal(err)
	}
}
