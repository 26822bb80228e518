package framework_test

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestPodRequests(t *testing.T) {
	withOverhead := st.MakePod("o").Req("cpu", "1").Obj()
	withOverhead.Spec.Overhead = st.List("cpu", "250m", "memory", "10Mi")
	podLevel := st.MakePod("pl").Req("cpu", "1", "memory", "1Gi").Obj()
	podLevel.Spec.Resources = &v1.ResourceRequirements{Requests: st.List("cpu", "3")}
	tests := []struct {
		name         string
		pod          *v1.Pod
		cpu, mem     int64
		nzCPU, nzMem int64
		scalar       int64
	}{
		{name: "no requests", pod: st.MakePod("a").Obj(), nzCPU: 100, nzMem: 200 << 20},
		{name: "containers add up", pod: st.MakePod("a").Req("cpu", "500m", "memory", "1Gi").Container("cpu", "250m").Obj(),
			cpu: 750, mem: 1 << 30, nzCPU: 750, nzMem: 1<<30 + 200<<20},
		{name: "init container max", pod: st.MakePod("a").Req("cpu", "1").Init(false, "cpu", "2", "memory", "3Gi").Init(false, "cpu", "1").Obj(),
			cpu: 2000, mem: 3 << 30, nzCPU: 2000, nzMem: 3 << 30},
		{name: "sidecar adds to containers and later inits", pod: st.MakePod("a").Req("cpu", "1").Init(true, "cpu", "500m").Init(false, "cpu", "2").Obj(),
			cpu: 2500, nzCPU: 2500, nzMem: 400 << 20},
		{name: "overhead", pod: withOverhead, cpu: 1250, mem: 10 << 20, nzCPU: 1250, nzMem: 210 << 20},
		{name: "pod level requests win", pod: podLevel, cpu: 3000, mem: 1 << 30, nzCPU: 3000, nzMem: 1 << 30},
		{name: "extended", pod: st.MakePod("a").Req("example.com/gpu", "2").Obj(), scalar: 2, nzCPU: 100, nzMem: 200 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := framework.PodRequests(tt.pod, false)
			if r.MilliCPU != tt.cpu || r.Memory != tt.mem {
				t.Errorf("requests = %dm %d, want %dm %d", r.MilliCPU, r.Memory, tt.cpu, tt.mem)
			}
			if got := r.ScalarResources["example.com/gpu"]; got != tt.scalar {
				t.Errorf("gpu = %d, want %d", got, tt.scalar)
			}
			nz := framework.PodRequests(tt.pod, true)
			if nz.MilliCPU != tt.nzCPU || nz.Memory != tt.nzMem {
				t.Errorf("non-zero = %dm %d, want %dm %d", nz.MilliCPU, nz.Memory, tt.nzCPU, tt.nzMem)
			}
		})
	}
}

func TestNodeInfoAddRemove(t *testing.T) {
	node := st.MakeNode("n").Alloc("cpu", "4", "memory", "4Gi").Obj()
	a := st.MakePod("a").Req("cpu", "1").HostPort(80, "", "").Obj()
	b := st.MakePod("b").PodAntiAffinity(v1.LabelHostname, map[string]string{"x": "y"}).Obj()
	ni := st.NodeInfo(node, a, b)
	if ni.Requested.MilliCPU != 1000 || ni.NonZeroRequested.MilliCPU != 1100 || ni.NonZeroRequested.Memory != 400<<20 {
		t.Fatalf("totals: %+v %+v", ni.Requested, ni.NonZeroRequested)
	}
	if len(ni.PodsWithAffinity) != 1 || len(ni.PodsWithRequiredAntiAffinity) != 1 || ni.UsedPorts.Len() != 1 {
		t.Fatalf("lists: %d %d ports %d", len(ni.PodsWithAffinity), len(ni.PodsWithRequiredAntiAffinity), ni.UsedPorts.Len())
	}
	cp := ni.Snapshot()
	gen := ni.Generation
	if err := ni.RemovePod(a); err != nil {
		t.Fatal(err)
	}
	if ni.Generation <= gen || ni.Requested.MilliCPU != 0 || ni.UsedPorts.Len() != 0 || len(ni.Pods) != 1 {
		t.Fatalf("after remove: %v ports %d", ni, ni.UsedPorts.Len())
	}
	if cp.Requested.MilliCPU != 1000 || len(cp.Pods) != 2 || cp.UsedPorts.Len() != 1 {
		t.Fatalf("snapshot changed with the original: %v", cp)
	}
	if err := ni.RemovePod(a); err == nil {
		t.Fatal("removing a missing pod succeeded")
	}
}

func TestHostPortConflicts(t *testing.T) {
	h := framework.HostPortInfo{}
	h.Add("", "", 80)
	h.Add("10.0.0.1", "UDP", 53)
	tests := []struct {
		ip, proto string
		port      int32
		want      bool
	}{
		{"", "TCP", 80, true},
		{"10.0.0.2", "TCP", 80, true}, // 0.0.0.0:80 takes every address
		{"0.0.0.0", "UDP", 53, true},  // any address's port blocks 0.0.0.0
		{"10.0.0.2", "UDP", 53, false},
		{"10.0.0.1", "TCP", 53, false},
		{"", "TCP", 0, false},
	}
	for _, tt := range tests {
		if got := h.CheckConflict(tt.ip, tt.proto, tt.port); got != tt.want {
			t.Errorf("CheckConflict(%q, %q, %d) = %v, want %v", tt.ip, tt.proto, tt.port, got, tt.want)
		}
	}
}

func TestFitErrorMessage(t *testing.T) {
	m := framework.NewNodeToStatus()
	m.Set("cp", framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"))
	m.Set("a", framework.NewStatus(framework.Unschedulable, "Insufficient cpu"))
	m.Set("b", framework.NewStatus(framework.Unschedulable, "Insufficient cpu", "Insufficient memory"))
	fe := &framework.FitError{NumAllNodes: 3, Diagnosis: framework.Diagnosis{NodeToStatus: m,
		PostFilterMsg: "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."}}
	want := "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. " +
		"preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
	if got := fe.Error(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Absent nodes share one status; a PreFilter rejection replaces the histogram.
	m2 := framework.NewNodeToStatus()
	m2.SetAbsentNodesStatus(framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) didn't satisfy plugin(s) [NodeAffinity]"))
	m2.Set("a", framework.NewStatus(framework.Unschedulable, "Too many pods"))
	fe2 := &framework.FitError{NumAllNodes: 4, Diagnosis: framework.Diagnosis{NodeToStatus: m2}}
	if got, want := fe2.Error(), "0/4 nodes are available: 1 Too many pods, 3 node(s) didn't satisfy plugin(s) [NodeAffinity]."; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	fe3 := &framework.FitError{NumAllNodes: 2, Diagnosis: framework.Diagnosis{NodeToStatus: framework.NewNodeToStatus(), PreFilterMsg: "pod has unbound immediate PersistentVolumeClaims"}}
	if got, want := fe3.Error(), "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestDefaultNormalizeScore(t *testing.T) {
	tests := []struct {
		in      []int64
		reverse bool
		want    []int64
	}{
		{[]int64{0, 5, 10}, false, []int64{0, 50, 100}},
		{[]int64{0, 5, 10}, true, []int64{100, 50, 0}},
		{[]int64{0, 0}, true, []int64{100, 100}},
		{[]int64{0, 0}, false, []int64{0, 0}},
	}
	for _, tt := range tests {
		l := make(framework.NodeScoreList, len(tt.in))
		for i, s := range tt.in {
			l[i].Score = s
		}
		framework.DefaultNormalizeScore(framework.MaxNodeScore, tt.reverse, l)
		for i := range l {
			if l[i].Score != tt.want[i] {
				t.Errorf("%v reverse=%v: got %v want %v", tt.in, tt.reverse, l, tt.want)
				break
			}
		}
	}
}
