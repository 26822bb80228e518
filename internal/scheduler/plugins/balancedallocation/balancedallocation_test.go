package balancedallocation

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("a").Alloc("cpu", "4", "memory", "8Gi").Obj(),
		st.MakeNode("b").Alloc("cpu", "4", "memory", "8Gi").Obj(),
	}
	pods := []*v1.Pod{st.MakePod("x").Node("b").Req("cpu", "2").Obj()}
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]int64
	}{
		// a: .25 cpu, .25 memory: balanced. b: .75 cpu, .25 memory: std .25.
		{"balanced request", st.MakePod("p").Req("cpu", "1", "memory", "2Gi").Obj(), map[string]int64{"a": 100, "b": 75}},
		// a: .5 cpu, .25 memory: std .125 -> 87.
		{"cpu heavy", st.MakePod("p").Req("cpu", "2", "memory", "2Gi").Obj(), map[string]int64{"a": 87, "b": 62}},
		// Actual requests only: no defaults for request-less pods.
		{"no requests", st.MakePod("p").Obj(), map[string]int64{"a": 100, "b": 75}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, snap := st.Framework(t, st.One(Name, New), nodes, pods)
			got := st.Scores(t, f, snap, tt.pod)
			for n, w := range tt.want {
				if got[n] != w {
					t.Errorf("%s: got %d, want %d (all %v)", n, got[n], w, got)
				}
			}
		})
	}
}
