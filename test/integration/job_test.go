package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/controller/garbagecollector"
	"github.com/skiff-sh/skiff/internal/controller/job"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// jobCluster runs the Job controller (with a short failure backoff), the scheduler, the
// garbage collector and simulated nodes.
func jobCluster(t *testing.T) *skifftest.Cluster {
	t.Helper()
	c := simCluster(t, simnode.Config{Count: 2, StartDelay: 100 * time.Millisecond, StopDelay: 200 * time.Millisecond},
		skifftest.Options{Controllers: []controlplane.ComponentFactory{
			job.NewWithConfig(job.Config{Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}),
			scheduler.New, garbagecollector.New,
		}})
	simReadyNodes(t, c, 2)
	return c
}

type jobOpt func(*batchv1.Job)

func newTestJob(name string, exitCode string, exitAfter string, opts ...jobOpt) *batchv1.Job {
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "skiff.local/busybox"}},
				},
			},
		},
	}
	if exitCode != "" {
		j.Spec.Template.Annotations[simnode.AnnotationExitCode] = exitCode
	}
	if exitAfter != "" {
		j.Spec.Template.Annotations[simnode.AnnotationExitAfter] = exitAfter
	}
	for _, o := range opts {
		o(j)
	}
	return j
}

func createJob(t *testing.T, c *skifftest.Cluster, j *batchv1.Job) *batchv1.Job {
	t.Helper()
	out, err := c.Client.BatchV1().Jobs(j.Namespace).Create(context.Background(), j, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	return out
}

// waitJob polls the job until cond holds.
func waitJob(t *testing.T, c *skifftest.Cluster, name string, timeout time.Duration, what string, cond func(*batchv1.Job) bool) *batchv1.Job {
	t.Helper()
	var last *batchv1.Job
	simEventually(t, timeout, what, func() (bool, string) {
		j, err := c.Client.BatchV1().Jobs("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		last = j
		return cond(j), fmt.Sprintf("status %+v", j.Status)
	})
	return last
}

func jobCond(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == t && j.Status.Conditions[i].Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func jobPods(t *testing.T, c *skifftest.Cluster, j *batchv1.Job) []corev1.Pod {
	t.Helper()
	l, err := c.Client.CoreV1().Pods(j.Namespace).List(context.Background(), metav1.ListOptions{
		LabelSelector: labels.Set{batchv1.ControllerUidLabel: string(j.UID)}.String()})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func jobEvents(t *testing.T, c *skifftest.Cluster, name string) map[string]int {
	t.Helper()
	l, err := c.Client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "Job", "involvedObject.name": name}.String()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range l.Items {
		out[e.Reason] += int(e.Count)
	}
	return out
}

func TestJobCompletionsWithParallelism(t *testing.T) {
	c := jobCluster(t)
	ctx := context.Background()
	j := createJob(t, c, newTestJob("pi", "0", "400ms", func(j *batchv1.Job) {
		j.Spec.Completions, j.Spec.Parallelism = new(int32(3)), new(int32(2))
	}))

	// Never more than parallelism pods run at once.
	w, err := c.Client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=pi"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	running := map[string]bool{}
	maxRunning := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
				delete(running, p.Name)
			} else {
				running[p.Name] = true
			}
			maxRunning = max(maxRunning, len(running))
		}
	}()

	got := waitJob(t, c, "pi", 30*time.Second, "job complete", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobComplete) != nil })
	w.Stop()
	<-done
	if maxRunning > 2 {
		t.Errorf("saw %d pods active at once, parallelism is 2", maxRunning)
	}
	if got.Status.Succeeded != 3 || got.Status.Failed != 0 || got.Status.Active != 0 {
		t.Errorf("status succeeded=%d failed=%d active=%d, want 3/0/0", got.Status.Succeeded, got.Status.Failed, got.Status.Active)
	}
	if got.Status.StartTime == nil || got.Status.CompletionTime == nil || got.Status.CompletionTime.Before(got.Status.StartTime) {
		t.Errorf("startTime %v completionTime %v", got.Status.StartTime, got.Status.CompletionTime)
	}
	if sc := jobCond(got, batchv1.JobSuccessCriteriaMet); sc == nil || sc.Reason != batchv1.JobReasonCompletionsReached {
		t.Errorf("SuccessCriteriaMet condition: %+v", got.Status.Conditions)
	}
	if cc := jobCond(got, batchv1.JobComplete); cc.Reason != batchv1.JobReasonCompletionsReached {
		t.Errorf("Complete condition reason %q", cc.Reason)
	}
	pods := jobPods(t, c, j)
	if len(pods) != 3 {
		t.Errorf("%d pods, want 3", len(pods))
	}
	for _, p := range pods {
		if !strings.HasPrefix(p.Name, "pi-") || len(p.Name) != len("pi-")+5 {
			t.Errorf("pod name %q, want pi-<5 random>", p.Name)
		}
		if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("pod %s keeps the tracking finalizer after completion", p.Name)
		}
		if p.Labels[batchv1.JobNameLabel] != "pi" || p.Labels["job-name"] != "pi" || p.Labels["controller-uid"] != string(j.UID) {
			t.Errorf("pod labels %v", p.Labels)
		}
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != j.UID || ref.Kind != "Job" {
			t.Errorf("pod %s controllerRef %v", p.Name, ref)
		}
	}
	simEventually(t, 10*time.Second, "events", func() (bool, string) {
		ev := jobEvents(t, c, "pi")
		return ev["SuccessfulCreate"] == 3 && ev["Completed"] == 1, fmt.Sprint(ev)
	})

	// Counts survive the pods going away.
	for _, p := range pods {
		if err := c.Client.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	simEventually(t, 10*time.Second, "pods gone", func() (bool, string) {
		n := len(jobPods(t, c, j))
		return n == 0, fmt.Sprintf("%d pods", n)
	})
	after, _ := c.Client.BatchV1().Jobs("default").Get(ctx, "pi", metav1.GetOptions{})
	if after.Status.Succeeded != 3 || jobCond(after, batchv1.JobComplete) == nil {
		t.Errorf("after pod deletion: %+v", after.Status)
	}
}

func TestJobTrackingFinalizerCountsDeletedPods(t *testing.T) {
	c := jobCluster(t)
	ctx := context.Background()
	// Pods run until deleted; finish one by deleting it: it is counted as failed (Kubernetes'
	// TerminatingOrFailed replacement) exactly once although its pod disappears.
	j := createJob(t, c, newTestJob("tracked", "", "", func(j *batchv1.Job) { j.Spec.BackoffLimit = new(int32(5)) }))
	var pod corev1.Pod
	simEventually(t, 10*time.Second, "a running pod with the finalizer", func() (bool, string) {
		pods := jobPods(t, c, j)
		if len(pods) != 1 || pods[0].Status.Phase != corev1.PodRunning {
			return false, fmt.Sprintf("%d pods", len(pods))
		}
		pod = pods[0]
		return slices.Contains(pod.Finalizers, batchv1.JobTrackingFinalizer), fmt.Sprint(pod.Finalizers)
	})
	if err := c.Client.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, c, "tracked", 10*time.Second, "failure counted and replacement running", func(j *batchv1.Job) bool {
		return j.Status.Failed == 1 && j.Status.Active == 1
	})
	if got.Status.UncountedTerminatedPods != nil && len(got.Status.UncountedTerminatedPods.Failed) > 0 {
		t.Errorf("uncounted left: %+v", got.Status.UncountedTerminatedPods)
	}
	simEventually(t, 10*time.Second, "deleted pod gone", func() (bool, string) {
		_, err := c.Client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	// Stays at one failure.
	time.Sleep(300 * time.Millisecond)
	got, _ = c.Client.BatchV1().Jobs("default").Get(ctx, "tracked", metav1.GetOptions{})
	if got.Status.Failed != 1 {
		t.Errorf("failed = %d after the pod went, want 1", got.Status.Failed)
	}
}

func TestJobBackoffLimitExceeded(t *testing.T) {
	c := jobCluster(t)
	j := createJob(t, c, newTestJob("fails", "1", "100ms", func(j *batchv1.Job) { j.Spec.BackoffLimit = new(int32(2)) }))
	got := waitJob(t, c, "fails", 30*time.Second, "job failed", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobFailed) != nil })
	fc := jobCond(got, batchv1.JobFailed)
	if fc.Reason != batchv1.JobReasonBackoffLimitExceeded || fc.Message != "Job has reached the specified backoff limit" {
		t.Errorf("Failed condition %+v", fc)
	}
	if jobCond(got, batchv1.JobFailureTarget) == nil {
		t.Errorf("no FailureTarget condition: %+v", got.Status.Conditions)
	}
	if got.Status.Failed != 3 || got.Status.Succeeded != 0 || got.Status.Active != 0 || got.Status.CompletionTime != nil {
		t.Errorf("status %+v", got.Status)
	}
	if n := len(jobPods(t, c, j)); n != 3 {
		t.Errorf("%d pods, want 3 (backoffLimit 2)", n)
	}
	simEventually(t, 10*time.Second, "BackoffLimitExceeded event", func() (bool, string) {
		ev := jobEvents(t, c, "fails")
		return ev["BackoffLimitExceeded"] == 1, fmt.Sprint(ev)
	})
}

func TestJobOnFailureCountsRestarts(t *testing.T) {
	c := jobCluster(t)
	j := createJob(t, c, newTestJob("restarts", "1", "150ms", func(j *batchv1.Job) {
		j.Spec.BackoffLimit = new(int32(2))
		j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	}))
	got := waitJob(t, c, "restarts", 30*time.Second, "job failed", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobFailed) != nil })
	if r := jobCond(got, batchv1.JobFailed).Reason; r != batchv1.JobReasonBackoffLimitExceeded {
		t.Errorf("reason %q", r)
	}
	// One pod, restarted in place, then stopped before the job is marked Failed.
	if n := len(jobPods(t, c, j)); n != 0 {
		t.Errorf("%d pods left after the Failed condition", n)
	}
	simEventually(t, 10*time.Second, "events", func() (bool, string) {
		ev := jobEvents(t, c, "restarts")
		return ev["SuccessfulCreate"] == 1 && ev["SuccessfulDelete"] == 1 && ev["BackoffLimitExceeded"] == 1, fmt.Sprint(ev)
	})
}

func TestJobIndexed(t *testing.T) {
	c := jobCluster(t)
	j := createJob(t, c, newTestJob("idx", "0", "300ms", func(j *batchv1.Job) {
		j.Spec.Completions, j.Spec.Parallelism = new(int32(3)), new(int32(3))
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
	}))
	got := waitJob(t, c, "idx", 30*time.Second, "job complete", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobComplete) != nil })
	if got.Status.CompletedIndexes != "0-2" || got.Status.Succeeded != 3 {
		t.Errorf("completedIndexes %q succeeded %d", got.Status.CompletedIndexes, got.Status.Succeeded)
	}
	seen := map[string]bool{}
	for _, p := range jobPods(t, c, j) {
		idx := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		seen[idx] = true
		if p.Labels[batchv1.JobCompletionIndexAnnotation] != idx {
			t.Errorf("pod %s index label %q annotation %q", p.Name, p.Labels[batchv1.JobCompletionIndexAnnotation], idx)
		}
		if !strings.HasPrefix(p.Name, "idx-"+idx+"-") || p.Spec.Hostname != "idx-"+idx {
			t.Errorf("pod %s hostname %q for index %s", p.Name, p.Spec.Hostname, idx)
		}
		var env *corev1.EnvVar
		for i := range p.Spec.Containers[0].Env {
			if p.Spec.Containers[0].Env[i].Name == "JOB_COMPLETION_INDEX" {
				env = &p.Spec.Containers[0].Env[i]
			}
		}
		if env == nil || env.ValueFrom == nil || env.ValueFrom.FieldRef == nil ||
			env.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
			t.Errorf("pod %s JOB_COMPLETION_INDEX env %+v", p.Name, env)
		}
	}
	if len(seen) != 3 || !seen["0"] || !seen["1"] || !seen["2"] {
		t.Errorf("indexes %v", seen)
	}
}

func TestJobPodFailurePolicy(t *testing.T) {
	c := jobCluster(t)
	ctx := context.Background()
	policy := func(action batchv1.PodFailurePolicyAction, code int32) jobOpt {
		return func(j *batchv1.Job) {
			j.Spec.BackoffLimit = new(int32(0))
			j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
				{Action: action, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
					Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{code}}},
				{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{
					{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
			}}
		}
	}
	createJob(t, c, newTestJob("failjob", "42", "100ms", policy(batchv1.PodFailurePolicyActionFailJob, 42)))
	got := waitJob(t, c, "failjob", 30*time.Second, "job failed", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobFailed) != nil })
	fc := jobCond(got, batchv1.JobFailed)
	if fc.Reason != batchv1.JobReasonPodFailurePolicy || !strings.Contains(fc.Message, "failed with exit code 42 matching FailJob rule at index 0") {
		t.Errorf("Failed condition %+v", fc)
	}

	// Ignored failures do not count against backoffLimit 0: pods are replaced.
	ign := createJob(t, c, newTestJob("ignore", "7", "100ms", policy(batchv1.PodFailurePolicyActionIgnore, 7)))
	simEventually(t, 30*time.Second, "three ignored failures", func() (bool, string) {
		failed := 0
		for _, p := range jobPods(t, c, ign) {
			if p.Status.Phase == corev1.PodFailed {
				failed++
			}
		}
		return failed >= 3, fmt.Sprintf("%d failed pods", failed)
	})
	got, _ = c.Client.BatchV1().Jobs("default").Get(ctx, "ignore", metav1.GetOptions{})
	if got.Status.Failed != 0 || jobCond(got, batchv1.JobFailed) != nil || jobCond(got, batchv1.JobFailureTarget) != nil {
		t.Errorf("ignored failures counted: %+v", got.Status)
	}
}

func TestJobActiveDeadline(t *testing.T) {
	c := jobCluster(t)
	j := createJob(t, c, newTestJob("deadline", "", "", func(j *batchv1.Job) {
		j.Spec.ActiveDeadlineSeconds = new(int64(1))
		j.Spec.Parallelism = new(int32(2))
	}))
	got := waitJob(t, c, "deadline", 30*time.Second, "job failed", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobFailed) != nil })
	if fc := jobCond(got, batchv1.JobFailed); fc.Reason != batchv1.JobReasonDeadlineExceeded || fc.Message != "Job was active longer than specified deadline" {
		t.Errorf("Failed condition %+v", fc)
	}
	if got.Status.Active != 0 {
		t.Errorf("active %d", got.Status.Active)
	}
	for _, p := range jobPods(t, c, j) {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
			t.Errorf("pod %s still active (%s)", p.Name, p.Status.Phase)
		}
	}
}

func TestJobSuspendResume(t *testing.T) {
	c := jobCluster(t)
	ctx := context.Background()
	j := createJob(t, c, newTestJob("susp", "", "", func(j *batchv1.Job) {
		j.Spec.Suspend = new(true)
		j.Spec.Parallelism, j.Spec.Completions = new(int32(2)), new(int32(4))
	}))
	got := waitJob(t, c, "susp", 10*time.Second, "Suspended condition", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobSuspended) != nil })
	if got.Status.StartTime != nil || got.Status.Active != 0 || len(jobPods(t, c, j)) != 0 {
		t.Errorf("suspended job started: %+v", got.Status)
	}
	setSuspend := func(v bool) {
		t.Helper()
		patch := fmt.Sprintf(`{"spec":{"suspend":%v}}`, v)
		if _, err := c.Client.BatchV1().Jobs("default").Patch(ctx, "susp", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setSuspend(false)
	got = waitJob(t, c, "susp", 10*time.Second, "two running pods", func(j *batchv1.Job) bool {
		return j.Status.Active == 2 && j.Status.Ready != nil && *j.Status.Ready == 2
	})
	if got.Status.StartTime == nil {
		t.Error("no startTime after resume")
	}
	for _, cond := range got.Status.Conditions {
		if cond.Type == batchv1.JobSuspended && (cond.Status != corev1.ConditionFalse || cond.Reason != "JobResumed") {
			t.Errorf("Suspended condition after resume %+v", cond)
		}
	}
	setSuspend(true)
	got = waitJob(t, c, "susp", 10*time.Second, "pods gone after suspend", func(j *batchv1.Job) bool {
		return j.Status.Active == 0 && jobCond(j, batchv1.JobSuspended) != nil && len(jobPods(t, c, j)) == 0
	})
	if got.Status.Failed != 0 {
		t.Errorf("suspension counted %d failures", got.Status.Failed)
	}
	simEventually(t, 10*time.Second, "events", func() (bool, string) {
		ev := jobEvents(t, c, "susp")
		return ev["Suspended"] >= 2 && ev["Resumed"] == 1 && ev["SuccessfulDelete"] == 2, fmt.Sprint(ev)
	})
}

func TestJobTTLAfterFinished(t *testing.T) {
	c := jobCluster(t)
	ctx := context.Background()
	j := createJob(t, c, newTestJob("ttl", "0", "100ms", func(j *batchv1.Job) { j.Spec.TTLSecondsAfterFinished = new(int32(2)) }))
	start := time.Now()
	simEventually(t, 30*time.Second, "job deleted after its TTL", func() (bool, string) {
		_, err := c.Client.BatchV1().Jobs("default").Get(ctx, "ttl", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	// Finish times are kept to the second, so the TTL runs from up to a second earlier.
	if time.Since(start) < time.Second {
		t.Errorf("deleted %v after creation, before its 2s TTL", time.Since(start))
	}
	simEventually(t, 20*time.Second, "pods collected", func() (bool, string) {
		n := len(jobPods(t, c, j))
		return n == 0, fmt.Sprintf("%d pods", n)
	})
}

func TestJobDeletedReleasesPodFinalizers(t *testing.T) {
	c := jobCluster(t)
	ctx := context.Background()
	j := createJob(t, c, newTestJob("gone", "", "", func(j *batchv1.Job) { j.Spec.Parallelism = new(int32(2)) }))
	waitJob(t, c, "gone", 10*time.Second, "two active", func(j *batchv1.Job) bool { return j.Status.Active == 2 })
	bg := metav1.DeletePropagationBackground
	if err := c.Client.BatchV1().Jobs("default").Delete(ctx, "gone", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	simEventually(t, 20*time.Second, "pods deleted despite their finalizers", func() (bool, string) {
		pods := jobPods(t, c, j)
		return len(pods) == 0, fmt.Sprintf("%d pods", len(pods))
	})
}

func TestJobIndexedReplacesFailedIndex(t *testing.T) {
	c := jobCluster(t)
	j := createJob(t, c, newTestJob("idxfail", "1", "100ms", func(j *batchv1.Job) {
		j.Spec.Completions, j.Spec.Parallelism = new(int32(1)), new(int32(1))
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
		j.Spec.BackoffLimit = new(int32(2))
	}))
	got := waitJob(t, c, "idxfail", 30*time.Second, "job failed", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobFailed) != nil })
	if got.Status.Failed != 3 || got.Status.CompletedIndexes != "" {
		t.Errorf("status %+v", got.Status)
	}
	pods := jobPods(t, c, j)
	if len(pods) != 3 {
		t.Fatalf("%d pods, want 3", len(pods))
	}
	for _, p := range pods {
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] != "0" || !strings.HasPrefix(p.Name, "idxfail-0-") {
			t.Errorf("replacement %s does not carry index 0", p.Name)
		}
	}
}

func TestJobBackoffLimitPerIndex(t *testing.T) {
	c := jobCluster(t)
	j := createJob(t, c, newTestJob("perindex", "1", "100ms", func(j *batchv1.Job) {
		j.Spec.Completions, j.Spec.Parallelism = new(int32(2)), new(int32(2))
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
		j.Spec.BackoffLimitPerIndex = new(int32(1))
	}))
	got := waitJob(t, c, "perindex", 30*time.Second, "job failed", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobFailed) != nil })
	if fc := jobCond(got, batchv1.JobFailed); fc.Reason != batchv1.JobReasonFailedIndexes {
		t.Errorf("Failed condition %+v", fc)
	}
	if got.Status.FailedIndexes == nil || *got.Status.FailedIndexes != "0-1" || got.Status.Failed != 4 {
		t.Errorf("status %+v", got.Status)
	}
	if n := len(jobPods(t, c, j)); n != 4 {
		t.Errorf("%d pods, want two per index", n)
	}
}
