// Package job runs the Job controller (batch/v1): it creates pods until spec.completions of
// them succeed (NonIndexed) or every completion index has a succeeded pod (Indexed), at most
// spec.parallelism at a time; counts failures against backoffLimit (failed pods under
// restartPolicy Never, container restarts under OnFailure) and the pod failure policy;
// enforces activeDeadlineSeconds; suspends and resumes; and deletes finished jobs after
// ttlSecondsAfterFinished.
//
// Pods carry the batch.kubernetes.io/job-tracking finalizer from creation until the
// controller has counted them: a finished pod's UID is first written to
// status.uncountedTerminatedPods, then its finalizer is removed, then it moves into
// status.succeeded / status.failed. Counts therefore survive pods being deleted, and a pod is
// never counted twice (the status writes are optimistic-concurrency updates).
package job

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

const (
	// Name is the component name (and event source).
	Name = "job-controller"
	// DefaultBackoff is the delay before replacing the first failed pod; it doubles with
	// each further failure up to DefaultMaxBackoff.
	DefaultBackoff    = 10 * time.Second
	DefaultMaxBackoff = 6 * time.Minute
	// ControllerName is the spec.managedBy value this controller handles (as does an unset one).
	ControllerName = "kubernetes.io/job-controller"
	// EnvCompletionIndex is the variable an indexed job's containers read their index from.
	EnvCompletionIndex = "JOB_COMPLETION_INDEX"

	podKeyPrefix = "pod:"
	burst        = 500
)

// Event reasons and messages, as Kubernetes records them.
const (
	reasonCompleted     = "Completed"
	reasonSuspended     = "Suspended"
	reasonResumed       = "Resumed"
	msgBackoffLimit     = "Job has reached the specified backoff limit"
	msgDeadline         = "Job was active longer than specified deadline"
	msgCompletions      = "Reached expected number of succeeded pods"
	msgFailedIndexes    = "Job has failed indexes"
	msgMaxFailedIndexes = "Job has exceeded the specified maximal number of failed indexes"
	reasonJobSuspend    = "JobSuspended"
	reasonJobResumed    = "JobResumed"
	msgJobSuspended     = "Job suspended"
	msgJobResumed       = "Job resumed"
	msgJobCompletedEv   = "Job completed"
)

var jobGVK = batchv1.SchemeGroupVersion.WithKind("Job")

// Config tunes the controller; zero values mean the defaults.
type Config struct {
	// Backoff and MaxBackoff bound the delay before failed pods are replaced.
	Backoff, MaxBackoff time.Duration
	// Now is the clock.
	Now func() time.Time
}

// Controller is the Job controller.
type Controller struct {
	client   kubernetes.Interface
	jobs     batchlisters.JobLister
	pods     corelisters.PodLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	exp      *controllerutil.Expectations
	recorder record.EventRecorder
	log      *slog.Logger
	workers  int
	cfg      Config

	mu sync.Mutex
	// finalizerRemoved holds pods whose finalizer this controller removed and whose update
	// the informer may not have delivered yet: they must not be counted again.
	finalizerRemoved map[types.UID]struct{}
	// deletedByUs holds pods the controller deleted itself (suspension, excess, job end):
	// they are not failures.
	deletedByUs map[types.UID]struct{}
	// written is the last job this controller wrote, per key: a sync must not decide from
	// an informer copy older than its own last write (it would, say, create pods for a job
	// it has just failed).
	written map[string]*batchv1.Job
}

// remember records the job just written.
func (c *Controller) remember(job *batchv1.Job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written[job.Namespace+"/"+job.Name] = job
}

// newest returns the more recent of the cached job and the one last written.
func (c *Controller) newest(key string, cached *batchv1.Job) *batchv1.Job {
	c.mu.Lock()
	w := c.written[key]
	c.mu.Unlock()
	if w == nil || w.UID != cached.UID {
		return cached
	}
	wrv, err1 := strconv.ParseUint(w.ResourceVersion, 10, 64)
	crv, err2 := strconv.ParseUint(cached.ResourceVersion, 10, 64)
	if err1 != nil || err2 != nil || crv >= wrv {
		c.mu.Lock()
		if c.written[key] == w {
			delete(c.written, key)
		}
		c.mu.Unlock()
		return cached
	}
	return w
}

// New builds the Job controller with Kubernetes' timings.
func New(cc *controller.Context) (controller.Component, error) {
	return NewWithConfig(Config{})(cc)
}

// NewWithConfig returns a factory for a Job controller with the given timings (tests use a
// short backoff).
func NewWithConfig(cfg Config) func(cc *controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		return newController(cc.Client, cc.Informers, cc.Recorder(Name), cc.Logger, cc.Options.WorkersOr(5), cfg)
	}
}

func newController(client kubernetes.Interface, inf informers.SharedInformerFactory, recorder record.EventRecorder,
	logger *slog.Logger, workers int, cfg Config) (*Controller, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	jobInf := inf.Batch().V1().Jobs()
	podInf := inf.Core().V1().Pods()
	c := &Controller{
		client: client,
		jobs:   jobInf.Lister(),
		pods:   podInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		exp:              controllerutil.NewExpectations(),
		recorder:         recorder,
		log:              logger.With("controller", Name),
		workers:          workers,
		cfg:              cfg,
		finalizerRemoved: map[types.UID]struct{}{},
		deletedByUs:      map[types.UID]struct{}{},
		written:          map[string]*batchv1.Job{},
	}
	c.synced = []cache.InformerSynced{jobInf.Informer().HasSynced, podInf.Informer().HasSynced}
	if _, err := jobInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.enqueueJob(obj) },
		UpdateFunc: func(_, cur interface{}) { c.enqueueJob(cur) },
		DeleteFunc: c.deleteJob,
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				c.forgetPod(p.UID, true)
				c.deletePod(p)
			}
		},
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
	if err := c.sync(ctx, key); err != nil {
		c.log.Debug("sync failed, requeueing", "key", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// --- events ---

func (c *Controller) enqueueJob(obj interface{}) {
	if k := controllerutil.Key(obj); k != "" {
		c.queue.Add(k)
	}
}

func (c *Controller) deleteJob(obj interface{}) {
	if k := controllerutil.Key(obj); k != "" {
		c.exp.Forget(k)
		c.queue.Add(k)
	}
}

// jobOf returns the key of the job that controls pod (whether or not it still exists) and
// the job when the cache has it with the same UID.
func (c *Controller) jobOf(pod *corev1.Pod) (string, *batchv1.Job) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "Job" {
		return "", nil
	}
	if gv, err := schemaGroup(ref.APIVersion); err != nil || gv != batchv1.GroupName {
		return "", nil
	}
	key := pod.Namespace + "/" + ref.Name
	job, err := c.jobs.Jobs(pod.Namespace).Get(ref.Name)
	if err != nil || job.UID != ref.UID {
		return key, nil
	}
	return key, job
}

func (c *Controller) addPod(obj interface{}) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod)
		return
	}
	key, job := c.jobOf(pod)
	if key == "" {
		return
	}
	if job == nil {
		c.maybeOrphan(pod)
		return
	}
	c.exp.CreationObserved(key)
	c.queue.Add(key)
}

func (c *Controller) updatePod(old, cur interface{}) {
	oldPod, curPod := old.(*corev1.Pod), cur.(*corev1.Pod)
	if oldPod.ResourceVersion == curPod.ResourceVersion {
		return
	}
	if !hasFinalizer(curPod) {
		c.forgetPod(curPod.UID, false)
	}
	key, job := c.jobOf(curPod)
	if key == "" {
		if metav1.GetControllerOf(curPod) == nil && hasFinalizer(curPod) {
			// Released by its job (labels changed): nobody will count it.
			c.queue.Add(podKeyPrefix + curPod.Namespace + "/" + curPod.Name)
		}
		return
	}
	if job == nil {
		c.maybeOrphan(curPod)
		return
	}
	if curPod.DeletionTimestamp != nil {
		c.exp.DeletionObserved(key, curPod.Namespace+"/"+curPod.Name)
	}
	// A pod's restart or failure may fail the job; any change may change its status.
	c.queue.Add(key)
}

func (c *Controller) deletePod(obj interface{}) {
	pod, ok := controllerutil.DeletedPod(obj)
	if !ok {
		return
	}
	key, job := c.jobOf(pod)
	if key == "" {
		return
	}
	c.exp.DeletionObserved(key, pod.Namespace+"/"+pod.Name)
	if job == nil {
		if hasFinalizer(pod) {
			c.maybeOrphan(pod)
		}
		return
	}
	c.queue.Add(key)
}

// maybeOrphan queues the removal of the tracking finalizer of a pod whose job is gone.
func (c *Controller) maybeOrphan(pod *corev1.Pod) {
	if hasFinalizer(pod) && (pod.DeletionTimestamp != nil || isTerminal(pod)) {
		c.queue.Add(podKeyPrefix + pod.Namespace + "/" + pod.Name)
	}
}

func (c *Controller) forgetPod(uid types.UID, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.finalizerRemoved, uid)
	if deleted {
		delete(c.deletedByUs, uid)
	}
}

// --- sync ---

func (c *Controller) sync(ctx context.Context, key string) error {
	if len(key) > len(podKeyPrefix) && key[:len(podKeyPrefix)] == podKeyPrefix {
		return c.syncOrphanPod(ctx, key[len(podKeyPrefix):])
	}
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.jobs.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		c.mu.Lock()
		delete(c.written, key)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	job := c.newest(key, cached).DeepCopy()
	if job.Spec.ManagedBy != nil && *job.Spec.ManagedBy != ControllerName {
		return nil
	}
	pods, err := c.ownedPods(ctx, job)
	if err != nil {
		return err
	}
	if finishedCondition(job) != nil || job.DeletionTimestamp != nil {
		// Nothing more to count: let every pod go, then (finished jobs) honour the TTL.
		if err := c.removeFinalizers(ctx, withFinalizer(pods)); err != nil {
			return err
		}
		if job.DeletionTimestamp == nil {
			return c.handleTTL(ctx, job)
		}
		return nil
	}
	return c.syncJob(ctx, key, job, pods)
}

// ownedPods lists and claims the pods of a job (active and finished).
func (c *Controller) ownedPods(ctx context.Context, job *batchv1.Job) ([]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil || job.Spec.Selector == nil {
		return nil, nil // validation makes this impossible; nothing to manage
	}
	candidates, err := c.pods.Pods(job.Namespace).List(selector)
	if err != nil {
		return nil, err
	}
	claimer := &controllerutil.Claimer{
		Client: c.client, Controller: job, Kind: jobGVK, Selector: selector,
		Recheck: func(ctx context.Context) (metav1.Object, error) {
			return c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		},
	}
	return claimer.ClaimPods(ctx, candidates)
}

func withFinalizer(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if hasFinalizer(p) {
			out = append(out, p)
		}
	}
	return out
}

// syncOrphanPod removes the tracking finalizer from a pod whose job no longer exists.
func (c *Controller) syncOrphanPod(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.pods.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && !hasFinalizer(pod)) {
		return nil
	}
	if err != nil {
		return err
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		job, err := c.client.BatchV1().Jobs(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case err == nil && job.UID == ref.UID && job.DeletionTimestamp == nil && finishedCondition(job) == nil:
			c.queue.Add(namespace + "/" + ref.Name) // the job is alive: it counts its pod
			return nil
		case err != nil && !apierrors.IsNotFound(err):
			return err
		}
	}
	return c.removeFinalizers(ctx, []*corev1.Pod{pod})
}

// removeFinalizers removes the tracking finalizer from pods, in parallel.
func (c *Controller) removeFinalizers(ctx context.Context, pods []*corev1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer},
	}})
	errCh := make(chan error, len(pods))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, p := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				errCh <- err
				return
			}
			c.mu.Lock()
			c.finalizerRemoved[p.UID] = struct{}{}
			c.mu.Unlock()
		}()
	}
	wg.Wait()
	close(errCh)
	return <-errCh
}

// handleTTL deletes a finished job once ttlSecondsAfterFinished has passed.
func (c *Controller) handleTTL(ctx context.Context, job *batchv1.Job) error {
	ttl := job.Spec.TTLSecondsAfterFinished
	cond := finishedCondition(job)
	if ttl == nil || cond == nil {
		return nil
	}
	finished := cond.LastTransitionTime.Time
	if job.Status.CompletionTime != nil && cond.Type == batchv1.JobComplete {
		finished = job.Status.CompletionTime.Time
	}
	expire := finished.Add(time.Duration(*ttl) * time.Second)
	if left := expire.Sub(c.cfg.Now()); left > 0 {
		c.queue.AddAfter(job.Namespace+"/"+job.Name, left)
		return nil
	}
	bg := metav1.DeletePropagationBackground
	uid := job.UID
	c.log.Info("deleting finished job after its TTL", "job", job.Namespace+"/"+job.Name)
	err := c.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func schemaGroup(apiVersion string) (string, error) {
	gv, err := parseGroupVersion(apiVersion)
	return gv, err
}

func parseGroupVersion(apiVersion string) (string, error) {
	for i := 0; i < len(apiVersion); i++ {
		if apiVersion[i] == '/' {
			return apiVersion[:i], nil
		}
	}
	if apiVersion == "" {
		return "", fmt.Errorf("empty apiVersion")
	}
	return "", nil
}
