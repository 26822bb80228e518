package tainttoleration

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name string
		node *v1.Node
		pod  *v1.Pod
		want string
	}{
		{"no taints", st.MakeNode("n").Obj(), st.MakePod("p").Obj(), ""},
		{"untolerated NoSchedule", st.MakeNode("n").Taint("node-role.kubernetes.io/control-plane", "", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod("p").Obj(), "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"},
		{"untolerated NoExecute with value", st.MakeNode("n").Taint("dedicated", "gpu", v1.TaintEffectNoExecute).Obj(),
			st.MakePod("p").Obj(), "node(s) had untolerated taint {dedicated: gpu}"},
		{"PreferNoSchedule does not filter", st.MakeNode("n").Taint("soft", "", v1.TaintEffectPreferNoSchedule).Obj(), st.MakePod("p").Obj(), ""},
		{"tolerated by Equal", st.MakeNode("n").Taint("dedicated", "gpu", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod("p").Toleration("dedicated", v1.TolerationOpEqual, "gpu", v1.TaintEffectNoSchedule).Obj(), ""},
		{"wrong value", st.MakeNode("n").Taint("dedicated", "gpu", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod("p").Toleration("dedicated", v1.TolerationOpEqual, "cpu", "").Obj(), "node(s) had untolerated taint {dedicated: gpu}"},
		{"tolerate everything", st.MakeNode("n").Taint("a", "b", v1.TaintEffectNoExecute).Obj(),
			st.MakePod("p").Toleration("", v1.TolerationOpExists, "", "").Obj(), ""},
		{"Gt", st.MakeNode("n").Taint("level", "5", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod("p").Toleration("level", v1.TolerationOpGt, "3", v1.TaintEffectNoSchedule).Obj(), ""},
		{"not-ready", st.MakeNode("n").Taint(v1.TaintNodeNotReady, "", v1.TaintEffectNoSchedule).Obj(),
			st.MakePod("p").Obj(), "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, snap := st.Framework(t, st.One(Name, New), []*v1.Node{tt.node}, nil)
			s := st.Filter(t, f, snap, tt.pod, "n")
			if s.Message() != tt.want {
				t.Fatalf("got %q, want %q", s.Message(), tt.want)
			}
		})
	}
}

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("clean").Obj(),
		st.MakeNode("one").Taint("a", "", v1.TaintEffectPreferNoSchedule).Obj(),
		st.MakeNode("two").Taint("a", "", v1.TaintEffectPreferNoSchedule).Taint("b", "", v1.TaintEffectPreferNoSchedule).Obj(),
	}
	f, snap := st.Framework(t, []runtime.PluginSpec{{Name: Name, Factory: New}}, nodes, nil)
	got := st.Scores(t, f, snap, st.MakePod("p").Obj())
	if got["clean"] != 100 || got["one"] != 50 || got["two"] != 0 {
		t.Fatalf("scores %v", got)
	}
	got = st.Scores(t, f, snap, st.MakePod("p").Toleration("a", v1.TolerationOpExists, "", v1.TaintEffectPreferNoSchedule).Obj())
	if got["clean"] != 100 || got["one"] != 100 || got["two"] != 0 {
		t.Fatalf("scores with toleration %v", got)
	}
}
