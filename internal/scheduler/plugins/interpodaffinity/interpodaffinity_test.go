package interpodaffinity

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

const zone = v1.LabelTopologyZone

func cluster() ([]*v1.Node, []*v1.Pod) {
	nodes := []*v1.Node{
		st.MakeNode("n1").Label(zone, "a").Obj(),
		st.MakeNode("n2").Label(zone, "a").Obj(),
		st.MakeNode("n3").Label(zone, "b").Obj(),
	}
	pods := []*v1.Pod{
		st.MakePod("web").Node("n1").Label("app", "web").Obj(),
		// db refuses to share a zone with web.
		st.MakePod("db").Node("n3").Label("app", "db").PodAntiAffinity(zone, map[string]string{"app": "web"}).Obj(),
		st.MakePod("other-ns").Namespace("other").Node("n2").Label("app", "cache").Obj(),
	}
	return nodes, pods
}

func TestFilter(t *testing.T) {
	web := map[string]string{"app": "web"}
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]string // node -> message ("" fits)
	}{
		{"no affinity", st.MakePod("p").Obj(), map[string]string{"n1": "", "n2": "", "n3": ""}},
		{"affinity by zone", st.MakePod("p").PodAffinity(zone, web).Obj(),
			map[string]string{"n1": "", "n2": "", "n3": ErrReasonAffinityRulesNotMatch}},
		{"affinity by hostname", st.MakePod("p").PodAffinity(v1.LabelHostname, web).Obj(),
			map[string]string{"n1": "", "n2": ErrReasonAffinityRulesNotMatch, "n3": ErrReasonAffinityRulesNotMatch}},
		{"affinity to missing key", st.MakePod("p").PodAffinity("rack", web).Obj(),
			map[string]string{"n1": ErrReasonAffinityRulesNotMatch}},
		{"first pod of a self-affine group", st.MakePod("p").Label("app", "x").PodAffinity(zone, map[string]string{"app": "x"}).Obj(),
			map[string]string{"n1": "", "n3": ""}},
		{"affinity to nothing", st.MakePod("p").PodAffinity(zone, map[string]string{"app": "x"}).Obj(),
			map[string]string{"n1": ErrReasonAffinityRulesNotMatch}},
		{"affinity ignores other namespaces", st.MakePod("p").PodAffinity(zone, map[string]string{"app": "cache"}).Obj(),
			map[string]string{"n2": ErrReasonAffinityRulesNotMatch}},
		{"anti-affinity by zone", st.MakePod("p").PodAntiAffinity(zone, web).Obj(),
			map[string]string{"n1": ErrReasonAntiAffinityRulesNotMatch, "n2": ErrReasonAntiAffinityRulesNotMatch, "n3": ""}},
		{"existing pod's anti-affinity", st.MakePod("p").Label("app", "web").Obj(),
			map[string]string{"n1": "", "n2": "", "n3": ErrReasonExistingAntiAffinityRulesNotMatch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, pods := cluster()
			f, snap := st.Framework(t, st.One(Name, New), nodes, pods)
			for node, want := range tt.want {
				s := st.Filter(t, f, snap, tt.pod, node)
				if s.Message() != want {
					t.Errorf("%s: got %q, want %q", node, s.Message(), want)
				}
				if want == ErrReasonAffinityRulesNotMatch && s.Code() != framework.UnschedulableAndUnresolvable {
					t.Errorf("%s: affinity failure code %v", node, s.Code())
				}
				if want == ErrReasonAntiAffinityRulesNotMatch && s.Code() != framework.Unschedulable {
					t.Errorf("%s: anti-affinity failure code %v", node, s.Code())
				}
			}
		})
	}
}

func TestPreFilterExtensions(t *testing.T) {
	nodes, pods := cluster()
	f, snap := st.Framework(t, st.One(Name, New), nodes, pods)
	pod := st.MakePod("p").PodAntiAffinity(zone, map[string]string{"app": "web"}).Obj()
	state := framework.NewCycleState()
	if _, _, s := f.RunPreFilterPlugins(t.Context(), state, pod); !s.IsSuccess() {
		t.Fatal(s.AsError())
	}
	n1, _ := snap.Get("n1")
	if s := f.RunFilterPlugins(t.Context(), state, pod, n1); s.IsSuccess() {
		t.Fatal("n1 should fail before web is removed")
	}
	// Removing web (as a preemption dry run would) frees zone a.
	cp := state.Clone()
	web := n1.Pods[0]
	if s := f.RunPreFilterExtensionRemovePod(t.Context(), cp, pod, web, n1); !s.IsSuccess() {
		t.Fatal(s.AsError())
	}
	if s := f.RunFilterPlugins(t.Context(), cp, pod, n1); !s.IsSuccess() {
		t.Fatalf("after removal: %s", s.Message())
	}
	if s := f.RunFilterPlugins(t.Context(), state, pod, n1); s.IsSuccess() {
		t.Fatal("the original state changed with its clone")
	}
}

func TestScore(t *testing.T) {
	web := map[string]string{"app": "web"}
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]int64
	}{
		{"preferred affinity", st.MakePod("p").PreferPodAffinity(10, zone, web).Obj(), map[string]int64{"n1": 100, "n2": 100, "n3": 0}},
		{"preferred anti-affinity", st.MakePod("p").PreferPodAntiAffinity(10, zone, web).Obj(), map[string]int64{"n1": 0, "n2": 0, "n3": 100}},
		{"mixed", st.MakePod("p").PreferPodAffinity(10, v1.LabelHostname, web).PreferPodAntiAffinity(5, zone, map[string]string{"app": "db"}).Obj(),
			map[string]int64{"n1": 100, "n2": 33, "n3": 0}},
		{"no preferences", st.MakePod("p").Obj(), map[string]int64{"n1": 0, "n2": 0, "n3": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, pods := cluster()
			f, snap := st.Framework(t, st.One(Name, New), nodes, pods)
			got := st.Scores(t, f, snap, tt.pod)
			for n, w := range tt.want {
				if got[n] != w {
					t.Errorf("%s: got %d want %d (%v)", n, got[n], w, got)
				}
			}
		})
	}
}

func TestScoreExistingPodsPreferences(t *testing.T) {
	nodes, pods := cluster()
	pods = append(pods,
		st.MakePod("friend").Node("n3").PreferPodAffinity(5, zone, map[string]string{"app": "x"}).Obj(),
		st.MakePod("needs-x").Node("n1").PodAffinity(v1.LabelHostname, map[string]string{"app": "x"}).Obj())
	f, snap := st.Framework(t, st.One(Name, New), nodes, pods)
	got := st.Scores(t, f, snap, st.MakePod("p").Label("app", "x").Obj())
	// zone b gets 5 from friend's preference, n1 gets 1 from needs-x's required term.
	if got["n3"] != 100 || got["n1"] != 20 || got["n2"] != 0 {
		t.Fatalf("scores %v", got)
	}
}
