package core

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func minimalService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
}

// createService runs what the create path does before validation.
func createService(svc *corev1.Service) *corev1.Service {
	r := services()
	r.PrepareForCreate(svc)
	r.Default(svc)
	return svc
}

func TestDefaultService(t *testing.T) {
	svc := createService(minimalService())
	s := svc.Spec
	if s.Type != corev1.ServiceTypeClusterIP || s.SessionAffinity != corev1.ServiceAffinityNone {
		t.Errorf("type/affinity = %s/%s", s.Type, s.SessionAffinity)
	}
	if s.Ports[0].Protocol != corev1.ProtocolTCP || s.Ports[0].TargetPort != intstr.FromInt32(80) {
		t.Errorf("port = %+v", s.Ports[0])
	}
	if s.InternalTrafficPolicy == nil || *s.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster {
		t.Errorf("internalTrafficPolicy = %v", s.InternalTrafficPolicy)
	}
	if s.ExternalTrafficPolicy != "" {
		t.Errorf("externalTrafficPolicy set on a ClusterIP service")
	}
	if s.IPFamilyPolicy == nil || *s.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack ||
		len(s.IPFamilies) != 1 || s.IPFamilies[0] != corev1.IPv4Protocol {
		t.Errorf("ip families = %v %v", s.IPFamilyPolicy, s.IPFamilies)
	}
	expectErrors(t, validateService(svc, nil))

	np := minimalService()
	np.Spec.Type = corev1.ServiceTypeLoadBalancer
	np.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	createService(np)
	if np.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster ||
		np.Spec.AllocateLoadBalancerNodePorts == nil || !*np.Spec.AllocateLoadBalancerNodePorts ||
		*np.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds != 10800 {
		t.Errorf("load balancer defaults: %+v", np.Spec)
	}

	headless := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "h"}, Spec: corev1.ServiceSpec{ClusterIP: "None"}}
	createService(headless)
	if len(headless.Spec.ClusterIPs) != 1 || *headless.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack ||
		len(headless.Spec.IPFamilies) != 1 {
		t.Errorf("headless = %+v", headless.Spec)
	}
	expectErrors(t, validateService(headless, nil))
}

func TestValidateService(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*corev1.Service)
		want []string
	}{
		{"no ports", func(s *corev1.Service) { s.Spec.Ports = nil }, []string{"spec.ports: Required value"}},
		{"unnamed ports", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Port: 80}, {Port: 443}}
		}, []string{"spec.ports[0].name: Required value", "spec.ports[1].name: Required value"}},
		{"duplicate port names", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80}, {Name: "a", Port: 443}}
		}, []string{`spec.ports[1].name: Duplicate value: "a"`}},
		{"bad port", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 },
			[]string{"spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"}},
		{"bad type", func(s *corev1.Service) { s.Spec.Type = "Magic" },
			[]string{`spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`}},
		{"node port on ClusterIP", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 },
			[]string{"spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"}},
		{"external name", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.Ports = nil
		}, []string{"spec.externalName: Required value"}},
		{"bad selector", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "no spaces"} },
			[]string{`spec.selector: Invalid value: "no spaces": ...`}},
		{"headless node port", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ClusterIP = "None"
		}, []string{`spec.clusterIP: Invalid value: "None": may not be set to 'None' for NodePort services`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := minimalService()
			tc.mut(svc)
			createService(svc)
			expectErrors(t, validateService(svc, nil), tc.want...)
		})
	}
	if errs := services().ValidateName("Web", false); len(errs) == 0 {
		t.Errorf("service names must be DNS-1035 labels")
	}
}

func TestServiceUpdate(t *testing.T) {
	r := services()
	old := minimalService()
	old.Spec.ClusterIP = "10.96.0.10"
	createService(old)

	// A client that omits the allocated cluster IP keeps it.
	replace := minimalService()
	r.PrepareForUpdate(replace, old)
	r.Default(replace)
	if replace.Spec.ClusterIP != "10.96.0.10" || len(replace.Spec.ClusterIPs) != 1 {
		t.Errorf("cluster IP not kept: %+v", replace.Spec)
	}
	expectErrors(t, r.ValidateUpdate(replace, old))

	changed := old.DeepCopy()
	changed.Spec.ClusterIP = "10.96.0.99"
	r.PrepareForUpdate(changed, old)
	expectErrors(t, r.ValidateUpdate(changed, old), `spec.clusterIPs[0]: Invalid value: ["10.96.0.99"]: may not change once set`)

	// Switching NodePort -> ClusterIP drops the node ports.
	np := minimalService()
	np.Spec.Type = corev1.ServiceTypeNodePort
	np.Spec.ClusterIP = "10.96.0.11"
	np.Spec.Ports[0].NodePort = 30080
	createService(np)
	toCIP := np.DeepCopy()
	toCIP.Spec.Type = corev1.ServiceTypeClusterIP
	r.PrepareForUpdate(toCIP, np)
	if toCIP.Spec.Ports[0].NodePort != 0 || toCIP.Spec.ExternalTrafficPolicy != "" {
		t.Errorf("type dependent fields kept: %+v", toCIP.Spec)
	}
	expectErrors(t, r.ValidateUpdate(toCIP, np))
}

func TestServiceRows(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	mk := func(mut func(*corev1.Service)) *corev1.Service {
		svc := minimalService()
		svc.CreationTimestamp = metav1.NewTime(now.Add(-2 * time.Hour))
		svc.Spec.ClusterIP = "10.96.0.10"
		mut(svc)
		return createService(svc)
	}
	cases := []struct {
		name string
		svc  *corev1.Service
		want []interface{}
	}{
		{"cluster ip", mk(func(*corev1.Service) {}),
			[]interface{}{"web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "120m", "app=web"}},
		{"node port", mk(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053}}
		}), []interface{}{"web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53:30053/UDP", "120m", "app=web"}},
		{"load balancer pending", mk(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.Ports[0].NodePort = 31000
		}), []interface{}{"web", "LoadBalancer", "10.96.0.10", "<pending>", "80:31000/TCP", "120m", "app=web"}},
		{"load balancer ready", func() *corev1.Service {
			s := mk(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer })
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
			return s
		}(), []interface{}{"web", "LoadBalancer", "10.96.0.10", "203.0.113.7", "80/TCP", "120m", "app=web"}},
		{"external name", mk(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ClusterIP = ""
			s.Spec.ExternalName = "example.com"
			s.Spec.Ports = nil
			s.Spec.Selector = nil
		}), []interface{}{"web", "ExternalName", "<none>", "example.com", "<none>", "120m", "<none>"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := serviceRow(tc.svc, now)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d cells, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("cell %d = %#v, want %#v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
