package discovery

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func errs(s *discoveryv1.EndpointSlice) []string {
	var out []string
	for _, e := range Resources()[0].Validate(s) {
		out = append(out, e.Error())
	}
	return out
}

func TestEndpointSlice(t *testing.T) {
	r := Resources()[0]
	s := &discoveryv1.EndpointSlice{
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}, {Addresses: []string{"10.0.0.2"}}},
		Ports:       []discoveryv1.EndpointPort{{Port: new(int32(80))}},
	}
	r.Default(s)
	if *s.Ports[0].Name != "" || *s.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("port defaults %+v", s.Ports[0])
	}
	tests := []struct {
		name   string
		mutate func(*discoveryv1.EndpointSlice)
		want   []string
	}{
		{"valid", func(*discoveryv1.EndpointSlice) {}, nil},
		{"address type required", func(s *discoveryv1.EndpointSlice) { s.AddressType = "" },
			[]string{"addressType: Required value"}},
		{"address type unknown", func(s *discoveryv1.EndpointSlice) { s.AddressType = "IPv5" },
			[]string{`addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"`}},
		{"no addresses", func(s *discoveryv1.EndpointSlice) { s.Endpoints[1].Addresses = nil },
			[]string{"endpoints[1].addresses: Required value: must contain at least 1 address"}},
		{"wrong family", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"fd00::1"} },
			[]string{`endpoints[0].addresses[0]: Invalid value: "fd00::1": must be an IPv4 address`}},
		{"loopback", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"127.0.0.1"} },
			[]string{`endpoints[0].addresses[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)`}},
		{"duplicate port name", func(s *discoveryv1.EndpointSlice) {
			s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: new(""), Protocol: new(corev1.ProtocolUDP)})
		}, []string{`ports[1].name: Duplicate value: ""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.DeepCopy()
			tt.mutate(c)
			if got := errs(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors %q, want %q", got, tt.want)
			}
		})
	}
	upd := s.DeepCopy()
	upd.AddressType = discoveryv1.AddressTypeIPv6
	if e := r.ValidateUpdate(upd, s); len(e) != 1 || e[0].Error() != `addressType: Invalid value: "IPv6": field is immutable` {
		t.Errorf("update errors %v", e)
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Name = "web-abc12"
	s.CreationTimestamp = metav1.NewTime(now.Add(-time.Minute))
	if got, want := r.Row(s, now), []interface{}{"web-abc12", "IPv4", "80", "10.0.0.1,10.0.0.2", "60s"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row %v, want %v", got, want)
	}
	s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.3", "10.0.0.4"}})
	s.Ports = nil
	if got, want := r.Row(s, now), []interface{}{"web-abc12", "IPv4", "<unset>", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "60s"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row %v, want %v", got, want)
	}
}
