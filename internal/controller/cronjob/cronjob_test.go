package cronjob

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/registry/batch"
)

func mustParse(t *testing.T, cj *batchv1.CronJob) *batch.Schedule {
	t.Helper()
	s, err := parseSchedule(cj)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func utc(h, m, s int) time.Time { return time.Date(2026, 3, 10, h, m, s, 0, time.UTC) }

func TestMostRecentTime(t *testing.T) {
	tokyo := "Asia/Tokyo"
	for _, tc := range []struct {
		name             string
		schedule         string
		tz               *string
		earliest, now    time.Time
		recent, next     time.Time
		missed           int
		wantRecentIsZero bool
	}{
		{name: "every minute, one due", schedule: "*/1 * * * *", earliest: utc(10, 0, 30), now: utc(10, 1, 5),
			recent: utc(10, 1, 0), next: utc(10, 2, 0), missed: 1},
		{name: "several missed: the latest", schedule: "* * * * *", earliest: utc(10, 0, 0), now: utc(10, 5, 0),
			recent: utc(10, 5, 0), next: utc(10, 6, 0), missed: 5},
		{name: "hourly, none due", schedule: "@hourly", earliest: utc(10, 0, 0), now: utc(10, 59, 59),
			wantRecentIsZero: true, next: utc(11, 0, 0)},
		{name: "time zone", schedule: "0 9 * * *", tz: &tokyo, earliest: utc(0, 0, 0).Add(-time.Minute), now: utc(0, 30, 0),
			recent: utc(0, 0, 0), next: utc(0, 0, 0).Add(24 * time.Hour), missed: 1},
	} {
		cj := &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: tc.schedule, TimeZone: tc.tz}}
		recent, missed, next := mostRecentTime(mustParse(t, cj), tc.earliest, tc.now)
		if tc.wantRecentIsZero != recent.IsZero() || (!tc.wantRecentIsZero && !recent.Equal(tc.recent)) || missed != tc.missed || !next.Equal(tc.next) {
			t.Errorf("%s: recent %v missed %d next %v; want %v %d %v", tc.name, recent, missed, next, tc.recent, tc.missed, tc.next)
		}
	}
}

func TestNewJob(t *testing.T) {
	tz := "America/New_York"
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "hello", UID: "cj-uid"},
		Spec: batchv1.CronJobSpec{TimeZone: &tz, JobTemplate: batchv1.JobTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "hello"}, Annotations: map[string]string{"a": "b"}},
			Spec:       batchv1.JobSpec{BackoffLimit: new(int32(2))},
		}},
	}
	at := utc(14, 0, 0)
	j, err := newJob(cj, at)
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello-" + "29552520"; j.Name != want { // 2026-03-10T14:00Z in unix minutes
		t.Errorf("name %q, want %q", j.Name, want)
	}
	if got := j.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; got != "2026-03-10T10:00:00-04:00" {
		t.Errorf("scheduled timestamp %q", got)
	}
	if j.Labels["app"] != "hello" || j.Annotations["a"] != "b" || *j.Spec.BackoffLimit != 2 {
		t.Errorf("template not copied: %+v", j.ObjectMeta)
	}
	if ref := metav1.GetControllerOf(j); ref == nil || ref.Kind != "CronJob" || ref.UID != "cj-uid" {
		t.Errorf("controllerRef %+v", ref)
	}
}

type fixture struct {
	client *fake.Clientset
	c      *Controller
	rec    *record.FakeRecorder
	now    time.Time
}

func newFixture(t *testing.T, now time.Time, objs ...runtime.Object) *fixture {
	f := &fixture{client: fake.NewClientset(objs...), rec: record.NewFakeRecorder(100), now: now}
	inf := informers.NewSharedInformerFactory(f.client, 0)
	c, err := newController(f.client, inf, f.rec, nil, 1, Config{Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *batchv1.CronJob:
			_ = inf.Batch().V1().CronJobs().Informer().GetIndexer().Add(o)
		case *batchv1.Job:
			_ = inf.Batch().V1().Jobs().Informer().GetIndexer().Add(o)
		}
	}
	f.c = c
	return f
}

func cronJob(mut ...func(*batchv1.CronJob)) *batchv1.CronJob {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cj", UID: "cj-uid", CreationTimestamp: metav1.Time{Time: utc(10, 0, 30)}},
		Spec: batchv1.CronJobSpec{Schedule: "* * * * *", ConcurrencyPolicy: batchv1.AllowConcurrent, Suspend: new(false),
			SuccessfulJobsHistoryLimit: new(int32(3)), FailedJobsHistoryLimit: new(int32(1))},
	}
	for _, m := range mut {
		m(cj)
	}
	return cj
}

func ownedJob(cj *batchv1.CronJob, name string, cond batchv1.JobConditionType, start time.Time) *batchv1.Job {
	yes := true
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: k8stypes.UID("uid-" + name),
		CreationTimestamp: metav1.Time{Time: start},
		OwnerReferences:   []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: &yes}}},
		Status: batchv1.JobStatus{StartTime: &metav1.Time{Time: start}}}
	if cond != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue}}
		if cond == batchv1.JobComplete {
			j.Status.CompletionTime = &metav1.Time{Time: start.Add(time.Second)}
		}
	}
	return j
}

func (f *fixture) actions(verb, resource string) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range f.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			out = append(out, a)
		}
	}
	return out
}

func drain(rec *record.FakeRecorder) string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return strings.Join(out, "\n")
		}
	}
}

func TestSyncCreatesDueJob(t *testing.T) {
	cj := cronJob()
	f := newFixture(t, utc(10, 1, 2), cj)
	requeue, err := f.c.sync(context.Background(), "ns/cj")
	if err != nil {
		t.Fatal(err)
	}
	creates := f.actions("create", "jobs")
	if len(creates) != 1 {
		t.Fatalf("%d jobs created", len(creates))
	}
	j := creates[0].(clienttesting.CreateAction).GetObject().(*batchv1.Job)
	if j.Name != "cj-29552281" {
		t.Errorf("job name %q", j.Name)
	}
	got, _ := f.client.BatchV1().CronJobs("ns").Get(context.Background(), "cj", metav1.GetOptions{})
	if got.Status.LastScheduleTime == nil || !got.Status.LastScheduleTime.Time.Equal(utc(10, 1, 0)) || len(got.Status.Active) != 1 || got.Status.Active[0].Name != j.Name {
		t.Errorf("status %+v", got.Status)
	}
	if requeue < 57*time.Second || requeue > 59*time.Second {
		t.Errorf("requeue in %v, want about 58s", requeue)
	}
	if ev := drain(f.rec); !strings.Contains(ev, "SuccessfulCreate Created job cj-29552281") {
		t.Errorf("events %q", ev)
	}
}

func TestSyncForbidAndHistory(t *testing.T) {
	cj := cronJob(func(cj *batchv1.CronJob) {
		cj.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
		cj.Spec.SuccessfulJobsHistoryLimit = new(int32(1))
		cj.Status.LastScheduleTime = &metav1.Time{Time: utc(10, 3, 0)}
	})
	running := ownedJob(cj, "cj-running", "", utc(10, 3, 0))
	cj.Status.Active = []corev1.ObjectReference{{Kind: "Job", Namespace: "ns", Name: running.Name, UID: running.UID}}
	old1 := ownedJob(cj, "cj-old1", batchv1.JobComplete, utc(10, 1, 0))
	old2 := ownedJob(cj, "cj-old2", batchv1.JobComplete, utc(10, 2, 0))
	f := newFixture(t, utc(10, 4, 1), cj, running, old1, old2)
	if _, err := f.c.sync(context.Background(), "ns/cj"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "jobs")); n != 0 {
		t.Errorf("Forbid created %d jobs while one runs", n)
	}
	dels := f.actions("delete", "jobs")
	if len(dels) != 1 || dels[0].(clienttesting.DeleteAction).GetName() != "cj-old1" {
		t.Errorf("history deletions %v", dels)
	}
	ev := drain(f.rec)
	if !strings.Contains(ev, "JobAlreadyActive") || !strings.Contains(ev, "SuccessfulDelete Deleted job cj-old1") {
		t.Errorf("events %q", ev)
	}
	got, _ := f.client.BatchV1().CronJobs("ns").Get(context.Background(), "cj", metav1.GetOptions{})
	if got.Status.LastSuccessfulTime == nil || !got.Status.LastSuccessfulTime.Time.Equal(utc(10, 2, 1)) {
		t.Errorf("lastSuccessfulTime %v", got.Status.LastSuccessfulTime)
	}
}

func TestSyncMissedStartingDeadline(t *testing.T) {
	cj := cronJob(func(cj *batchv1.CronJob) { cj.Spec.StartingDeadlineSeconds = new(int64(5)) })
	f := newFixture(t, utc(10, 1, 20), cj)
	if _, err := f.c.sync(context.Background(), "ns/cj"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "jobs")); n != 0 {
		t.Errorf("created %d jobs past the starting deadline", n)
	}
	if ev := drain(f.rec); !strings.Contains(ev, "MissSchedule Missed scheduled time to start a job: Tue, 10 Mar 2026 10:01:00 +0000") {
		t.Errorf("events %q", ev)
	}
	// Reported once.
	if _, err := f.c.sync(context.Background(), "ns/cj"); err != nil {
		t.Fatal(err)
	}
	if ev := drain(f.rec); ev != "" {
		t.Errorf("repeated events %q", ev)
	}
}

func TestSyncSuspended(t *testing.T) {
	cj := cronJob(func(cj *batchv1.CronJob) { cj.Spec.Suspend = new(true) })
	f := newFixture(t, utc(10, 5, 0), cj)
	if _, err := f.c.sync(context.Background(), "ns/cj"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "jobs")); n != 0 {
		t.Errorf("suspended cronjob created %d jobs", n)
	}
}
