package endpointslice

import (
	"maps"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Plan is what a sync writes: slices to create (generateName set), update and delete.
type Plan struct {
	Create []*discoveryv1.EndpointSlice
	Update []*discoveryv1.EndpointSlice
	Delete []*discoveryv1.EndpointSlice
}

// Empty reports whether the plan writes nothing.
func (p *Plan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// slot is an existing slice during reconciliation.
type slot struct {
	orig    *discoveryv1.EndpointSlice
	eps     []discoveryv1.Endpoint
	ports   []discoveryv1.EndpointPort
	changed bool
}

// Reconcile plans the writes that turn the service's existing managed slices into the
// desired groups with at most max endpoints per slice, changing as few slices as possible:
// endpoints stay in the slice they are in, new ones fill slices being written anyway, then
// slices that would otherwise be deleted, then slices with room, then new slices. A service
// without endpoints keeps one empty placeholder slice, as in Kubernetes. Existing slices
// are the service's managed slices; those another Service (an earlier one of the same
// name) owns are deleted.
func Reconcile(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, desired map[string]*Group, max int) Plan {
	if max <= 0 {
		max = MaxEndpointsPerSlice
	}
	var plan Plan
	wantLabels := Labels(svc)
	owner := ownerRef(svc)

	sorted := append([]*discoveryv1.EndpointSlice(nil), existing...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })

	byKey := map[string][]*slot{}
	pool := map[discoveryv1.AddressType][]*slot{} // slices free for reuse
	for _, s := range sorted {
		if s.DeletionTimestamp != nil {
			continue
		}
		if ref := metav1.GetControllerOf(s); ref == nil || ref.UID != svc.UID {
			plan.Delete = append(plan.Delete, s)
			continue
		}
		ports := NormalizePorts(s.Ports)
		k := Key(s.AddressType, ports)
		sl := &slot{orig: s, ports: ports}
		if _, ok := desired[k]; ok {
			byKey[k] = append(byKey[k], sl)
		} else {
			pool[s.AddressType] = append(pool[s.AddressType], sl)
		}
	}

	keys := make([]string, 0, len(desired))
	for k := range desired {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var kept []*slot // slices that stay, changed or not
	total := 0
	for _, k := range keys {
		g := desired[k]
		total += len(g.Endpoints)
		left := maps.Clone(g.Endpoints)
		var mine []*slot
		for _, sl := range byKey[k] {
			for i := range sl.orig.Endpoints {
				ep := &sl.orig.Endpoints[i]
				ek := EndpointKey(ep)
				want, ok := left[ek]
				if !ok || len(sl.eps) >= max {
					sl.changed = true // gone, or a duplicate, or beyond capacity
					continue
				}
				delete(left, ek)
				if !apiequality.Semantic.DeepEqual(*ep, want) {
					sl.changed = true
				}
				sl.eps = append(sl.eps, want)
			}
			if len(sl.eps) == 0 {
				sl.changed = true
				pool[g.AddressType] = append(pool[g.AddressType], sl)
				continue
			}
			mine = append(mine, sl)
		}
		// New endpoints, in address order.
		var add []discoveryv1.Endpoint
		for _, ep := range left {
			add = append(add, ep)
		}
		sortEndpoints(add)
		fill := func(sl *slot) {
			n := max - len(sl.eps)
			if n <= 0 || len(add) == 0 {
				return
			}
			if n > len(add) {
				n = len(add)
			}
			sl.eps = append(sl.eps, add[:n]...)
			add = add[n:]
			sl.changed = true
		}
		for _, sl := range mine {
			if sl.changed {
				fill(sl)
			}
		}
		for len(add) > 0 && len(pool[g.AddressType]) > 0 {
			sl := pool[g.AddressType][0]
			pool[g.AddressType] = pool[g.AddressType][1:]
			sl.eps, sl.ports, sl.changed = nil, g.Ports, true
			fill(sl)
			mine = append(mine, sl)
		}
		for _, sl := range mine {
			if !sl.changed {
				fill(sl)
			}
		}
		kept = append(kept, mine...)
		for len(add) > 0 {
			n := min(max, len(add))
			plan.Create = append(plan.Create, newSlice(svc, g.AddressType, g.Ports, add[:n], wantLabels, owner))
			add = add[n:]
		}
	}

	if total == 0 {
		// One placeholder slice: no endpoints, no ports, the service's first address type.
		at := AddressTypes(svc)[0]
		var ph *slot
		for _, sl := range pool[at] {
			if len(sl.orig.Endpoints) == 0 && len(sl.orig.Ports) == 0 {
				ph = sl
				break
			}
		}
		if ph == nil && len(pool[at]) > 0 {
			ph = pool[at][0]
			ph.changed = true
		}
		if ph != nil {
			ph.eps, ph.ports = nil, nil
			kept = append(kept, ph)
			rest := pool[at][:0:0]
			for _, sl := range pool[at] {
				if sl != ph {
					rest = append(rest, sl)
				}
			}
			pool[at] = rest
		} else {
			plan.Create = append(plan.Create, newSlice(svc, at, nil, nil, wantLabels, owner))
		}
	}

	for _, at := range sortedTypes(pool) {
		for _, sl := range pool[at] {
			plan.Delete = append(plan.Delete, sl.orig)
		}
	}
	for _, sl := range kept {
		if !sl.changed && maps.Equal(sl.orig.Labels, wantLabels) {
			continue
		}
		s := sl.orig.DeepCopy()
		s.Labels = wantLabels
		s.Ports = sl.ports
		sortEndpoints(sl.eps)
		s.Endpoints = sl.eps
		plan.Update = append(plan.Update, s)
	}
	return plan
}

func sortedTypes(m map[discoveryv1.AddressType][]*slot) []discoveryv1.AddressType {
	out := make([]discoveryv1.AddressType, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sortEndpoints(eps []discoveryv1.Endpoint) {
	sort.Slice(eps, func(i, j int) bool { return EndpointKey(&eps[i]) < EndpointKey(&eps[j]) })
}

func ownerRef(svc *corev1.Service) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
		Controller: new(true), BlockOwnerDeletion: new(true)}
}

func newSlice(svc *corev1.Service, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps []discoveryv1.Endpoint,
	labels map[string]string, owner metav1.OwnerReference) *discoveryv1.EndpointSlice {
	eps = append([]discoveryv1.Endpoint(nil), eps...)
	sortEndpoints(eps)
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    svc.Name + "-",
			Namespace:       svc.Namespace,
			Labels:          maps.Clone(labels),
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		AddressType: at,
		Endpoints:   eps,
		Ports:       append([]discoveryv1.EndpointPort(nil), ports...),
	}
}
