package simnode

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// newNode is the Node a simulated kubelet registers.
func newNode(cfg Config, name string, ip netip.Addr, cidr netip.Prefix, now time.Time) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:           name,
		corev1.LabelOSStable:           "linux",
		corev1.LabelArchStable:         "amd64",
		"beta.kubernetes.io/os":        "linux",
		"beta.kubernetes.io/arch":      "amd64",
		corev1.LabelInstanceTypeStable: InstanceType,
	}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              cfg.CPU.DeepCopy(),
		corev1.ResourceMemory:           cfg.Memory.DeepCopy(),
		corev1.ResourcePods:             cfg.Pods.DeepCopy(),
		corev1.ResourceEphemeralStorage: cfg.EphemeralStorage.DeepCopy(),
	}
	allocatable := make(corev1.ResourceList, len(capacity))
	for k, v := range capacity {
		allocatable[k] = v.DeepCopy()
	}
	id := hashHex(name)
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{AnnotationSimulated: cfg.Owner},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:  cidr.String(),
			PodCIDRs: []string{cidr.String()},
			Taints:   append([]corev1.Taint(nil), cfg.Taints...),
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: allocatable,
			Conditions:  healthyConditions(nil, metav1.NewTime(now)),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: ip.String()},
				{Type: corev1.NodeHostName, Address: name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: kubeletPort}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID:               id[:32],
				SystemUUID:              uuidFrom(id),
				BootID:                  uuidFrom(hashHex(name + "/boot/" + now.String())),
				KernelVersion:           "6.8.0-skiff-sim",
				OSImage:                 "Skiff Simulated Linux",
				ContainerRuntimeVersion: RuntimeVersion,
				KubeletVersion:          KubeletVersion,
				OperatingSystem:         "linux",
				Architecture:            "amd64",
			},
		},
	}
	return n
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func uuidFrom(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// healthyConditions are a kubelet's conditions on a healthy node. Conditions already True
// (Ready) or False (the pressures) keep their transition time; all get a fresh heartbeat.
func healthyConditions(old []corev1.NodeCondition, now metav1.Time) []corev1.NodeCondition {
	want := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	out := make([]corev1.NodeCondition, 0, len(want)+len(old))
	seen := map[corev1.NodeConditionType]bool{}
	for _, w := range want {
		w.LastHeartbeatTime = now
		w.LastTransitionTime = now
		for _, o := range old {
			if o.Type == w.Type && o.Status == w.Status {
				w.LastTransitionTime = o.LastTransitionTime
			}
		}
		seen[w.Type] = true
		out = append(out, w)
	}
	// Conditions others own (NetworkUnavailable, node-problem-detector's) stay as they are.
	for _, o := range old {
		if !seen[o.Type] {
			out = append(out, o)
		}
	}
	return out
}

// nodeHealthy reports whether the node shows what a live kubelet posts.
func nodeHealthy(n *corev1.Node) bool {
	var ready bool
	for _, c := range n.Status.Conditions {
		switch c.Type {
		case corev1.NodeReady:
			if c.Status != corev1.ConditionTrue {
				return false
			}
			ready = true
		case corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure:
			if c.Status != corev1.ConditionFalse {
				return false
			}
		}
	}
	return ready
}

func newLease(cfg Config, node string, uid types.UID, now time.Time) *coordinationv1.Lease {
	secs := int32(cfg.LeaseDuration / time.Second)
	if secs < 1 {
		secs = 1
	}
	holder := node
	renew := metav1.NewMicroTime(now)
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: NodeLeaseNamespace},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       &holder,
			LeaseDurationSeconds: &secs,
			RenewTime:            &renew,
		},
	}
	if uid != "" {
		l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: uid}}
	}
	return l
}

// nodeIP is a node's InternalIP.
func nodeIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}
