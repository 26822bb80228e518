package garbagecollector

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// objectRef identifies an object: its coordinates and its UID. For an owner the collector has
// not observed yet (a virtual node) the coordinates are those of the first reference to it,
// and the namespace is the referring dependent's.
type objectRef struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	UID        types.UID
}

func (r objectRef) groupKind() schema.GroupKind {
	gv, _ := schema.ParseGroupVersion(r.APIVersion)
	return schema.GroupKind{Group: gv.Group, Kind: r.Kind}
}

func (r objectRef) String() string {
	s := r.Kind + " " + r.Name
	if r.Namespace != "" {
		s = r.Kind + " " + r.Namespace + "/" + r.Name
	}
	return s + " (" + string(r.UID) + ")"
}

// node is one object in the ownership graph.
type node struct {
	ref objectRef
	// observed: an informer has reported the object. Unobserved (virtual) nodes stand for
	// owners that dependents refer to; a live lookup decides whether they exist.
	observed bool
	// beingDeleted: the object has a deletionTimestamp.
	beingDeleted bool
	// deletingDependents: being deleted with the foregroundDeletion finalizer.
	deletingDependents bool
	owners             []metav1.OwnerReference
	dependents         map[*node]struct{}
}

// blocks reports whether dependent d blocks the deletion of owner uid.
func (d *node) blocks(owner types.UID) bool {
	for _, o := range d.owners {
		if o.UID == owner {
			return o.BlockOwnerDeletion != nil && *o.BlockOwnerDeletion
		}
	}
	return false
}

// graph is the ownership graph: every observed object, plus virtual nodes for owners not
// (yet) observed. One goroutine changes it; workers read it.
type graph struct {
	mu    sync.RWMutex
	nodes map[types.UID]*node
}

func newGraph() *graph { return &graph{nodes: map[types.UID]*node{}} }

// nodeInfo is a copy of what workers need from a node.
type nodeInfo struct {
	ref                objectRef
	exists             bool
	observed           bool
	beingDeleted       bool
	deletingDependents bool
	hasOwners          bool
	dependents         []dependentInfo
}

type dependentInfo struct {
	ref                objectRef
	blocking           bool // blockOwnerDeletion=true towards this owner
	beingDeleted       bool
	deletingDependents bool
}

func (g *graph) info(uid types.UID) nodeInfo {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := g.nodes[uid]
	if n == nil {
		return nodeInfo{}
	}
	ni := nodeInfo{ref: n.ref, exists: true, observed: n.observed, beingDeleted: n.beingDeleted,
		deletingDependents: n.deletingDependents, hasOwners: len(n.owners) > 0}
	for d := range n.dependents {
		ni.dependents = append(ni.dependents, dependentInfo{ref: d.ref, blocking: d.blocks(uid),
			beingDeleted: d.beingDeleted, deletingDependents: d.deletingDependents})
	}
	return ni
}

// len is the number of nodes (tests, metrics).
func (g *graph) len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.nodes)
}

// diffOwners compares two ownerReference lists by UID: references only in b (added), only
// in a (removed), and in both but with a different blockOwnerDeletion (changed, as in a).
func diffOwners(a, b []metav1.OwnerReference) (added, removed, changed []metav1.OwnerReference) {
	old := map[types.UID]metav1.OwnerReference{}
	for _, r := range a {
		old[r.UID] = r
	}
	seen := map[types.UID]bool{}
	for _, r := range b {
		seen[r.UID] = true
		o, ok := old[r.UID]
		if !ok {
			added = append(added, r)
			continue
		}
		if blocking(o) != blocking(r) {
			changed = append(changed, o)
		}
	}
	for _, r := range a {
		if !seen[r.UID] {
			removed = append(removed, r)
		}
	}
	return added, removed, changed
}

func blocking(r metav1.OwnerReference) bool {
	return r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion
}

// ownerMatches reports whether a dependent's reference really names the observed owner node:
// same group and kind and name, and for a namespaced owner the dependent's namespace.
func ownerMatches(ref metav1.OwnerReference, dep, owner *node) bool {
	gv, _ := schema.ParseGroupVersion(ref.APIVersion)
	if gv.Group != owner.ref.groupKind().Group || ref.Kind != owner.ref.Kind || ref.Name != owner.ref.Name {
		return false
	}
	return owner.ref.Namespace == "" || owner.ref.Namespace == dep.ref.Namespace
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
