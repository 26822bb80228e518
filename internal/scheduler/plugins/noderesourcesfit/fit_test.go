package noderesourcesfit

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestFilter(t *testing.T) {
	node := st.MakeNode("n").Alloc("cpu", "4", "memory", "8Gi", "ephemeral-storage", "10Gi", "pods", "3", "example.com/gpu", "2").Obj()
	running := []*v1.Pod{
		st.MakePod("a").Node("n").Req("cpu", "2", "memory", "4Gi").Obj(),
		st.MakePod("b").Node("n").Req("example.com/gpu", "1").Obj(),
	}
	tests := []struct {
		name string
		pod  *v1.Pod
		pods []*v1.Pod
		want string
	}{
		{"fits", st.MakePod("p").Req("cpu", "2", "memory", "4Gi").Obj(), running, ""},
		{"no requests always fit", st.MakePod("p").Obj(), running, ""},
		{"cpu", st.MakePod("p").Req("cpu", "2500m").Obj(), running, "Insufficient cpu"},
		{"cpu and memory", st.MakePod("p").Req("cpu", "3", "memory", "5Gi").Obj(), running, "Insufficient cpu, Insufficient memory"},
		{"ephemeral storage", st.MakePod("p").Req("ephemeral-storage", "11Gi").Obj(), running, "Insufficient ephemeral-storage"},
		{"extended resource", st.MakePod("p").Req("example.com/gpu", "2").Obj(), running, "Insufficient example.com/gpu"},
		{"unknown extended resource", st.MakePod("p").Req("example.com/fpga", "1").Obj(), running, "Insufficient example.com/fpga"},
		{"init container counts as max", st.MakePod("p").Req("cpu", "1").Init(false, "cpu", "3").Obj(), running, "Insufficient cpu"},
		{"too many pods", st.MakePod("p").Obj(), append(running, st.MakePod("c").Node("n").Obj()), "Too many pods"},
		{"too many pods and cpu", st.MakePod("p").Req("cpu", "3").Obj(), append(running, st.MakePod("c").Node("n").Obj()), "Too many pods, Insufficient cpu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, snap := st.Framework(t, st.One(Name, New), []*v1.Node{node}, tt.pods)
			if got := st.Filter(t, f, snap, tt.pod, "n").Message(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
