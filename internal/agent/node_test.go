package agent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func testAgent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(Config{NodeName: "n1", DataDir: t.TempDir(), NodeIP: "192.168.1.10", Labels: map[string]string{"node-role.kubernetes.io/control-plane": "true"}}, fake.NewClientset())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.machineFacts(); err != nil {
		t.Fatal(err)
	}
	a.runtimeName, a.runtimeVersion = "containerd", "1.6.20"
	return a
}

func nodeCond(st corev1.NodeStatus, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

func TestNodeStatus(t *testing.T) {
	a := testAgent(t)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: "NetworkUnavailable", Status: corev1.ConditionFalse}}
	st := a.nodeStatus(n, nodeFacts{RuntimeReady: true}, t0)
	if c := nodeCond(st, corev1.NodeReady); c.Status != corev1.ConditionTrue || c.Reason != "KubeletReady" || c.Message != "kubelet is posting ready status" {
		t.Errorf("Ready %+v", c)
	}
	for _, ct := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if c := nodeCond(st, ct); c == nil || c.Status != corev1.ConditionFalse {
			t.Errorf("%s %+v", ct, c)
		}
	}
	if nodeCond(st, "NetworkUnavailable") == nil {
		t.Error("a condition someone else owns was dropped")
	}
	if st.Capacity.Cpu().IsZero() || st.Capacity.Memory().IsZero() || st.Capacity.Pods().Value() != 110 || st.Capacity.StorageEphemeral().IsZero() {
		t.Errorf("capacity %v", st.Capacity)
	}
	if st.Allocatable.Memory().Cmp(*st.Capacity.Memory()) >= 0 {
		t.Errorf("allocatable memory %v not below capacity %v", st.Allocatable.Memory(), st.Capacity.Memory())
	}
	if len(st.Addresses) != 2 || st.Addresses[0].Type != corev1.NodeInternalIP || st.Addresses[0].Address != "192.168.1.10" || st.Addresses[1].Type != corev1.NodeHostName {
		t.Errorf("addresses %v", st.Addresses)
	}
	info := st.NodeInfo
	if info.ContainerRuntimeVersion != "containerd://1.6.20" || info.KubeletVersion != KubeletVersion || info.KernelVersion == "" || info.OSImage == "" || info.OperatingSystem != "linux" {
		t.Errorf("node info %+v", info)
	}
	if st.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("daemon endpoints %+v", st.DaemonEndpoints)
	}

	// Unchanged conditions keep their transition time; heartbeats alone are no change.
	n.Status = st
	later := a.nodeStatus(n, nodeFacts{RuntimeReady: true}, t0.Add(time.Minute))
	if c := nodeCond(later, corev1.NodeReady); !c.LastTransitionTime.Time.Equal(t0) || !c.LastHeartbeatTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("times %+v", c)
	}
	if nodeStatusChanged(st, later) {
		t.Error("a heartbeat counted as a change")
	}
	// The runtime going down flips Ready.
	down := a.nodeStatus(n, nodeFacts{RuntimeMessage: "container runtime is down"}, t0.Add(2*time.Minute))
	if c := nodeCond(down, corev1.NodeReady); c.Status != corev1.ConditionFalse || c.Reason != "KubeletNotReady" || !c.LastTransitionTime.Time.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("Ready when the runtime is down %+v", c)
	}
	if !nodeStatusChanged(st, down) {
		t.Error("Ready flipping is no change")
	}
}

func TestNodeLabelsAndRegistration(t *testing.T) {
	a := testAgent(t)
	a.cfg.PodCIDR = "10.244.9.0/24"
	ctx := context.Background()
	if err := a.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := a.client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"node-role.kubernetes.io/control-plane": "true"} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q", k, n.Labels[k])
		}
	}
	if n.Spec.PodCIDR != "10.244.9.0/24" {
		t.Errorf("podCIDR %q", n.Spec.PodCIDR)
	}
	if cidr, err := a.ensurePodCIDR(ctx); err != nil || cidr != "10.244.9.0/24" {
		t.Errorf("ensurePodCIDR %q %v", cidr, err)
	}
	// Registering again keeps what others set.
	n.Labels["team"] = "a"
	if _, err := a.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ = a.client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if n.Labels["team"] != "a" {
		t.Error("registration dropped a label")
	}
	if err := a.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := a.client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{})
	if err != nil || *l.Spec.LeaseDurationSeconds != 40 || *l.Spec.HolderIdentity != "n1" || l.Spec.RenewTime == nil {
		t.Errorf("lease %+v %v", l, err)
	}
	if err := a.renewLease(ctx); err != nil {
		t.Errorf("renewing: %v", err)
	}
}

func TestDefaultPodCIDR(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 5 s for a pod CIDR")
	}
	a := testAgent(t)
	ctx := context.Background()
	if err := a.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	cidr, err := a.ensurePodCIDR(ctx)
	if err != nil || cidr != DefaultPodCIDR {
		t.Fatalf("cidr %q %v", cidr, err)
	}
}

func TestNodeImages(t *testing.T) {
	imgs := []*runtimeapi.Image{
		{Id: "sha256:1", RepoTags: []string{"skiff.local/web:v1"}, RepoDigests: []string{"skiff.local/web@sha256:aa"}, Size: 100},
		{Id: "sha256:2", RepoTags: []string{"skiff.local/pause:3.10"}, Size: 500},
		{Id: "sha256:3", Size: 7},
	}
	got := nodeImages(imgs)
	if len(got) != 2 || got[0].SizeBytes != 500 || got[1].Names[0] != "skiff.local/web@sha256:aa" {
		t.Errorf("images %+v", got)
	}
}
