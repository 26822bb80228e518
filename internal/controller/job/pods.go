package job

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Pod helpers of the Job controller: finalizers, completion indexes, failure policy, backoff.

func hasFinalizer(p *corev1.Pod) bool {
	return slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer)
}

func isTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func isIndexed(job *batchv1.Job) bool {
	return job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
}

func isSuspended(job *batchv1.Job) bool {
	return job.Spec.Suspend != nil && *job.Spec.Suspend
}

// podIndex returns the completion index of an indexed job's pod (annotation first, then the
// label), or -1.
func podIndex(p *corev1.Pod) int {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		v, ok = p.Labels[batchv1.JobCompletionIndexAnnotation]
	}
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// podFailureCount reads the failure-count annotation of an indexed job's pod (0 if unset).
func podFailureCount(p *corev1.Pod) int32 {
	n, err := strconv.Atoi(p.Annotations[batchv1.JobIndexFailureCountAnnotation])
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}

// parseIndexes reads a completedIndexes string ("1,3-5,7") into a set; indexes at or above
// limit are dropped.
func parseIndexes(s string, limit int) map[int]bool {
	out := map[int]bool{}
	if s == "" {
		return out
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := a; i <= b && i < limit; i++ {
			out[i] = true
		}
	}
	return out
}

// formatIndexes writes a set of indexes in the compressed form of status.completedIndexes.
func formatIndexes(set map[int]bool) string {
	idx := make([]int, 0, len(set))
	for i, ok := range set {
		if ok {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	var b strings.Builder
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j == i {
			fmt.Fprintf(&b, "%d", idx[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", idx[i], idx[j])
		}
		i = j + 1
	}
	return b.String()
}

// policyResult is what a pod failure policy says about a failed pod.
type policyResult struct {
	action  batchv1.PodFailurePolicyAction // "" when no rule matched
	message string
}

// matchFailurePolicy applies the first matching rule of the job's pod failure policy to a
// failed pod.
func matchFailurePolicy(policy *batchv1.PodFailurePolicy, p *corev1.Pod) policyResult {
	if policy == nil {
		return policyResult{}
	}
	for i, rule := range policy.Rules {
		if oe := rule.OnExitCodes; oe != nil {
			statuses := append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
			for _, cs := range statuses {
				if oe.ContainerName != nil && *oe.ContainerName != cs.Name {
					continue
				}
				term := cs.State.Terminated
				if term == nil {
					continue
				}
				code := term.ExitCode
				in := slices.Contains(oe.Values, code)
				if (oe.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in) ||
					(oe.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in && code != 0) {
					return policyResult{action: rule.Action, message: fmt.Sprintf(
						"Container %s for pod %s/%s failed with exit code %d matching %s rule at index %d",
						cs.Name, p.Namespace, p.Name, code, rule.Action, i)}
				}
			}
			continue
		}
		for _, pc := range rule.OnPodConditions {
			for _, c := range p.Status.Conditions {
				if c.Type == pc.Type && c.Status == pc.Status {
					return policyResult{action: rule.Action, message: fmt.Sprintf(
						"Pod %s/%s has condition %s matching %s rule at index %d", p.Namespace, p.Name, c.Type, rule.Action, i)}
				}
			}
		}
	}
	return policyResult{}
}

// restartCount sums the container restarts of a pod (OnFailure jobs count them as failures).
func restartCount(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.InitContainerStatuses {
		n += cs.RestartCount
	}
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	return n
}

// finishedAt is when a terminal pod ended: its last container's finish, else its Ready
// condition's last transition, else its creation.
func finishedAt(p *corev1.Pod) time.Time {
	var t time.Time
	for _, cs := range p.Status.ContainerStatuses {
		if term := cs.State.Terminated; term != nil && term.FinishedAt.Time.After(t) {
			t = term.FinishedAt.Time
		}
	}
	if !t.IsZero() {
		return t
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	if p.DeletionTimestamp != nil {
		return p.DeletionTimestamp.Time
	}
	return p.CreationTimestamp.Time
}

// backoffDelay is how long after the last failure a replacement pod waits: base doubled for
// each failure after the first, capped at max.
func backoffDelay(failures int32, base, max time.Duration) time.Duration {
	if failures <= 0 || base <= 0 {
		return 0
	}
	d := base
	for i := int32(1); i < failures; i++ {
		d *= 2
		if d >= max {
			return max
		}
	}
	return min(d, max)
}

// podRank orders pods to delete first: unscheduled, then pending, then not ready, then newest.
func podRank(p *corev1.Pod) int {
	switch {
	case p.Spec.NodeName == "":
		return 0
	case p.Status.Phase == corev1.PodPending:
		return 1
	case !isReady(p):
		return 2
	}
	return 3
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func sortForDeletion(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		ri, rj := podRank(pods[i]), podRank(pods[j])
		if ri != rj {
			return ri < rj
		}
		return pods[i].CreationTimestamp.After(pods[j].CreationTimestamp.Time)
	})
}

// condition helpers

func findCondition(conds []batchv1.JobCondition, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func conditionTrue(conds []batchv1.JobCondition, t batchv1.JobConditionType) bool {
	c := findCondition(conds, t)
	return c != nil && c.Status == corev1.ConditionTrue
}

// finishedCondition returns the Complete or Failed condition that is True, or nil.
func finishedCondition(job *batchv1.Job) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// setCondition sets a condition, keeping lastTransitionTime when the status does not change;
// it reports whether anything changed.
func setCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) bool {
	if c := findCondition(st.Conditions, t); c != nil {
		if c.Status == status && c.Reason == reason && c.Message == message {
			return false
		}
		if c.Status != status {
			c.LastTransitionTime.Time = now
		}
		c.Status, c.Reason, c.Message = status, reason, message
		c.LastProbeTime.Time = now
		return true
	}
	st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: t, Status: status, Reason: reason, Message: message})
	c := &st.Conditions[len(st.Conditions)-1]
	c.LastProbeTime.Time, c.LastTransitionTime.Time = now, now
	return true
}
