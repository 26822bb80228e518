package ingress

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// backend is a resolved Ingress backend: a Service port and the addresses (ip:port) of its
// ready endpoints at the time the table was built. An empty addrs means 503.
type backend struct {
	ingress string // namespace/name of the Ingress that defined it (metrics label)
	service string // namespace/name of the Service ("" for resource backends)
	port    string // the backend's port as written (number or name)
	addrs   []string
	reason  string // why addrs is empty, for logs and the 503 body
	next    atomic.Uint32
}

// pick returns the next endpoint round-robin.
func (b *backend) pick() (string, bool) {
	if len(b.addrs) == 0 {
		return "", false
	}
	n := b.next.Add(1) - 1
	return b.addrs[int(n%uint32(len(b.addrs)))], true
}

// route is one path of one rule.
type route struct {
	path     string // as matched: Prefix paths without their trailing slash ("/" stays "/")
	exact    bool
	backend  *backend
	priority int // position of the Ingress in the build order: lower wins conflicts
}

// hostRoutes are the paths that apply to one host (or to every host).
type hostRoutes struct {
	exact    map[string]*route
	prefixes []*route // longest path first
}

func (h *hostRoutes) add(r *route) {
	if r.exact {
		if _, ok := h.exact[r.path]; !ok { // the oldest Ingress keeps a contested path
			h.exact[r.path] = r
		}
		return
	}
	for _, p := range h.prefixes {
		if p.path == r.path {
			return
		}
	}
	h.prefixes = append(h.prefixes, r)
}

func (h *hostRoutes) sort() {
	slices.SortStableFunc(h.prefixes, func(a, b *route) int {
		return cmp.Compare(len(b.path), len(a.path))
	})
}

// match finds the route of path p: an Exact path equal to p, otherwise the longest Prefix
// path that is an element-wise prefix of p. An Exact match is never shorter than a Prefix
// match, so Exact wins ties.
func (h *hostRoutes) match(p string) *route {
	if h == nil {
		return nil
	}
	if r, ok := h.exact[p]; ok {
		return r
	}
	for _, r := range h.prefixes {
		if prefixMatch(r.path, p) {
			return r
		}
	}
	return nil
}

// prefixMatch reports whether the (normalised, no trailing slash) Prefix path rule matches
// the request path p element by element: /foo matches /foo, /foo/ and /foo/bar, not /foobar.
func prefixMatch(rule, p string) bool {
	if rule == "/" {
		return true
	}
	if !strings.HasPrefix(p, rule) {
		return false
	}
	return len(p) == len(rule) || p[len(rule)] == '/'
}

// normalizePrefix drops the trailing slashes of a Prefix path: /foo/ and /foo are the same rule.
func normalizePrefix(p string) string {
	if p == "" {
		return "/"
	}
	if t := strings.TrimRight(p, "/"); t != "" {
		return t
	}
	return "/"
}

// table is an immutable snapshot of every served Ingress: routes by host and certificates by
// server name. The proxy reads it through an atomic.Pointer; a rebuild swaps in a new one.
type table struct {
	hosts          map[string]*hostRoutes // exact host names
	wildcards      map[string]*hostRoutes // "foo.com" for "*.foo.com"
	any            *hostRoutes            // rules without a host
	defaultBackend *backend

	certs         map[string]*tls.Certificate // exact server names
	wildcardCerts map[string]*tls.Certificate // "foo.com" for "*.foo.com"
	ingresses     int
}

func newHostRoutes() *hostRoutes { return &hostRoutes{exact: map[string]*route{}} }

// lookup finds the route of a request: rules of the exact host first, then of the wildcard
// host, then rules without host, and finally the default backend. ok is false when nothing
// matches (404).
func (t *table) lookup(host, path string) (*backend, bool) {
	host = normalizeHost(host)
	if r := t.hosts[host].match(path); r != nil {
		return r.backend, true
	}
	if _, parent, ok := strings.Cut(host, "."); ok {
		if r := t.wildcards[parent].match(path); r != nil {
			return r.backend, true
		}
	}
	if r := t.any.match(path); r != nil {
		return r.backend, true
	}
	if t.defaultBackend != nil {
		return t.defaultBackend, true
	}
	return nil, false
}

// certificate chooses the certificate of an SNI server name (nil when none).
func (t *table) certificate(serverName string) *tls.Certificate {
	name := normalizeHost(serverName)
	if c, ok := t.certs[name]; ok {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c, ok := t.wildcardCerts[parent]; ok {
			return c
		}
	}
	return nil
}

// normalizeHost lowercases a Host header or server name and drops its port and final dot.
func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// snapshot is what a table is built from (listers' contents, or test fixtures).
type snapshot struct {
	ingresses []*networkingv1.Ingress // served ones only
	services  func(namespace, name string) (*corev1.Service, error)
	slices    func(namespace, service string) ([]*discoveryv1.EndpointSlice, error)
	secrets   func(namespace, name string) (*corev1.Secret, error)
	// certErr reports a TLS secret that could not be used.
	certErr func(ing *networkingv1.Ingress, secret string, err error)
}

// buildTable builds the route table of the served Ingresses. Conflicts (same host, path and
// type in two Ingresses) go to the oldest Ingress, as with ingress-nginx.
func buildTable(s snapshot) *table {
	t := &table{hosts: map[string]*hostRoutes{}, wildcards: map[string]*hostRoutes{}, any: newHostRoutes(),
		certs: map[string]*tls.Certificate{}, wildcardCerts: map[string]*tls.Certificate{}}
	ings := slices.Clone(s.ingresses)
	slices.SortFunc(ings, func(a, b *networkingv1.Ingress) int {
		if c := a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	t.ingresses = len(ings)
	resolved := map[string]*backend{} // one backend (and round-robin counter) per Ingress+Service+port
	resolve := func(ing *networkingv1.Ingress, b *networkingv1.IngressBackend) *backend {
		key := ing.Namespace + "/" + ing.Name + "|" + backendKey(b)
		if be, ok := resolved[key]; ok {
			return be
		}
		be := resolveBackend(s, ing, b)
		resolved[key] = be
		return be
	}
	for i, ing := range ings {
		if ing.Spec.DefaultBackend != nil && t.defaultBackend == nil {
			t.defaultBackend = resolve(ing, ing.Spec.DefaultBackend)
		}
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			var hr *hostRoutes
			host := normalizeHost(rule.Host)
			switch {
			case host == "":
				hr = t.any
			case strings.HasPrefix(host, "*."):
				if hr = t.wildcards[host[2:]]; hr == nil {
					hr = newHostRoutes()
					t.wildcards[host[2:]] = hr
				}
			default:
				if hr = t.hosts[host]; hr == nil {
					hr = newHostRoutes()
					t.hosts[host] = hr
				}
			}
			for _, p := range rule.HTTP.Paths {
				r := &route{backend: resolve(ing, &p.Backend), priority: i}
				if p.PathType != nil && *p.PathType == networkingv1.PathTypeExact {
					r.exact, r.path = true, p.Path
				} else { // Prefix; ImplementationSpecific is treated as Prefix
					r.path = normalizePrefix(p.Path)
				}
				hr.add(r)
			}
		}
		for _, tl := range ing.Spec.TLS {
			if tl.SecretName == "" || s.secrets == nil {
				continue
			}
			cert, err := loadCertificate(s.secrets, ing.Namespace, tl.SecretName)
			if err != nil {
				if s.certErr != nil {
					s.certErr(ing, tl.SecretName, err)
				}
				continue
			}
			hosts := tl.Hosts
			if len(hosts) == 0 { // no hosts: the certificate serves the names it was issued for
				hosts = certNames(cert)
			}
			for _, h := range hosts {
				h = normalizeHost(h)
				m, k := t.certs, h
				if strings.HasPrefix(h, "*.") {
					m, k = t.wildcardCerts, h[2:]
				}
				if _, ok := m[k]; !ok {
					m[k] = cert
				}
			}
		}
	}
	for _, hr := range t.hosts {
		hr.sort()
	}
	for _, hr := range t.wildcards {
		hr.sort()
	}
	t.any.sort()
	return t
}

func backendKey(b *networkingv1.IngressBackend) string {
	if b.Service == nil {
		if b.Resource != nil {
			return "resource:" + b.Resource.Kind + "/" + b.Resource.Name
		}
		return "none"
	}
	return b.Service.Name + ":" + portString(b.Service.Port)
}

func portString(p networkingv1.ServiceBackendPort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Number))
}

// resolveBackend finds the ready endpoints of an Ingress backend. The Service port (by number
// or name) gives the port name; the EndpointSlices' port of that name gives the target port.
func resolveBackend(s snapshot, ing *networkingv1.Ingress, b *networkingv1.IngressBackend) *backend {
	be := &backend{ingress: ing.Namespace + "/" + ing.Name}
	if b.Service == nil {
		be.reason = "resource backends are not supported"
		return be
	}
	be.service = ing.Namespace + "/" + b.Service.Name
	be.port = portString(b.Service.Port)
	svc, err := s.services(ing.Namespace, b.Service.Name)
	if err != nil || svc == nil {
		be.reason = fmt.Sprintf("service %s not found", be.service)
		return be
	}
	portName, found := "", false
	for _, sp := range svc.Spec.Ports {
		if (b.Service.Port.Name != "" && sp.Name == b.Service.Port.Name) ||
			(b.Service.Port.Name == "" && sp.Port == b.Service.Port.Number) {
			portName, found = sp.Name, true
			break
		}
	}
	if !found {
		be.reason = fmt.Sprintf("service %s has no port %s", be.service, be.port)
		return be
	}
	sl, err := s.slices(ing.Namespace, b.Service.Name)
	if err != nil {
		be.reason = err.Error()
		return be
	}
	be.addrs = readyAddresses(sl, portName)
	if len(be.addrs) == 0 {
		be.reason = fmt.Sprintf("service %s has no ready endpoints", be.service)
	}
	return be
}

// readyAddresses lists ip:port of the ready endpoints of slices for the named port, sorted and
// without duplicates (a pod may appear in two slices while they are rewritten).
func readyAddresses(sl []*discoveryv1.EndpointSlice, portName string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range sl {
		if s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		var port int32 = -1
		for _, p := range s.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == portName && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready { // nil means ready
				continue
			}
			for _, a := range ep.Addresses {
				hp := net.JoinHostPort(a, strconv.Itoa(int(port)))
				if !seen[hp] {
					seen[hp] = true
					out = append(out, hp)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
