package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Node status pacing: computed every 10 s, written when it changed or at least every
// minute (the Lease is the liveness signal; this is the heartbeat of the conditions).
const (
	nodeStatusPeriod    = 10 * time.Second
	nodeStatusHeartbeat = time.Minute
	podCIDRWait         = 5 * time.Second
)

// Eviction-like reserves subtracted from capacity for allocatable, and the pressure
// thresholds (the kubelet's hard eviction defaults).
const (
	memoryReserve       = 100 << 20
	diskPressurePercent = 10 // available below 10% of the data dir's filesystem
	pidPressurePercent  = 90 // processes above 90% of pid_max
	maxNodeImages       = 50
)

// machineFacts reads what the node's capacity is made of.
func (a *Agent) machineFacts() error {
	mem, err := memTotal()
	if err != nil {
		return fmt.Errorf("read /proc/meminfo: %w", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(a.cfg.DataDir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", a.cfg.DataDir, err)
	}
	disk := int64(st.Blocks) * int64(st.Bsize)
	a.memoryCapacity = mem
	a.capacity = corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(a.cfg.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(disk, resource.BinarySI),
		"hugepages-1Gi":                 *resource.NewQuantity(0, resource.DecimalSI),
		"hugepages-2Mi":                 *resource.NewQuantity(0, resource.DecimalSI),
	}
	a.allocatable = corev1.ResourceList{}
	for k, v := range a.capacity {
		a.allocatable[k] = v.DeepCopy()
	}
	a.allocatable[corev1.ResourceMemory] = *resource.NewQuantity(max(mem-memoryReserve, 0), resource.BinarySI)
	a.allocatable[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(disk*(100-diskPressurePercent)/100, resource.BinarySI)
	return nil
}

// memTotal and memAvailable read /proc/meminfo (bytes).
func memTotal() (int64, error)     { return meminfo("MemTotal") }
func memAvailable() (int64, error) { return meminfo("MemAvailable") }

func meminfo(field string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == field+":" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return n * 1024, nil
		}
	}
	return 0, fmt.Errorf("%s not in /proc/meminfo", field)
}

// nodeLabels are the labels the agent sets on its Node.
func (a *Agent) nodeLabels() map[string]string {
	l := map[string]string{
		corev1.LabelHostname:      a.cfg.NodeName,
		corev1.LabelOSStable:      goruntime.GOOS,
		corev1.LabelArchStable:    goruntime.GOARCH,
		"beta.kubernetes.io/os":   goruntime.GOOS,
		"beta.kubernetes.io/arch": goruntime.GOARCH,
	}
	for k, v := range a.cfg.Labels {
		l[k] = v
	}
	return l
}

// registerNode creates the Node, or brings an existing one's labels up to date.
func (a *Agent) registerNode(ctx context.Context) error {
	nodes := a.client.CoreV1().Nodes()
	for {
		n, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			n = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: a.nodeLabels()}}
			if a.cfg.PodCIDR != "" {
				n.Spec.PodCIDR, n.Spec.PodCIDRs = a.cfg.PodCIDR, []string{a.cfg.PodCIDR}
			}
			if _, err = nodes.Create(ctx, n, metav1.CreateOptions{}); err == nil {
				a.log.Info("node registered")
				break
			}
		} else if err == nil {
			want := n.DeepCopy()
			if want.Labels == nil {
				want.Labels = map[string]string{}
			}
			for k, v := range a.nodeLabels() {
				want.Labels[k] = v
			}
			if want.Spec.PodCIDR == "" && a.cfg.PodCIDR != "" {
				want.Spec.PodCIDR, want.Spec.PodCIDRs = a.cfg.PodCIDR, []string{a.cfg.PodCIDR}
			}
			if equality.Semantic.DeepEqual(n, want) {
				break
			}
			if _, err = nodes.Update(ctx, want, metav1.UpdateOptions{}); err == nil {
				break
			}
		}
		if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
			continue
		}
		a.log.Warn("registering node; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return a.updateNodeStatus(ctx, true)
}

// ensurePodCIDR returns the node's pod CIDR: the configured one, the one the control
// plane set, or after a short wait the default, which the agent then records on the Node.
func (a *Agent) ensurePodCIDR(ctx context.Context) (string, error) {
	nodes := a.client.CoreV1().Nodes()
	deadline := time.Now().Add(podCIDRWait)
	for {
		n, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err == nil && n.Spec.PodCIDR != "" {
			if a.cfg.PodCIDR != "" && n.Spec.PodCIDR != a.cfg.PodCIDR {
				a.log.Warn("the node's podCIDR differs from the configured one; using the configured one",
					"node", n.Spec.PodCIDR, "configured", a.cfg.PodCIDR)
				return a.cfg.PodCIDR, nil
			}
			return n.Spec.PodCIDR, nil
		}
		if a.cfg.PodCIDR != "" || time.Now().After(deadline) {
			cidr := a.cfg.PodCIDR
			if cidr == "" {
				cidr = DefaultPodCIDR
			}
			if _, err := netip.ParsePrefix(cidr); err != nil {
				return "", fmt.Errorf("pod CIDR %q: %w", cidr, err)
			}
			patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}}})
			if _, err := nodes.Patch(ctx, a.cfg.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				a.log.Warn("recording the pod CIDR on the node", "err", err)
			} else if a.cfg.PodCIDR == "" {
				a.log.Info("no pod CIDR assigned; using the default", "podCIDR", cidr)
			}
			return cidr, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// nodeStatusLoop refreshes the Node's status.
func (a *Agent) nodeStatusLoop(ctx context.Context) {
	t := time.NewTicker(nodeStatusPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.nodeChanged:
		}
		if err := a.updateNodeStatus(ctx, false); err != nil && ctx.Err() == nil {
			a.log.Warn("updating node status", "err", err)
		}
	}
}

// nodeFacts are the live inputs of the node's status.
type nodeFacts struct {
	RuntimeReady                 bool
	RuntimeMessage               string
	MemoryPressure, DiskPressure bool
	PIDPressure                  bool
	Images                       []corev1.ContainerImage
}

func (a *Agent) gatherNodeFacts(ctx context.Context) nodeFacts {
	var f nodeFacts
	if a.cri != nil {
		bad, err := a.cri.NotReady(ctx)
		switch {
		case err != nil:
			f.RuntimeMessage = "container runtime is down: " + grpcMessage(err)
		case len(bad) > 0:
			f.RuntimeMessage = "container runtime not ready: " + strings.Join(bad, "; ")
		default:
			f.RuntimeReady = true
		}
	}
	if avail, err := memAvailable(); err == nil && avail < memoryReserve {
		f.MemoryPressure = true
	}
	var st syscall.Statfs_t
	if syscall.Statfs(a.cfg.DataDir, &st) == nil && st.Blocks > 0 && st.Bavail*100/st.Blocks < diskPressurePercent {
		f.DiskPressure = true
	}
	if pidMax, err := readInt("/proc/sys/kernel/pid_max"); err == nil && pidMax > 0 {
		if n := countProcs(); n*100/pidMax > pidPressurePercent {
			f.PIDPressure = true
		}
	}
	if a.img != nil {
		if list, err := a.img.ListImages(ctx, &runtimeapi.ListImagesRequest{}); err == nil {
			f.Images = nodeImages(list.Images)
		}
	}
	return f
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func countProcs() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

// nodeImages lists the node's images for status.images, largest first.
func nodeImages(imgs []*runtimeapi.Image) []corev1.ContainerImage {
	var out []corev1.ContainerImage
	for _, img := range imgs {
		names := append(append([]string{}, img.RepoDigests...), img.RepoTags...)
		if len(names) == 0 {
			continue
		}
		out = append(out, corev1.ContainerImage{Names: names, SizeBytes: int64(img.Size)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].SizeBytes > out[j].SizeBytes })
	if len(out) > maxNodeImages {
		out = out[:maxNodeImages]
	}
	return out
}

// updateNodeStatus writes the node's status when it changed (or force, or the heartbeat
// is due).
func (a *Agent) updateNodeStatus(ctx context.Context, force bool) error {
	a.nodeMu.Lock()
	defer a.nodeMu.Unlock()
	facts := a.gatherNodeFacts(ctx)
	for attempt := 0; attempt < 3; attempt++ {
		n, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// Deleted under us: register again, as the kubelet does.
			a.log.Warn("node object is gone; registering again")
			a.nodeMu.Unlock()
			err := a.registerNode(ctx)
			a.nodeMu.Lock()
			return err
		}
		if err != nil {
			return err
		}
		now := time.Now()
		status := a.nodeStatus(n, facts, now)
		if !force && !nodeStatusChanged(n.Status, status) && heartbeat(n).Add(nodeStatusHeartbeat).After(now) {
			return nil
		}
		upd := n.DeepCopy()
		upd.Status = status
		_, err = a.client.CoreV1().Nodes().UpdateStatus(ctx, upd, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		return err
	}
	return nil
}

func heartbeat(n *corev1.Node) time.Time {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.LastHeartbeatTime.Time
		}
	}
	return time.Time{}
}

// nodeStatusChanged compares two statuses, heartbeats aside.
func nodeStatusChanged(old, cur corev1.NodeStatus) bool {
	strip := func(s corev1.NodeStatus) corev1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	return !equality.Semantic.DeepEqual(strip(old), strip(cur))
}

// nodeStatus computes the node's status from facts, keeping transition times of
// unchanged conditions and the conditions others own.
func (a *Agent) nodeStatus(n *corev1.Node, f nodeFacts, now time.Time) corev1.NodeStatus {
	st := *n.Status.DeepCopy()
	st.Capacity = a.capacity.DeepCopy()
	st.Allocatable = a.allocatable.DeepCopy()
	st.Phase = ""
	st.Addresses = nil
	for _, ip := range a.nodeIPs {
		st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: a.cfg.NodeName})
	st.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(a.cfg.StreamingPort)}}
	st.NodeInfo = a.nodeInfo()
	st.Images = f.Images

	ts := metav1.NewTime(now.Truncate(time.Second))
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: ts, LastTransitionTime: ts}
		for _, o := range n.Status.Conditions {
			if o.Type == t && o.Status == s {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	boolStatus := func(b bool) corev1.ConditionStatus {
		if b {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	var conds []corev1.NodeCondition
	if f.MemoryPressure {
		conds = append(conds, cond(corev1.NodeMemoryPressure, corev1.ConditionTrue, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"))
	} else {
		conds = append(conds, cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"))
	}
	if f.DiskPressure {
		conds = append(conds, cond(corev1.NodeDiskPressure, corev1.ConditionTrue, "KubeletHasDiskPressure", "kubelet has disk pressure"))
	} else {
		conds = append(conds, cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"))
	}
	if f.PIDPressure {
		conds = append(conds, cond(corev1.NodePIDPressure, corev1.ConditionTrue, "KubeletHasInsufficientPID", "kubelet has insufficient PID available"))
	} else {
		conds = append(conds, cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"))
	}
	if f.RuntimeReady {
		conds = append(conds, cond(corev1.NodeReady, boolStatus(true), "KubeletReady", "kubelet is posting ready status"))
	} else {
		conds = append(conds, cond(corev1.NodeReady, corev1.ConditionFalse, "KubeletNotReady", f.RuntimeMessage))
	}
	owned := map[corev1.NodeConditionType]bool{corev1.NodeReady: true, corev1.NodeMemoryPressure: true, corev1.NodeDiskPressure: true, corev1.NodePIDPressure: true}
	for _, o := range n.Status.Conditions {
		if !owned[o.Type] {
			conds = append(conds, o)
		}
	}
	st.Conditions = conds
	return st
}

func (a *Agent) nodeInfo() corev1.NodeSystemInfo {
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	return corev1.NodeSystemInfo{
		MachineID:               strings.TrimSpace(readString("/etc/machine-id")),
		SystemUUID:              strings.TrimSpace(readString("/sys/class/dmi/id/product_uuid")),
		BootID:                  strings.TrimSpace(readString("/proc/sys/kernel/random/boot_id")),
		KernelVersion:           utsString(uts.Release[:]),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: a.runtimeName + "://" + a.runtimeVersion,
		KubeletVersion:          KubeletVersion,
		OperatingSystem:         goruntime.GOOS,
		Architecture:            goruntime.GOARCH,
	}
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func utsString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// osImage is PRETTY_NAME from /etc/os-release.
func osImage() string {
	for _, line := range strings.Split(readString("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return strings.Trim(v, `"'`)
		}
	}
	return "Linux"
}
