package endpoints

import (
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// MaxAddresses caps the addresses of one Endpoints object, as in Kubernetes; beyond it the
// object is truncated (ready addresses first) and annotated over-capacity.
const MaxAddresses = 1000

// Desired computes the subsets of a service's Endpoints from the pods its selector matches.
// Pods without IPs, terminal pods and (unless the service publishes not-ready addresses)
// pods being deleted are left out; ready pods (or every pod, with
// publishNotReadyAddresses) go to addresses, the others to notReadyAddresses. A pod lacking
// a named target port is left out of that port. The result is in canonical order
// (subsets grouped by identical port sets, addresses sorted) and truncated to max
// addresses (0: MaxAddresses); truncated reports whether any were dropped.
func Desired(svc *corev1.Service, pods []*corev1.Pod, max int) (subsets []corev1.EndpointSubset, truncated bool) {
	if max <= 0 {
		max = MaxAddresses
	}
	publish := svc.Spec.PublishNotReadyAddresses
	v6 := len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	for _, pod := range pods {
		if !ShouldPodBeInEndpoints(pod, publish) {
			continue
		}
		ip := PodIPOfFamily(pod, v6)
		if ip == "" {
			continue
		}
		addr := corev1.EndpointAddress{IP: ip, Hostname: Hostname(pod, svc),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}}
		if pod.Spec.NodeName != "" {
			addr.NodeName = new(pod.Spec.NodeName)
		}
		ready := publish || (IsPodReady(pod) && pod.DeletionTimestamp == nil)
		var ports []corev1.EndpointPort
		if len(svc.Spec.Ports) == 0 {
			if !IsHeadless(svc) {
				continue
			}
		} else {
			for i := range svc.Spec.Ports {
				sp := &svc.Spec.Ports[i]
				n, ok := FindPort(pod, sp)
				if !ok {
					continue
				}
				proto := sp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: proto, AppProtocol: sp.AppProtocol})
			}
			if len(ports) == 0 {
				continue
			}
		}
		sortPorts(ports)
		k := portsKey(ports)
		g := groups[k]
		if g == nil {
			g = &group{ports: ports}
			groups[k] = g
		}
		if ready {
			g.ready = append(g.ready, addr)
		} else {
			g.notReady = append(g.notReady, addr)
		}
	}
	keys := make([]string, 0, len(groups))
	total := 0
	for k, g := range groups {
		keys = append(keys, k)
		total += len(g.ready) + len(g.notReady)
		sortAddresses(g.ready)
		sortAddresses(g.notReady)
	}
	sort.Strings(keys)
	if total > max {
		truncated = true
		// Keep ready addresses first, then not-ready ones, spread over the subsets in order.
		budget := max
		for _, k := range keys {
			g := groups[k]
			if len(g.ready) > budget {
				g.ready = g.ready[:budget]
			}
			budget -= len(g.ready)
		}
		for _, k := range keys {
			g := groups[k]
			if len(g.notReady) > budget {
				g.notReady = g.notReady[:budget]
			}
			budget -= len(g.notReady)
		}
	}
	for _, k := range keys {
		g := groups[k]
		if len(g.ready) == 0 && len(g.notReady) == 0 {
			continue
		}
		subsets = append(subsets, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	return subsets, truncated
}

func sortPorts(ports []corev1.EndpointPort) {
	sort.Slice(ports, func(i, j int) bool {
		a, b := ports[i], ports[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Protocol < b.Protocol
	})
}

func portsKey(ports []corev1.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(p.Name)
		b.WriteByte('/')
		b.WriteString(string(p.Protocol))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(p.Port)))
		if p.AppProtocol != nil {
			b.WriteByte('/')
			b.WriteString(*p.AppProtocol)
		}
		b.WriteByte(';')
	}
	return b.String()
}

func sortAddresses(a []corev1.EndpointAddress) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].IP != a[j].IP {
			return a[i].IP < a[j].IP
		}
		return targetUID(a[i]) < targetUID(a[j])
	})
}

func targetUID(a corev1.EndpointAddress) string {
	if a.TargetRef == nil {
		return ""
	}
	return string(a.TargetRef.UID)
}

// Canonical returns subsets regrouped by identical port sets with sorted addresses and
// ports, so that two lists can be compared regardless of order (as Kubernetes repacks them).
func Canonical(in []corev1.EndpointSubset) []corev1.EndpointSubset {
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	for _, s := range in {
		ports := append([]corev1.EndpointPort(nil), s.Ports...)
		for i := range ports {
			if ports[i].Protocol == "" {
				ports[i].Protocol = corev1.ProtocolTCP
			}
		}
		sortPorts(ports)
		k := portsKey(ports)
		g := groups[k]
		if g == nil {
			g = &group{ports: ports}
			groups[k] = g
		}
		g.ready = append(g.ready, s.Addresses...)
		g.notReady = append(g.notReady, s.NotReadyAddresses...)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []corev1.EndpointSubset
	for _, k := range keys {
		g := groups[k]
		if len(g.ready) == 0 && len(g.notReady) == 0 {
			continue
		}
		sortAddresses(g.ready)
		sortAddresses(g.notReady)
		out = append(out, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	return out
}
