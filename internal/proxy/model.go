package proxy

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

const (
	// labelServiceProxyName marks services that another proxy handles; skiff ignores them.
	labelServiceProxyName = "service.kubernetes.io/service-proxy-name"
	// labelHeadless marks EndpointSlices of headless services.
	labelHeadless = "service.kubernetes.io/headless"
)

// endpoint is one backend of a service port.
type endpoint struct {
	IP   string
	Port int32
}

func (e endpoint) String() string { return e.IP + ":" + strconv.Itoa(int(e.Port)) }

// servicePort is one port of one service, resolved to what the rules need.
type servicePort struct {
	Namespace, Name string
	Protocol        string // "tcp", "udp" or "sctp"
	Port            int32
	NodePort        int32
	ClusterIPs      []string
	// ExternalIPs are spec.externalIPs and status.loadBalancer.ingress IPs: handled like
	// cluster IPs but as external traffic (externalTrafficPolicy applies).
	ExternalIPs []string
	// AffinitySeconds > 0 means sessionAffinity ClientIP with that timeout.
	AffinitySeconds int32
	ExternalLocal   bool // externalTrafficPolicy: Local
	InternalLocal   bool // internalTrafficPolicy: Local
	// All are the usable endpoints cluster-wide; Local those on this node.
	All, Local []endpoint
}

// id names the service port in chain and set names: namespace/name/protocol/port.
func (sp *servicePort) id() string {
	return sp.Namespace + "/" + sp.Name + "/" + sp.Protocol + "/" + strconv.Itoa(int(sp.Port))
}

// hasExternal reports whether the port is reachable from outside the cluster network.
func (sp *servicePort) hasExternal() bool { return sp.NodePort != 0 || len(sp.ExternalIPs) > 0 }

// epState is what the slices say about one address:port.
type epState struct {
	ready, serving, terminating bool
	local                       bool
}

// buildServicePorts resolves services and their EndpointSlices into service ports, sorted.
func buildServicePorts(services []*corev1.Service, slices []*discoveryv1.EndpointSlice, nodeName string) []*servicePort {
	byService := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" || s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		if _, ok := s.Labels[labelServiceProxyName]; ok {
			continue
		}
		key := s.Namespace + "/" + name
		byService[key] = append(byService[key], s)
	}
	var out []*servicePort
	for _, svc := range services {
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		if _, ok := svc.Labels[labelServiceProxyName]; ok {
			continue
		}
		clusterIPs := ipv4s(svc.Spec.ClusterIPs)
		if len(clusterIPs) == 0 {
			clusterIPs = ipv4s([]string{svc.Spec.ClusterIP})
		}
		external := ipv4s(svc.Spec.ExternalIPs)
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			for _, ing := range svc.Status.LoadBalancer.Ingress {
				// ipMode Proxy: the load balancer delivers to the node, the proxy must not
				// short-circuit the address.
				if ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy {
					continue
				}
				external = append(external, ipv4s([]string{ing.IP})...)
			}
		}
		external = dedupe(external)
		if len(clusterIPs) == 0 && len(external) == 0 {
			continue // headless
		}
		affinity := int32(0)
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			affinity = corev1.DefaultClientIPServiceAffinitySeconds
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
				affinity = *c.ClientIP.TimeoutSeconds
			}
		}
		svcSlices := byService[svc.Namespace+"/"+svc.Name]
		for _, p := range svc.Spec.Ports {
			proto := protocolName(p.Protocol)
			if proto == "" {
				continue
			}
			sp := &servicePort{
				Namespace: svc.Namespace, Name: svc.Name, Protocol: proto, Port: p.Port,
				ClusterIPs: clusterIPs, ExternalIPs: external, AffinitySeconds: affinity,
				ExternalLocal: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
				InternalLocal: svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
			}
			if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
				sp.NodePort = p.NodePort
			}
			sp.All, sp.Local = endpointsFor(svcSlices, p, nodeName)
			out = append(out, sp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id() < out[j].id() })
	return out
}

// endpointsFor collects the endpoints of one service port from the service's slices,
// deduplicated by address:port, and picks the usable ones: the ready ones, or, when none is
// ready, the serving-and-terminating ones (so connections drain during a rollout of the
// last pods). The same choice is made separately for this node's endpoints.
func endpointsFor(slices []*discoveryv1.EndpointSlice, p corev1.ServicePort, nodeName string) (all, local []endpoint) {
	states := map[endpoint]epState{}
	for _, s := range slices {
		var port int32
		found := false
		for _, sp := range s.Ports {
			name := ""
			if sp.Name != nil {
				name = *sp.Name
			}
			proto := corev1.ProtocolTCP
			if sp.Protocol != nil {
				proto = *sp.Protocol
			}
			if name == p.Name && protocolName(proto) == protocolName(p.Protocol) && sp.Port != nil {
				port, found = *sp.Port, true
				break
			}
		}
		if !found || port <= 0 {
			continue
		}
		for _, e := range s.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			serving := ready
			if e.Conditions.Serving != nil {
				serving = *e.Conditions.Serving
			}
			terminating := e.Conditions.Terminating != nil && *e.Conditions.Terminating
			isLocal := nodeName != "" && e.NodeName != nil && *e.NodeName == nodeName
			for _, a := range e.Addresses {
				addr, err := netip.ParseAddr(a)
				if err != nil || !addr.Is4() {
					continue
				}
				k := endpoint{IP: addr.String(), Port: port}
				st := states[k]
				st.ready = st.ready || ready
				st.serving = st.serving || serving
				st.terminating = st.terminating || terminating
				st.local = st.local || isLocal
				states[k] = st
			}
		}
	}
	pick := func(onlyLocal bool) []endpoint {
		var ready, fallback []endpoint
		for k, st := range states {
			if onlyLocal && !st.local {
				continue
			}
			if st.ready {
				ready = append(ready, k)
			} else if st.serving && st.terminating {
				fallback = append(fallback, k)
			}
		}
		if len(ready) == 0 {
			ready = fallback
		}
		sortEndpoints(ready)
		return ready
	}
	return pick(false), pick(true)
}

func sortEndpoints(eps []endpoint) {
	sort.Slice(eps, func(i, j int) bool {
		a, b := netip.MustParseAddr(eps[i].IP), netip.MustParseAddr(eps[j].IP)
		if c := a.Compare(b); c != 0 {
			return c < 0
		}
		return eps[i].Port < eps[j].Port
	})
}

func protocolName(p corev1.Protocol) string {
	switch p {
	case corev1.ProtocolTCP, "":
		return "tcp"
	case corev1.ProtocolUDP:
		return "udp"
	case corev1.ProtocolSCTP:
		return "sctp"
	}
	return ""
}

// ipv4s keeps the valid IPv4 addresses, in canonical form.
func ipv4s(in []string) []string {
	var out []string
	for _, s := range in {
		if s == "" || strings.EqualFold(s, corev1.ClusterIPNone) {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			continue
		}
		out = append(out, a.String())
	}
	return out
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
