package garbagecollector

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// attemptToDeleteItem looks at one object: it deletes it when every owner is gone (or waits
// for its dependents), removes dangling references beside a live owner, and drives the
// foreground deletion of an owner.
func (gc *GarbageCollector) attemptToDeleteItem(ctx context.Context, uid types.UID) error {
	n := gc.graph.info(uid)
	if !n.exists {
		return nil
	}
	if n.observed && n.beingDeleted && !n.deletingDependents {
		// Being deleted is a one-way trip: its dependents are handled once it is gone.
		return nil
	}
	if n.observed && !n.hasOwners && !n.deletingDependents {
		return nil
	}
	latest, err := gc.getLive(ctx, n.ref)
	if err != nil {
		var me *errMapping
		if errors.As(err, &me) && !n.observed {
			// References to a kind that is not served cannot be verified; keep trying, as
			// the kind may appear.
			return errRequeue
		}
		return err
	}
	if latest == nil {
		if !n.observed {
			gc.graphChanges.Add(&graphEvent{typ: virtualDeleteEvent, ref: n.ref})
		}
		return nil
	}
	if latest.DeletionTimestamp != nil && hasString(latest.Finalizers, metav1.FinalizerDeleteDependents) {
		if err := gc.processDeletingDependents(ctx, uid, n.ref); err != nil {
			return err
		}
		return requeueUnobserved(n)
	}
	if latest.DeletionTimestamp != nil || len(latest.OwnerReferences) == 0 {
		return requeueUnobserved(n)
	}
	item := n.ref
	item.Namespace = latest.Namespace
	solid, dangling, waiting, err := gc.classify(ctx, item, latest.OwnerReferences)
	if errors.Is(err, errNamespacedOwnerOfClusterScoped) {
		gc.event(item, corev1.EventTypeWarning, "OwnerRefInvalidNamespace",
			"ownerRef refers to a namespaced owner, which a cluster-scoped object cannot have")
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case len(solid) > 0:
		if len(dangling) == 0 && len(waiting) == 0 {
			break
		}
		// A live owner keeps the object: only the references to gone owners (and to owners
		// that wait for their dependents, which would otherwise wait forever) go.
		drop := map[types.UID]bool{}
		for _, r := range append(dangling, waiting...) {
			drop[r.UID] = true
		}
		gc.log.Debug("removing references to absent or deleting owners", "object", item.String(), "owners", len(drop))
		if err := gc.patchOwnerRefs(ctx, item, func(refs []metav1.OwnerReference) []metav1.OwnerReference {
			var out []metav1.OwnerReference
			for _, r := range refs {
				if !drop[r.UID] {
					out = append(out, r)
				}
			}
			return out
		}); err != nil {
			return err
		}
	case len(waiting) > 0 && len(n.dependents) > 0:
		// An owner waits for this object, which has dependents itself: delete it in the
		// foreground too. A dependent already deleting its own dependents may wait on this
		// object in turn; break the cycle by making this object's references non-blocking.
		for _, d := range n.dependents {
			if d.deletingDependents {
				gc.log.Debug("unblocking owner references to avoid a deletion cycle", "object", item.String())
				if err := gc.patchOwnerRefs(ctx, item, func(refs []metav1.OwnerReference) []metav1.OwnerReference {
					out := append([]metav1.OwnerReference(nil), refs...)
					f := false
					for i := range out {
						if blocking(out[i]) {
							out[i].BlockOwnerDeletion = &f
						}
					}
					return out
				}); err != nil {
					return err
				}
				break
			}
		}
		gc.log.Debug("owner waits for its dependents; deleting in the foreground", "object", item.String())
		if err := gc.deleteObject(ctx, item, latest, metav1.DeletePropagationForeground); err != nil {
			return err
		}
	default:
		// No live owner: collect it, propagating as its own finalizers ask.
		policy := metav1.DeletePropagationBackground
		switch {
		case hasString(latest.Finalizers, metav1.FinalizerOrphanDependents):
			policy = metav1.DeletePropagationOrphan
		case hasString(latest.Finalizers, metav1.FinalizerDeleteDependents):
			policy = metav1.DeletePropagationForeground
		}
		gc.log.Debug("deleting object whose owners are gone", "object", item.String(), "policy", string(policy))
		if err := gc.deleteObject(ctx, item, latest, policy); err != nil {
			return err
		}
	}
	return requeueUnobserved(n)
}

// requeueUnobserved keeps a virtual node that exists in the queue until an informer reports it.
func requeueUnobserved(n nodeInfo) error {
	if !n.observed {
		return errRequeue
	}
	return nil
}

// processDeletingDependents handles an owner deleted in the foreground: it waits until no
// dependent with blockOwnerDeletion=true remains, deleting those not yet being deleted, and
// then removes its foregroundDeletion finalizer.
func (gc *GarbageCollector) processDeletingDependents(ctx context.Context, uid types.UID, ref objectRef) error {
	n := gc.graph.info(uid)
	var blockers int
	for _, d := range n.dependents {
		if !d.blocking {
			continue
		}
		blockers++
		if !d.beingDeleted {
			gc.attemptToDelete.Add(d.ref.UID)
		}
	}
	if blockers > 0 {
		return nil
	}
	gc.log.Debug("no blocking dependents left; removing the foregroundDeletion finalizer", "object", ref.String())
	return gc.removeFinalizer(ctx, ref, metav1.FinalizerDeleteDependents)
}

// errNamespacedOwnerOfClusterScoped: a cluster-scoped object names a namespaced owner, which
// can never resolve; retrying does not help.
var errNamespacedOwnerOfClusterScoped = errors.New("cluster-scoped object refers to a namespaced owner")

// classify sorts an object's owner references into live owners (solid), gone owners
// (dangling) and owners being deleted in the foreground (waiting).
func (gc *GarbageCollector) classify(ctx context.Context, item objectRef, refs []metav1.OwnerReference) (solid, dangling, waiting []metav1.OwnerReference, err error) {
	for _, r := range refs {
		gone, owner, err := gc.isDangling(ctx, item, r)
		if err != nil {
			return nil, nil, nil, err
		}
		switch {
		case gone:
			dangling = append(dangling, r)
		case owner.DeletionTimestamp != nil && hasString(owner.Finalizers, metav1.FinalizerDeleteDependents):
			waiting = append(waiting, r)
		default:
			solid = append(solid, r)
		}
	}
	return solid, dangling, waiting, nil
}

// isDangling reports whether the owner r of item is gone: a live GET by the reference's kind
// and name (in item's namespace for a namespaced kind) finds nothing, or finds another object
// (a different UID).
func (gc *GarbageCollector) isDangling(ctx context.Context, item objectRef, r metav1.OwnerReference) (bool, *metav1.PartialObjectMetadata, error) {
	if gc.absent.has(absentKey{uid: r.UID}) {
		return true, nil, nil
	}
	ri, err := gc.resourceFor(r.APIVersion, r.Kind)
	if err != nil {
		return false, nil, err
	}
	ns := ""
	if ri.namespaced {
		if item.Namespace == "" {
			return false, nil, errNamespacedOwnerOfClusterScoped
		}
		ns = item.Namespace
	}
	key := absentKey{gk: ri.gvr.GroupResource(), namespace: ns, name: r.Name, uid: r.UID}
	if gc.absent.has(key) {
		return true, nil, nil
	}
	owner, err := gc.metadata.Resource(ri.gvr).Namespace(ns).Get(ctx, r.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		gc.absent.add(key)
		return true, nil, nil
	case err != nil:
		return false, nil, err
	case owner.UID != r.UID:
		gc.absent.add(key)
		return true, nil, nil
	}
	return false, owner, nil
}

// getLive reads ref from the API server; nil when it does not exist (or is another object).
func (gc *GarbageCollector) getLive(ctx context.Context, ref objectRef) (*metav1.PartialObjectMetadata, error) {
	c, _, err := gc.client(ref)
	if err != nil {
		return nil, err
	}
	obj, err := c.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if obj.UID != ref.UID {
		return nil, nil
	}
	return obj, nil
}

// deleteObject deletes ref as last seen (latest): preconditions on UID and resourceVersion make
// sure the owners it was judged by still hold; when only other fields changed, it deletes by
// UID alone.
func (gc *GarbageCollector) deleteObject(ctx context.Context, ref objectRef, latest *metav1.PartialObjectMetadata, policy metav1.DeletionPropagation) error {
	c, _, err := gc.client(ref)
	if err != nil {
		return err
	}
	uid, rv := ref.UID, latest.ResourceVersion
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}, PropagationPolicy: &policy}
	err = c.Delete(ctx, ref.Name, opts)
	if apierrors.IsConflict(err) {
		cur, gerr := gc.getLive(ctx, ref)
		if gerr != nil {
			return gerr
		}
		if cur == nil {
			return nil
		}
		if !reflect.DeepEqual(normalizeRefs(cur.OwnerReferences), normalizeRefs(latest.OwnerReferences)) {
			// Its owners changed: judge again.
			return fmt.Errorf("owner references of %s changed; retrying", ref)
		}
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
		err = c.Delete(ctx, ref.Name, opts)
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func normalizeRefs(refs []metav1.OwnerReference) []metav1.OwnerReference {
	if len(refs) == 0 {
		return nil
	}
	return refs
}

// maxPatchAttempts bounds optimistic-concurrency retries of one metadata patch.
const maxPatchAttempts = 5

// patchMeta applies a JSON merge patch to ref's metadata, computed from its live state by fn
// (which returns nil to leave it as it is). The patch carries the resourceVersion it was
// computed from, so a concurrent change makes it conflict and it is computed again.
func (gc *GarbageCollector) patchMeta(ctx context.Context, ref objectRef, fn func(cur *metav1.PartialObjectMetadata) map[string]interface{}) error {
	c, _, err := gc.client(ref)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		cur, err := gc.getLive(ctx, ref)
		if err != nil || cur == nil {
			return err
		}
		fields := fn(cur)
		if fields == nil {
			return nil
		}
		fields["resourceVersion"] = cur.ResourceVersion
		body, err := json.Marshal(map[string]interface{}{"metadata": fields})
		if err != nil {
			return err
		}
		_, err = c.Patch(ctx, ref.Name, types.MergePatchType, body, metav1.PatchOptions{})
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err) && attempt+1 < maxPatchAttempts:
			continue
		default:
			return err
		}
	}
}

// removeFinalizer removes one finalizer from ref.
func (gc *GarbageCollector) removeFinalizer(ctx context.Context, ref objectRef, finalizer string) error {
	return gc.patchMeta(ctx, ref, func(cur *metav1.PartialObjectMetadata) map[string]interface{} {
		if !hasString(cur.Finalizers, finalizer) {
			return nil
		}
		rest := without(cur.Finalizers, finalizer)
		if len(rest) == 0 {
			return map[string]interface{}{"finalizers": nil}
		}
		return map[string]interface{}{"finalizers": rest}
	})
}

// patchOwnerRefs replaces ref's ownerReferences with fn(current) when they differ.
func (gc *GarbageCollector) patchOwnerRefs(ctx context.Context, ref objectRef, fn func([]metav1.OwnerReference) []metav1.OwnerReference) error {
	return gc.patchMeta(ctx, ref, func(cur *metav1.PartialObjectMetadata) map[string]interface{} {
		next := fn(cur.OwnerReferences)
		if reflect.DeepEqual(normalizeRefs(next), normalizeRefs(cur.OwnerReferences)) {
			return nil
		}
		if len(next) == 0 {
			return map[string]interface{}{"ownerReferences": nil}
		}
		return map[string]interface{}{"ownerReferences": next}
	})
}

// attemptToOrphanItem handles an owner deleted with the orphan finalizer: every dependent
// loses its reference to the owner, then the owner loses the finalizer.
func (gc *GarbageCollector) attemptToOrphanItem(ctx context.Context, uid types.UID) error {
	n := gc.graph.info(uid)
	if !n.exists || !n.observed {
		return nil
	}
	var errs []error
	for _, d := range n.dependents {
		err := gc.patchOwnerRefs(ctx, d.ref, func(refs []metav1.OwnerReference) []metav1.OwnerReference {
			var out []metav1.OwnerReference
			for _, r := range refs {
				if r.UID != uid {
					out = append(out, r)
				}
			}
			return out
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("orphaning %s: %w", d.ref, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	gc.log.Debug("dependents orphaned; removing the orphan finalizer", "object", n.ref.String(), "dependents", len(n.dependents))
	return gc.removeFinalizer(ctx, n.ref, metav1.FinalizerOrphanDependents)
}

// absentKey names an owner known to be gone: by UID alone when its deletion was observed,
// or by the coordinates a live lookup found empty (or holding another UID).
type absentKey struct {
	gk        schema.GroupResource
	namespace string
	name      string
	uid       types.UID
}

// absentCache is a bounded LRU set of owners known to be gone. UIDs are never reused, so an
// owner once gone stays gone.
type absentCache struct {
	mu    sync.Mutex
	max   int
	order *list.List
	items map[absentKey]*list.Element
}

func newAbsentCache(max int) *absentCache {
	return &absentCache{max: max, order: list.New(), items: map[absentKey]*list.Element{}}
}

func (c *absentCache) add(k absentKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(k)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(absentKey))
	}
}

func (c *absentCache) has(k absentKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if ok {
		c.order.MoveToFront(e)
	}
	return ok
}
