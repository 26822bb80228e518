package nodeunschedulable

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name string
		node *v1.Node
		pod  *v1.Pod
		want framework.Code
	}{
		{"schedulable", st.MakeNode("n").Obj(), st.MakePod("p").Obj(), framework.Success},
		{"cordoned", st.MakeNode("n").Unschedulable().Obj(), st.MakePod("p").Obj(), framework.UnschedulableAndUnresolvable},
		{"cordoned but tolerated", st.MakeNode("n").Unschedulable().Obj(),
			st.MakePod("p").Toleration(v1.TaintNodeUnschedulable, v1.TolerationOpExists, "", v1.TaintEffectNoSchedule).Obj(), framework.Success},
		{"cordoned, toleration for another effect", st.MakeNode("n").Unschedulable().Obj(),
			st.MakePod("p").Toleration(v1.TaintNodeUnschedulable, v1.TolerationOpExists, "", v1.TaintEffectNoExecute).Obj(), framework.UnschedulableAndUnresolvable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, snap := st.Framework(t, st.One(Name, New), []*v1.Node{tt.node}, nil)
			s := st.Filter(t, f, snap, tt.pod, "n")
			if s.Code() != tt.want {
				t.Fatalf("code %v, want %v (%s)", s.Code(), tt.want, s.Message())
			}
			if !s.IsSuccess() && s.Message() != "node(s) were unschedulable" {
				t.Fatalf("message %q", s.Message())
			}
		})
	}
}
