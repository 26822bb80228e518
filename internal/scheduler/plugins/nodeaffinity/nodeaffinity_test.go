package nodeaffinity

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func withTerms(p *v1.Pod, terms ...v1.NodeSelectorTerm) *v1.Pod {
	p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: terms}}}
	return p
}

func expr(key string, op v1.NodeSelectorOperator, values ...string) v1.NodeSelectorTerm {
	return v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func TestFilter(t *testing.T) {
	node := st.MakeNode("n").Label("zone", "a").Label("cores", "8").Obj()
	tests := []struct {
		name string
		pod  *v1.Pod
		want framework.Code
	}{
		{"nothing required", st.MakePod("p").Obj(), framework.Success},
		{"nodeSelector matches", st.MakePod("p").NodeSelector("zone", "a").Obj(), framework.Success},
		{"nodeSelector differs", st.MakePod("p").NodeSelector("zone", "b").Obj(), framework.UnschedulableAndUnresolvable},
		{"nodeSelector key missing", st.MakePod("p").NodeSelector("disk", "ssd").Obj(), framework.UnschedulableAndUnresolvable},
		{"In", st.MakePod("p").NodeAffinityIn("zone", "b", "a").Obj(), framework.Success},
		{"NotIn", withTerms(st.MakePod("p").Obj(), expr("zone", v1.NodeSelectorOpNotIn, "a")), framework.UnschedulableAndUnresolvable},
		{"NotIn missing key", withTerms(st.MakePod("p").Obj(), expr("disk", v1.NodeSelectorOpNotIn, "hdd")), framework.Success},
		{"Exists", withTerms(st.MakePod("p").Obj(), expr("zone", v1.NodeSelectorOpExists)), framework.Success},
		{"DoesNotExist", withTerms(st.MakePod("p").Obj(), expr("zone", v1.NodeSelectorOpDoesNotExist)), framework.UnschedulableAndUnresolvable},
		{"Gt", withTerms(st.MakePod("p").Obj(), expr("cores", v1.NodeSelectorOpGt, "4")), framework.Success},
		{"Lt", withTerms(st.MakePod("p").Obj(), expr("cores", v1.NodeSelectorOpLt, "4")), framework.UnschedulableAndUnresolvable},
		{"terms are ORed", withTerms(st.MakePod("p").Obj(), expr("zone", v1.NodeSelectorOpIn, "b"), expr("cores", v1.NodeSelectorOpExists)), framework.Success},
		{"empty term matches nothing", withTerms(st.MakePod("p").Obj(), v1.NodeSelectorTerm{}), framework.UnschedulableAndUnresolvable},
		{"no terms match nothing", withTerms(st.MakePod("p").Obj()), framework.UnschedulableAndUnresolvable},
		{"invalid In without values", withTerms(st.MakePod("p").Obj(), expr("zone", v1.NodeSelectorOpIn)), framework.UnschedulableAndUnresolvable},
		{"matchFields name", withTerms(st.MakePod("p").Obj(), v1.NodeSelectorTerm{MatchFields: []v1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"n"}}}}), framework.Success},
		{"matchFields other name", withTerms(st.MakePod("p").Obj(), v1.NodeSelectorTerm{MatchFields: []v1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"m"}}}}), framework.UnschedulableAndUnresolvable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, snap := st.Framework(t, st.One(Name, New), []*v1.Node{node}, nil)
			s := st.Filter(t, f, snap, tt.pod, "n")
			if s.Code() != tt.want {
				t.Fatalf("code %v, want %v (%s)", s.Code(), tt.want, s.Message())
			}
			if s.Code() == framework.UnschedulableAndUnresolvable && s.Message() != ErrReasonPod && s.Message() != "excluded by PreFilter" {
				t.Fatalf("message %q", s.Message())
			}
		})
	}
}

func TestPreFilterNarrowsToNamedNodes(t *testing.T) {
	pod := withTerms(st.MakePod("p").Obj(), v1.NodeSelectorTerm{MatchFields: []v1.NodeSelectorRequirement{
		{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"b"}}}})
	p := &NodeAffinity{}
	res, s := p.PreFilter(t.Context(), framework.NewCycleState(), pod)
	if !s.IsSuccess() || res.AllNodes() || !res.NodeNames.Has("b") || res.NodeNames.Len() != 1 {
		t.Fatalf("result %+v status %v", res, s)
	}
	if _, s := p.PreFilter(t.Context(), framework.NewCycleState(), st.MakePod("q").Obj()); !s.IsSkip() {
		t.Fatalf("pod without constraints: %v", s.Code())
	}
}

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("a").Label("zone", "a").Label("disk", "ssd").Obj(),
		st.MakeNode("b").Label("zone", "a").Obj(),
		st.MakeNode("c").Obj(),
	}
	f, snap := st.Framework(t, st.One(Name, New), nodes, nil)
	pod := st.MakePod("p").PreferNode(2, "zone", "a").PreferNode(6, "disk", "ssd").Obj()
	got := st.Scores(t, f, snap, pod)
	if got["a"] != 100 || got["b"] != 25 || got["c"] != 0 {
		t.Fatalf("scores %v", got)
	}
}
