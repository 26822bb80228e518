package batch

import (
	"reflect"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func resource(t *testing.T, name string) *registry.Resource {
	t.Helper()
	for _, r := range Resources() {
		if r.Resource == name {
			return r
		}
	}
	t.Fatalf("no resource %q", name)
	return nil
}

func errStrings(errs field.ErrorList) []string {
	out := []string{}
	for _, e := range errs {
		out = append(out, string(e.Type)+" "+e.Field+": "+e.Detail)
	}
	return out
}

func podTemplate(restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy: restart,
		Containers:    []corev1.Container{{Name: "pi", Image: "perl:5.34"}},
	}}
}

const uid = "6a1f2c3d-0000-4000-8000-000000000001"

// created runs a job through the create path of the generic layer: uid, PrepareForCreate,
// Default.
func created(r *registry.Resource, job *batchv1.Job) *batchv1.Job {
	job.UID = types.UID(uid)
	r.PrepareForCreate(job)
	r.Default(job)
	return job
}

func TestJobDefaults(t *testing.T) {
	r := resource(t, "jobs")
	job := created(r, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: "default"},
		Spec:       batchv1.JobSpec{Template: podTemplate(corev1.RestartPolicyNever)},
		Status:     batchv1.JobStatus{Succeeded: 4},
	})
	wantLabels := map[string]string{
		"batch.kubernetes.io/controller-uid": uid,
		"batch.kubernetes.io/job-name":       "pi",
		"controller-uid":                     uid,
		"job-name":                           "pi",
	}
	want := batchv1.JobSpec{
		Parallelism:          new(int32(1)),
		Completions:          new(int32(1)),
		BackoffLimit:         new(int32(6)),
		Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": uid}},
		Template:             podTemplate(corev1.RestartPolicyNever),
		CompletionMode:       new(batchv1.NonIndexedCompletion),
		Suspend:              new(false),
		PodReplacementPolicy: new(batchv1.TerminatingOrFailed),
	}
	want.Template.Labels = wantLabels
	if !reflect.DeepEqual(job.Spec, want) {
		t.Errorf("spec:\n%#v\nwant:\n%#v", job.Spec, want)
	}
	if !reflect.DeepEqual(job.Labels, wantLabels) {
		t.Errorf("job labels %v, want the template's", job.Labels)
	}
	if job.Status.Succeeded != 0 {
		t.Errorf("status not reset: %+v", job.Status)
	}
	if errs := r.Validate(job); len(errs) != 0 {
		t.Errorf("unexpected errors: %v", errs)
	}
}

func TestJobDefaultVariants(t *testing.T) {
	tests := []struct {
		name  string
		spec  batchv1.JobSpec
		check func(*testing.T, *batchv1.Job)
	}{{
		name: "parallelism only",
		spec: batchv1.JobSpec{Parallelism: new(int32(3))},
		check: func(t *testing.T, j *batchv1.Job) {
			if j.Spec.Completions != nil || *j.Spec.Parallelism != 3 {
				t.Errorf("completions %v parallelism %v", j.Spec.Completions, *j.Spec.Parallelism)
			}
		},
	}, {
		name: "backoffLimitPerIndex",
		spec: batchv1.JobSpec{BackoffLimitPerIndex: new(int32(1))},
		check: func(t *testing.T, j *batchv1.Job) {
			if *j.Spec.BackoffLimit != 2147483647 {
				t.Errorf("backoffLimit %d", *j.Spec.BackoffLimit)
			}
		},
	}, {
		name: "pod failure policy",
		spec: batchv1.JobSpec{PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
			Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}},
		}}}},
		check: func(t *testing.T, j *batchv1.Job) {
			if *j.Spec.PodReplacementPolicy != batchv1.Failed || j.Spec.PodFailurePolicy.Rules[0].OnPodConditions[0].Status != corev1.ConditionTrue {
				t.Errorf("spec %+v", j.Spec)
			}
		},
	}, {
		name: "manual selector is kept",
		spec: batchv1.JobSpec{ManualSelector: new(true), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}},
		check: func(t *testing.T, j *batchv1.Job) {
			if !reflect.DeepEqual(j.Spec.Selector.MatchLabels, map[string]string{"a": "b"}) || j.Spec.Template.Labels != nil {
				t.Errorf("selector %v labels %v", j.Spec.Selector, j.Spec.Template.Labels)
			}
		},
	}, {
		name: "user labels copied before generation",
		spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "pi"}}}},
		check: func(t *testing.T, j *batchv1.Job) {
			if !reflect.DeepEqual(j.Labels, map[string]string{"app": "pi"}) {
				t.Errorf("job labels %v", j.Labels)
			}
		},
	}}
	r := resource(t, "jobs")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, created(r, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: tt.spec}))
		})
	}
}

func TestValidateJob(t *testing.T) {
	tests := []struct {
		name   string
		job    batchv1.JobSpec
		mutate func(*batchv1.Job)
		want   []string
	}{{
		name: "restartPolicy defaulted to Always",
		job:  batchv1.JobSpec{Template: podTemplate("")},
		want: []string{`FieldValueRequired spec.template.spec.restartPolicy: valid values: "OnFailure", "Never"`},
	}, {
		name: "unknown restartPolicy",
		job:  batchv1.JobSpec{Template: podTemplate("Sometimes")},
		want: []string{`FieldValueNotSupported spec.template.spec.restartPolicy: supported values: "OnFailure", "Never"`},
	}, {
		name: "negative counts",
		job:  batchv1.JobSpec{Template: podTemplate(corev1.RestartPolicyOnFailure), Parallelism: new(int32(-1)), BackoffLimit: new(int32(-1))},
		want: []string{
			"FieldValueInvalid spec.parallelism: must be greater than or equal to 0",
			"FieldValueInvalid spec.backoffLimit: must be greater than or equal to 0",
		},
	}, {
		name: "indexed without completions",
		job:  batchv1.JobSpec{Template: podTemplate(corev1.RestartPolicyNever), Parallelism: new(int32(2)), CompletionMode: new(batchv1.IndexedCompletion)},
		want: []string{"FieldValueRequired spec.completions: when completion mode is Indexed"},
	}, {
		name: "manual selector must match template",
		job: batchv1.JobSpec{Template: podTemplate(corev1.RestartPolicyNever), ManualSelector: new(true),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}},
		want: []string{"FieldValueInvalid spec.template.metadata.labels: `selector` does not match template `labels`"},
	}, {
		name: "generated label tampered with",
		job:  batchv1.JobSpec{Template: podTemplate(corev1.RestartPolicyNever)},
		mutate: func(j *batchv1.Job) {
			j.Spec.Template.Labels["job-name"] = "other"
		},
		want: []string{"FieldValueInvalid spec.template.metadata.labels[job-name]: must be 'pi'"},
	}}
	r := resource(t, "jobs")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := created(r, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi"}, Spec: tt.job})
			if tt.mutate != nil {
				tt.mutate(job)
			}
			if got := errStrings(r.Validate(job)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestValidateJobUpdate(t *testing.T) {
	r := resource(t, "jobs")
	base := created(r, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi"}, Spec: batchv1.JobSpec{Template: podTemplate(corev1.RestartPolicyNever)}})
	suspended := base.DeepCopy()
	suspended.Spec.Suspend = new(true)
	tests := []struct {
		name   string
		old    *batchv1.Job
		mutate func(*batchv1.Job)
		want   []string
	}{{
		name:   "image is immutable",
		old:    base,
		mutate: func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "perl:6" },
		want:   []string{"FieldValueInvalid spec.template: field is immutable"},
	}, {
		name:   "completions are immutable",
		old:    base,
		mutate: func(j *batchv1.Job) { j.Spec.Completions = new(int32(3)) },
		want:   []string{"FieldValueInvalid spec.completions: field is immutable"},
	}, {
		name:   "suspend and parallelism may change",
		old:    base,
		mutate: func(j *batchv1.Job) { j.Spec.Suspend = new(true); j.Spec.Parallelism = new(int32(4)) },
		want:   []string{},
	}, {
		name:   "a suspended job that never ran may change its node selector",
		old:    suspended,
		mutate: func(j *batchv1.Job) { j.Spec.Template.Spec.NodeSelector = map[string]string{"zone": "a"} },
		want:   []string{},
	}, {
		name:   "but not its containers",
		old:    suspended,
		mutate: func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Name = "x" },
		want:   []string{"FieldValueInvalid spec.template: field is immutable"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := tt.old.DeepCopy()
			tt.mutate(job)
			if got := errStrings(r.ValidateUpdate(job, tt.old)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func minimalCronJob(schedule string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: batchv1.CronJobSpec{
			Schedule:    schedule,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate(corev1.RestartPolicyOnFailure)}},
		},
	}
}

func TestCronJobDefaults(t *testing.T) {
	r := resource(t, "cronjobs")
	cj := minimalCronJob("*/1 * * * *")
	r.Default(cj)
	want := minimalCronJob("*/1 * * * *").Spec
	want.ConcurrencyPolicy = batchv1.AllowConcurrent
	want.Suspend = new(false)
	want.SuccessfulJobsHistoryLimit = new(int32(3))
	want.FailedJobsHistoryLimit = new(int32(1))
	if !reflect.DeepEqual(cj.Spec, want) {
		t.Errorf("spec:\n%#v\nwant:\n%#v", cj.Spec, want)
	}
	if errs := r.Validate(cj); len(errs) != 0 {
		t.Errorf("unexpected errors: %v", errs)
	}
}

func TestValidateCronJob(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*batchv1.CronJob)
		want   []string
	}{{
		name:   "schedule required",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "" },
		want:   []string{"FieldValueRequired spec.schedule: "},
	}, {
		name:   "too few fields",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "* * * *" },
		want:   []string{"FieldValueInvalid spec.schedule: expected exactly 5 fields, found 4: [* * * *]"},
	}, {
		name:   "minute out of range",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "61 * * * *" },
		want:   []string{"FieldValueInvalid spec.schedule: end of range (61) above maximum (59): 61"},
	}, {
		name:   "TZ in schedule",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "TZ=UTC 0 * * * *" },
		want:   []string{"FieldValueInvalid spec.schedule: cannot use TZ or CRON_TZ in schedule, use timeZone field instead"},
	}, {
		name:   "valid time zone",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = new("Europe/Paris") },
		want:   []string{},
	}, {
		name:   "unknown time zone",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = new("Mars/Olympus") },
		want:   []string{"FieldValueInvalid spec.timeZone: unknown time zone Mars/Olympus"},
	}, {
		name:   "bad time zone characters",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = new("Europe/Par is") },
		want:   []string{"FieldValueInvalid spec.timeZone: unknown time zone Europe/Par is"},
	}, {
		name:   "Local time zone",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = new("Local") },
		want:   []string{"FieldValueInvalid spec.timeZone: timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"},
	}, {
		name: "job template selector",
		mutate: func(cj *batchv1.CronJob) {
			cj.Spec.JobTemplate.Spec.Selector = &metav1.LabelSelector{}
			cj.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		},
		want: []string{
			`FieldValueRequired spec.jobTemplate.spec.template.spec.restartPolicy: valid values: "OnFailure", "Never"`,
			"FieldValueInvalid spec.jobTemplate.spec.selector: `selector` will be auto-generated",
		},
	}, {
		name:   "name too long",
		mutate: func(cj *batchv1.CronJob) { cj.Name = "a-very-long-cronjob-name-that-goes-over-fifty-two-chars" },
		want:   []string{"FieldValueInvalid metadata.name: must be no more than 52 characters"},
	}, {
		name:   "concurrency policy",
		mutate: func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = "Sometimes" },
		want:   []string{`FieldValueNotSupported spec.concurrencyPolicy: supported values: "Allow", "Forbid", "Replace"`},
	}}
	r := resource(t, "cronjobs")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cj := minimalCronJob("0 * * * *")
			r.Default(cj)
			tt.mutate(cj)
			if got := errStrings(r.Validate(cj)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestParseSchedule(t *testing.T) {
	from := time.Date(2026, 3, 4, 10, 7, 30, 0, time.UTC) // a Wednesday
	tests := []struct {
		spec    string
		wantErr string
		next    time.Time
	}{
		{spec: "*/15 * * * *", next: time.Date(2026, 3, 4, 10, 15, 0, 0, time.UTC)},
		{spec: "0 9-17 * * mon-fri", next: time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC)},
		{spec: "30 6 * * SUN", next: time.Date(2026, 3, 8, 6, 30, 0, 0, time.UTC)},
		{spec: "0 0 1,15 * *", next: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)},
		{spec: "0 12 * jan,Jul ?", next: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)},
		{spec: "5/20 * * * *", next: time.Date(2026, 3, 4, 10, 25, 0, 0, time.UTC)},
		{spec: "0 0 13 * fri", next: time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC)},
		{spec: "@hourly", next: time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC)},
		{spec: "@daily", next: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)},
		{spec: "@weekly", next: time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)},
		{spec: "@monthly", next: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{spec: "@yearly", next: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{spec: "@every 90m", next: time.Date(2026, 3, 4, 11, 37, 30, 0, time.UTC)},
		{spec: "0 0 30 2 *", next: time.Time{}},
		{spec: "", wantErr: "empty spec string"},
		{spec: "* * * *", wantErr: "expected exactly 5 fields, found 4: [* * * *]"},
		{spec: "* * * * * *", wantErr: "expected exactly 5 fields, found 6: [* * * * * *]"},
		{spec: "60 * * * *", wantErr: "end of range (60) above maximum (59): 60"},
		{spec: "* * 0 * *", wantErr: "beginning of range (0) below minimum (1): 0"},
		{spec: "* * * * 7", wantErr: "end of range (7) above maximum (6): 7"},
		{spec: "5-2 * * * *", wantErr: "beginning of range (5) beyond end of range (2): 5-2"},
		{spec: "*/0 * * * *", wantErr: "step of range should be a positive number: */0"},
		{spec: "1-2-3 * * * *", wantErr: "too many hyphens: 1-2-3"},
		{spec: "*/2/3 * * * *", wantErr: "too many slashes: */2/3"},
		{spec: "x * * * *", wantErr: `failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax`},
		{spec: "* * * foo *", wantErr: `failed to parse int from foo: strconv.Atoi: parsing "foo": invalid syntax`},
		{spec: "@fortnightly", wantErr: "unrecognized descriptor: @fortnightly"},
		{spec: "@every x", wantErr: `failed to parse duration @every x: time: invalid duration "x"`},
		{spec: "TZ=Nowhere/Atall 0 * * * *", wantErr: "provided bad location Nowhere/Atall: unknown time zone Nowhere/Atall"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := ParseSchedule(tt.spec)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Next(from); !got.Equal(tt.next) {
				t.Errorf("next after %v: %v, want %v", from, got, tt.next)
			}
		})
	}
}

func TestScheduleTimeZone(t *testing.T) {
	s, err := ParseSchedule("CRON_TZ=America/New_York 0 9 * * *")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC) // 07:00 in New York
	if got, want := s.Next(from), time.Date(2026, 1, 5, 14, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next %v, want %v", got, want)
	}
}

func TestRows(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": uid}}
	job := func(status batchv1.JobStatus) *batchv1.Job {
		return &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "pi", CreationTimestamp: *ago(10 * time.Minute)},
			Spec:       batchv1.JobSpec{Completions: new(int32(1)), Parallelism: new(int32(1)), Selector: sel, Template: podTemplate(corev1.RestartPolicyNever)},
			Status:     status,
		}
	}
	complete := job(batchv1.JobStatus{
		StartTime: ago(10 * time.Minute), CompletionTime: ago(10*time.Minute - 42*time.Second), Succeeded: 1,
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue},
		},
	})
	parallel := job(batchv1.JobStatus{StartTime: ago(time.Minute)})
	parallel.Spec.Completions = nil
	parallel.Spec.Parallelism = new(int32(3))
	suspended := job(batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue}}})
	failed := job(batchv1.JobStatus{Failed: 7, StartTime: ago(9 * time.Minute), Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue}, {Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}})
	terminating := job(batchv1.JobStatus{StartTime: ago(2 * time.Minute)})
	terminating.DeletionTimestamp = ago(0)

	cj := minimalCronJob("*/5 * * * *")
	cj.CreationTimestamp = *ago(3 * time.Hour)
	cj.Spec.Suspend = new(false)
	cj.Status.Active = []corev1.ObjectReference{{Name: "hello-1"}}
	cj.Status.LastScheduleTime = ago(2 * time.Minute)
	cjTZ := minimalCronJob("0 9 * * *")
	cjTZ.CreationTimestamp = *ago(3 * time.Hour)
	cjTZ.Spec.TimeZone = new("Etc/UTC")
	cjTZ.Spec.Suspend = new(true)

	tests := []struct {
		name     string
		resource string
		obj      runtime.Object
		want     []interface{}
	}{
		{"running job", "jobs", job(batchv1.JobStatus{StartTime: ago(3 * time.Minute), Active: 1}),
			[]interface{}{"pi", "Running", "0/1", "3m", "10m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=" + uid}},
		{"complete job", "jobs", complete,
			[]interface{}{"pi", "Complete", "1/1", "42s", "10m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=" + uid}},
		{"parallel job", "jobs", parallel,
			[]interface{}{"pi", "Running", "0/1 of 3", "60s", "10m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=" + uid}},
		{"suspended job", "jobs", suspended,
			[]interface{}{"pi", "Suspended", "0/1", "", "10m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=" + uid}},
		{"failed job", "jobs", failed,
			[]interface{}{"pi", "Failed", "0/1", "9m", "10m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=" + uid}},
		{"terminating job", "jobs", terminating,
			[]interface{}{"pi", "Terminating", "0/1", "2m", "10m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=" + uid}},
		{"cronjob", "cronjobs", cj,
			[]interface{}{"hello", "*/5 * * * *", "<none>", "False", int64(1), "2m", "3h", "pi", "perl:5.34", "<none>"}},
		{"cronjob with time zone", "cronjobs", cjTZ,
			[]interface{}{"hello", "0 9 * * *", "Etc/UTC", "True", int64(0), "<none>", "3h", "pi", "perl:5.34", "<none>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resource(t, tt.resource)
			got := r.Row(tt.obj, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("row %#v\nwant %#v", got, tt.want)
			}
			if len(got) != len(r.Columns) {
				t.Errorf("%d cells for %d columns", len(got), len(r.Columns))
			}
		})
	}
}

func TestJobFields(t *testing.T) {
	j := &batchv1.Job{Status: batchv1.JobStatus{Succeeded: 2}}
	if got := resource(t, "jobs").Fields(j)["status.successful"]; got != "2" {
		t.Errorf("status.successful %q", got)
	}
}
