package replicaset

import (
	"math"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// PodDeletionCostAnnotation lets users say which pods of a ReplicaSet to remove first on
// scale-down (lower cost first).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// phaseOrder ranks pod phases: earlier phases are cheaper to delete.
var phaseOrder = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// rankedPods orders pods so that the ones to delete first come first, following the order
// Kubernetes uses:
//  1. not yet scheduled before scheduled;
//  2. Pending before Unknown before Running;
//  3. not ready before ready;
//  4. lower pod-deletion-cost before higher;
//  5. pods sharing their node with more pods of the same workload before the others;
//  6. ready for a shorter time before longer (compared on a logarithmic scale, so pods that
//     became ready at about the same time count as equal);
//  7. more container restarts before fewer;
//  8. newer before older (on the same logarithmic scale).
type rankedPods struct {
	pods []*corev1.Pod
	// rank is, per pod, how many related active pods share its node.
	rank []int
	now  time.Time
}

func (s rankedPods) Len() int { return len(s.pods) }
func (s rankedPods) Swap(i, j int) {
	s.pods[i], s.pods[j] = s.pods[j], s.pods[i]
	s.rank[i], s.rank[j] = s.rank[j], s.rank[i]
}

func (s rankedPods) Less(i, j int) bool {
	a, b := s.pods[i], s.pods[j]
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if pa, pb := phaseRank(a), phaseRank(b); pa != pb {
		return pa < pb
	}
	ra, rb := controllerutil.IsPodReady(a), controllerutil.IsPodReady(b)
	if ra != rb {
		return !ra
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if s.rank[i] != s.rank[j] {
		return s.rank[i] > s.rank[j]
	}
	if ra && rb {
		ta, tb := readySince(a), readySince(b)
		if !ta.Equal(tb) {
			if d := logRankDiff(ta, tb, s.now); d != 0 {
				return d < 0
			}
		}
	}
	if ma, mb := maxRestarts(a), maxRestarts(b); ma != mb {
		return ma > mb
	}
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		if d := logRankDiff(ta, tb, s.now); d != 0 {
			return d < 0
		}
		return ta.After(tb)
	}
	return false
}

func phaseRank(p *corev1.Pod) int {
	if r, ok := phaseOrder[p.Status.Phase]; ok {
		return r
	}
	return -1 // an empty phase is the least far along
}

func deletionCost(p *corev1.Pod) int64 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return n
}

// readySince is when the pod last became ready (zero if unknown).
func readySince(p *corev1.Pod) time.Time {
	if c := controllerutil.PodReadyCondition(p); c != nil {
		return c.LastTransitionTime.Time
	}
	return time.Time{}
}

func maxRestarts(p *corev1.Pod) int32 {
	var m int32
	for _, cs := range p.Status.ContainerStatuses {
		m = max(m, cs.RestartCount)
	}
	return m
}

// logBucket is the order of magnitude (base 2, in seconds) of how long ago t was; a zero time
// is youngest of all.
func logBucket(t, now time.Time) int {
	if t.IsZero() {
		return -2
	}
	d := now.Sub(t)
	if d < time.Second {
		return -1
	}
	return int(math.Log2(d.Seconds()))
}

// logRankDiff is negative when t1 is in a younger bucket than t2, positive when older, 0 when
// both are in the same bucket.
func logRankDiff(t1, t2, now time.Time) int {
	return logBucket(t1, now) - logBucket(t2, now)
}

// podsToDelete picks the diff pods to delete first. related are the active pods of the whole
// workload (a Deployment's ReplicaSets), used to prefer pods doubled up on a node.
func podsToDelete(pods, related []*corev1.Pod, diff int, now time.Time) []*corev1.Pod {
	if diff >= len(pods) {
		return pods
	}
	onNode := map[string]int{}
	for _, p := range related {
		if controllerutil.IsPodActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	s := rankedPods{pods: append([]*corev1.Pod(nil), pods...), rank: make([]int, len(pods)), now: now}
	for i, p := range s.pods {
		s.rank[i] = onNode[p.Spec.NodeName]
	}
	sort.Stable(s)
	return s.pods[:diff]
}
