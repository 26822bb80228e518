package proxy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// The table's layout (family ip, one table, default name skiff-proxy):
//
//	base chains                       static chains / maps
//	nat-prerouting  (nat, -100)  ─┐
//	nat-output      (nat, -100)  ─┴─▶ services: ip daddr.proto.port vmap @service-ips
//	                                            daddr ∈ @node-ips or local (not 127/8): proto.port vmap @service-nodeports
//	nat-postrouting (nat, 100)   ───▶ masquerading: marked packets are masqueraded
//	filter-input    (filter, -110) ┐
//	filter-forward  (filter, -110) ├▶ ct state new: no-endpoints: daddr.proto.port vmap @no-endpoint-services,
//	filter-output   (filter, -90)  ┘      local daddr proto.port vmap @no-endpoint-nodeports,
//	                                      daddr ∈ @cluster-ips (an unknown port) → reject
//
// Per service port (id = namespace/name/protocol/port):
//
//	svc/<id>    all usable endpoints: mark non-pod sources for masquerade, session affinity
//	            lookups, then numgen random mod N vmap → ep chains
//	local/<id>  the same over this node's endpoints, without the masquerade mark (traffic
//	            policy Local keeps the client address)
//	ext/<id>    entry for NodePort, external and load-balancer IPs: externalTrafficPolicy
//	ep/<id>/<ip>/<port>   hairpin mark, affinity update, DNAT
//	aff-<seconds>/<id>/<ip>/<port>   set of client addresses (timeout) stuck to that endpoint
//
// The output filter chain runs after the NAT output chain (priority -90 > -100), so a
// connection to a service that has endpoints is already DNATed when it is checked; input and
// forward run after prerouting's DNAT anyway.

const (
	chainNATPrerouting  = "nat-prerouting"
	chainNATOutput      = "nat-output"
	chainNATPostrouting = "nat-postrouting"
	chainFilterInput    = "filter-input"
	chainFilterForward  = "filter-forward"
	chainFilterOutput   = "filter-output"
	chainServices       = "services"
	chainMasquerading   = "masquerading"
	chainMarkMasq       = "mark-for-masquerade"
	chainRejectChecks   = "endpoint-checks"
	chainReject         = "reject-service"

	mapServiceIPs         = "service-ips"
	mapServiceNodePorts   = "service-nodeports"
	mapNoEndpointServices = "no-endpoint-services"
	mapNoEndpointNodePort = "no-endpoint-nodeports"
	setClusterIPs         = "cluster-ips"
	setNodeIPs            = "node-ips"
)

// element is one set or map element.
type element struct {
	Key, Value []string
}

// ruleset is what the table should contain besides the static objects: the per-service
// chains with their rules, the elements of the static maps and sets, and the affinity sets.
type ruleset struct {
	chains map[string][]string
	// elements: map or set name → key ("a . b . c") → element.
	elements map[string]map[string]element
	// affinity sets: name → timeout.
	affinity map[string]time.Duration
	// udp: UDP service port id → the endpoints it balances over (for conntrack cleanup).
	udp map[string][]endpoint
	// services is the number of services (namespace/name) with at least one port programmed.
	services int
}

func newRuleset() *ruleset {
	rs := &ruleset{chains: map[string][]string{}, elements: map[string]map[string]element{}, affinity: map[string]time.Duration{},
		udp: map[string][]endpoint{}}
	for _, n := range []string{mapServiceIPs, mapServiceNodePorts, mapNoEndpointServices, mapNoEndpointNodePort, setClusterIPs, setNodeIPs} {
		rs.elements[n] = map[string]element{}
	}
	return rs
}

func (rs *ruleset) addElement(set string, key []string, value ...string) {
	rs.elements[set][strings.Join(key, " . ")] = element{Key: key, Value: value}
}

// staticObjects are the table's fixed chains, maps and sets, with the rules of the fixed
// chains. They are (re)written on full syncs only.
func (p *Proxier) staticObjects() ([]knftables.Object, map[string][]string) {
	base := func(name string, t knftables.BaseChainType, h knftables.BaseChainHook, prio string) *knftables.Chain {
		return &knftables.Chain{Name: name, Type: knftables.PtrTo(t), Hook: knftables.PtrTo(h),
			Priority: knftables.PtrTo(knftables.BaseChainPriority(prio))}
	}
	objs := []knftables.Object{
		&knftables.Map{Name: mapServiceIPs, Type: "ipv4_addr . inet_proto . inet_service : verdict",
			Comment: knftables.PtrTo("cluster, external and load-balancer IPs")},
		&knftables.Map{Name: mapServiceNodePorts, Type: "inet_proto . inet_service : verdict",
			Comment: knftables.PtrTo("node ports")},
		&knftables.Map{Name: mapNoEndpointServices, Type: "ipv4_addr . inet_proto . inet_service : verdict",
			Comment: knftables.PtrTo("service IPs without usable endpoints")},
		&knftables.Map{Name: mapNoEndpointNodePort, Type: "inet_proto . inet_service : verdict",
			Comment: knftables.PtrTo("node ports without usable endpoints")},
		&knftables.Set{Name: setClusterIPs, Type: "ipv4_addr", Comment: knftables.PtrTo("every cluster IP")},
		&knftables.Set{Name: setNodeIPs, Type: "ipv4_addr", Comment: knftables.PtrTo("the node's addresses")},
		&knftables.Chain{Name: chainServices},
		&knftables.Chain{Name: chainMasquerading},
		&knftables.Chain{Name: chainMarkMasq},
		&knftables.Chain{Name: chainRejectChecks},
		&knftables.Chain{Name: chainReject},
		base(chainNATPrerouting, knftables.NATType, knftables.PreroutingHook, "-100"),
		base(chainNATOutput, knftables.NATType, knftables.OutputHook, "-100"),
		base(chainNATPostrouting, knftables.NATType, knftables.PostroutingHook, "100"),
		base(chainFilterInput, knftables.FilterType, knftables.InputHook, "-110"),
		base(chainFilterForward, knftables.FilterType, knftables.ForwardHook, "-110"),
		base(chainFilterOutput, knftables.FilterType, knftables.OutputHook, "-90"),
	}
	mark := fmt.Sprintf("%#x", p.cfg.MasqueradeMark)
	notLoopback := "ip daddr != 127.0.0.0/8"
	rules := map[string][]string{
		chainNATPrerouting:  {"jump " + chainServices},
		chainNATOutput:      {"jump " + chainServices},
		chainNATPostrouting: {"jump " + chainMasquerading},
		chainFilterInput:    {"ct state new jump " + chainRejectChecks},
		chainFilterForward:  {"ct state new jump " + chainRejectChecks},
		chainFilterOutput:   {"ct state new jump " + chainRejectChecks},
		chainServices: {
			knftables.Concat("ip daddr . meta l4proto . th dport vmap", "@", mapServiceIPs),
			knftables.Concat("ip daddr", "@", setNodeIPs, "meta l4proto . th dport vmap", "@", mapServiceNodePorts),
			knftables.Concat("fib daddr type local", notLoopback, "meta l4proto . th dport vmap", "@", mapServiceNodePorts),
		},
		chainMarkMasq: {"meta mark set meta mark | " + mark},
		chainMasquerading: {
			"meta mark & " + mark + " == 0 return",
			fmt.Sprintf("meta mark set meta mark ^ %s", mark),
			"masquerade fully-random",
		},
		chainRejectChecks: {
			knftables.Concat("ip daddr . meta l4proto . th dport vmap", "@", mapNoEndpointServices),
			knftables.Concat("ip daddr", "@", setNodeIPs, "meta l4proto . th dport vmap", "@", mapNoEndpointNodePort),
			knftables.Concat("fib daddr type local", notLoopback, "meta l4proto . th dport vmap", "@", mapNoEndpointNodePort),
			knftables.Concat("ip daddr", "@", setClusterIPs, "goto", chainReject),
		},
		chainReject: {
			"meta l4proto tcp reject with tcp reset",
			"reject",
		},
	}
	return objs, rules
}

// buildRuleset computes the per-service part of the table.
func (p *Proxier) buildRuleset(ports []*servicePort, nodeIPs []string) *ruleset {
	rs := newRuleset()
	for _, ip := range nodeIPs {
		rs.addElement(setNodeIPs, []string{ip})
	}
	programmed := map[string]bool{}
	for _, sp := range ports {
		programmed[sp.Namespace+"/"+sp.Name] = true
		p.addServicePort(rs, sp)
	}
	rs.services = len(programmed)
	return rs
}

func (p *Proxier) addServicePort(rs *ruleset, sp *servicePort) {
	id := sp.id()
	svcChain, localChain, extChain := "svc/"+id, "local/"+id, "ext/"+id
	port := strconv.Itoa(int(sp.Port))
	rejectVerdict := "goto " + chainReject

	// Endpoint chains and the balancing chains over them.
	epChain := func(e endpoint) string { return "ep/" + id + "/" + e.IP + "/" + strconv.Itoa(int(e.Port)) }
	affSet := func(e endpoint) string {
		return "aff-" + strconv.Itoa(int(sp.AffinitySeconds)) + "/" + id + "/" + e.IP + "/" + strconv.Itoa(int(e.Port))
	}
	addEndpoint := func(e endpoint) {
		name := epChain(e)
		if _, done := rs.chains[name]; done {
			return
		}
		rules := []string{knftables.Concat("ip saddr", e.IP, "jump", chainMarkMasq)} // hairpin
		if sp.AffinitySeconds > 0 {
			set := affSet(e)
			rs.affinity[set] = time.Duration(sp.AffinitySeconds) * time.Second
			rules = append(rules, knftables.Concat("update", "@", set, "{ ip saddr }"))
		}
		rules = append(rules, knftables.Concat("meta l4proto", sp.Protocol, "dnat to", e.String()))
		rs.chains[name] = rules
	}
	balance := func(name string, eps []endpoint, masq bool) {
		var rules []string
		if masq && p.clusterCIDR != "" {
			rules = append(rules, knftables.Concat("ip saddr !=", p.clusterCIDR, "jump", chainMarkMasq))
		}
		if sp.AffinitySeconds > 0 {
			for _, e := range eps {
				rules = append(rules, knftables.Concat("ip saddr", "@", affSet(e), "goto", epChain(e)))
			}
		}
		vm := make([]string, len(eps))
		for i, e := range eps {
			addEndpoint(e)
			vm[i] = strconv.Itoa(i) + " : goto " + epChain(e)
		}
		// " , " rather than ", ": knftables' fake resolves "goto <chain>" by whitespace.
		rules = append(rules, knftables.Concat("numgen random mod", len(eps), "vmap {", strings.Join(vm, " , "), "}"))
		rs.chains[name] = rules
	}
	if sp.Protocol == "udp" {
		rs.udp[id] = append(append([]endpoint(nil), sp.All...), sp.Local...)
	}
	if len(sp.All) > 0 {
		balance(svcChain, sp.All, true)
	}
	if len(sp.Local) > 0 && (sp.InternalLocal || (sp.ExternalLocal && sp.hasExternal())) {
		balance(localChain, sp.Local, false)
	}

	// Cluster IPs.
	for _, ip := range sp.ClusterIPs {
		rs.addElement(setClusterIPs, []string{ip})
		key := []string{ip, sp.Protocol, port}
		switch {
		case sp.InternalLocal && len(sp.Local) > 0:
			rs.addElement(mapServiceIPs, key, "goto "+localChain)
		case sp.InternalLocal && len(sp.All) > 0:
			rs.addElement(mapNoEndpointServices, key, "drop") // no local endpoint: drop, as kube-proxy
		case !sp.InternalLocal && len(sp.All) > 0:
			rs.addElement(mapServiceIPs, key, "goto "+svcChain)
		default:
			rs.addElement(mapNoEndpointServices, key, rejectVerdict)
		}
	}

	// External entry points.
	if !sp.hasExternal() {
		return
	}
	extVerdict := ""
	switch {
	case len(sp.All) == 0:
		extVerdict = rejectVerdict
	case !sp.ExternalLocal:
		rs.chains[extChain] = []string{"jump " + chainMarkMasq, "goto " + svcChain}
	default:
		var rules []string
		if p.clusterCIDR != "" {
			// Pods reaching an external address of the service take the cluster path.
			rules = append(rules, knftables.Concat("ip saddr", p.clusterCIDR, "goto", svcChain))
		}
		// So does the node itself (masqueraded: its source address may not route back).
		rules = append(rules, "fib saddr type local jump "+chainMarkMasq, "fib saddr type local goto "+svcChain)
		if len(sp.Local) > 0 {
			rules = append(rules, "goto "+localChain)
		} else {
			rules = append(rules, "drop") // no local endpoint for external traffic
		}
		rs.chains[extChain] = rules
	}
	for _, ip := range sp.ExternalIPs {
		key := []string{ip, sp.Protocol, port}
		if extVerdict != "" {
			rs.addElement(mapNoEndpointServices, key, extVerdict)
		} else {
			rs.addElement(mapServiceIPs, key, "goto "+extChain)
		}
	}
	if sp.NodePort != 0 {
		key := []string{sp.Protocol, strconv.Itoa(int(sp.NodePort))}
		if extVerdict != "" {
			rs.addElement(mapNoEndpointNodePort, key, extVerdict)
		} else {
			rs.addElement(mapServiceNodePorts, key, "goto "+extChain)
		}
	}
}

// sortedKeys returns a map's keys in order, so transactions are deterministic.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
