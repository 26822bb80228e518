package cache_test

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/cache"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func names(s *cache.Snapshot) []string {
	var out []string
	for _, ni := range s.List() {
		out = append(out, ni.Node().Name)
	}
	return out
}

func TestAssumeConfirmForget(t *testing.T) {
	c := cache.New()
	c.AddNode(st.MakeNode("n1").Alloc("cpu", "4").Obj())
	c.AddNode(st.MakeNode("n2").Alloc("cpu", "4").Obj())
	snap := cache.NewEmptySnapshot()
	c.UpdateSnapshot(snap)

	p := st.MakePod("p").Req("cpu", "1").Node("n1").Obj()
	if err := c.AssumePod(p); err != nil {
		t.Fatal(err)
	}
	if err := c.AssumePod(p); err == nil {
		t.Fatal("assuming twice succeeded")
	}
	c.UpdateSnapshot(snap)
	n1, _ := snap.Get("n1")
	if n1.Requested.MilliCPU != 1000 || !c.IsAssumedPod(p) {
		t.Fatalf("assumed pod not visible: %v", n1)
	}
	// The binding landed on another node than assumed: the informer's version wins.
	bound := p.DeepCopy()
	bound.Spec.NodeName = "n2"
	if err := c.AddPod(bound); err != nil {
		t.Fatal(err)
	}
	c.UpdateSnapshot(snap)
	n1, _ = snap.Get("n1")
	n2, _ := snap.Get("n2")
	if c.IsAssumedPod(p) || n1.Requested.MilliCPU != 0 || n2.Requested.MilliCPU != 1000 {
		t.Fatalf("confirm: assumed=%v n1=%v n2=%v", c.IsAssumedPod(p), n1, n2)
	}
	// Forget only undoes assumptions.
	if err := c.ForgetPod(bound); err != nil {
		t.Fatal(err)
	}
	if _, pods, _ := c.Counts(); pods != 1 {
		t.Fatalf("forget removed a bound pod")
	}
	q := st.MakePod("q").Req("cpu", "2").Node("n1").Obj()
	_ = c.AssumePod(q)
	_ = c.ForgetPod(q)
	c.UpdateSnapshot(snap)
	n1, _ = snap.Get("n1")
	if n1.Requested.MilliCPU != 0 || len(n1.Pods) != 0 {
		t.Fatalf("forgotten pod still counted: %v", n1)
	}
}

func TestUpdateSnapshotCopiesOnlyChanges(t *testing.T) {
	c := cache.New()
	for i := range 5 {
		c.AddNode(st.MakeNode(fmt.Sprint("n", i)).Alloc("cpu", "4").Obj())
	}
	snap := cache.NewEmptySnapshot()
	c.UpdateSnapshot(snap)
	if len(snap.List()) != 5 {
		t.Fatalf("nodes %v", names(snap))
	}
	before := map[string]any{}
	for _, ni := range snap.List() {
		before[ni.Node().Name] = ni.Generation
	}
	_ = c.AddPod(st.MakePod("p").Node("n3").Req("cpu", "1").Obj())
	c.UpdateSnapshot(snap)
	for _, ni := range snap.List() {
		changed := before[ni.Node().Name] != ni.Generation
		if changed != (ni.Node().Name == "n3") {
			t.Errorf("node %s changed=%v", ni.Node().Name, changed)
		}
	}
	// A snapshot NodeInfo is a copy: changing the cache later leaves it alone.
	n3, _ := snap.Get("n3")
	_ = c.AddPod(st.MakePod("q").Node("n3").Req("cpu", "1").Obj())
	if n3.Requested.MilliCPU != 1000 {
		t.Fatalf("snapshot shares state with the cache: %v", n3)
	}
}

func TestNodesComeAndGo(t *testing.T) {
	c := cache.New()
	snap := cache.NewEmptySnapshot()
	a := st.MakeNode("a").Label(v1.LabelTopologyZone, "z1").Obj()
	b := st.MakeNode("b").Label(v1.LabelTopologyZone, "z1").Obj()
	x := st.MakeNode("x").Label(v1.LabelTopologyZone, "z2").Obj()
	c.AddNode(a)
	c.AddNode(b)
	c.AddNode(x)
	c.UpdateSnapshot(snap)
	// Zones are interleaved so sampling a prefix covers every zone.
	if got := fmt.Sprint(names(snap)); got != "[a x b]" {
		t.Fatalf("order %s", got)
	}
	// A pod on a node the cache does not know yet is kept until the node arrives.
	_ = c.AddPod(st.MakePod("early").Node("late").Req("cpu", "1").Obj())
	c.UpdateSnapshot(snap)
	if len(snap.List()) != 3 {
		t.Fatalf("ghost node listed: %v", names(snap))
	}
	c.AddNode(st.MakeNode("late").Alloc("cpu", "2").Obj())
	c.UpdateSnapshot(snap)
	late, err := snap.Get("late")
	if err != nil || late.Requested.MilliCPU != 1000 {
		t.Fatalf("late node: %v %v", late, err)
	}
	c.RemoveNode(b)
	c.UpdateSnapshot(snap)
	if got := fmt.Sprint(names(snap)); got != "[a x late]" {
		t.Fatalf("after removal %s", got)
	}
	if _, err := snap.Get("b"); err == nil {
		t.Fatal("removed node still in the snapshot")
	}
	// Moving zones reorders.
	b2 := x.DeepCopy()
	b2.Labels[v1.LabelTopologyZone] = "z1"
	c.UpdateNode(x, b2)
	c.UpdateSnapshot(snap)
	if got := fmt.Sprint(names(snap)); got != "[a late x]" {
		t.Fatalf("after zone change %s", got)
	}
}

func TestAffinityLists(t *testing.T) {
	c := cache.New()
	c.AddNode(st.MakeNode("a").Obj())
	c.AddNode(st.MakeNode("b").Obj())
	snap := cache.NewEmptySnapshot()
	c.UpdateSnapshot(snap)
	if len(snap.HavePodsWithAffinityList()) != 0 {
		t.Fatal("affinity list not empty")
	}
	p := st.MakePod("p").Node("b").PodAntiAffinity(v1.LabelHostname, map[string]string{"a": "b"}).Obj()
	_ = c.AddPod(p)
	c.UpdateSnapshot(snap)
	if l := snap.HavePodsWithRequiredAntiAffinityList(); len(l) != 1 || l[0].Node().Name != "b" {
		t.Fatalf("anti-affinity list %v", l)
	}
	_ = c.RemovePod(p)
	c.UpdateSnapshot(snap)
	if len(snap.HavePodsWithAffinityList()) != 0 || len(snap.HavePodsWithRequiredAntiAffinityList()) != 0 {
		t.Fatal("lists not emptied")
	}
}

func BenchmarkAssumeAndSnapshot(b *testing.B) {
	c := cache.New()
	for i := range 5000 {
		n := fmt.Sprintf("n%d", i)
		c.AddNode(st.MakeNode(n).Alloc("cpu", "32").Obj())
		for j := range 20 {
			_ = c.AddPod(st.MakePod(fmt.Sprintf("%s-%d", n, j)).Node(n).Req("cpu", "100m").Obj())
		}
	}
	snap := cache.NewEmptySnapshot()
	c.UpdateSnapshot(snap)
	b.ResetTimer()
	for i := range b.N {
		_ = c.AssumePod(st.MakePod(fmt.Sprint("x", i)).Node(fmt.Sprintf("n%d", i%5000)).Obj())
		c.UpdateSnapshot(snap)
	}
}
