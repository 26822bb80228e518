package defaultpreemption

import (
	"context"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/skiff-sh/skiff/internal/scheduler/cache"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/noderesourcesfit"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/tainttoleration"
)

// preempt filters every node like a cycle would and runs PostFilter with the result.
func preempt(t *testing.T, nodes []*v1.Node, pods []*v1.Pod, pod *v1.Pod) (*framework.PostFilterResult, *framework.Status, *fake.Clientset) {
	t.Helper()
	objs := make([]k8sruntime.Object, 0, len(pods))
	for _, p := range pods {
		objs = append(objs, p)
	}
	client := fake.NewClientset(objs...)
	snap := cache.NewSnapshot(pods, nodes)
	f, err := runtime.New([]runtime.PluginSpec{
		{Name: tainttoleration.Name, Factory: tainttoleration.New},
		{Name: noderesourcesfit.Name, Factory: noderesourcesfit.New},
		{Name: Name, Factory: func(h framework.Handle) (framework.Plugin, error) {
			p, err := New(h)
			p.(*DefaultPreemption).randOffset = func(int) int { return 0 }
			return p, err
		}},
	}, runtime.Options{Snapshot: snap, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	state := framework.NewCycleState()
	if _, _, s := f.RunPreFilterPlugins(ctx, state, pod); !s.IsSuccess() {
		t.Fatal(s.AsError())
	}
	m := framework.NewNodeToStatus()
	for _, ni := range snap.List() {
		if s := f.RunFilterPlugins(ctx, state, pod, ni); !s.IsSuccess() {
			m.Set(ni.Node().Name, s)
		}
	}
	res, s := f.RunPostFilterPlugins(ctx, state, pod, m)
	return res, s, client
}

func deleted(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		if d, ok := a.(clienttesting.DeleteAction); ok {
			out = append(out, d.GetName())
		}
	}
	slices.Sort(out)
	return out
}

func TestPostFilter(t *testing.T) {
	never := v1.PreemptNever
	nodes := []*v1.Node{
		st.MakeNode("n1").Alloc("cpu", "2").Obj(),
		st.MakeNode("n2").Alloc("cpu", "2").Obj(),
	}
	running := []*v1.Pod{
		st.MakePod("low").Node("n1").Priority(0).Req("cpu", "2").Obj(),
		st.MakePod("mid").Node("n2").Priority(5).Req("cpu", "2").Obj(),
	}
	tests := []struct {
		name        string
		nodes       []*v1.Node
		pod         *v1.Pod
		wantNode    string
		wantMsg     string
		wantDeleted []string
	}{
		{name: "evicts the lowest priority victim", pod: st.MakePod("p").Priority(10).Req("cpu", "2").Obj(),
			wantNode: "n1", wantDeleted: []string{"low"}},
		{name: "only lower priorities are victims", pod: st.MakePod("p").Priority(3).Req("cpu", "2").Obj(),
			wantNode: "n1", wantDeleted: []string{"low"}},
		{name: "equal priority: nothing to evict", pod: st.MakePod("p").Priority(0).Req("cpu", "2").Obj(),
			wantMsg: "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."},
		{name: "does not fit even on an empty node", pod: st.MakePod("p").Priority(10).Req("cpu", "3").Obj(),
			wantMsg: "preemption: 0/2 nodes are available: 2 Insufficient cpu."},
		{name: "policy Never", pod: func() *v1.Pod {
			p := st.MakePod("p").Priority(10).Req("cpu", "2").Obj()
			p.Spec.PreemptionPolicy = &never
			return p
		}(),
			wantMsg: "preemption: not eligible due to preemptionPolicy=Never."},
		{name: "tainted nodes are not helped",
			nodes:   []*v1.Node{st.MakeNode("n1").Alloc("cpu", "2").Taint("t", "", v1.TaintEffectNoSchedule).Obj(), st.MakeNode("n2").Alloc("cpu", "2").Taint("t", "", v1.TaintEffectNoSchedule).Obj()},
			pod:     st.MakePod("p").Priority(10).Req("cpu", "2").Obj(),
			wantMsg: "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := tt.nodes
			if ns == nil {
				ns = nodes
			}
			res, s, client := preempt(t, ns, running, tt.pod)
			if tt.wantMsg != "" {
				if s.IsSuccess() || s.Message() != tt.wantMsg {
					t.Fatalf("status %v %q, want %q", s.Code(), s.Message(), tt.wantMsg)
				}
				if len(deleted(client)) != 0 {
					t.Fatalf("deleted %v", deleted(client))
				}
				return
			}
			if !s.IsSuccess() {
				t.Fatalf("status %v %q", s.Code(), s.Message())
			}
			if res == nil || res.NominatedNodeName != tt.wantNode {
				t.Fatalf("nominated %+v, want %s", res, tt.wantNode)
			}
			if got := deleted(client); !slices.Equal(got, tt.wantDeleted) {
				t.Fatalf("deleted %v, want %v", got, tt.wantDeleted)
			}
		})
	}
}

func TestSelectsMinimalVictims(t *testing.T) {
	nodes := []*v1.Node{st.MakeNode("n1").Alloc("cpu", "4").Obj()}
	running := []*v1.Pod{
		st.MakePod("a").Node("n1").Priority(1).Req("cpu", "1").Obj(),
		st.MakePod("b").Node("n1").Priority(2).Req("cpu", "1").Obj(),
		st.MakePod("c").Node("n1").Priority(3).Req("cpu", "2").Obj(),
	}
	// Needs 2 cpu: evicting a and b (the least important) is enough; c is reprieved.
	_, s, client := preempt(t, nodes, running, st.MakePod("p").Priority(10).Req("cpu", "2").Obj())
	if !s.IsSuccess() {
		t.Fatal(s.Message())
	}
	if got := deleted(client); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("deleted %v", got)
	}
}
