package ingress

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// path builds an HTTPIngressPath to service svc port 80.
func path(p string, typ networkingv1.PathType, svc string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: &typ, Backend: svcBackend(svc, 80)}
}

func svcBackend(svc string, port int32) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc,
		Port: networkingv1.ServiceBackendPort{Number: port}}}
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
		HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

func ing(name string, age time.Duration, rules ...networkingv1.IngressRule) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default",
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(-age))},
		Spec: networkingv1.IngressSpec{Rules: rules},
	}
}

// everyServiceSnapshot resolves every service "x" with port 80 to one endpoint "x:80", so
// that a route's backend names its service.
func everyServiceSnapshot(ings ...*networkingv1.Ingress) snapshot {
	return snapshot{
		ingresses: ings,
		services: func(ns, name string) (*corev1.Service, error) {
			return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, nil
		},
		slices: func(ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
			return []*discoveryv1.EndpointSlice{{
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{svc}}},
				Ports:       []discoveryv1.EndpointPort{{Name: new(""), Port: new(int32(80))}},
			}}, nil
		},
	}
}

const (
	exact  = networkingv1.PathTypeExact
	prefix = networkingv1.PathTypePrefix
	impl   = networkingv1.PathTypeImplementationSpecific
)

func TestRouteMatching(t *testing.T) {
	web := ing("web", time.Hour,
		rule("foo.com",
			path("/", prefix, "root"),
			path("/foo", prefix, "foo-prefix"),
			path("/foo", exact, "foo-exact"),
			path("/foo/bar/", prefix, "foobar"),
			path("/aaa/bbb", exact, "ab-exact"),
			path("/impl", impl, "impl"),
			path("/foo/bar/baz", exact, "foobarbaz-exact"),
		),
		rule("*.wild.com", path("/", prefix, "wild")),
		rule("exact.wild.com", path("/api", prefix, "exact-wild-api")),
		rule("", path("/any", prefix, "any")),
		rule("Upper.COM", path("/", prefix, "upper")),
	)
	younger := ing("younger", time.Minute, rule("foo.com", path("/foo", prefix, "stolen")))
	dflt := ing("dflt", 2*time.Hour)
	dflt.Spec.DefaultBackend = new(svcBackend("default-svc", 80))
	cases := []struct {
		name, host, path, want string // want "" means 404
	}{
		{"root prefix matches anything", "foo.com", "/other", "root"},
		{"exact beats prefix of equal length", "foo.com", "/foo", "foo-exact"},
		{"prefix with trailing slash", "foo.com", "/foo/", "foo-prefix"},
		{"prefix element-wise", "foo.com", "/foo/x", "foo-prefix"},
		{"prefix is not a string prefix", "foo.com", "/foobar", "root"},
		{"longest prefix wins", "foo.com", "/foo/bar/x", "foobar"},
		{"trailing slash of rule ignored", "foo.com", "/foo/bar", "foobar"},
		{"exact longer than prefix", "foo.com", "/foo/bar/baz", "foobarbaz-exact"},
		{"exact does not match trailing slash", "foo.com", "/foo/bar/baz/", "foobar"},
		{"exact does not match sub path", "foo.com", "/aaa/bbb/c", "root"},
		{"exact path", "foo.com", "/aaa/bbb", "ab-exact"},
		{"case sensitive path", "foo.com", "/FOO", "root"},
		{"implementation specific is prefix", "foo.com", "/impl/x", "impl"},
		{"implementation specific is element-wise", "foo.com", "/implx", "root"},
		{"host with port", "foo.com:8080", "/foo", "foo-exact"},
		{"host case insensitive", "FOO.com", "/foo", "foo-exact"},
		{"rule host lowercased", "upper.com", "/", "upper"},
		{"wildcard one label", "a.wild.com", "/x", "wild"},
		{"wildcard not two labels", "a.b.wild.com", "/any/1", "any"},
		{"wildcard not the apex", "wild.com", "/x", "default-svc"},
		{"exact host before wildcard", "exact.wild.com", "/api/v1", "exact-wild-api"},
		{"exact host falls back to wildcard", "exact.wild.com", "/web", "wild"},
		{"rules without host for every host", "unknown.org", "/any", "any"},
		{"default backend", "unknown.org", "/nothing", "default-svc"},
		{"oldest ingress keeps a contested path", "foo.com", "/foo/y", "foo-prefix"},
	}
	tbl := buildTable(everyServiceSnapshot(younger, web, dflt))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be, ok := tbl.lookup(tc.host, tc.path)
			got := ""
			if ok {
				got = be.addrs[0]
				got = got[:len(got)-len(":80")]
			}
			if got != tc.want {
				t.Errorf("%s%s: got %q, want %q", tc.host, tc.path, got, tc.want)
			}
		})
	}

	noDefault := buildTable(everyServiceSnapshot(ing("only", 0, rule("foo.com", path("/foo", exact, "f")))))
	for _, tc := range []struct{ host, path string }{{"foo.com", "/foo/"}, {"foo.com", "/"}, {"bar.com", "/foo"}} {
		if be, ok := noDefault.lookup(tc.host, tc.path); ok {
			t.Errorf("%s%s: want 404, got %v", tc.host, tc.path, be.addrs)
		}
	}
}

func TestPrefixMatch(t *testing.T) {
	for _, tc := range []struct {
		rule, path string
		want       bool
	}{
		{"/", "/", true}, {"/", "/x", true}, {"/foo", "/foo", true}, {"/foo", "/foo/", true},
		{"/foo", "/foo/bar", true}, {"/foo", "/foobar", false}, {"/foo/bar", "/foo", false},
		{"/foo/bar", "/foo/bar/baz", true}, {"/foo/bar", "/foo/barbaz", false}, {"/foo", "/fo", false},
	} {
		if got := prefixMatch(tc.rule, tc.path); got != tc.want {
			t.Errorf("prefixMatch(%q, %q) = %v, want %v", tc.rule, tc.path, got, tc.want)
		}
	}
	for in, want := range map[string]string{"": "/", "/": "/", "//": "/", "/foo/": "/foo", "/foo": "/foo", "/a/b//": "/a/b"} {
		if got := normalizePrefix(in); got != want {
			t.Errorf("normalizePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackendSelection(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "http", Port: 80}, {Name: "admin", Port: 9000},
		}}}
	single := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "single", Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	ready, notReady := true, false
	slice := func(addrType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{AddressType: addrType, Ports: ports, Endpoints: eps}
	}
	ep := func(r *bool, addrs ...string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: r}}
	}
	webSlices := []*discoveryv1.EndpointSlice{
		slice(discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}, {Name: new("admin"), Port: new(int32(9090))}},
			ep(&ready, "10.0.0.2"), ep(nil, "10.0.0.1"), ep(&notReady, "10.0.0.3")),
		slice(discoveryv1.AddressTypeIPv4, // a rewritten slice repeating a pod, with another port number
			[]discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8081))}},
			ep(&ready, "10.0.0.4"), ep(&ready, "10.0.0.1")),
		slice(discoveryv1.AddressTypeIPv6,
			[]discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
			ep(&ready, "fd00::1")),
		slice(discoveryv1.AddressTypeFQDN,
			[]discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
			ep(&ready, "example.com")),
	}
	s := snapshot{
		services: func(ns, name string) (*corev1.Service, error) {
			switch name {
			case "web":
				return svc, nil
			case "single":
				return single, nil
			case "empty":
				return &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, nil
			}
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "services"}, name)
		},
		slices: func(ns, name string) ([]*discoveryv1.EndpointSlice, error) {
			switch name {
			case "web":
				return webSlices, nil
			case "single":
				return []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4,
					[]discoveryv1.EndpointPort{{Port: new(int32(3000))}}, ep(nil, "10.1.0.1"))}, nil
			}
			return nil, nil
		},
	}
	web := ing("web", 0)
	cases := []struct {
		name    string
		backend networkingv1.IngressBackend
		want    []string
	}{
		{"port by number", svcBackend("web", 80), []string{"10.0.0.1:8080", "10.0.0.1:8081", "10.0.0.2:8080", "10.0.0.4:8081", "[fd00::1]:8080"}},
		{"port by name", networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web",
			Port: networkingv1.ServiceBackendPort{Name: "admin"}}}, []string{"10.0.0.1:9090", "10.0.0.2:9090"}},
		{"second port by number", svcBackend("web", 9000), []string{"10.0.0.1:9090", "10.0.0.2:9090"}},
		{"unnamed single port", svcBackend("single", 80), []string{"10.1.0.1:3000"}},
		{"port not on service", svcBackend("web", 81), nil},
		{"service missing", svcBackend("nope", 80), nil},
		{"no endpoints", svcBackend("empty", 80), nil},
		{"resource backend", networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{Kind: "Bucket", Name: "b"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be := resolveBackend(s, web, &tc.backend)
			if !slices.Equal(be.addrs, tc.want) {
				t.Fatalf("addrs = %v, want %v", be.addrs, tc.want)
			}
			if len(tc.want) == 0 && be.reason == "" {
				t.Error("no reason given for an empty backend")
			}
		})
	}

	be := resolveBackend(s, web, new(svcBackend("web", 80)))
	seen := map[string]int{}
	for range 10 * len(be.addrs) {
		a, _ := be.pick()
		seen[a]++
	}
	for _, a := range be.addrs {
		if seen[a] != 10 {
			t.Errorf("round robin: %s picked %d times, want 10 (%v)", a, seen[a], seen)
		}
	}
}

func TestDesiredStatus(t *testing.T) {
	lb := func(ips ...string) []networkingv1.IngressLoadBalancerIngress {
		var out []networkingv1.IngressLoadBalancerIngress
		for _, ip := range ips {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: ip})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		cur     []networkingv1.IngressLoadBalancerIngress
		served  bool
		want    []networkingv1.IngressLoadBalancerIngress
		changed bool
	}{
		{"add to empty", nil, true, lb("10.0.0.5"), true},
		{"keep", lb("10.0.0.5"), true, lb("10.0.0.5"), false},
		{"add beside another node", lb("10.0.0.9"), true, lb("10.0.0.5", "10.0.0.9"), true},
		{"remove", lb("10.0.0.5", "10.0.0.9"), false, lb("10.0.0.9"), true},
		{"not ours, nothing to do", lb("10.0.0.9"), false, lb("10.0.0.9"), false},
	} {
		got, changed := desiredStatus(tc.cur, "10.0.0.5", tc.served)
		if changed != tc.changed || !equality.Semantic.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, got, changed, tc.want, tc.changed)
		}
	}
}
