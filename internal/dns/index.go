package dns

import (
	"net/netip"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// portInfo is a named port as it appears in SRV owner names (labels without the underscore).
type portInfo struct {
	name  string // lower-case port name, "" when unnamed
	proto string // "tcp", "udp", "sctp"
	port  uint16
}

// endpointInfo is one address of a headless service.
type endpointInfo struct {
	addr  netip.Addr
	host  string // DNS label: the endpoint's hostname, else the dashed address
	ports []portInfo
}

// service is an immutable view of one Service and its EndpointSlices; queries read it
// without locks once they hold the pointer.
type service struct {
	name, ns string
	fqdn     string // <name>.<ns>.svc.<zone>.
	headless bool
	external string // ExternalName target as an FQDN, "" otherwise
	ips      []netip.Addr
	ports    []portInfo
	// Ready endpoints (for headless services, the answer to the service name).
	endpoints []endpointInfo
	byHost    map[string][]int // endpoint label -> indexes into endpoints
}

// index holds everything answers are built from, keyed for map lookups.
type index struct {
	zone string // "cluster.local."

	mu       sync.RWMutex
	services map[string]*service // "<ns>/<name>"
	objs     map[string]*corev1.Service
	slices   map[string]map[string]*discoveryv1.EndpointSlice // service key -> slice name -> slice
	sliceSvc map[string]string                                // "<ns>/<slice>" -> service key
	nsCount  map[string]int                                   // services per namespace
	ptr      map[netip.Addr][]string                          // address -> owner names
	podIPs   map[string]map[netip.Addr]int                    // namespace -> pod IP -> count
	podAddrs map[string][]netip.Addr                          // "<ns>/<pod>" -> its IPs
}

func newIndex(zone string) *index {
	return &index{
		zone:     zone,
		services: map[string]*service{},
		objs:     map[string]*corev1.Service{},
		slices:   map[string]map[string]*discoveryv1.EndpointSlice{},
		sliceSvc: map[string]string{},
		nsCount:  map[string]int{},
		ptr:      map[netip.Addr][]string{},
		podIPs:   map[string]map[netip.Addr]int{},
		podAddrs: map[string][]netip.Addr{},
	}
}

// lookup returns the service <name> in <ns>, or nil.
func (ix *index) lookup(ns, name string) *service {
	ix.mu.RLock()
	s := ix.services[ns+"/"+name]
	ix.mu.RUnlock()
	return s
}

func (ix *index) namespaceExists(ns string) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.nsCount[ns] > 0 || len(ix.podIPs[ns]) > 0
}

func (ix *index) reverse(a netip.Addr) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.ptr[a]
}

func (ix *index) podIPExists(ns string, a netip.Addr) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.podIPs[ns][a] > 0
}

func (ix *index) serviceCount() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.services)
}

// --- informer events ---

func unwrap(obj interface{}) interface{} {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

func (ix *index) serviceHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { ix.setService(obj, false) },
		UpdateFunc: func(_, obj interface{}) { ix.setService(obj, false) },
		DeleteFunc: func(obj interface{}) { ix.setService(obj, true) },
	}
}

func (ix *index) sliceHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { ix.setSlice(obj, false) },
		UpdateFunc: func(_, obj interface{}) { ix.setSlice(obj, false) },
		DeleteFunc: func(obj interface{}) { ix.setSlice(obj, true) },
	}
}

func (ix *index) podHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { ix.setPod(obj, false) },
		UpdateFunc: func(_, obj interface{}) { ix.setPod(obj, false) },
		DeleteFunc: func(obj interface{}) { ix.setPod(obj, true) },
	}
}

func (ix *index) setService(obj interface{}, deleted bool) {
	svc, ok := unwrap(obj).(*corev1.Service)
	if !ok {
		return
	}
	key := svc.Namespace + "/" + svc.Name
	ix.mu.Lock()
	defer ix.mu.Unlock()
	_, had := ix.objs[key]
	if deleted {
		if had {
			delete(ix.objs, key)
			ix.nsCount[svc.Namespace]--
			if ix.nsCount[svc.Namespace] <= 0 {
				delete(ix.nsCount, svc.Namespace)
			}
		}
	} else {
		if !had {
			ix.nsCount[svc.Namespace]++
		}
		ix.objs[key] = svc
	}
	ix.rebuildLocked(key)
}

func (ix *index) setSlice(obj interface{}, deleted bool) {
	es, ok := unwrap(obj).(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	sk := es.Namespace + "/" + es.Name
	ix.mu.Lock()
	defer ix.mu.Unlock()
	// The slice may have moved between services (label change): drop it from the old one.
	if old, ok := ix.sliceSvc[sk]; ok {
		if m := ix.slices[old]; m != nil {
			delete(m, es.Name)
			if len(m) == 0 {
				delete(ix.slices, old)
			}
		}
		delete(ix.sliceSvc, sk)
		ix.rebuildLocked(old)
	}
	name := es.Labels[discoveryv1.LabelServiceName]
	if deleted || name == "" {
		return
	}
	key := es.Namespace + "/" + name
	m := ix.slices[key]
	if m == nil {
		m = map[string]*discoveryv1.EndpointSlice{}
		ix.slices[key] = m
	}
	m[es.Name] = es
	ix.sliceSvc[sk] = key
	ix.rebuildLocked(key)
}

func (ix *index) setPod(obj interface{}, deleted bool) {
	pod, ok := unwrap(obj).(*corev1.Pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	var addrs []netip.Addr
	if !deleted {
		for _, p := range pod.Status.PodIPs {
			if a, err := netip.ParseAddr(p.IP); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
		if len(addrs) == 0 && pod.Status.PodIP != "" {
			if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	m := ix.podIPs[pod.Namespace]
	for _, a := range ix.podAddrs[key] {
		if m[a]--; m[a] <= 0 {
			delete(m, a)
		}
	}
	delete(ix.podAddrs, key)
	if len(addrs) > 0 {
		if m == nil {
			m = map[netip.Addr]int{}
			ix.podIPs[pod.Namespace] = m
		}
		for _, a := range addrs {
			m[a]++
		}
		ix.podAddrs[key] = addrs
	}
	if len(m) == 0 {
		delete(ix.podIPs, pod.Namespace)
	}
}

// rebuildLocked recomputes the view of one service from its object and slices, and the
// reverse entries it contributes. Callers hold ix.mu for writing.
func (ix *index) rebuildLocked(key string) {
	old := ix.services[key]
	if old != nil {
		ix.removePTRLocked(old)
	}
	obj := ix.objs[key]
	if obj == nil {
		delete(ix.services, key)
		return
	}
	s := ix.build(obj, ix.slices[key])
	ix.services[key] = s
	ix.addPTRLocked(s)
}

func (ix *index) ptrNames(s *service) (addrs []netip.Addr, names []string) {
	if s.external != "" {
		return nil, nil
	}
	for _, a := range s.ips {
		addrs, names = append(addrs, a), append(names, s.fqdn)
	}
	if !s.headless {
		return addrs, names // PTR for endpoints only of headless services, as the specification
	}
	for _, e := range s.endpoints {
		addrs, names = append(addrs, e.addr), append(names, e.host+"."+s.fqdn)
	}
	return addrs, names
}

func (ix *index) addPTRLocked(s *service) {
	addrs, names := ix.ptrNames(s)
	for i, a := range addrs {
		ix.ptr[a] = append(ix.ptr[a], names[i])
	}
}

func (ix *index) removePTRLocked(s *service) {
	addrs, names := ix.ptrNames(s)
	for i, a := range addrs {
		list := ix.ptr[a]
		out := list[:0:0]
		removed := false
		for _, n := range list {
			if !removed && n == names[i] {
				removed = true
				continue
			}
			out = append(out, n)
		}
		if len(out) == 0 {
			delete(ix.ptr, a)
		} else {
			ix.ptr[a] = out
		}
	}
}

func (ix *index) build(obj *corev1.Service, bySlice map[string]*discoveryv1.EndpointSlice) *service {
	s := &service{name: obj.Name, ns: obj.Namespace, fqdn: obj.Name + "." + obj.Namespace + ".svc." + ix.zone}
	if obj.Spec.Type == corev1.ServiceTypeExternalName {
		if ext := strings.ToLower(strings.TrimSpace(obj.Spec.ExternalName)); ext != "" {
			s.external = strings.TrimSuffix(ext, ".") + "."
		}
		return s
	}
	for _, p := range obj.Spec.Ports {
		s.ports = append(s.ports, portInfo{name: strings.ToLower(p.Name), proto: protoLabel(p.Protocol), port: uint16(p.Port)})
	}
	ips := obj.Spec.ClusterIPs
	if len(ips) == 0 && obj.Spec.ClusterIP != "" {
		ips = []string{obj.Spec.ClusterIP}
	}
	if len(ips) > 0 && ips[0] == corev1.ClusterIPNone {
		s.headless = true
	} else {
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				s.ips = append(s.ips, a.Unmap())
			}
		}
	}
	// Ready endpoints from every slice, each address once; slices in name order so answers do
	// not depend on map iteration. Headless services answer with them; every service answers
	// <hostname>.<svc> and <dashed-ip>.<svc> for them ("any Pods exposed by a Service").
	names := make([]string, 0, len(bySlice))
	for n := range bySlice {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := map[netip.Addr]bool{}
	s.byHost = map[string][]int{}
	for _, n := range names {
		es := bySlice[n]
		var ports []portInfo
		for _, p := range es.Ports {
			if p.Port == nil {
				continue
			}
			pi := portInfo{port: uint16(*p.Port), proto: "tcp"}
			if p.Name != nil {
				pi.name = strings.ToLower(*p.Name)
			}
			if p.Protocol != nil {
				pi.proto = protoLabel(*p.Protocol)
			}
			ports = append(ports, pi)
		}
		for _, ep := range es.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			if !ready && !obj.Spec.PublishNotReadyAddresses {
				continue
			}
			for _, addr := range ep.Addresses {
				a, err := netip.ParseAddr(addr)
				if err != nil || seen[a.Unmap()] {
					continue
				}
				a = a.Unmap()
				seen[a] = true
				host := dashed(a)
				if ep.Hostname != nil && *ep.Hostname != "" {
					host = strings.ToLower(*ep.Hostname)
				}
				s.endpoints = append(s.endpoints, endpointInfo{addr: a, host: host, ports: ports})
				s.byHost[host] = append(s.byHost[host], len(s.endpoints)-1)
				if d := dashed(a); d != host {
					// The dashed name answers too, so SRV targets of either form resolve.
					s.byHost[d] = append(s.byHost[d], len(s.endpoints)-1)
				}
			}
		}
	}
	return s
}

func protoLabel(p corev1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

// dashed is the address as one DNS label: 10-1-2-3, or 2001-db8--1 for IPv6.
func dashed(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	return strings.ReplaceAll(a.String(), ":", "-")
}

// undash parses a label produced by dashed (also the fully written IPv6 form).
func undash(label string) (netip.Addr, bool) {
	if strings.Count(label, "-") == 3 && !strings.Contains(label, ":") {
		a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", "."))
		if err == nil && a.Is4() {
			return a, true
		}
	}
	a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":"))
	if err == nil && a.Is6() && !a.Is4In6() && a.Zone() == "" {
		return a, true
	}
	return netip.Addr{}, false
}
