package garbagecollector

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

type eventType int

const (
	addEvent eventType = iota
	updateEvent
	deleteEvent
	// virtualDeleteEvent: a live lookup found no object behind a virtual node.
	virtualDeleteEvent
)

// graphEvent is one change the graph builder applies, in the order informers report them.
type graphEvent struct {
	typ eventType
	obj metav1.Object
	gvk schema.GroupVersionKind
	ref objectRef // virtualDeleteEvent only
}

// handlerFor returns the informer handler of one resource: every change becomes a graph event.
func (gc *GarbageCollector) handlerFor(gvk schema.GroupVersionKind) cache.ResourceEventHandler {
	push := func(typ eventType, obj interface{}) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		gc.graphChanges.Add(&graphEvent{typ: typ, obj: m, gvk: gvk})
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { push(addEvent, obj) },
		UpdateFunc: func(_, obj interface{}) { push(updateEvent, obj) },
		DeleteFunc: func(obj interface{}) { push(deleteEvent, obj) },
	}
}

// processGraphChanges applies graph events one at a time until the queue shuts down.
func (gc *GarbageCollector) processGraphChanges() {
	for {
		ev, quit := gc.graphChanges.Get()
		if quit {
			return
		}
		gc.applyEvent(ev)
		gc.graphChanges.Done(ev)
	}
}

// applyEvent changes the graph for one event and queues the work it implies.
func (gc *GarbageCollector) applyEvent(ev *graphEvent) {
	g := gc.graph
	g.mu.Lock()
	defer g.mu.Unlock()
	if ev.typ == virtualDeleteEvent {
		gc.applyVirtualDelete(ev.ref)
		return
	}
	obj := ev.obj
	uid := obj.GetUID()
	n := g.nodes[uid]
	if ev.typ == deleteEvent {
		if n == nil {
			return
		}
		gc.absent.add(absentKey{uid: uid})
		gc.removeNode(n)
		return
	}
	ref := objectRef{APIVersion: ev.gvk.GroupVersion().String(), Kind: ev.gvk.Kind,
		Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: uid}
	owners := append([]metav1.OwnerReference(nil), obj.GetOwnerReferences()...)
	if n == nil {
		n = &node{ref: ref, observed: true, owners: owners, dependents: map[*node]struct{}{}}
		g.nodes[uid] = n
		gc.addToOwners(n, owners)
	} else {
		if !n.observed {
			// A virtual owner is now observed: dependents that named it with other coordinates
			// (wrong kind, name or namespace) refer to something else; look at them again.
			n.observed = true
			n.ref = ref
			for d := range n.dependents {
				for _, o := range d.owners {
					if o.UID == uid && !ownerMatches(o, d, n) {
						gc.attemptToDelete.Add(d.ref.UID)
					}
				}
			}
		}
		n.ref = ref
		added, removed, changed := diffOwners(n.owners, owners)
		n.owners = owners
		gc.addToOwners(n, added)
		gc.removeFromOwners(n, removed)
		for _, o := range changed {
			if on := g.nodes[o.UID]; on != nil && on.deletingDependents {
				gc.attemptToDelete.Add(on.ref.UID)
			}
		}
	}
	n.beingDeleted = obj.GetDeletionTimestamp() != nil
	finalizers := obj.GetFinalizers()
	if n.beingDeleted && hasString(finalizers, metav1.FinalizerOrphanDependents) {
		gc.attemptToOrphan.Add(uid)
	}
	foreground := n.beingDeleted && hasString(finalizers, metav1.FinalizerDeleteDependents)
	if foreground {
		if !n.deletingDependents {
			for d := range n.dependents {
				gc.attemptToDelete.Add(d.ref.UID)
			}
		}
		gc.attemptToDelete.Add(uid)
	}
	n.deletingDependents = foreground
}

// addToOwners records n as a dependent of each referenced owner, creating virtual nodes for
// owners not seen yet (each queued to be verified by a live lookup).
func (gc *GarbageCollector) addToOwners(n *node, refs []metav1.OwnerReference) {
	g := gc.graph
	for _, r := range refs {
		o := g.nodes[r.UID]
		if o == nil {
			o = &node{ref: objectRef{APIVersion: r.APIVersion, Kind: r.Kind, Namespace: n.ref.Namespace, Name: r.Name, UID: r.UID},
				dependents: map[*node]struct{}{}}
			g.nodes[r.UID] = o
			gc.attemptToDelete.Add(r.UID)
		}
		o.dependents[n] = struct{}{}
		if o.observed && (o.deletingDependents || !ownerMatches(r, n, o)) {
			gc.attemptToDelete.Add(n.ref.UID)
		}
	}
}

// removeFromOwners drops n from the dependents of the given owners. Owners waiting for their
// dependents are looked at again; virtual owners left without dependents go away.
func (gc *GarbageCollector) removeFromOwners(n *node, refs []metav1.OwnerReference) {
	g := gc.graph
	for _, r := range refs {
		o := g.nodes[r.UID]
		if o == nil {
			continue
		}
		delete(o.dependents, n)
		if o.deletingDependents {
			gc.attemptToDelete.Add(o.ref.UID)
		}
		if !o.observed && len(o.dependents) == 0 {
			delete(g.nodes, r.UID)
		}
	}
}

// removeNode removes an object that is gone: its dependents have lost an owner.
func (gc *GarbageCollector) removeNode(n *node) {
	g := gc.graph
	delete(g.nodes, n.ref.UID)
	gc.removeFromOwners(n, n.owners)
	for d := range n.dependents {
		gc.attemptToDelete.Add(d.ref.UID)
	}
}

// applyVirtualDelete handles a lookup that found nothing behind ref's coordinates.
func (gc *GarbageCollector) applyVirtualDelete(ref objectRef) {
	n := gc.graph.nodes[ref.UID]
	if n == nil {
		return
	}
	if n.observed {
		// The object exists; only the dependents whose references do not match it are
		// affected.
		for d := range n.dependents {
			for _, o := range d.owners {
				if o.UID == ref.UID && !ownerMatches(o, d, n) {
					gc.attemptToDelete.Add(d.ref.UID)
				}
			}
		}
		return
	}
	delete(gc.graph.nodes, ref.UID)
	for d := range n.dependents {
		gc.attemptToDelete.Add(d.ref.UID)
	}
}
