package job

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// podView is what one sync found among a job's pods.
type podView struct {
	active      []*corev1.Pod
	terminating []*corev1.Pod
	newSucc     []*corev1.Pod // finished, tracked, not yet in uncountedTerminatedPods
	newFail     []*corev1.Pod
	release     []*corev1.Pod // finalizer to remove without counting (ignored failures, our deletions)
	failJob     *policyResult
	restarts    int32
	lastFailure time.Time
	byUID       map[types.UID]*corev1.Pod
	// indexFailures is, per completion index, how many of its pods failed (from the
	// failure-count annotation of the latest); failIndex holds indexes a FailIndex rule hit.
	indexFailures map[int]int32
	failIndex     map[int]bool
	tracked       map[types.UID]bool // pods whose finalizer is (as far as we know) still on
}

func (c *Controller) classify(job *batchv1.Job, pods []*corev1.Pod, unc *batchv1.UncountedTerminatedPods, failing bool) *podView {
	c.mu.Lock()
	defer c.mu.Unlock()
	counted := map[types.UID]bool{}
	for _, u := range unc.Succeeded {
		counted[u] = true
	}
	for _, u := range unc.Failed {
		counted[u] = true
	}
	suspended := isSuspended(job)
	countTerminating := job.Spec.PodReplacementPolicy == nil || *job.Spec.PodReplacementPolicy == batchv1.TerminatingOrFailed
	v := &podView{byUID: map[types.UID]*corev1.Pod{}, tracked: map[types.UID]bool{},
		indexFailures: map[int]int32{}, failIndex: map[int]bool{}}
	for _, p := range pods {
		v.byUID[p.UID] = p
		_, removed := c.finalizerRemoved[p.UID]
		tracked := hasFinalizer(p) && !removed
		v.tracked[p.UID] = tracked
		fresh := tracked && !counted[p.UID]
		_, byUs := c.deletedByUs[p.UID]
		ours := byUs || (p.DeletionTimestamp != nil && suspended)
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			if fresh {
				v.newSucc = append(v.newSucc, p)
			}
		case p.Status.Phase == corev1.PodFailed:
			if !ours {
				if t := finishedAt(p); t.After(v.lastFailure) {
					v.lastFailure = t
				}
				if i := podIndex(p); i >= 0 {
					v.indexFailures[i] = max(v.indexFailures[i], podFailureCount(p)+1)
				}
			}
			if !fresh {
				continue
			}
			if ours && !failing {
				v.release = append(v.release, p)
				continue
			}
			r := matchFailurePolicy(job.Spec.PodFailurePolicy, p)
			switch r.action {
			case batchv1.PodFailurePolicyActionIgnore:
				v.release = append(v.release, p)
			case batchv1.PodFailurePolicyActionFailJob:
				v.newFail = append(v.newFail, p)
				if v.failJob == nil {
					v.failJob = &r
				}
			case batchv1.PodFailurePolicyActionFailIndex:
				v.newFail = append(v.newFail, p)
				if i := podIndex(p); i >= 0 {
					v.failIndex[i] = true
				}
			default:
				v.newFail = append(v.newFail, p)
			}
		case p.DeletionTimestamp != nil:
			v.terminating = append(v.terminating, p)
			switch {
			case !fresh:
			case ours && !failing:
				// Stopped by us (suspension, surplus, success): nothing to count, and a
				// pod that never reaches a terminal phase must still be able to go.
				v.release = append(v.release, p)
			case failing || (countTerminating && job.Spec.PodFailurePolicy == nil):
				v.newFail = append(v.newFail, p)
			}
		default:
			v.active = append(v.active, p)
			v.restarts += restartCount(p)
		}
	}
	return v
}

// interimCondition is the FailureTarget or SuccessCriteriaMet condition a job carries while
// its last pods terminate.
func interimCondition(job *batchv1.Job) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if (c.Type == batchv1.JobFailureTarget || c.Type == batchv1.JobSuccessCriteriaMet) && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func (c *Controller) syncJob(ctx context.Context, key string, job *batchv1.Job, pods []*corev1.Pod) error {
	now := c.cfg.Now()
	st := job.Status.DeepCopy()
	if st.UncountedTerminatedPods == nil {
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	unc := st.UncountedTerminatedPods
	interim := interimCondition(job)
	failing := interim != nil && interim.Type == batchv1.JobFailureTarget
	v := c.classify(job, pods, unc, failing)
	// Condition events are recorded once the status carrying the condition is written.
	type event struct{ typ, reason, msg string }
	var events []event
	emit := func(j *batchv1.Job) {
		for _, e := range events {
			c.recorder.Event(j, e.typ, e.reason, e.msg)
		}
		events = nil
	}
	suspended := isSuspended(job)
	indexed := isIndexed(job)
	completions := job.Spec.Completions

	for _, p := range v.newSucc {
		unc.Succeeded = append(unc.Succeeded, p.UID)
	}
	for _, p := range v.newFail {
		unc.Failed = append(unc.Failed, p.UID)
	}
	succeeded := st.Succeeded + int32(len(unc.Succeeded))
	failed := st.Failed + int32(len(unc.Failed))
	var succIdx map[int]bool
	if indexed {
		succIdx = parseIndexes(st.CompletedIndexes, int(deref(completions, 0)))
		for _, u := range unc.Succeeded {
			if p := v.byUID[u]; p != nil {
				if i := podIndex(p); i >= 0 && i < int(deref(completions, 0)) {
					succIdx[i] = true
				}
			}
		}
	}

	// Indexes that used up their backoffLimitPerIndex (or hit a FailIndex rule).
	var failedIdx map[int]bool
	perIndex := indexed && job.Spec.BackoffLimitPerIndex != nil
	if perIndex {
		failedIdx = parseIndexes(deref(st.FailedIndexes, ""), int(deref(completions, 0)))
		for i, n := range v.indexFailures {
			if n > *job.Spec.BackoffLimitPerIndex && i < int(deref(completions, 0)) && !succIdx[i] {
				failedIdx[i] = true
			}
		}
		for i := range v.failIndex {
			if i < int(deref(completions, 0)) && !succIdx[i] {
				failedIdx[i] = true
			}
		}
		st.FailedIndexes = new(formatIndexes(failedIdx))
	}

	// Has the job reached its end?
	backoffLimit := deref(job.Spec.BackoffLimit, 6)
	var requeue time.Duration
	if interim == nil {
		var t batchv1.JobConditionType
		var reason, msg string
		deadlineAt := time.Time{}
		if ads := job.Spec.ActiveDeadlineSeconds; ads != nil && st.StartTime != nil && !suspended {
			deadlineAt = st.StartTime.Add(time.Duration(*ads) * time.Second)
		}
		switch {
		case v.failJob != nil:
			t, reason, msg = batchv1.JobFailureTarget, batchv1.JobReasonPodFailurePolicy, v.failJob.message
		case failed > backoffLimit:
			t, reason, msg = batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded, msgBackoffLimit
		case job.Spec.Template.Spec.RestartPolicy == corev1.RestartPolicyOnFailure && v.restarts > 0 &&
			(backoffLimit == 0 || v.restarts >= backoffLimit):
			t, reason, msg = batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded, msgBackoffLimit
		case perIndex && job.Spec.MaxFailedIndexes != nil && int32(len(failedIdx)) > *job.Spec.MaxFailedIndexes:
			t, reason, msg = batchv1.JobFailureTarget, batchv1.JobReasonMaxFailedIndexesExceeded, msgMaxFailedIndexes
		case !deadlineAt.IsZero() && !now.Before(deadlineAt):
			t, reason, msg = batchv1.JobFailureTarget, batchv1.JobReasonDeadlineExceeded, msgDeadline
		case successPolicyMatch(job, succIdx) >= 0:
			t, reason, msg = batchv1.JobSuccessCriteriaMet, batchv1.JobReasonSuccessPolicy,
				fmt.Sprintf("Matched rules at index %d", successPolicyMatch(job, succIdx))
		case isComplete(job, succeeded, succIdx, len(v.active)):
			t, reason, msg = batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, msgCompletions
		case perIndex && len(failedIdx) > 0 && len(succIdx)+len(failedIdx) >= int(deref(completions, 0)):
			t, reason, msg = batchv1.JobFailureTarget, batchv1.JobReasonFailedIndexes, msgFailedIndexes
		default:
			if !deadlineAt.IsZero() {
				requeue = deadlineAt.Sub(now)
			}
		}
		if t != "" {
			setCondition(st, t, corev1.ConditionTrue, reason, msg, now)
			interim = findCondition(st.Conditions, t)
			failing = t == batchv1.JobFailureTarget
			if t == batchv1.JobFailureTarget && reason == batchv1.JobReasonPodFailurePolicy {
				events = append(events, event{corev1.EventTypeWarning, batchv1.JobReasonPodFailurePolicy, msg})
			}
		}
	}

	// Pods: delete them all when ending or suspended, else keep the right number running.
	var created int
	var deleted []*corev1.Pod
	var manageErr error
	switch {
	case interim != nil:
		deleted, manageErr = c.deletePods(ctx, key, job, v.active)
	case suspended:
		deleted, manageErr = c.deletePods(ctx, key, job, v.active)
		if setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, reasonJobSuspend, msgJobSuspended, now) {
			events = append(events, event{corev1.EventTypeNormal, reasonSuspended, msgJobSuspended})
		}
	default:
		if conditionTrue(st.Conditions, batchv1.JobSuspended) {
			setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, reasonJobResumed, msgJobResumed, now)
			events = append(events, event{corev1.EventTypeNormal, reasonResumed, msgJobResumed})
			st.StartTime = &metav1.Time{Time: now}
			if ads := job.Spec.ActiveDeadlineSeconds; ads != nil {
				requeue = time.Duration(*ads) * time.Second
			}
		}
		if st.StartTime == nil {
			st.StartTime = &metav1.Time{Time: now}
			if ads := job.Spec.ActiveDeadlineSeconds; ads != nil {
				requeue = time.Duration(*ads) * time.Second
			}
		}
		if c.exp.Satisfied(key) {
			var wait time.Duration
			if indexed {
				created, deleted, wait, manageErr = c.manageIndexed(ctx, key, job, v, succIdx, failedIdx, failed, now)
			} else {
				created, deleted, wait, manageErr = c.manageNonIndexed(ctx, key, job, v, succeeded, failed, now)
			}
			if wait > 0 && (requeue == 0 || wait < requeue) {
				requeue = wait
			}
		}
	}

	gone := map[types.UID]bool{}
	for _, p := range deleted {
		gone[p.UID] = true
	}
	var ready int32
	for _, p := range v.active {
		if !gone[p.UID] && isReady(p) {
			ready++
		}
	}
	st.Active = int32(len(v.active) - len(deleted) + created)
	st.Ready = &ready
	term := int32(len(v.terminating) + len(deleted))
	st.Terminating = &term

	// 1. Record newly finished pods as uncounted (with any new condition) before touching
	// their finalizers.
	job, err := c.writeStatus(ctx, job, st)
	if err != nil {
		return errors.Join(manageErr, err)
	}
	emit(job)
	// 2. Remove the finalizers of the uncounted pods and of those not counted at all.
	var toRelease []*corev1.Pod
	for _, u := range append(append([]types.UID(nil), unc.Succeeded...), unc.Failed...) {
		if p := v.byUID[u]; p != nil && v.tracked[u] {
			toRelease = append(toRelease, p)
		}
	}
	toRelease = append(toRelease, v.release...)
	if interim != nil {
		// Ending: pods finished that are neither counted nor released go as well.
		seen := map[types.UID]bool{}
		for _, p := range toRelease {
			seen[p.UID] = true
		}
		for _, p := range pods {
			if v.tracked[p.UID] && !seen[p.UID] && isTerminal(p) {
				toRelease = append(toRelease, p)
			}
		}
	}
	relErr := c.removeFinalizers(ctx, toRelease)
	released := map[types.UID]bool{}
	c.mu.Lock()
	for _, p := range toRelease {
		if _, ok := c.finalizerRemoved[p.UID]; ok {
			released[p.UID] = true
		}
	}
	c.mu.Unlock()

	// 3. Move what lost its finalizer into the counts.
	st = job.Status.DeepCopy()
	if st.UncountedTerminatedPods == nil {
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	unc = st.UncountedTerminatedPods
	var succIdxNow map[int]bool
	if indexed {
		succIdxNow = parseIndexes(st.CompletedIndexes, int(deref(completions, 0)))
	}
	moved := func(uids []types.UID, count *int32, succ bool) []types.UID {
		var keep []types.UID
		for _, u := range uids {
			p := v.byUID[u]
			if p == nil || !v.tracked[u] || released[u] {
				*count++
				if succ && indexed && p != nil {
					if i := podIndex(p); i >= 0 && i < int(deref(completions, 0)) {
						succIdxNow[i] = true
					}
				}
				continue
			}
			keep = append(keep, u)
		}
		return keep
	}
	unc.Succeeded = moved(unc.Succeeded, &st.Succeeded, true)
	unc.Failed = moved(unc.Failed, &st.Failed, false)
	if indexed {
		st.CompletedIndexes = formatIndexes(succIdxNow)
	}

	// 4. Finish once nothing is left to count or stop.
	if interim != nil && len(unc.Succeeded) == 0 && len(unc.Failed) == 0 && len(deleted) == 0 && len(v.active) == 0 && relErr == nil {
		// Wait for every pod to stop (and be counted) before the terminal condition.
		pending := len(v.terminating) > 0
		for _, p := range pods {
			if v.tracked[p.UID] && !released[p.UID] {
				pending = true
			}
		}
		if !pending {
			if interim.Type == batchv1.JobSuccessCriteriaMet {
				setCondition(st, batchv1.JobComplete, corev1.ConditionTrue, interim.Reason, interim.Message, now)
				st.CompletionTime = &metav1.Time{Time: now}
				events = append(events, event{corev1.EventTypeNormal, reasonCompleted, msgJobCompletedEv})
			} else {
				setCondition(st, batchv1.JobFailed, corev1.ConditionTrue, interim.Reason, interim.Message, now)
				events = append(events, event{corev1.EventTypeWarning, interim.Reason, interim.Message})
			}
			st.Active = 0
		}
	}
	job, err = c.writeStatus(ctx, job, st)
	if err != nil {
		return errors.Join(manageErr, relErr, err)
	}
	emit(job)
	if finishedCondition(job) != nil && job.Spec.TTLSecondsAfterFinished != nil {
		return c.handleTTL(ctx, job)
	}
	if requeue > 0 {
		c.queue.AddAfter(key, requeue+10*time.Millisecond)
	}
	return errors.Join(manageErr, relErr)
}

// writeStatus writes st when it differs from the job's status. Conflicts are returned: a
// stale job must not be counted from.
func (c *Controller) writeStatus(ctx context.Context, job *batchv1.Job, st *batchv1.JobStatus) (*batchv1.Job, error) {
	if st.UncountedTerminatedPods != nil && len(st.UncountedTerminatedPods.Succeeded) == 0 && len(st.UncountedTerminatedPods.Failed) == 0 &&
		job.Status.UncountedTerminatedPods == nil {
		st.UncountedTerminatedPods = nil
	}
	if equality.Semantic.DeepEqual(&job.Status, st) {
		return job, nil
	}
	j := job.DeepCopy()
	j.Status = *st
	out, err := c.client.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	c.remember(out)
	return out, nil
}

// isComplete reports whether a job has all the successes it needs.
func isComplete(job *batchv1.Job, succeeded int32, succIdx map[int]bool, active int) bool {
	if isIndexed(job) {
		return len(succIdx) >= int(deref(job.Spec.Completions, 0))
	}
	if job.Spec.Completions != nil {
		return succeeded >= *job.Spec.Completions
	}
	return succeeded > 0 && active == 0
}

// successPolicyMatch returns the index of the first success policy rule an indexed job
// satisfies, or -1.
func successPolicyMatch(job *batchv1.Job, succIdx map[int]bool) int {
	if job.Spec.SuccessPolicy == nil || !isIndexed(job) {
		return -1
	}
	completions := int(deref(job.Spec.Completions, 0))
	for i, rule := range job.Spec.SuccessPolicy.Rules {
		var n int
		if rule.SucceededIndexes != nil {
			want := parseIndexes(*rule.SucceededIndexes, completions)
			for idx := range want {
				if succIdx[idx] {
					n++
				}
			}
			if rule.SucceededCount == nil && n == len(want) && len(want) > 0 {
				return i
			}
		} else {
			n = len(succIdx)
		}
		if rule.SucceededCount != nil && int32(n) >= *rule.SucceededCount {
			return i
		}
	}
	return -1
}

// backoffWait returns how long replacements of failed pods must still wait.
func (c *Controller) backoffWait(v *podView, failed int32, now time.Time) time.Duration {
	if failed == 0 || v.lastFailure.IsZero() {
		return 0
	}
	until := v.lastFailure.Add(backoffDelay(failed, c.cfg.Backoff, c.cfg.MaxBackoff))
	if now.Before(until) {
		return until.Sub(now)
	}
	return 0
}

func (c *Controller) manageNonIndexed(ctx context.Context, key string, job *batchv1.Job, v *podView, succeeded, failed int32, now time.Time) (int, []*corev1.Pod, time.Duration, error) {
	parallelism := deref(job.Spec.Parallelism, 1)
	want := parallelism
	if job.Spec.Completions != nil {
		want = min(parallelism, *job.Spec.Completions-succeeded)
	} else if succeeded > 0 {
		want = 0
	}
	want = max(want, 0)
	have := int32(len(v.active))
	if job.Spec.PodReplacementPolicy != nil && *job.Spec.PodReplacementPolicy == batchv1.Failed {
		have += int32(len(v.terminating))
	}
	switch {
	case have < want:
		if wait := c.backoffWait(v, failed, now); wait > 0 {
			return 0, nil, wait, nil
		}
		n := min(int(want-have), burst)
		created, err := c.createPods(ctx, key, job, n, func(int) int { return -1 }, func(int) int32 { return -1 })
		return created, nil, 0, err
	case int32(len(v.active)) > want:
		victims := append([]*corev1.Pod(nil), v.active...)
		sortForDeletion(victims)
		deleted, err := c.deletePods(ctx, key, job, victims[:int32(len(v.active))-want])
		return 0, deleted, 0, err
	}
	return 0, nil, 0, nil
}

func (c *Controller) manageIndexed(ctx context.Context, key string, job *batchv1.Job, v *podView, succIdx, failedIdx map[int]bool, failed int32, now time.Time) (int, []*corev1.Pod, time.Duration, error) {
	completions := int(deref(job.Spec.Completions, 0))
	parallelism := int(deref(job.Spec.Parallelism, 1))
	byIdx := map[int][]*corev1.Pod{}
	var extra []*corev1.Pod
	for _, p := range v.active {
		i := podIndex(p)
		if i < 0 || i >= completions || succIdx[i] || failedIdx[i] {
			extra = append(extra, p)
			continue
		}
		byIdx[i] = append(byIdx[i], p)
	}
	for i, ps := range byIdx {
		if len(ps) > 1 {
			sortForDeletion(ps)
			extra = append(extra, ps[:len(ps)-1]...)
			byIdx[i] = ps[len(ps)-1:]
		}
	}
	busy := map[int]bool{}
	for i := range byIdx {
		busy[i] = true
	}
	if job.Spec.PodReplacementPolicy != nil && *job.Spec.PodReplacementPolicy == batchv1.Failed {
		for _, p := range v.terminating {
			if i := podIndex(p); i >= 0 {
				busy[i] = true
			}
		}
	}
	want := max(min(parallelism, completions-len(succIdx)-len(failedIdx)), 0)
	activeIdx := make([]int, 0, len(byIdx))
	for i := range byIdx {
		activeIdx = append(activeIdx, i)
	}
	sort.Ints(activeIdx)
	if len(activeIdx) > want {
		// Too many: stop the highest indexes.
		for _, i := range activeIdx[want:] {
			extra = append(extra, byIdx[i]...)
		}
	}
	var deleted []*corev1.Pod
	var err error
	if len(extra) > 0 {
		deleted, err = c.deletePods(ctx, key, job, extra)
		if err != nil {
			return 0, deleted, 0, err
		}
	}
	need := want - len(activeIdx)
	if need <= 0 {
		return 0, deleted, 0, nil
	}
	var missing []int
	for i := 0; i < completions && len(missing) < min(need, burst); i++ {
		if !succIdx[i] && !failedIdx[i] && !busy[i] {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return 0, deleted, 0, nil
	}
	if wait := c.backoffWait(v, failed, now); wait > 0 {
		return 0, deleted, wait, nil
	}
	failures := func(i int) int32 { return -1 }
	if job.Spec.BackoffLimitPerIndex != nil {
		failures = func(i int) int32 { return v.indexFailures[i] }
	}
	created, err := c.createPods(ctx, key, job, len(missing), func(n int) int { return missing[n] }, failures)
	return created, deleted, 0, err
}

// newPod builds the pod of a job (for a completion index, or -1), recording how many pods
// of its index failed before (unless failures < 0).
func newPod(job *batchv1.Job, index int, failures int32) (*corev1.Pod, error) {
	tmpl := job.Spec.Template.DeepCopy()
	prefix := job.Name
	if index >= 0 {
		idx := strconv.Itoa(index)
		if tmpl.Annotations == nil {
			tmpl.Annotations = map[string]string{}
		}
		tmpl.Annotations[batchv1.JobCompletionIndexAnnotation] = idx
		if failures >= 0 {
			tmpl.Annotations[batchv1.JobIndexFailureCountAnnotation] = strconv.Itoa(int(failures))
		}
		if tmpl.Labels == nil {
			tmpl.Labels = map[string]string{}
		}
		tmpl.Labels[batchv1.JobCompletionIndexAnnotation] = idx
		if tmpl.Spec.Hostname == "" {
			tmpl.Spec.Hostname = job.Name + "-" + idx
		}
		env := corev1.EnvVar{Name: EnvCompletionIndex, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			APIVersion: "v1", FieldPath: fmt.Sprintf("metadata.annotations['%s']", batchv1.JobCompletionIndexAnnotation)}}}
		addEnv := func(cs []corev1.Container) {
			for i := range cs {
				found := false
				for _, e := range cs[i].Env {
					if e.Name == EnvCompletionIndex {
						found = true
					}
				}
				if !found {
					cs[i].Env = append(cs[i].Env, env)
				}
			}
		}
		addEnv(tmpl.Spec.InitContainers)
		addEnv(tmpl.Spec.Containers)
		prefix = job.Name + "-" + idx
	}
	pod, err := controllerutil.PodFromTemplate(tmpl, job.Namespace, prefix, controllerutil.ControllerRef(job, jobGVK))
	if err != nil {
		return nil, err
	}
	pod.Finalizers = append(pod.Finalizers, batchv1.JobTrackingFinalizer)
	return pod, nil
}

// createPods creates n pods, the i-th for completion index indexOf(i), in slow-start batches.
func (c *Controller) createPods(ctx context.Context, key string, job *batchv1.Job, n int, indexOf func(int) int, failuresOf func(int) int32) (int, error) {
	c.exp.ExpectCreations(key, n)
	var mu sync.Mutex
	next := 0
	created, err := controllerutil.SlowStartBatch(n, 1, func() error {
		mu.Lock()
		i := next
		next++
		mu.Unlock()
		idx := indexOf(i)
		pod, err := newPod(job, idx, failuresOf(idx))
		if err != nil {
			return err
		}
		out, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
			c.recorder.Eventf(job, corev1.EventTypeWarning, controllerutil.FailedCreate, "Error creating: %v", err)
			return err
		}
		c.recorder.Eventf(job, corev1.EventTypeNormal, controllerutil.SuccessfulCreate, "Created pod: %v", out.Name)
		return nil
	})
	for i := 0; i < n-created; i++ {
		c.exp.CreationObserved(key)
	}
	return created, err
}

// deletePods deletes pods of the job (remembering that they are not failures) and returns
// those it deleted. Pods it deleted before are counted as deleted without a second request:
// until the informer shows their deletionTimestamp they still look active, and deleting
// again would record a second SuccessfulDelete for one pod.
func (c *Controller) deletePods(ctx context.Context, key string, job *batchv1.Job, all []*corev1.Pod) ([]*corev1.Pod, error) {
	var out, pods []*corev1.Pod
	c.mu.Lock()
	for _, p := range all {
		if _, done := c.deletedByUs[p.UID]; done {
			out = append(out, p)
		} else {
			pods = append(pods, p)
		}
	}
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = p.Namespace + "/" + p.Name
		c.deletedByUs[p.UID] = struct{}{}
	}
	c.mu.Unlock()
	if len(pods) == 0 {
		return out, nil
	}
	c.exp.ExpectDeletions(key, keys)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				c.exp.DeletionObserved(key, keys[i])
				if !apierrors.IsNotFound(err) {
					c.mu.Lock()
					delete(c.deletedByUs, p.UID) // to be retried
					c.mu.Unlock()
					c.recorder.Eventf(job, corev1.EventTypeWarning, controllerutil.FailedDelete, "Error deleting: %v", err)
					errs = append(errs, err)
				}
				return
			}
			c.recorder.Eventf(job, corev1.EventTypeNormal, controllerutil.SuccessfulDelete, "Deleted pod: %v", p.Name)
			out = append(out, p)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
