package queue

import (
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// nominator remembers which pods preemption nominated to which node. Filters read it
// concurrently, so it has its own lock.
type nominator struct {
	mu        sync.RWMutex
	byNode    map[string][]*framework.PodInfo
	podToNode map[string]string // pod UID -> node
	// count is len(podToNode), read without the lock: almost always nothing is nominated
	// anywhere. It has a cache line of its own, away from the lock's writes.
	_     [64]byte
	count atomic.Int64
	_     [56]byte
}

// NumNominatedPods is the number of nominated pods.
func (n *nominator) NumNominatedPods() int { return int(n.count.Load()) }

func newNominator() *nominator {
	return &nominator{byNode: map[string][]*framework.PodInfo{}, podToNode: map[string]string{}}
}

var _ framework.PodNominator = (*nominator)(nil)

// AddNominatedPod records a nomination: the one in nominatingInfo when it overrides,
// otherwise the pod's status.nominatedNodeName.
func (n *nominator) AddNominatedPod(pi *framework.PodInfo, ni *framework.NominatingInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addLocked(pi, ni)
}

func (n *nominator) addLocked(pi *framework.PodInfo, ni *framework.NominatingInfo) {
	n.deleteLocked(pi.Pod)
	node := pi.Pod.Status.NominatedNodeName
	if ni != nil && ni.NominatingMode == framework.ModeOverride {
		node = ni.NominatedNodeName
	}
	if node == "" {
		return
	}
	n.podToNode[string(pi.Pod.UID)] = node
	n.byNode[node] = append(n.byNode[node], pi)
	n.count.Store(int64(len(n.podToNode)))
}

func (n *nominator) deleteLocked(pod *v1.Pod) {
	uid := string(pod.UID)
	node, ok := n.podToNode[uid]
	if !ok {
		return
	}
	list := n.byNode[node]
	for i, pi := range list {
		if string(pi.Pod.UID) == uid {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(n.byNode, node)
	} else {
		n.byNode[node] = list
	}
	delete(n.podToNode, uid)
	n.count.Store(int64(len(n.podToNode)))
}

// DeleteNominatedPodIfExists forgets a pod's nomination.
func (n *nominator) DeleteNominatedPodIfExists(pod *v1.Pod) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.deleteLocked(pod)
}

// UpdateNominatedPod keeps a nomination across a pod update. An update that clears
// status.nominatedNodeName keeps the nomination the scheduler made unless the pod was
// nominated elsewhere since, as Kubernetes does (the status update may lag).
func (n *nominator) UpdateNominatedPod(oldPod *v1.Pod, pi *framework.PodInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ni *framework.NominatingInfo
	if oldPod.Status.NominatedNodeName == "" && pi.Pod.Status.NominatedNodeName == "" {
		if node, ok := n.podToNode[string(oldPod.UID)]; ok {
			ni = &framework.NominatingInfo{NominatedNodeName: node, NominatingMode: framework.ModeOverride}
		}
	}
	n.addLocked(pi, ni)
}

// NominatedPodsForNode returns the pods nominated to a node.
func (n *nominator) NominatedPodsForNode(node string) []*framework.PodInfo {
	if n.count.Load() == 0 {
		return nil
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	list := n.byNode[node]
	if len(list) == 0 {
		return nil
	}
	return append([]*framework.PodInfo(nil), list...)
}
