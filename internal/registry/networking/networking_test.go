package networking

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func resource(t *testing.T, name string) *registry.Resource {
	t.Helper()
	for _, r := range Resources() {
		if r.Resource == name {
			return r
		}
	}
	t.Fatalf("no resource %q", name)
	return nil
}

func errStrings(errs field.ErrorList) []string {
	out := []string{}
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func ingress(path string, pathType *networkingv1.PathType) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: path, PathType: pathType,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
}

func TestValidateIngress(t *testing.T) {
	prefix := new(networkingv1.PathTypePrefix)
	tests := []struct {
		name string
		obj  *networkingv1.Ingress
		want []string
	}{
		{"valid", ingress("/api", prefix), []string{}},
		{"path without slash", ingress("api", prefix),
			[]string{`spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path`}},
		{"exact path without slash", ingress("", new(networkingv1.PathTypeExact)),
			[]string{`spec.rules[0].http.paths[0].path: Invalid value: "": must be an absolute path`}},
		{"implementation specific may omit the path", ingress("", new(networkingv1.PathTypeImplementationSpecific)), []string{}},
		{"pathType required", ingress("/", nil),
			[]string{"spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"}},
		{"bad pathType", ingress("/", new(networkingv1.PathType("Regex"))),
			[]string{`spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"`}},
		{"path traversal", ingress("/a/../b", prefix),
			[]string{`spec.rules[0].http.paths[0].path: Invalid value: "/a/../b": must not contain '/../'`}},
		{"host is an IP", func() *networkingv1.Ingress { i := ingress("/", prefix); i.Spec.Rules[0].Host = "10.0.0.1"; return i }(),
			[]string{`spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address`}},
		{"wildcard host", func() *networkingv1.Ingress {
			i := ingress("/", prefix)
			i.Spec.Rules[0].Host = "*.example.com"
			return i
		}(), []string{}},
		{"no port", func() *networkingv1.Ingress {
			i := ingress("/", prefix)
			i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Number = 0
			return i
		}(), []string{"spec.rules[0].http.paths[0].backend: Required value: port name or number is required"}},
		{"no backend service name", func() *networkingv1.Ingress {
			i := ingress("/", prefix)
			i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = ""
			return i
		}(), []string{"spec.rules[0].http.paths[0].backend.service.name: Required value"}},
		{"no rules nor default backend", &networkingv1.Ingress{},
			[]string{"spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"}},
		{"class annotation conflict", func() *networkingv1.Ingress {
			i := ingress("/", prefix)
			i.Annotations = map[string]string{"kubernetes.io/ingress.class": "nginx"}
			i.Spec.IngressClassName = new("traefik")
			return i
		}(), []string{`annotations.kubernetes.io/ingress.class: Invalid value: "nginx": must match ` + "`ingressClassName`" + ` when both are specified`}},
	}
	r := resource(t, "ingresses")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errStrings(r.Validate(tt.obj)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestNetworkPolicy(t *testing.T) {
	r := resource(t, "networkpolicies")
	np := &networkingv1.NetworkPolicy{Spec: networkingv1.NetworkPolicySpec{
		Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: new(intstr.FromInt32(53))}}}},
	}}
	r.Default(np)
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) || *np.Spec.Egress[0].Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("defaults %+v", np.Spec)
	}
	ingressOnly := &networkingv1.NetworkPolicy{}
	r.Default(ingressOnly)
	if !reflect.DeepEqual(ingressOnly.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress"}) {
		t.Errorf("defaults %+v", ingressOnly.Spec)
	}
	bad := np.DeepCopy()
	bad.Spec.Egress[0].To = []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"192.168.0.0/16"}}},
		{},
	}
	bad.Spec.Egress[0].Ports[0].EndPort = new(int32(10))
	want := []string{
		"spec.egress[0].ports[0].endPort: Invalid value: 53: must be greater than or equal to `port`",
		`spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of ` + "`cidr`",
		"spec.egress[0].to[1]: Required value: must specify a peer",
	}
	if got := errStrings(r.Validate(bad)); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%q\nwant:\n%q", got, want)
	}
}

func TestIngressClass(t *testing.T) {
	r := resource(t, "ingressclasses")
	c := &networkingv1.IngressClass{Spec: networkingv1.IngressClassSpec{
		Controller: "example.com/ingress-controller",
		Parameters: &networkingv1.IngressClassParametersReference{APIGroup: new("k8s.example.com"), Kind: "IngressParameters", Name: "external-lb"},
	}}
	r.Default(c)
	if *c.Spec.Parameters.Scope != "Cluster" {
		t.Errorf("scope %v", *c.Spec.Parameters.Scope)
	}
	if errs := r.Validate(c); len(errs) != 0 {
		t.Errorf("errors %v", errs)
	}
	bad := c.DeepCopy()
	bad.Spec.Controller = "nginx"
	if got := errStrings(r.Validate(bad)); !reflect.DeepEqual(got, []string{`spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")`}) {
		t.Errorf("errors %q", got)
	}
	if got := errStrings(r.ValidateUpdate(bad, c)); len(got) != 1 {
		t.Errorf("update errors %q", got)
	}
}

func TestRows(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	created := metav1.NewTime(now.Add(-4 * 24 * time.Hour))
	ing := ingress("/", new(networkingv1.PathTypePrefix))
	ing.CreationTimestamp = created
	ing.Spec.IngressClassName = new("nginx")
	ing.Spec.Rules = append(ing.Spec.Rules, networkingv1.IngressRule{Host: "b.example.com"}, networkingv1.IngressRule{}, networkingv1.IngressRule{Host: "c.example.com"}, networkingv1.IngressRule{Host: "d.example.com"})
	ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"example.com"}}}
	ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "192.168.49.2"}, {Hostname: "lb.example.com"}, {IP: "192.168.49.2"}}
	plain := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "catch-all", CreationTimestamp: created},
		Spec: networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{}}}
	class := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx", CreationTimestamp: created},
		Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx",
			Parameters: &networkingv1.IngressClassParametersReference{APIGroup: new("k8s.example.com"), Kind: "IngressParameters", Name: "lb"}}}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny", CreationTimestamp: created},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}
	tests := []struct {
		name     string
		resource string
		obj      runtime.Object
		want     []interface{}
	}{
		{"ingress", "ingresses", ing, []interface{}{"web", "nginx", "example.com,b.example.com,c.example.com + 2 more...", "192.168.49.2,lb.example.com", "80, 443", "4d"}},
		{"plain ingress", "ingresses", plain, []interface{}{"catch-all", "<none>", "*", "", "80", "4d"}},
		{"ingressclass", "ingressclasses", class, []interface{}{"nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/lb", "4d"}},
		{"networkpolicy", "networkpolicies", np, []interface{}{"deny", "app=db", "4d"}},
		{"empty networkpolicy", "networkpolicies", &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "all", CreationTimestamp: created}},
			[]interface{}{"all", "<none>", "4d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resource(t, tt.resource)
			got := r.Row(tt.obj, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("row %#v\nwant %#v", got, tt.want)
			}
			if len(got) != len(r.Columns) {
				t.Errorf("%d cells for %d columns", len(got), len(r.Columns))
			}
		})
	}
}
