package leastallocated

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("empty").Alloc("cpu", "4", "memory", "8Gi").Obj(),
		st.MakeNode("half").Alloc("cpu", "4", "memory", "8Gi").Obj(),
		st.MakeNode("full").Alloc("cpu", "4", "memory", "8Gi").Obj(),
	}
	pods := []*v1.Pod{
		st.MakePod("a").Node("half").Req("cpu", "2", "memory", "4Gi").Obj(),
		st.MakePod("b").Node("full").Req("cpu", "4", "memory", "8Gi").Obj(),
	}
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]int64
	}{
		// (4000-1000)*100/4000 = 75 for cpu and memory alike.
		{"requests", st.MakePod("p").Req("cpu", "1", "memory", "2Gi").Obj(), map[string]int64{"empty": 75, "half": 25, "full": 0}},
		// 100m / 200Mi defaults: cpu 97 (97.5), memory 97 (97.56).
		{"no requests use non-zero defaults", st.MakePod("p").Obj(), map[string]int64{"empty": 97, "half": 47, "full": 0}},
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
