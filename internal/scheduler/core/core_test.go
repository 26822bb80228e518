package core_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/scheduler/cache"
	"github.com/skiff-sh/skiff/internal/scheduler/core"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func newFramework(t testing.TB, snap *cache.Snapshot, pct int32) *runtime.Framework {
	t.Helper()
	f, err := runtime.New(scheduler.DefaultPlugins(), runtime.Options{Snapshot: snap, Client: fake.NewClientset(), PercentageOfNodesToScore: pct})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// decide runs a whole decision as the scheduler does, including PostFilter on failure,
// and returns the host or the failure message.
func decide(t testing.TB, nodes []*v1.Node, pods []*v1.Pod, pod *v1.Pod) (string, string) {
	t.Helper()
	snap := cache.NewSnapshot(pods, nodes)
	f := newFramework(t, snap, 0)
	state := framework.NewCycleState()
	res, err := core.NewAlgorithm(1).Schedule(context.Background(), f, state, pod)
	var fe *framework.FitError
	if errors.As(err, &fe) {
		_, s := f.RunPostFilterPlugins(context.Background(), state, pod, fe.Diagnosis.NodeToStatus)
		fe.Diagnosis.PostFilterMsg = s.Message()
		return "", fe.Error()
	}
	if err != nil {
		return "", err.Error()
	}
	return res.SuggestedHost, ""
}

func TestScheduleFailureMessage(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("cp").Alloc("cpu", "4", "memory", "8Gi").Taint("node-role.kubernetes.io/control-plane", "", v1.TaintEffectNoSchedule).Obj(),
		st.MakeNode("w1").Alloc("cpu", "1", "memory", "8Gi").Obj(),
		st.MakeNode("w2").Alloc("cpu", "1", "memory", "8Gi").Obj(),
	}
	_, msg := decide(t, nodes, nil, st.MakePod("big").Req("cpu", "2").Obj())
	want := "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. " +
		"preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
	if msg != want {
		t.Fatalf("got  %q\nwant %q", msg, want)
	}
}

func TestScheduleFailureMessages(t *testing.T) {
	three := []*v1.Node{
		st.MakeNode("a").Alloc("cpu", "2", "pods", "1").Label("zone", "x").Obj(),
		st.MakeNode("b").Alloc("cpu", "2").Unschedulable().Obj(),
		st.MakeNode("c").Alloc("cpu", "2").Taint(v1.TaintNodeNotReady, "", v1.TaintEffectNoSchedule).Obj(),
	}
	running := []*v1.Pod{st.MakePod("x").Node("a").Obj()}
	tests := []struct {
		name string
		pod  *v1.Pod
		want string
	}{
		{"mixed reasons", st.MakePod("p").Obj(),
			"0/3 nodes are available: 1 Too many pods, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable. " +
				"preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."},
		{"node selector", st.MakePod("p").NodeSelector("zone", "y").Obj(),
			"0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable. " +
				"preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, msg := decide(t, three, running, tt.pod); msg != tt.want {
				t.Fatalf("got  %q\nwant %q", msg, tt.want)
			}
		})
	}
	if _, msg := decide(t, nil, nil, st.MakePod("p").Obj()); msg != "no nodes available to schedule pods" {
		t.Fatalf("empty cluster: %q", msg)
	}
}

func TestSchedulePicksLeastAllocated(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("busy").Alloc("cpu", "4", "memory", "8Gi").Obj(),
		st.MakeNode("idle").Alloc("cpu", "4", "memory", "8Gi").Obj(),
		st.MakeNode("small").Alloc("cpu", "1", "memory", "8Gi").Obj(),
	}
	pods := []*v1.Pod{st.MakePod("x").Node("busy").Req("cpu", "2", "memory", "4Gi").Obj()}
	for i := range 10 {
		host, msg := decide(t, nodes, pods, st.MakePod(fmt.Sprint("p", i)).Req("cpu", "1", "memory", "1Gi").Obj())
		if host != "idle" {
			t.Fatalf("attempt %d: host %q (%s)", i, host, msg)
		}
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	tests := []struct {
		pct   int32
		nodes int
		want  int
	}{
		{0, 10, 10}, {0, 99, 99}, {0, 100, 100}, {0, 500, 230}, {0, 1000, 420},
		{0, 5000, 500}, {0, 6000, 300}, {0, 10000, 500}, {30, 1000, 300}, {1, 1000, 100},
	}
	for _, tt := range tests {
		if got := core.NumFeasibleNodesToFind(tt.pct, tt.nodes); got != tt.want {
			t.Errorf("NumFeasibleNodesToFind(%d, %d) = %d, want %d", tt.pct, tt.nodes, got, tt.want)
		}
	}
}

func bigCluster(n, podsPerNode int) ([]*v1.Node, []*v1.Pod) {
	nodes := make([]*v1.Node, n)
	var pods []*v1.Pod
	for i := range nodes {
		name := fmt.Sprintf("node-%04d", i)
		nodes[i] = st.MakeNode(name).Alloc("cpu", "32", "memory", "128Gi").Label(v1.LabelTopologyZone, fmt.Sprint("zone-", i%3)).Obj()
		for j := range podsPerNode {
			pods = append(pods, st.MakePod(fmt.Sprintf("%s-%d", name, j)).Node(name).Label("app", fmt.Sprint("app-", j)).Req("cpu", "500m", "memory", "1Gi").Obj())
		}
	}
	return nodes, pods
}

func TestScheduleSamplesLargeClusters(t *testing.T) {
	nodes, _ := bigCluster(1000, 0)
	snap := cache.NewSnapshot(nil, nodes)
	f := newFramework(t, snap, 0)
	alg := core.NewAlgorithm(1)
	seen := map[string]bool{}
	for i := range 5 {
		res, err := alg.Schedule(context.Background(), f, framework.NewCycleState(), st.MakePod(fmt.Sprint("p", i)).Obj())
		if err != nil {
			t.Fatal(err)
		}
		if res.EvaluatedNodes != 420 || res.FeasibleNodes != 420 {
			t.Fatalf("evaluated %d feasible %d, want 420", res.EvaluatedNodes, res.FeasibleNodes)
		}
		seen[res.SuggestedHost] = true
	}
	if len(seen) < 2 {
		t.Fatalf("rotation/tie-breaking always picked %v", seen)
	}
}

func TestScheduleNominatedNodeFirst(t *testing.T) {
	nodes := []*v1.Node{st.MakeNode("a").Alloc("cpu", "4").Obj(), st.MakeNode("b").Alloc("cpu", "4").Obj()}
	pods := []*v1.Pod{st.MakePod("x").Node("b").Req("cpu", "3").Obj()}
	pod := st.MakePod("p").Req("cpu", "1").Obj()
	pod.Status.NominatedNodeName = "b"
	host, msg := decide(t, nodes, pods, pod)
	if host != "b" {
		t.Fatalf("host %q %s", host, msg)
	}
}

// BenchmarkSchedule measures one decision (snapshot refresh with the previous pod
// assumed, filter, score) at Kubernetes' largest supported cluster size.
func BenchmarkSchedule5000Nodes(b *testing.B) {
	for _, tc := range []struct {
		name string
		pod  func(i int) *v1.Pod
	}{
		{"plain", func(i int) *v1.Pod { return st.MakePod(fmt.Sprint("p", i)).Req("cpu", "100m", "memory", "128Mi").Obj() }},
		{"spread", func(i int) *v1.Pod {
			return st.MakePod(fmt.Sprint("p", i)).Label("app", "web").Req("cpu", "100m").
				Spread(1, v1.LabelTopologyZone, v1.DoNotSchedule, map[string]string{"app": "web"}, nil).Obj()
		}},
		{"anti-affinity", func(i int) *v1.Pod {
			return st.MakePod(fmt.Sprint("p", i)).Label("app", "db").Req("cpu", "100m").
				PodAntiAffinity(v1.LabelHostname, map[string]string{"app": "db"}).Obj()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			nodes, pods := bigCluster(5000, 10)
			c := cache.New()
			for _, n := range nodes {
				c.AddNode(n)
			}
			for _, p := range pods {
				if err := c.AddPod(p); err != nil {
					b.Fatal(err)
				}
			}
			snap := cache.NewEmptySnapshot()
			c.UpdateSnapshot(snap)
			f := newFramework(b, snap, 0)
			alg := core.NewAlgorithm(1)
			b.ResetTimer()
			for i := range b.N {
				c.UpdateSnapshot(snap)
				pod := tc.pod(i)
				res, err := alg.Schedule(context.Background(), f, framework.NewCycleState(), pod)
				if err != nil {
					b.Fatal(err)
				}
				pod.Spec.NodeName = res.SuggestedHost
				if err := c.AssumePod(pod); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
