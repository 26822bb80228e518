// Package garbagecollector deletes objects whose owners are gone and carries out foreground
// and orphan deletion, as Kubernetes' garbage collector does.
//
// It watches every resource that supports list, watch and delete through metadata-only
// informers and keeps a graph of ownerReferences (owner UID → dependents). Owners that are
// referenced but not observed are virtual nodes, verified by a live GET before anything is
// deleted because of them. Two worker queues act on the graph:
//
//   - attemptToDelete: an object whose owners may all be gone is deleted (background, or
//     foreground when an owner waits for its dependents and the object has dependents of its
//     own); dangling references beside a live owner are removed instead. An owner being
//     deleted in the foreground loses its foregroundDeletion finalizer once no dependent with
//     blockOwnerDeletion=true remains.
//   - attemptToOrphan: an owner being deleted with the orphan finalizer has its reference
//     removed from every dependent, then loses the finalizer.
//
// Resources are re-discovered every 30 seconds.
package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

const (
	// Name is the component's name (also its event source).
	Name = "garbage-collector-controller"
	// rediscoveryPeriod paces re-discovery of served resources.
	rediscoveryPeriod = 30 * time.Second
	// syncTimeout bounds the wait for the first informer sync; work starts regardless, which
	// is safe because nothing is deleted without a live lookup.
	syncTimeout = 60 * time.Second
)

// ignoredResources are never watched, as in Kubernetes: events are numerous and never owners.
var ignoredResources = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// DiscoverFunc returns the served resources, at their preferred versions (for instance
// discovery.DiscoveryInterface.ServerPreferredResources). A partial result comes with a
// *discovery.ErrGroupDiscoveryFailed.
type DiscoverFunc func() ([]*metav1.APIResourceList, error)

// GarbageCollector is the garbage collector controller.
type GarbageCollector struct {
	log       *slog.Logger
	metadata  metadata.Interface
	discover  DiscoverFunc
	informers metadatainformer.SharedInformerFactory
	recorder  record.EventRecorder
	workers   int

	graph           *graph
	absent          *absentCache
	graphChanges    workqueue.TypedInterface[*graphEvent]
	attemptToDelete workqueue.TypedRateLimitingInterface[types.UID]
	attemptToOrphan workqueue.TypedRateLimitingInterface[types.UID]

	mu       sync.Mutex
	running  bool // Run has started: monitors added later handle events at once
	monitors map[schema.GroupVersionResource]*monitor
	mapping  map[schema.GroupKind]resourceInfo
}

// resourceInfo is how an owner's kind is reached.
type resourceInfo struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// monitor watches one resource.
type monitor struct {
	gvk      schema.GroupVersionKind
	informer cache.SharedIndexInformer
	reg      cache.ResourceEventHandlerRegistration // nil until Run adds the handler
}

// New builds the garbage collector from the shared context.
func New(ctx *controller.Context) (controller.Component, error) {
	if ctx.Metadata == nil || ctx.MetadataInformers == nil || ctx.Client == nil {
		return nil, errors.New("garbage collector: needs a metadata client, metadata informers and a client")
	}
	var rec record.EventRecorder = &record.FakeRecorder{}
	if ctx.Recorder != nil {
		rec = ctx.Recorder(Name)
	}
	log := ctx.Logger
	if log == nil {
		log = slog.Default()
	}
	return NewGarbageCollector(log, ctx.Metadata, ctx.Client.Discovery().ServerPreferredResources, ctx.MetadataInformers, rec,
		ctx.Options.WorkersOr(5)), nil
}

// NewGarbageCollector builds a collector from its parts (tests use fakes). It discovers the
// served resources now and takes their informers from the factory; a discovery failure is
// retried by Run.
func NewGarbageCollector(log *slog.Logger, md metadata.Interface, discover DiscoverFunc, informers metadatainformer.SharedInformerFactory,
	recorder record.EventRecorder, workers int) *GarbageCollector {
	if workers <= 0 {
		workers = 5
	}
	gc := &GarbageCollector{
		log: log.With("controller", Name), metadata: md, discover: discover, informers: informers,
		recorder: recorder, workers: workers,
		graph:        newGraph(),
		absent:       newAbsentCache(10000),
		graphChanges: workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[*graphEvent]{Name: "garbage_collector_graph_changes"}),
		attemptToDelete: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.UID](),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "garbage_collector_attempt_to_delete"}),
		attemptToOrphan: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.UID](),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "garbage_collector_attempt_to_orphan"}),
		monitors: map[schema.GroupVersionResource]*monitor{},
		mapping:  map[schema.GroupKind]resourceInfo{},
	}
	if err := gc.resync(); err != nil {
		gc.log.Warn("initial discovery incomplete", "err", err)
	}
	return gc
}

// Name implements controller.Component.
func (gc *GarbageCollector) Name() string { return Name }

// Run processes the graph and the work queues until ctx ends.
func (gc *GarbageCollector) Run(ctx context.Context) error {
	defer gc.graphChanges.ShutDown()
	defer gc.attemptToDelete.ShutDown()
	defer gc.attemptToOrphan.ShutDown()
	gc.log.Info("starting")
	defer gc.log.Info("stopped")

	gc.mu.Lock()
	gc.running = true
	for gvr, m := range gc.monitors {
		gc.startMonitorLocked(gvr, m)
	}
	gc.mu.Unlock()
	gc.informers.Start(ctx.Done())
	go gc.processGraphChanges()

	defer gc.stopMonitors()

	// Work starts once the informers have listed everything and the graph holds it, so that
	// an owner is not judged before its dependents are known.
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	if !cache.WaitForCacheSync(sctx.Done(), gc.synced) && ctx.Err() == nil {
		gc.log.Warn("not every resource monitor synced; collecting anyway")
	}
	_ = wait.PollUntilContextCancel(sctx, 10*time.Millisecond, true, func(context.Context) (bool, error) {
		return gc.graphChanges.Len() == 0, nil
	})
	cancel()
	if ctx.Err() != nil {
		return nil
	}
	var wg sync.WaitGroup
	for i := 0; i < gc.workers; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); gc.runWorker(ctx, gc.attemptToDelete, gc.attemptToDeleteItem) }()
		go func() { defer wg.Done(); gc.runWorker(ctx, gc.attemptToOrphan, gc.attemptToOrphanItem) }()
	}
	tick := time.NewTicker(rediscoveryPeriod)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			if err := gc.resync(); err != nil {
				gc.log.Warn("re-discovery incomplete", "err", err)
			}
			gc.informers.Start(ctx.Done())
		}
	}
	gc.attemptToDelete.ShutDown()
	gc.attemptToOrphan.ShutDown()
	wg.Wait()
	return nil
}

// stopMonitors removes the collector's handlers from the shared informers.
func (gc *GarbageCollector) stopMonitors() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, m := range gc.monitors {
		if m.reg != nil {
			_ = m.informer.RemoveEventHandler(m.reg)
			m.reg = nil
		}
	}
	gc.running = false
}

// synced reports whether every monitor's informer has synced.
func (gc *GarbageCollector) synced() bool {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, m := range gc.monitors {
		if !m.informer.HasSynced() || (m.reg != nil && !m.reg.HasSynced()) {
			return false
		}
	}
	return true
}

// resync discovers the served resources: owner kinds become resolvable, and every resource
// that supports list, watch and delete gets a monitor. Monitors of resources no longer served
// stop handling events.
func (gc *GarbageCollector) resync() error {
	lists, err := gc.discover()
	if err != nil && len(lists) == 0 {
		return err
	}
	mapping := map[schema.GroupKind]resourceInfo{}
	want := map[schema.GroupVersionResource]schema.GroupVersionKind{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if containsSlash(r.Name) {
				continue
			}
			g, v := gv.Group, gv.Version
			if r.Group != "" || r.Version != "" {
				g, v = r.Group, r.Version
			}
			gvr := schema.GroupVersionResource{Group: g, Version: v, Resource: r.Name}
			gk := schema.GroupKind{Group: g, Kind: r.Kind}
			if _, dup := mapping[gk]; !dup {
				mapping[gk] = resourceInfo{gvr: gvr, namespaced: r.Namespaced}
			}
			verbs := map[string]bool{}
			for _, vb := range r.Verbs {
				verbs[vb] = true
			}
			if verbs["list"] && verbs["watch"] && verbs["delete"] && !ignoredResources[gvr.GroupResource()] {
				want[gvr] = gvk(g, v, r.Kind)
			}
		}
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	// Keep kinds that a partial discovery missed.
	if err != nil {
		for gk, ri := range gc.mapping {
			if _, ok := mapping[gk]; !ok {
				mapping[gk] = ri
			}
		}
	}
	gc.mapping = mapping
	for gvr, k := range want {
		if _, ok := gc.monitors[gvr]; ok {
			continue
		}
		m := &monitor{gvk: k, informer: gc.informers.ForResource(gvr).Informer()}
		gc.monitors[gvr] = m
		if gc.running {
			gc.startMonitorLocked(gvr, m)
		}
	}
	if err == nil {
		for gvr, m := range gc.monitors {
			if _, ok := want[gvr]; ok {
				continue
			}
			if m.reg != nil {
				_ = m.informer.RemoveEventHandler(m.reg)
			}
			delete(gc.monitors, gvr)
			gc.log.Info("resource no longer served; stopped monitoring", "resource", gvr.String())
		}
	}
	return err
}

func (gc *GarbageCollector) startMonitorLocked(gvr schema.GroupVersionResource, m *monitor) {
	if m.reg != nil {
		return
	}
	reg, err := m.informer.AddEventHandler(gc.handlerFor(m.gvk))
	if err != nil {
		gc.log.Error("cannot monitor resource", "resource", gvr.String(), "err", err)
		return
	}
	m.reg = reg
}

func gvk(group, version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: group, Version: version, Kind: kind}
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// errMapping: an owner's kind is not (yet) served.
type errMapping struct{ gk schema.GroupKind }

func (e *errMapping) Error() string {
	return fmt.Sprintf("no served resource for kind %s", e.gk.String())
}

// resourceFor maps an apiVersion and kind to the resource that serves it.
func (gc *GarbageCollector) resourceFor(apiVersion, kind string) (resourceInfo, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return resourceInfo{}, err
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: kind}
	gc.mu.Lock()
	ri, ok := gc.mapping[gk]
	gc.mu.Unlock()
	if !ok {
		return resourceInfo{}, &errMapping{gk: gk}
	}
	return ri, nil
}

// client returns the metadata client of ref's resource and namespace.
func (gc *GarbageCollector) client(ref objectRef) (metadata.ResourceInterface, resourceInfo, error) {
	ri, err := gc.resourceFor(ref.APIVersion, ref.Kind)
	if err != nil {
		return nil, ri, err
	}
	ns := ""
	if ri.namespaced {
		ns = ref.Namespace
	}
	return gc.metadata.Resource(ri.gvr).Namespace(ns), ri, nil
}

// runWorker processes one queue until it shuts down. An error requeues the item with backoff.
func (gc *GarbageCollector) runWorker(ctx context.Context, q workqueue.TypedRateLimitingInterface[types.UID], fn func(context.Context, types.UID) error) {
	for {
		uid, quit := q.Get()
		if quit {
			return
		}
		err := fn(ctx, uid)
		switch {
		case err == nil:
			q.Forget(uid)
		case errors.Is(err, errRequeue):
			q.AddRateLimited(uid)
		default:
			if ctx.Err() == nil {
				gc.log.Debug("retrying", "uid", string(uid), "err", err)
			}
			q.AddRateLimited(uid)
		}
		q.Done(uid)
	}
}

// errRequeue asks for another look later without it being a failure (virtual nodes waiting
// to be observed).
var errRequeue = errors.New("requeue")

// event records an event about obj (best effort).
func (gc *GarbageCollector) event(ref objectRef, eventType, reason, msg string) {
	obj := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: ref.APIVersion, Kind: ref.Kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name, UID: ref.UID},
	}
	gc.recorder.Event(obj, eventType, reason, msg)
}
