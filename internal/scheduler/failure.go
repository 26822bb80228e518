package scheduler

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/loopback"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/queue"
)

// noteLengthLimit is the longest event message the API accepts.
const noteLengthLimit = 1024

func truncateMessage(m string) string {
	if len(m) <= noteLengthLimit {
		return m
	}
	const suffix = " ..."
	return m[:noteLengthLimit-len(suffix)] + suffix
}

// fail records a failed attempt: a FailedScheduling event, the pod back in the queue
// (unless it was deleted or bound meanwhile), its nomination, and the PodScheduled=False
// condition with the same message.
func (s *Scheduler) fail(ctx context.Context, pi *queue.QueuedPodInfo, reason, msg string, nominating *framework.NominatingInfo, start time.Time) {
	pod := pi.Pod
	result := "error"
	if reason == v1.PodReasonUnschedulable {
		result = "unschedulable"
		s.unschedulable.Add(1)
	} else {
		s.errs.Add(1)
		s.log.Error("scheduling attempt failed", "pod", framework.PodKey(pod), "err", msg)
	}
	scheduleAttempts.WithLabelValues(result, s.name).Inc()
	attemptDuration.WithLabelValues(result, s.name).Observe(time.Since(start).Seconds())
	s.log.Debug("unable to schedule pod", "pod", framework.PodKey(pod), "reason", reason, "message", msg)
	s.recorder.Event(pod, v1.EventTypeWarning, "FailedScheduling", truncateMessage(msg))

	cur, err := s.podLister.Pods(pod.Namespace).Get(pod.Name)
	if err != nil || cur.UID != pod.UID || cur.Spec.NodeName != "" {
		s.queue.Done(pod)
		return
	}
	pi.PodInfo = framework.NewPodInfo(cur)
	pi.Unschedulable = reason == v1.PodReasonUnschedulable
	if err := s.queue.AddUnschedulableIfNotPresent(pi); err != nil {
		s.log.Debug("requeue pod", "pod", framework.PodKey(pod), "err", err)
	}
	if nominating != nil && nominating.NominatingMode == framework.ModeOverride {
		if nominating.NominatedNodeName == "" {
			s.queue.Nominator().DeleteNominatedPodIfExists(cur)
		} else {
			s.queue.Nominator().AddNominatedPod(framework.NewPodInfo(cur), nominating)
		}
	}
	cond := v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: reason, Message: msg}
	s.updateStatus(ctx, cur, cond, nominating)
}

// applyCondition sets the PodScheduled condition and nominated node on status and
// reports whether anything changed. The transition time moves only when the condition's
// status does.
func applyCondition(st *v1.PodStatus, cond v1.PodCondition, nominating *framework.NominatingInfo) bool {
	changed := false
	if nominating != nil && nominating.NominatingMode == framework.ModeOverride && st.NominatedNodeName != nominating.NominatedNodeName {
		st.NominatedNodeName = nominating.NominatedNodeName
		changed = true
	}
	now := metav1.Now()
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != cond.Type {
			continue
		}
		if c.Status == cond.Status && c.Reason == cond.Reason && c.Message == cond.Message {
			return changed
		}
		cond.LastTransitionTime = c.LastTransitionTime
		if c.Status != cond.Status || cond.LastTransitionTime.IsZero() {
			cond.LastTransitionTime = now
		}
		*c = cond
		return true
	}
	cond.LastTransitionTime = now
	st.Conditions = append(st.Conditions, cond)
	return true
}

// updateStatus writes the condition in the background (retrying on conflicts), so a
// slow API server does not slow scheduling. In-process, the write takes the loopback's
// background lane: it reports, nobody waits for it.
func (s *Scheduler) updateStatus(ctx context.Context, pod *v1.Pod, cond v1.PodCondition, nominating *framework.NominatingInfo) {
	probe := pod.Status.DeepCopy()
	if !applyCondition(probe, cond, nominating) {
		return
	}
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		select {
		case s.statusSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-s.statusSem }()
		cur := pod
		for range 5 {
			cp := cur.DeepCopy()
			if !applyCondition(&cp.Status, cond, nominating) {
				return
			}
			_, err := s.client.CoreV1().Pods(cp.Namespace).UpdateStatus(loopback.Background(ctx), cp, metav1.UpdateOptions{})
			switch {
			case err == nil, apierrors.IsNotFound(err):
				return
			case !apierrors.IsConflict(err):
				if ctx.Err() == nil {
					s.log.Warn("update pod status", "pod", framework.PodKey(pod), "err", err)
				}
				return
			}
			got, err := s.client.CoreV1().Pods(cp.Namespace).Get(ctx, cp.Name, metav1.GetOptions{})
			if err != nil || got.UID != pod.UID || got.Spec.NodeName != "" {
				return
			}
			cur = got
		}
	}()
}
