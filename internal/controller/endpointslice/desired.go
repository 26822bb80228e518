package endpointslice

import (
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/skiff-sh/skiff/internal/controller/endpoints"
)

// MaxEndpointsPerSlice is Kubernetes' default --max-endpoints-per-slice.
const MaxEndpointsPerSlice = 100

// Group is the desired endpoints sharing one address type and one set of ports: they go
// into one or more slices.
type Group struct {
	AddressType discoveryv1.AddressType
	Ports       []discoveryv1.EndpointPort
	// Endpoints by EndpointKey.
	Endpoints map[string]discoveryv1.Endpoint
}

// Key identifies the group of a slice: its address type and its (normalised) ports.
func Key(at discoveryv1.AddressType, ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	b.WriteString(string(at))
	b.WriteByte('|')
	for _, p := range ports {
		if p.Name != nil {
			b.WriteString(*p.Name)
		}
		b.WriteByte('/')
		if p.Protocol != nil {
			b.WriteString(string(*p.Protocol))
		} else {
			b.WriteString(string(corev1.ProtocolTCP))
		}
		b.WriteByte('/')
		if p.Port != nil {
			b.WriteString(strconv.Itoa(int(*p.Port)))
		}
		if p.AppProtocol != nil {
			b.WriteByte('/')
			b.WriteString(*p.AppProtocol)
		}
		b.WriteByte(';')
	}
	return b.String()
}

// NormalizePorts returns ports with API defaults (name "", protocol TCP) filled in, sorted.
func NormalizePorts(in []discoveryv1.EndpointPort) []discoveryv1.EndpointPort {
	if len(in) == 0 {
		return nil
	}
	out := make([]discoveryv1.EndpointPort, len(in))
	for i, p := range in {
		if p.Name == nil {
			p.Name = new("")
		}
		if p.Protocol == nil {
			p.Protocol = new(corev1.ProtocolTCP)
		}
		out[i] = p
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if *a.Name != *b.Name {
			return *a.Name < *b.Name
		}
		ap, bp := int32(0), int32(0)
		if a.Port != nil {
			ap = *a.Port
		}
		if b.Port != nil {
			bp = *b.Port
		}
		if ap != bp {
			return ap < bp
		}
		return *a.Protocol < *b.Protocol
	})
	return out
}

// AddressTypes are the slice address types of a service: one per IP family (IPv4 when it
// lists none).
func AddressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discoveryv1.AddressTypeIPv6)
		}
	}
	if len(out) == 0 {
		out = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	}
	return out
}

// Desired computes the endpoints of a service from the pods its selector matches, grouped
// by address type and resolved ports. Pods without an IP of the family and terminal pods
// are left out; pods being deleted stay with terminating=true, ready=false (unless the
// service publishes not-ready addresses) and serving=their readiness. A pod lacking a named
// target port has no entry for that port. zoneOf gives a node's zone ("" if unknown).
func Desired(svc *corev1.Service, pods []*corev1.Pod, zoneOf func(node string) string) map[string]*Group {
	groups := map[string]*Group{}
	publish := svc.Spec.PublishNotReadyAddresses
	for _, at := range AddressTypes(svc) {
		v6 := at == discoveryv1.AddressTypeIPv6
		for _, pod := range pods {
			if !endpoints.ShouldPodBeInEndpoints(pod, true) {
				continue
			}
			ip := endpoints.PodIPOfFamily(pod, v6)
			if ip == "" {
				continue
			}
			var ports []discoveryv1.EndpointPort
			for i := range svc.Spec.Ports {
				sp := &svc.Spec.Ports[i]
				n, ok := endpoints.FindPort(pod, sp)
				if !ok {
					continue
				}
				proto := sp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				ports = append(ports, discoveryv1.EndpointPort{Name: new(sp.Name), Protocol: new(proto), Port: new(n), AppProtocol: sp.AppProtocol})
			}
			ports = NormalizePorts(ports)
			k := Key(at, ports)
			g := groups[k]
			if g == nil {
				g = &Group{AddressType: at, Ports: ports, Endpoints: map[string]discoveryv1.Endpoint{}}
				groups[k] = g
			}
			serving := publish || endpoints.IsPodReady(pod)
			terminating := pod.DeletionTimestamp != nil
			ready := publish || (serving && !terminating)
			ep := discoveryv1.Endpoint{
				Addresses:  []string{ip},
				Conditions: discoveryv1.EndpointConditions{Ready: new(ready), Serving: new(serving), Terminating: new(terminating)},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			}
			if h := endpoints.Hostname(pod, svc); h != "" {
				ep.Hostname = new(h)
			}
			if pod.Spec.NodeName != "" {
				ep.NodeName = new(pod.Spec.NodeName)
				if zoneOf != nil {
					if z := zoneOf(pod.Spec.NodeName); z != "" {
						ep.Zone = new(z)
					}
				}
			}
			g.Endpoints[EndpointKey(&ep)] = ep
		}
	}
	return groups
}

// EndpointKey identifies an endpoint across syncs: its first address and its target's UID
// (host-network pods share an address).
func EndpointKey(ep *discoveryv1.Endpoint) string {
	k := ""
	if len(ep.Addresses) > 0 {
		k = ep.Addresses[0]
	}
	if ep.TargetRef != nil {
		k += "/" + string(ep.TargetRef.UID)
	}
	return k
}
