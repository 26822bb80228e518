package nodeports

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	existing := st.MakePod("e").Node("n").HostPort(8080, v1.ProtocolTCP, "127.0.0.1").HostPort(53, v1.ProtocolUDP, "").Obj()
	tests := []struct {
		name string
		pod  *v1.Pod
		want framework.Code
	}{
		{"no host ports", st.MakePod("p").Obj(), framework.Success},
		{"free port", st.MakePod("p").HostPort(9090, "", "").Obj(), framework.Success},
		{"same ip and port", st.MakePod("p").HostPort(8080, "", "127.0.0.1").Obj(), framework.Unschedulable},
		{"all addresses clash with one", st.MakePod("p").HostPort(8080, "", "").Obj(), framework.Unschedulable},
		{"other ip is fine", st.MakePod("p").HostPort(8080, "", "127.0.0.2").Obj(), framework.Success},
		{"other protocol is fine", st.MakePod("p").HostPort(8080, v1.ProtocolUDP, "127.0.0.1").Obj(), framework.Success},
		{"udp on all addresses", st.MakePod("p").HostPort(53, v1.ProtocolUDP, "10.0.0.1").Obj(), framework.Unschedulable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, snap := st.Framework(t, st.One(Name, New), []*v1.Node{st.MakeNode("n").Obj()}, []*v1.Pod{existing})
			s := st.Filter(t, f, snap, tt.pod, "n")
			if s.Code() != tt.want {
				t.Fatalf("code %v, want %v", s.Code(), tt.want)
			}
			if !s.IsSuccess() && s.Message() != "node(s) didn't have free ports for the requested pod ports" {
				t.Fatalf("message %q", s.Message())
			}
		})
	}
}
