// Package cronjob runs the CronJob controller (batch/v1): at each time spec.schedule names (in
// spec.timeZone, UTC by default) it creates a Job from spec.jobTemplate named
// <cronjob>-<scheduled time in unix minutes>, honouring concurrencyPolicy (Allow, Forbid,
// Replace), startingDeadlineSeconds and suspend; it tracks status.active,
// lastScheduleTime and lastSuccessfulTime, and deletes finished jobs beyond
// successfulJobsHistoryLimit and failedJobsHistoryLimit.
package cronjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/reference"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
	"github.com/skiff-sh/skiff/internal/registry/batch"
)

// Name is the component name (and event source).
const Name = "cronjob-controller"

// Event reasons, as Kubernetes records them.
const (
	reasonSuccessfulCreate  = "SuccessfulCreate"
	reasonFailedCreate      = "FailedCreate"
	reasonSuccessfulDelete  = "SuccessfulDelete"
	reasonFailedDelete      = "FailedDelete"
	reasonSawCompletedJob   = "SawCompletedJob"
	reasonMissSchedule      = "MissSchedule"
	reasonJobAlreadyActive  = "JobAlreadyActive"
	reasonUnparseable       = "UnparseableSchedule"
	reasonTooManyMissed     = "TooManyMissedTimes"
	reasonMissingJob        = "MissingJob"
	reasonUnexpectedJob     = "UnexpectedJob"
	tooManyMissedThreshold  = 100
	maxScheduleIterations   = 1 << 20
	scheduleRequeueFudgeDur = 100 * time.Millisecond
)

var cronJobGVK = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Config tunes the controller; zero values mean the defaults.
type Config struct {
	// Now is the clock (tests move it instead of waiting for minutes).
	Now func() time.Time
}

// Controller is the CronJob controller.
type Controller struct {
	client   kubernetes.Interface
	cronJobs batchlisters.CronJobLister
	jobs     batchlisters.JobLister
	jobInf   cache.SharedIndexInformer
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	workers  int
	now      func() time.Time

	mu     sync.Mutex
	missed map[types.UID]time.Time // the last schedule time reported as missed, per CronJob
}

// noteMissed records that t was missed for a CronJob and reports whether it is news.
func (c *Controller) noteMissed(uid types.UID, t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.missed[uid].Equal(t) {
		return false
	}
	c.missed[uid] = t
	return true
}

// New builds the CronJob controller.
func New(cc *controller.Context) (controller.Component, error) {
	return NewWithConfig(Config{})(cc)
}

// NewWithConfig returns a factory for a CronJob controller with the given clock.
func NewWithConfig(cfg Config) func(cc *controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		return newController(cc.Client, cc.Informers, cc.Recorder(Name), cc.Logger, cc.Options.WorkersOr(5), cfg)
	}
}

const ownerIndex = "cronjob-controller-owner-uid"

func newController(client kubernetes.Interface, inf informers.SharedInformerFactory, recorder record.EventRecorder,
	logger *slog.Logger, workers int, cfg Config) (*Controller, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cjInf := inf.Batch().V1().CronJobs()
	jobInf := inf.Batch().V1().Jobs()
	c := &Controller{
		client:   client,
		cronJobs: cjInf.Lister(),
		jobs:     jobInf.Lister(),
		jobInf:   jobInf.Informer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		recorder: recorder,
		log:      logger.With("controller", Name),
		workers:  workers,
		now:      cfg.Now,
		missed:   map[types.UID]time.Time{},
	}
	if err := c.jobInf.AddIndexers(cache.Indexers{ownerIndex: func(obj interface{}) ([]string, error) {
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return nil, nil
		}
		if ref := metav1.GetControllerOf(j); ref != nil && ref.Kind == "CronJob" {
			return []string{string(ref.UID)}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{cjInf.Informer().HasSynced, c.jobInf.HasSynced}
	enqueue := func(obj interface{}) {
		if k := controllerutil.Key(obj); k != "" {
			c.queue.Add(k)
		}
	}
	if _, err := cjInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur interface{}) { enqueue(cur) },
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if cj, ok := obj.(*batchv1.CronJob); ok {
				c.mu.Lock()
				delete(c.missed, cj.UID)
				c.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	onJob := func(obj interface{}) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(j); ref != nil && ref.Kind == "CronJob" {
			c.queue.Add(j.Namespace + "/" + ref.Name)
		}
	}
	if _, err := c.jobInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onJob,
		UpdateFunc: func(_, cur interface{}) { onJob(cur) },
		DeleteFunc: onJob,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

// Run implements controller.Component.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("starting")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return ctx.Err()
	}
	controllerutil.RunWorkers(ctx, c.queue, c.workers, func(ctx context.Context) {
		for c.next(ctx) {
		}
	})
	return nil
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	requeue, err := c.sync(ctx, key)
	if err != nil {
		c.log.Debug("sync failed, requeueing", "key", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	if requeue > 0 {
		c.queue.AddAfter(key, requeue)
	}
	return true
}

// Requeue asks the controller to look at a CronJob again (tests that move the clock).
func (c *Controller) Requeue(namespace, name string) { c.queue.Add(namespace + "/" + name) }

// --- sync ---

func jobFinished(j *batchv1.Job) (batchv1.JobConditionType, bool) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type, true
		}
	}
	return "", false
}

// sync reconciles one CronJob and returns when to look at it again.
func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	cached, err := c.cronJobs.CronJobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	cj := cached.DeepCopy()
	objs, err := c.jobInf.GetIndexer().ByIndex(ownerIndex, string(cj.UID))
	if err != nil {
		return 0, err
	}
	jobs := make([]*batchv1.Job, 0, len(objs))
	for _, o := range objs {
		jobs = append(jobs, o.(*batchv1.Job))
	}
	now := c.now()
	st := cj.Status.DeepCopy()
	c.reconcileActive(ctx, cj, st, jobs)

	var errs []error
	requeue := time.Duration(0)
	if cj.DeletionTimestamp == nil {
		if err := c.cleanupHistory(ctx, cj, jobs); err != nil {
			errs = append(errs, err)
		}
		if !deref(cj.Spec.Suspend, false) {
			var err error
			requeue, err = c.schedule(ctx, cj, st, jobs, now)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if !equality.Semantic.DeepEqual(&cj.Status, st) {
		cj.Status = *st
		if _, err := c.client.BatchV1().CronJobs(cj.Namespace).UpdateStatus(ctx, cj, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return requeue, errors.Join(errs...)
}

// reconcileActive makes status.active the owned jobs that have not finished, and records
// finished ones.
func (c *Controller) reconcileActive(ctx context.Context, cj *batchv1.CronJob, st *batchv1.CronJobStatus, jobs []*batchv1.Job) {
	byUID := map[types.UID]*batchv1.Job{}
	for _, j := range jobs {
		byUID[j.UID] = j
		inActive := false
		for _, r := range st.Active {
			if r.UID == j.UID {
				inActive = true
			}
		}
		t, finished := jobFinished(j)
		switch {
		case !finished && !inActive && j.DeletionTimestamp == nil:
			if ref, err := jobRef(j); err == nil {
				st.Active = append(st.Active, *ref)
			}
		case finished && inActive:
			c.recorder.Eventf(cj, corev1.EventTypeNormal, reasonSawCompletedJob, "Saw completed job: %s, condition: %v", j.Name, t)
			st.Active = removeRef(st.Active, j.UID)
		}
		if finished && t == batchv1.JobComplete && j.Status.CompletionTime != nil {
			if st.LastSuccessfulTime == nil || st.LastSuccessfulTime.Before(j.Status.CompletionTime) {
				st.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
			}
		}
	}
	for _, r := range append([]corev1.ObjectReference(nil), st.Active...) {
		if _, ok := byUID[r.UID]; ok {
			continue
		}
		// Not in the cache: check with the API server before forgetting it.
		j, err := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && j.UID != r.UID) {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, reasonMissingJob, "Active job went missing: %v", r.Name)
			st.Active = removeRef(st.Active, r.UID)
		}
	}
}

func removeRef(refs []corev1.ObjectReference, uid types.UID) []corev1.ObjectReference {
	out := refs[:0:0]
	for _, r := range refs {
		if r.UID != uid {
			out = append(out, r)
		}
	}
	return out
}

func jobRef(j *batchv1.Job) (*corev1.ObjectReference, error) {
	j = j.DeepCopy()
	j.APIVersion, j.Kind = batchv1.SchemeGroupVersion.String(), "Job"
	return reference.GetReference(nil, j)
}

// cleanupHistory deletes the oldest finished jobs beyond the history limits.
func (c *Controller) cleanupHistory(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	var ok, failed []*batchv1.Job
	for _, j := range jobs {
		if j.DeletionTimestamp != nil {
			continue
		}
		switch t, done := jobFinished(j); {
		case done && t == batchv1.JobComplete:
			ok = append(ok, j)
		case done:
			failed = append(failed, j)
		}
	}
	var errs []error
	for _, g := range []struct {
		jobs  []*batchv1.Job
		limit *int32
	}{{ok, cj.Spec.SuccessfulJobsHistoryLimit}, {failed, cj.Spec.FailedJobsHistoryLimit}} {
		if g.limit == nil || len(g.jobs) <= int(*g.limit) {
			continue
		}
		sort.Slice(g.jobs, func(a, b int) bool { return jobStart(g.jobs[a]).Before(jobStart(g.jobs[b])) })
		for _, j := range g.jobs[:len(g.jobs)-int(*g.limit)] {
			if err := c.deleteJob(ctx, cj, j); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func jobStart(j *batchv1.Job) time.Time {
	if j.Status.StartTime != nil {
		return j.Status.StartTime.Time
	}
	return j.CreationTimestamp.Time
}

func (c *Controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, j *batchv1.Job) error {
	bg := metav1.DeletePropagationBackground
	err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, reasonFailedDelete, "Deleted job %v", j.Name)
		return err
	}
	c.recorder.Eventf(cj, corev1.EventTypeNormal, reasonSuccessfulDelete, "Deleted job %v", j.Name)
	return nil
}

// parseSchedule reads a CronJob's schedule in its time zone.
func parseSchedule(cj *batchv1.CronJob) (*batch.Schedule, error) {
	spec := cj.Spec.Schedule
	if cj.Spec.TimeZone != nil {
		spec = "CRON_TZ=" + *cj.Spec.TimeZone + " " + spec
	}
	return batch.ParseSchedule(spec)
}

// mostRecentTime returns the latest schedule time in (earliest, now] (zero if none), how
// many were missed, and the next schedule time after now.
func mostRecentTime(s *batch.Schedule, earliest, now time.Time) (recent time.Time, missed int, next time.Time) {
	t := s.Next(earliest)
	for i := 0; !t.IsZero() && !t.After(now); i++ {
		recent = t
		missed++
		if i >= maxScheduleIterations {
			break
		}
		t = s.Next(t)
	}
	if !t.After(now) {
		t = s.Next(now)
	}
	return recent, missed, t
}

// schedule starts the job due now, if any, and returns when the next one is due.
func (c *Controller) schedule(ctx context.Context, cj *batchv1.CronJob, st *batchv1.CronJobStatus, jobs []*batchv1.Job, now time.Time) (time.Duration, error) {
	sched, err := parseSchedule(cj)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, reasonUnparseable, "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return 0, nil
	}
	earliest := cj.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		earliest = st.LastScheduleTime.Time
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil {
		// Only the most recent time matters; skip the iteration over what is out of reach.
		if w := now.Add(-time.Duration(*d) * time.Second).Add(-2 * time.Minute); w.After(earliest) && sched.Next(w).Before(now) {
			earliest = w
		}
	}
	recent, missed, next := mostRecentTime(sched, earliest, now)
	requeue := time.Duration(0)
	if !next.IsZero() {
		requeue = next.Sub(now) + scheduleRequeueFudgeDur
	}
	if recent.IsZero() {
		return requeue, nil
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil {
		if recent.Add(time.Duration(*d) * time.Second).Before(now) {
			// Too late to start it: say so once per missed time.
			if c.noteMissed(cj.UID, recent) {
				c.recorder.Eventf(cj, corev1.EventTypeWarning, reasonMissSchedule, "Missed scheduled time to start a job: %s", recent.UTC().Format(time.RFC1123Z))
			}
			return requeue, nil
		}
	} else if missed > tooManyMissedThreshold {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, reasonTooManyMissed,
			"too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", missed)
	}
	name := jobName(cj.Name, recent)
	started := false
	for _, j := range jobs {
		started = started || j.Name == name
	}
	for _, r := range st.Active {
		started = started || r.Name == name
	}
	if started {
		// Already started (the status write may have been lost, or our cache is behind it).
		if st.LastScheduleTime == nil || st.LastScheduleTime.Time.Before(recent) {
			st.LastScheduleTime = &metav1.Time{Time: recent}
		}
		return requeue, nil
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(st.Active) > 0 {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, reasonJobAlreadyActive, "Not starting job because prior execution is running and concurrency policy is Forbid")
			return requeue, nil
		}
	case batchv1.ReplaceConcurrent:
		for _, r := range append([]corev1.ObjectReference(nil), st.Active...) {
			j, err := c.jobs.Jobs(cj.Namespace).Get(r.Name)
			if apierrors.IsNotFound(err) {
				st.Active = removeRef(st.Active, r.UID)
				continue
			}
			if err != nil {
				return 0, err
			}
			if err := c.deleteJob(ctx, cj, j); err != nil {
				return 0, err
			}
			st.Active = removeRef(st.Active, r.UID)
		}
	}
	job, err := newJob(cj, recent)
	if err != nil {
		return requeue, nil
	}
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, job, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		existing, gerr := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return 0, gerr
		}
		if ref := metav1.GetControllerOf(existing); ref == nil || ref.UID != cj.UID {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, reasonUnexpectedJob, "Saw a job that the controller did not create or forgot: %s", name)
			return requeue, nil
		}
		created = existing
	case err != nil:
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, reasonFailedCreate, "Error creating job: %v", err)
		}
		return 0, err
	default:
		c.recorder.Eventf(cj, corev1.EventTypeNormal, reasonSuccessfulCreate, "Created job %v", created.Name)
	}
	if _, done := jobFinished(created); !done {
		if ref, err := jobRef(created); err == nil {
			st.Active = append(removeRef(st.Active, created.UID), *ref)
		}
	}
	st.LastScheduleTime = &metav1.Time{Time: recent}
	return requeue, nil
}

// jobName is the name of the job scheduled at t: <cronjob>-<unix minutes>.
func jobName(cronJob string, t time.Time) string {
	return fmt.Sprintf("%s-%d", cronJob, t.Unix()/60)
}

// newJob builds the job a CronJob starts for the schedule time t.
func newJob(cj *batchv1.CronJob, t time.Time) (*batchv1.Job, error) {
	tmpl := cj.Spec.JobTemplate
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            jobName(cj.Name, t),
			Namespace:       cj.Namespace,
			Labels:          copyMap(tmpl.Labels),
			Annotations:     copyMap(tmpl.Annotations),
			OwnerReferences: []metav1.OwnerReference{*controllerutil.ControllerRef(cj, cronJobGVK)},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
	if job.Annotations == nil {
		job.Annotations = map[string]string{}
	}
	loc := time.UTC
	if cj.Spec.TimeZone != nil {
		if l, err := time.LoadLocation(*cj.Spec.TimeZone); err == nil {
			loc = l
		}
	}
	job.Annotations[batchv1.CronJobScheduledTimestampAnnotation] = t.In(loc).Format(time.RFC3339)
	return job, nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
