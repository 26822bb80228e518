package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/cronjob"
	"github.com/skiff-sh/skiff/internal/controller/garbagecollector"
	"github.com/skiff-sh/skiff/internal/controller/job"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// fakeClock is a settable clock for the CronJob controller.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time  { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) Set(t time.Time) { f.mu.Lock(); f.now = t; f.mu.Unlock() }

type cronEnv struct {
	c     *skifftest.Cluster
	clock *fakeClock
	ctl   *cronjob.Controller
}

// cronCluster runs the CronJob controller on a fake clock, the Job controller, the
// scheduler, the garbage collector and simulated nodes.
func cronCluster(t *testing.T) *cronEnv {
	t.Helper()
	env := &cronEnv{clock: &fakeClock{now: time.Now()}}
	var mu sync.Mutex
	factory := func(cc *controller.Context) (controller.Component, error) {
		comp, err := cronjob.NewWithConfig(cronjob.Config{Now: env.clock.Now})(cc)
		if err == nil {
			mu.Lock()
			env.ctl = comp.(*cronjob.Controller)
			mu.Unlock()
		}
		return comp, err
	}
	env.c = simCluster(t, simnode.Config{Count: 2, StartDelay: 100 * time.Millisecond, StopDelay: 200 * time.Millisecond},
		skifftest.Options{Controllers: []controlplane.ComponentFactory{
			factory, job.NewWithConfig(job.Config{Backoff: 50 * time.Millisecond}), scheduler.New, garbagecollector.New,
		}})
	simReadyNodes(t, env.c, 2)
	return env
}

// tick moves the clock to 1s after the next minute boundary and has the controller look.
func (e *cronEnv) tick(name string) time.Time {
	next := e.clock.Now().Truncate(time.Minute).Add(time.Minute)
	e.clock.Set(next.Add(time.Second))
	e.ctl.Requeue("default", name)
	return next
}

func newCronJob(name, schedule string, exitCode string, opts ...func(*batchv1.CronJob)) *batchv1.CronJob {
	tmpl := newTestJob("", exitCode, "200ms")
	if exitCode == "" {
		delete(tmpl.Spec.Template.Annotations, simnode.AnnotationExitAfter)
	}
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.CronJobSpec{
			Schedule:    schedule,
			JobTemplate: batchv1.JobTemplateSpec{Spec: tmpl.Spec},
		},
	}
	for _, o := range opts {
		o(cj)
	}
	return cj
}

func (e *cronEnv) create(t *testing.T, cj *batchv1.CronJob) *batchv1.CronJob {
	t.Helper()
	out, err := e.c.Client.BatchV1().CronJobs("default").Create(context.Background(), cj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *cronEnv) ownedJobs(t *testing.T, cj *batchv1.CronJob) []batchv1.Job {
	t.Helper()
	l, err := e.c.Client.BatchV1().Jobs("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []batchv1.Job
	for _, j := range l.Items {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.UID == cj.UID && j.DeletionTimestamp == nil {
			out = append(out, j)
		}
	}
	return out
}

func (e *cronEnv) getCronJob(t *testing.T, name string) *batchv1.CronJob {
	t.Helper()
	cj, err := e.c.Client.BatchV1().CronJobs("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cj
}

func cronEvents(t *testing.T, c *skifftest.Cluster, name string) map[string]int {
	t.Helper()
	l, err := c.Client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "CronJob", "involvedObject.name": name}.String()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, ev := range l.Items {
		out[ev.Reason] += int(ev.Count)
	}
	return out
}

func TestCronJobCreatesScheduledJobs(t *testing.T) {
	e := cronCluster(t)
	cj := e.create(t, newCronJob("every-minute", "*/1 * * * *", "0"))
	sched := e.tick("every-minute")
	want := fmt.Sprintf("every-minute-%d", sched.Unix()/60)
	var jobs []batchv1.Job
	simEventually(t, 10*time.Second, "the scheduled job", func() (bool, string) {
		jobs = e.ownedJobs(t, cj)
		return len(jobs) == 1, fmt.Sprintf("%d jobs", len(jobs))
	})
	j := jobs[0]
	if j.Name != want {
		t.Errorf("job name %q, want %q", j.Name, want)
	}
	if got := j.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; got != sched.UTC().Format(time.RFC3339) {
		t.Errorf("scheduled-timestamp annotation %q, want %q", got, sched.UTC().Format(time.RFC3339))
	}
	if ref := metav1.GetControllerOf(&j); ref.Kind != "CronJob" || ref.Name != "every-minute" {
		t.Errorf("controllerRef %+v", ref)
	}
	var got *batchv1.CronJob
	simEventually(t, 10*time.Second, "lastScheduleTime", func() (bool, string) {
		got = e.getCronJob(t, "every-minute")
		return got.Status.LastScheduleTime != nil && got.Status.LastScheduleTime.Time.Equal(sched), fmt.Sprintf("%v, want %v", got.Status.LastScheduleTime, sched)
	})
	// The job completes: it leaves status.active and sets lastSuccessfulTime.
	simEventually(t, 20*time.Second, "completed job seen", func() (bool, string) {
		got = e.getCronJob(t, "every-minute")
		return len(got.Status.Active) == 0 && got.Status.LastSuccessfulTime != nil, fmt.Sprintf("%+v", got.Status)
	})
	// Next minute, the next job; the history keeps successfulJobsHistoryLimit (3) jobs.
	for i := 0; i < 4; i++ {
		sched = e.tick("every-minute")
		name := fmt.Sprintf("every-minute-%d", sched.Unix()/60)
		simEventually(t, 20*time.Second, "job "+name+" completes", func() (bool, string) {
			j, err := e.c.Client.BatchV1().Jobs("default").Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return jobCond(j, batchv1.JobComplete) != nil, fmt.Sprintf("%+v", j.Status)
		})
	}
	e.ctl.Requeue("default", "every-minute")
	simEventually(t, 20*time.Second, "history limited to 3", func() (bool, string) {
		n := len(e.ownedJobs(t, cj))
		return n == 3, fmt.Sprintf("%d jobs", n)
	})
	simEventually(t, 10*time.Second, "events", func() (bool, string) {
		ev := cronEvents(t, e.c, "every-minute")
		return ev["SuccessfulCreate"] == 5 && ev["SawCompletedJob"] >= 4 && ev["SuccessfulDelete"] == 2, fmt.Sprint(ev)
	})
}

func TestCronJobConcurrencyPolicies(t *testing.T) {
	e := cronCluster(t)
	forbid := e.create(t, newCronJob("forbid", "* * * * *", "", func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent }))
	replace := e.create(t, newCronJob("replace", "* * * * *", "", func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent }))
	allow := e.create(t, newCronJob("allow", "* * * * *", ""))
	names := []string{"forbid", "replace", "allow"}
	tickAll := func() time.Time {
		s := e.tick(names[0])
		for _, n := range names[1:] {
			e.ctl.Requeue("default", n)
		}
		return s
	}
	first := tickAll()
	for _, cj := range []*batchv1.CronJob{forbid, replace, allow} {
		simEventually(t, 10*time.Second, cj.Name+" first job", func() (bool, string) {
			n := len(e.ownedJobs(t, cj))
			return n == 1, fmt.Sprintf("%d jobs", n)
		})
	}
	second := tickAll()
	simEventually(t, 10*time.Second, "allow runs two jobs", func() (bool, string) {
		n := len(e.ownedJobs(t, allow))
		return n == 2 && len(e.getCronJob(t, "allow").Status.Active) == 2, fmt.Sprintf("%d jobs", n)
	})
	simEventually(t, 10*time.Second, "replace swapped its job", func() (bool, string) {
		jobs := e.ownedJobs(t, replace)
		return len(jobs) == 1 && jobs[0].Name == fmt.Sprintf("replace-%d", second.Unix()/60), fmt.Sprint(len(jobs))
	})
	simEventually(t, 10*time.Second, "forbid skipped", func() (bool, string) {
		ev := cronEvents(t, e.c, "forbid")
		return ev["JobAlreadyActive"] >= 1, fmt.Sprint(ev)
	})
	jobs := e.ownedJobs(t, forbid)
	if len(jobs) != 1 || jobs[0].Name != fmt.Sprintf("forbid-%d", first.Unix()/60) {
		t.Errorf("forbid jobs %d", len(jobs))
	}
	simEventually(t, 10*time.Second, "replace deleted its old job", func() (bool, string) {
		ev := cronEvents(t, e.c, "replace")
		return ev["SuccessfulDelete"] == 1 && ev["SuccessfulCreate"] == 2, fmt.Sprint(ev)
	})
}

func TestCronJobSuspendAndStartingDeadline(t *testing.T) {
	e := cronCluster(t)
	susp := e.create(t, newCronJob("suspended", "* * * * *", "0", func(cj *batchv1.CronJob) { cj.Spec.Suspend = new(true) }))
	late := e.create(t, newCronJob("late", "* * * * *", "0", func(cj *batchv1.CronJob) { cj.Spec.StartingDeadlineSeconds = new(int64(10)) }))
	next := e.clock.Now().Truncate(time.Minute).Add(time.Minute)
	e.clock.Set(next.Add(30 * time.Second)) // 30s late with a 10s starting deadline
	e.ctl.Requeue("default", "suspended")
	e.ctl.Requeue("default", "late")
	simEventually(t, 10*time.Second, "MissSchedule", func() (bool, string) {
		ev := cronEvents(t, e.c, "late")
		return ev["MissSchedule"] >= 1, fmt.Sprint(ev)
	})
	if n := len(e.ownedJobs(t, late)); n != 0 {
		t.Errorf("late cronjob created %d jobs", n)
	}
	// Within the deadline it runs.
	e.clock.Set(next.Add(time.Minute + 5*time.Second))
	e.ctl.Requeue("default", "late")
	simEventually(t, 10*time.Second, "late job within deadline", func() (bool, string) {
		n := len(e.ownedJobs(t, late))
		return n == 1, fmt.Sprintf("%d jobs", n)
	})
	e.ctl.Requeue("default", "suspended")
	time.Sleep(200 * time.Millisecond)
	if n := len(e.ownedJobs(t, susp)); n != 0 {
		t.Errorf("suspended cronjob created %d jobs", n)
	}
	if s := e.getCronJob(t, "suspended").Status; s.LastScheduleTime != nil {
		t.Errorf("suspended cronjob status %+v", s)
	}
}

// TestCronJobManualJob is what `kubectl create job --from=cronjob/x` does: a job owned by
// the CronJob, built from its template, which the CronJob counts as active.
func TestCronJobManualJob(t *testing.T) {
	e := cronCluster(t)
	cj := e.create(t, newCronJob("manual", "@hourly", "0"))
	yes := true
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "manual-run", Namespace: "default",
			Annotations:     map[string]string{"cronjob.kubernetes.io/instantiate": "manual"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: &yes}}},
		Spec: cj.Spec.JobTemplate.Spec,
	}
	if _, err := e.c.Client.BatchV1().Jobs("default").Create(context.Background(), j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitJob(t, e.c, "manual-run", 20*time.Second, "manual job complete", func(j *batchv1.Job) bool { return jobCond(j, batchv1.JobComplete) != nil })
	simEventually(t, 10*time.Second, "lastSuccessfulTime", func() (bool, string) {
		s := e.getCronJob(t, "manual").Status
		return s.LastSuccessfulTime != nil && len(s.Active) == 0 && s.LastScheduleTime == nil, fmt.Sprintf("%+v", s)
	})
}
