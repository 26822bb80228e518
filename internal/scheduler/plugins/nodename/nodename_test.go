package nodename

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name, nodeName string
		want           framework.Code
	}{
		{"no node name", "", framework.Success},
		{"same node", "n", framework.Success},
		{"other node", "m", framework.UnschedulableAndUnresolvable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, snap := st.Framework(t, st.One(Name, New), []*v1.Node{st.MakeNode("n").Obj()}, nil)
			s := st.Filter(t, f, snap, st.MakePod("p").Node(tt.nodeName).Obj(), "n")
			if s.Code() != tt.want {
				t.Fatalf("code %v, want %v", s.Code(), tt.want)
			}
			if !s.IsSuccess() && s.Message() != ErrReason {
				t.Fatalf("message %q", s.Message())
			}
		})
	}
}
