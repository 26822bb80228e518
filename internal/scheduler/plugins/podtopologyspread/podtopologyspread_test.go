package podtopologyspread

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/scheduler/cache"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

const zone = v1.LabelTopologyZone

var web = map[string]string{"app": "web"}

func cluster() ([]*v1.Node, []*v1.Pod) {
	nodes := []*v1.Node{
		st.MakeNode("n1").Label(zone, "a").Obj(),
		st.MakeNode("n2").Label(zone, "a").Obj(),
		st.MakeNode("n3").Label(zone, "b").Obj(),
	}
	pods := []*v1.Pod{
		st.MakePod("w1").Node("n1").Label("app", "web").Obj(),
		st.MakePod("w2").Node("n1").Label("app", "web").Obj(),
		st.MakePod("w3").Node("n3").Label("app", "web").Obj(),
		st.MakePod("elsewhere").Namespace("other").Node("n3").Label("app", "web").Obj(),
	}
	return nodes, pods
}

func ptr(i int32) *int32 { return &i }

func TestFilter(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		want map[string]string
	}{
		{"zone skew", st.MakePod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, web, nil).Obj(),
			map[string]string{"n1": ErrReasonConstraintsNotMatch, "n2": ErrReasonConstraintsNotMatch, "n3": ""}},
		{"hostname skew", st.MakePod("p").Label("app", "web").Spread(1, v1.LabelHostname, v1.DoNotSchedule, web, nil).Obj(),
			map[string]string{"n1": ErrReasonConstraintsNotMatch, "n2": "", "n3": ErrReasonConstraintsNotMatch}},
		{"pod outside its selector", st.MakePod("p").Spread(1, zone, v1.DoNotSchedule, web, nil).Obj(),
			map[string]string{"n1": "", "n3": ""}},
		{"missing topology key", st.MakePod("p").Spread(1, "rack", v1.DoNotSchedule, web, nil).Obj(),
			map[string]string{"n1": ErrReasonNodeLabelNotMatch}},
		{"minDomains above the domains count", st.MakePod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, web, ptr(3)).Obj(),
			map[string]string{"n1": ErrReasonConstraintsNotMatch, "n3": ErrReasonConstraintsNotMatch}},
		{"ScheduleAnyway does not filter", st.MakePod("p").Label("app", "web").Spread(1, zone, v1.ScheduleAnyway, web, nil).Obj(),
			map[string]string{"n1": "", "n3": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, pods := cluster()
			f, snap := st.Framework(t, st.One(Name, New), nodes, pods)
			for n, want := range tt.want {
				if got := st.Filter(t, f, snap, tt.pod, n).Message(); got != want {
					t.Errorf("%s: got %q, want %q", n, got, want)
				}
			}
		})
	}
}

func TestPreFilterExtensions(t *testing.T) {
	nodes, pods := cluster()
	f, snap := st.Framework(t, st.One(Name, New), nodes, pods)
	pod := st.MakePod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, web, nil).Obj()
	state := framework.NewCycleState()
	if _, _, s := f.RunPreFilterPlugins(t.Context(), state, pod); !s.IsSuccess() {
		t.Fatal(s.AsError())
	}
	n1, _ := snap.Get("n1")
	cp := state.Clone()
	if s := f.RunPreFilterExtensionRemovePod(t.Context(), cp, pod, n1.Pods[0], n1); !s.IsSuccess() {
		t.Fatal(s.AsError())
	}
	// zone a now has 1, zone b 1: adding to a gives skew 1.
	if s := f.RunFilterPlugins(t.Context(), cp, pod, n1); !s.IsSuccess() {
		t.Fatalf("after removal: %s", s.Message())
	}
	if s := f.RunFilterPlugins(t.Context(), state, pod, n1); s.IsSuccess() {
		t.Fatal("original state changed")
	}
}

func TestScore(t *testing.T) {
	nodes, pods := cluster()
	f, snap := st.Framework(t, st.One(Name, New), nodes, pods)
	// Counts by host 2/0/1, weight log(3+2): raw 3/0/2 -> 100*(max+min-s)/max.
	got := st.Scores(t, f, snap, st.MakePod("p").Label("app", "web").Spread(1, v1.LabelHostname, v1.ScheduleAnyway, web, nil).Obj())
	if got["n1"] != 0 || got["n2"] != 100 || got["n3"] != 33 {
		t.Fatalf("hostname scores %v", got)
	}
	// By zone: a=2, b=1 with two domains: raw round(2*log4)=3, round(1*log4)=1.
	got = st.Scores(t, f, snap, st.MakePod("p").Label("app", "web").Spread(1, zone, v1.ScheduleAnyway, web, nil).Obj())
	if got["n1"] != 33 || got["n2"] != 33 || got["n3"] != 100 {
		t.Fatalf("zone scores %v", got)
	}
}

func TestSystemDefaultsFollowTheReplicaSet(t *testing.T) {
	nodes := []*v1.Node{st.MakeNode("n1").Obj(), st.MakeNode("n2").Obj()}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: web}}}
	owned := func(p *v1.Pod) *v1.Pod {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", Controller: &yes}}
		return p
	}
	pods := []*v1.Pod{
		owned(st.MakePod("a").Node("n1").Label("app", "web").Obj()),
		owned(st.MakePod("b").Node("n1").Label("app", "web").Obj()),
		st.MakePod("unrelated").Node("n2").Label("app", "db").Obj(),
	}
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	if err := factory.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(rs); err != nil {
		t.Fatal(err)
	}
	snap := cache.NewSnapshot(pods, nodes)
	f, err := runtime.New(st.One(Name, New), runtime.Options{Snapshot: snap, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	got := st.Scores(t, f, snap, owned(st.MakePod("c").Label("app", "web").Obj()))
	if got["n2"] <= got["n1"] {
		t.Fatalf("the ReplicaSet's pods should spread to n2: %v", got)
	}
	// Without an owner or service there is no default constraint.
	if got := st.Scores(t, f, snap, st.MakePod("d").Label("app", "web").Obj()); got["n1"] != 0 || got["n2"] != 0 {
		t.Fatalf("unowned pod scored: %v", got)
	}
}
