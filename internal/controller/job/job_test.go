package job

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

func TestIndexes(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"", 5, ""},
		{"0-2", 5, "0-2"},
		{"1,3-5,7", 10, "1,3-5,7"},
		{"1,3-5,7", 5, "1,3-4"},
		{"0,1,2,4", 5, "0-2,4"},
	} {
		if got := formatIndexes(parseIndexes(tc.in, tc.limit)); got != tc.want {
			t.Errorf("%q limit %d: got %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	for _, tc := range []struct {
		failures int32
		want     time.Duration
	}{{0, 0}, {1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {10, 6 * time.Minute}} {
		if got := backoffDelay(tc.failures, DefaultBackoff, DefaultMaxBackoff); got != tc.want {
			t.Errorf("%d failures: %v, want %v", tc.failures, got, tc.want)
		}
	}
}

func failedPod(code int32, conds ...corev1.PodConditionType) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}}}}
	for _, c := range conds {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue})
	}
	return p
}

func TestMatchFailurePolicy(t *testing.T) {
	main := "main"
	other := "other"
	policy := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{ContainerName: &main, Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{ContainerName: &other, Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{3}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{1, 2}}},
	}}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want batchv1.PodFailurePolicyAction
		msg  string
	}{
		{"disruption ignored", failedPod(42, corev1.DisruptionTarget), batchv1.PodFailurePolicyActionIgnore, "Pod ns/p has condition DisruptionTarget matching Ignore rule at index 0"},
		{"exit code fails job", failedPod(42), batchv1.PodFailurePolicyActionFailJob, "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"},
		{"other container's rule does not apply", failedPod(3), batchv1.PodFailurePolicyActionCount, ""},
		{"listed NotIn codes match nothing", failedPod(1), "", ""},
	} {
		got := matchFailurePolicy(policy, tc.pod)
		if got.action != tc.want || (tc.msg != "" && got.message != tc.msg) {
			t.Errorf("%s: got %q %q, want %q %q", tc.name, got.action, got.message, tc.want, tc.msg)
		}
	}
	if got := matchFailurePolicy(nil, failedPod(1)); got.action != "" {
		t.Errorf("nil policy: %v", got)
	}
}

// --- sync with a fake clientset ---

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	c      *Controller
	now    time.Time
	rec    *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, now: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}
	f.client = fake.NewClientset(objs...)
	n := 0
	f.client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		p := a.(clienttesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			n++
			p.Name = fmt.Sprintf("%s%05d", p.GenerateName, n)
		}
		return false, nil, nil
	})
	f.inf = informers.NewSharedInformerFactory(f.client, 0)
	f.rec = record.NewFakeRecorder(100)
	c, err := newController(f.client, f.inf, f.rec, nil, 1, Config{Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	for _, o := range objs {
		switch o := o.(type) {
		case *batchv1.Job:
			_ = f.inf.Batch().V1().Jobs().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			_ = f.inf.Core().V1().Pods().Informer().GetIndexer().Add(o)
		}
	}
	return f
}

func (f *fixture) sync(key string) {
	f.t.Helper()
	f.client.ClearActions()
	if err := f.c.sync(context.Background(), key); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
}

func (f *fixture) job(name string) *batchv1.Job {
	j, err := f.client.BatchV1().Jobs("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func (f *fixture) created() []*corev1.Pod {
	var out []*corev1.Pod
	for _, a := range f.client.Actions() {
		if ca, ok := a.(clienttesting.CreateAction); ok && a.GetResource().Resource == "pods" {
			out = append(out, ca.GetObject().(*corev1.Pod))
		}
	}
	return out
}

func (f *fixture) count(verb, resource, sub string) int {
	n := 0
	for _, a := range f.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == sub {
			n++
		}
	}
	return n
}

func testJob(name string, mut ...func(*batchv1.Job)) *batchv1.Job {
	uid := types.UID(name + "-uid")
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: uid, ResourceVersion: "1"},
		Spec: batchv1.JobSpec{
			Parallelism: new(int32(1)), Completions: new(int32(1)), BackoffLimit: new(int32(6)),
			CompletionMode: new(batchv1.NonIndexedCompletion), Suspend: new(false),
			PodReplacementPolicy: new(batchv1.TerminatingOrFailed),
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: string(uid)}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{batchv1.ControllerUidLabel: string(uid), batchv1.JobNameLabel: name}},
				Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
			},
		},
	}
	for _, m := range mut {
		m(j)
	}
	return j
}

func podOf(j *batchv1.Job, name string, phase corev1.PodPhase, finalizer bool) *corev1.Pod {
	yes := true
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: j.Namespace, Name: name, UID: types.UID(name + "-uid"), ResourceVersion: "1",
			Labels:          map[string]string{batchv1.ControllerUidLabel: string(j.UID)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID, Controller: &yes}}},
		Spec:   corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: phase},
	}
	if finalizer {
		p.Finalizers = []string{batchv1.JobTrackingFinalizer}
	}
	if phase == corev1.PodFailed {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}}
	}
	return p
}

func TestSyncCreatesUpToParallelism(t *testing.T) {
	j := testJob("pi", func(j *batchv1.Job) { j.Spec.Parallelism, j.Spec.Completions = new(int32(2)), new(int32(3)) })
	f := newFixture(t, j)
	f.sync("ns/pi")
	pods := f.created()
	if len(pods) != 2 {
		t.Fatalf("created %d pods, want 2", len(pods))
	}
	for _, p := range pods {
		if p.GenerateName != "pi-" || !slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) || metav1.GetControllerOf(p).UID != j.UID {
			t.Errorf("pod %+v", p.ObjectMeta)
		}
	}
	got := f.job("pi")
	if got.Status.Active != 2 || got.Status.StartTime == nil || !got.Status.StartTime.Time.Equal(f.now) {
		t.Errorf("status %+v", got.Status)
	}
}

func TestSyncCountsFinishedPodsThroughUncounted(t *testing.T) {
	j := testJob("pi", func(j *batchv1.Job) { j.Spec.Completions = new(int32(2)) })
	done := podOf(j, "done", corev1.PodSucceeded, true)
	running := podOf(j, "running", corev1.PodRunning, true)
	f := newFixture(t, j, done, running)
	f.sync("ns/pi")
	// Two status writes (uncounted, then counted) around the finalizer patch.
	if n := f.count("update", "jobs", "status"); n != 2 {
		t.Errorf("%d status updates, want 2", n)
	}
	var order []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "update" || a.GetVerb() == "patch" {
			order = append(order, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	if strings.Join(order, ",") != "update jobs,patch pods,update jobs" {
		t.Errorf("write order %v", order)
	}
	p, _ := f.client.CoreV1().Pods("ns").Get(context.Background(), "done", metav1.GetOptions{})
	if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
		t.Error("finalizer kept")
	}
	got := f.job("pi")
	if got.Status.Succeeded != 1 || got.Status.Active != 1 || (got.Status.UncountedTerminatedPods != nil && len(got.Status.UncountedTerminatedPods.Succeeded) != 0) {
		t.Errorf("status %+v", got.Status)
	}
	if len(f.created()) != 0 {
		t.Error("created a pod although one runs for the one remaining completion")
	}

	// A stale cache still showing the finalizer must not count the pod again.
	_ = f.inf.Batch().V1().Jobs().Informer().GetIndexer().Update(got)
	f.sync("ns/pi")
	if got := f.job("pi"); got.Status.Succeeded != 1 {
		t.Errorf("counted twice: succeeded %d", got.Status.Succeeded)
	}
}

func TestSyncBackoffLimitFailsJob(t *testing.T) {
	j := testJob("bad", func(j *batchv1.Job) { j.Spec.BackoffLimit = new(int32(1)); j.Status.Failed = 1 })
	failed := podOf(j, "f2", corev1.PodFailed, true)
	f := newFixture(t, j, failed)
	f.sync("ns/bad")
	got := f.job("bad")
	var types []string
	for _, c := range got.Status.Conditions {
		types = append(types, string(c.Type)+"="+c.Reason)
	}
	if strings.Join(types, ",") != "FailureTarget=BackoffLimitExceeded,Failed=BackoffLimitExceeded" || got.Status.Failed != 2 {
		t.Errorf("conditions %v failed %d", types, got.Status.Failed)
	}
	if len(f.created()) != 0 {
		t.Error("replacement created for a failed job")
	}
	if ev := <-f.rec.Events; !strings.Contains(ev, "BackoffLimitExceeded") {
		t.Errorf("event %q", ev)
	}
}

func TestSyncOnFailureRestartsCount(t *testing.T) {
	j := testJob("r", func(j *batchv1.Job) {
		j.Spec.BackoffLimit = new(int32(2))
		j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	})
	p := podOf(j, "p", corev1.PodRunning, true)
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", RestartCount: 2}}
	f := newFixture(t, j, p)
	f.sync("ns/r")
	if f.count("delete", "pods", "") != 1 {
		t.Error("the restarting pod was not deleted")
	}
	if c := findCondition(f.job("r").Status.Conditions, batchv1.JobFailureTarget); c == nil || c.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Errorf("conditions %+v", f.job("r").Status.Conditions)
	}
}

// A second sync before the informer shows the deleted pod terminating must not delete it
// again (one pod, one SuccessfulDelete), and still counts it as gone.
func TestSyncDoesNotDeleteTwice(t *testing.T) {
	j := testJob("r", func(j *batchv1.Job) {
		j.Spec.BackoffLimit = new(int32(2))
		j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	})
	p := podOf(j, "p", corev1.PodRunning, true)
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", RestartCount: 2}}
	f := newFixture(t, j, p)
	f.sync("ns/r")
	_ = f.inf.Batch().V1().Jobs().Informer().GetIndexer().Update(f.job("r"))
	f.sync("ns/r") // the pod informer still shows p running
	if n := f.count("delete", "pods", ""); n != 0 {
		t.Errorf("second sync deleted %d pods again", n)
	}
	if got := f.job("r"); got.Status.Active != 0 || got.Status.Terminating == nil || *got.Status.Terminating != 1 {
		t.Errorf("status after the second sync: active %d terminating %v", got.Status.Active, got.Status.Terminating)
	}
	deletes := 0
	for len(f.rec.Events) > 0 {
		if e := <-f.rec.Events; strings.Contains(e, "SuccessfulDelete") {
			deletes++
		}
	}
	if deletes != 1 {
		t.Errorf("%d SuccessfulDelete events, want 1", deletes)
	}
}

func TestSyncIndexedCreatesMissingIndexes(t *testing.T) {
	j := testJob("idx", func(j *batchv1.Job) {
		j.Spec.Parallelism, j.Spec.Completions = new(int32(3)), new(int32(4))
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
		j.Status.CompletedIndexes = "3"
		j.Status.Succeeded = 1
	})
	p1 := podOf(j, "idx-1-abcde", corev1.PodRunning, true)
	p1.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: "1"}
	f := newFixture(t, j, p1)
	f.sync("ns/idx")
	var got []string
	for _, p := range f.created() {
		idx := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		got = append(got, idx)
		if p.GenerateName != "idx-"+idx+"-" || p.Spec.Hostname != "idx-"+idx || p.Labels[batchv1.JobCompletionIndexAnnotation] != idx {
			t.Errorf("pod for index %s: %q %q", idx, p.GenerateName, p.Spec.Hostname)
		}
	}
	slices.Sort(got)
	if strings.Join(got, ",") != "0,2" {
		t.Errorf("created indexes %v, want 0,2", got)
	}
}

func TestSyncSuspendDeletesWithoutCounting(t *testing.T) {
	j := testJob("s", func(j *batchv1.Job) {
		j.Spec.Suspend = new(true)
		j.Spec.Parallelism = new(int32(2))
		j.Status.StartTime = &metav1.Time{Time: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	})
	a, b := podOf(j, "a", corev1.PodRunning, true), podOf(j, "b", corev1.PodRunning, true)
	f := newFixture(t, j, a, b)
	f.sync("ns/s")
	if n := f.count("delete", "pods", ""); n != 2 {
		t.Errorf("%d deletions, want 2", n)
	}
	got := f.job("s")
	if c := findCondition(got.Status.Conditions, batchv1.JobSuspended); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "JobSuspended" {
		t.Errorf("conditions %+v", got.Status.Conditions)
	}
	// The deleted pods end Failed (killed): they are released, not counted.
	a2, b2 := a.DeepCopy(), b.DeepCopy()
	for _, p := range []*corev1.Pod{a2, b2} {
		p.Status.Phase = corev1.PodFailed
		p.DeletionTimestamp = &metav1.Time{Time: f.now}
		_ = f.inf.Core().V1().Pods().Informer().GetIndexer().Update(p)
	}
	_ = f.inf.Batch().V1().Jobs().Informer().GetIndexer().Update(got)
	f.sync("ns/s")
	got = f.job("s")
	if got.Status.Failed != 0 || f.count("patch", "pods", "") != 2 {
		t.Errorf("failed %d, %d finalizer patches", got.Status.Failed, f.count("patch", "pods", ""))
	}
}

func TestSyncDeadline(t *testing.T) {
	j := testJob("d", func(j *batchv1.Job) {
		j.Spec.ActiveDeadlineSeconds = new(int64(60))
		j.Status.StartTime = &metav1.Time{Time: time.Date(2026, 1, 1, 9, 58, 0, 0, time.UTC)}
	})
	f := newFixture(t, j, podOf(j, "p", corev1.PodRunning, true))
	f.sync("ns/d")
	if c := findCondition(f.job("d").Status.Conditions, batchv1.JobFailureTarget); c == nil || c.Reason != batchv1.JobReasonDeadlineExceeded {
		t.Errorf("conditions %+v", f.job("d").Status.Conditions)
	}
	if f.count("delete", "pods", "") != 1 {
		t.Error("active pod not deleted at the deadline")
	}
}

func TestTTLDeletesFinishedJob(t *testing.T) {
	j := testJob("ttl", func(j *batchv1.Job) {
		j.Spec.TTLSecondsAfterFinished = new(int32(30))
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.Time{Time: time.Date(2026, 1, 1, 9, 59, 0, 0, time.UTC)}}}
	})
	f := newFixture(t, j)
	f.now = time.Date(2026, 1, 1, 9, 59, 20, 0, time.UTC)
	f.sync("ns/ttl")
	if f.count("delete", "jobs", "") != 0 {
		t.Fatal("deleted before the TTL")
	}
	f.now = time.Date(2026, 1, 1, 9, 59, 31, 0, time.UTC)
	f.sync("ns/ttl")
	var del clienttesting.DeleteAction
	for _, a := range f.client.Actions() {
		if d, ok := a.(clienttesting.DeleteAction); ok {
			del = d
		}
	}
	if del == nil || del.GetDeleteOptions().PropagationPolicy == nil || *del.GetDeleteOptions().PropagationPolicy != metav1.DeletePropagationBackground {
		t.Fatalf("delete action %+v", del)
	}
}

func TestSuccessPolicy(t *testing.T) {
	idx := func(s string) *string { return &s }
	job := testJob("sp", func(j *batchv1.Job) {
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
		j.Spec.Completions = new(int32(5))
		j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{
			{SucceededIndexes: idx("0,1")},
			{SucceededIndexes: idx("2-4"), SucceededCount: new(int32(2))},
			{SucceededCount: new(int32(4))},
		}}
	})
	for _, tc := range []struct {
		done string
		want int
	}{{"", -1}, {"0", -1}, {"0-1", 0}, {"2,4", 1}, {"0,2", -1}, {"0,2,3,4", 1}, {"1,2,4", 1}} {
		if got := successPolicyMatch(job, parseIndexes(tc.done, 5)); got != tc.want {
			t.Errorf("succeeded %q: rule %d, want %d", tc.done, got, tc.want)
		}
	}
}

func TestSyncSuccessPolicyEndsJob(t *testing.T) {
	j := testJob("sp", func(j *batchv1.Job) {
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
		j.Spec.Completions, j.Spec.Parallelism = new(int32(3)), new(int32(3))
		j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededCount: new(int32(1))}}}
	})
	leader := podOf(j, "sp-0-aaaaa", corev1.PodSucceeded, true)
	leader.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: "0"}
	worker := podOf(j, "sp-1-bbbbb", corev1.PodRunning, true)
	worker.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: "1"}
	f := newFixture(t, j, leader, worker)
	f.sync("ns/sp")
	got := f.job("sp")
	c := findCondition(got.Status.Conditions, batchv1.JobSuccessCriteriaMet)
	if c == nil || c.Reason != batchv1.JobReasonSuccessPolicy || c.Message != "Matched rules at index 0" {
		t.Fatalf("conditions %+v", got.Status.Conditions)
	}
	if f.count("delete", "pods", "") != 1 || len(f.created()) != 0 {
		t.Errorf("the remaining worker must be deleted, none created")
	}
	if got.Status.CompletedIndexes != "0" || got.Status.Succeeded != 1 {
		t.Errorf("status %+v", got.Status)
	}
}

func TestSyncBackoffLimitPerIndex(t *testing.T) {
	j := testJob("pi", func(j *batchv1.Job) {
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
		j.Spec.Completions, j.Spec.Parallelism = new(int32(3)), new(int32(3))
		j.Spec.BackoffLimitPerIndex = new(int32(1))
		j.Spec.BackoffLimit = new(int32(1 << 30))
	})
	// Index 0 failed twice (its second pod carries failure count 1): it is done for.
	// Index 1 failed once: it gets a replacement that knows.
	f0 := podOf(j, "pi-0-b", corev1.PodFailed, true)
	f0.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: "0", batchv1.JobIndexFailureCountAnnotation: "1"}
	f1 := podOf(j, "pi-1-a", corev1.PodFailed, true)
	f1.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: "1", batchv1.JobIndexFailureCountAnnotation: "0"}
	f := newFixture(t, j, f0, f1)
	f.sync("ns/pi")
	got := f.job("pi")
	if got.Status.FailedIndexes == nil || *got.Status.FailedIndexes != "0" || got.Status.Failed != 2 {
		t.Fatalf("status %+v", got.Status)
	}
	if interimCondition(got) != nil {
		t.Fatalf("job ending early: %+v", got.Status.Conditions)
	}
	created := map[string]string{}
	for _, p := range f.created() {
		created[p.Annotations[batchv1.JobCompletionIndexAnnotation]] = p.Annotations[batchv1.JobIndexFailureCountAnnotation]
	}
	if len(created) != 2 || created["1"] != "1" || created["2"] != "0" {
		t.Errorf("created index→failure count %v, want 1→1, 2→0", created)
	}
}
