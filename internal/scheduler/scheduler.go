package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/scheduler/cache"
	"github.com/skiff-sh/skiff/internal/scheduler/core"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/defaultpreemption"
	"github.com/skiff-sh/skiff/internal/scheduler/queue"
)

// Options tune the scheduler; the zero value is Kubernetes' defaults.
type Options struct {
	// SchedulerName is the spec.schedulerName this scheduler serves (pods with an empty
	// one count as DefaultSchedulerName's).
	SchedulerName string
	// Plugins replaces DefaultPlugins.
	Plugins []runtime.PluginSpec
	// PercentageOfNodesToScore: 0 is adaptive (50% at 100 nodes, down to 5%, at least
	// 100 nodes).
	PercentageOfNodesToScore int32
	// Parallelism is the number of goroutines filtering and scoring use (GOMAXPROCS).
	Parallelism int
	// BindWorkers bounds concurrent bindings (default 64) so binding latency does not
	// limit throughput.
	BindWorkers int
	// InitialBackoff, MaxBackoff and MaxInUnschedulable are the queue's timings (1s, 10s,
	// 5m).
	InitialBackoff, MaxBackoff, MaxInUnschedulable time.Duration
	// Seed fixes tie-breaking between equally scored nodes (0: random).
	Seed uint64
}

// Stats are running totals, for benchmarks and tests.
type Stats struct {
	Attempts, Scheduled, Unschedulable, Errors, BindErrors uint64
	// AlgorithmTime is the total time spent deciding (snapshot, filter, score).
	AlgorithmTime time.Duration
}

// Scheduler is the scheduling component.
type Scheduler struct {
	name      string
	client    kubernetes.Interface
	log       *slog.Logger
	recorder  record.EventRecorder
	cache     *cache.Cache
	snapshot  *cache.Snapshot
	queue     *queue.PriorityQueue
	fwk       *runtime.Framework
	algo      *core.Algorithm
	podLister corelisters.PodLister
	synced    []toolscache.InformerSynced
	optional  []toolscache.InformerSynced

	bindSem   chan struct{}
	statusSem chan struct{}
	inflight  sync.WaitGroup

	attempts, scheduled, unschedulable, errs, bindErrs atomic.Uint64
	algoNanos                                          atomic.Int64
}

var _ controller.Component = (*Scheduler)(nil)

// New builds the scheduler with Kubernetes' defaults; it is a controlplane.ComponentFactory.
func New(ctx *controller.Context) (controller.Component, error) {
	return NewWithOptions(ctx, Options{})
}

// NewWithOptions builds the scheduler. It only uses ctx.Client, ctx.Informers,
// ctx.Recorder and ctx.Logger, so it runs against any API server.
func NewWithOptions(ctx *controller.Context, o Options) (*Scheduler, error) {
	if ctx.Client == nil || ctx.Informers == nil {
		return nil, errors.New("scheduler needs a client and an informer factory")
	}
	registerMetrics()
	if o.SchedulerName == "" {
		o.SchedulerName = DefaultSchedulerName
	}
	if o.Plugins == nil {
		o.Plugins = DefaultPlugins()
	}
	if o.BindWorkers <= 0 {
		o.BindWorkers = 64
	}
	s := &Scheduler{
		name: o.SchedulerName, client: ctx.Client, log: ctx.Logger,
		cache: cache.New(), snapshot: cache.NewEmptySnapshot(), algo: core.NewAlgorithm(o.Seed),
		bindSem: make(chan struct{}, o.BindWorkers), statusSem: make(chan struct{}, 16),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", o.SchedulerName)
	if ctx.Recorder != nil {
		s.recorder = ctx.Recorder(o.SchedulerName)
	}
	if s.recorder == nil {
		s.recorder = &record.FakeRecorder{}
	}
	fwk, err := runtime.New(o.Plugins, runtime.Options{
		Snapshot: s.snapshot, Client: ctx.Client, Informers: ctx.Informers,
		Parallelism: o.Parallelism, PercentageOfNodesToScore: o.PercentageOfNodesToScore,
	})
	if err != nil {
		return nil, err
	}
	s.fwk = fwk
	s.queue = queue.New(queue.Options{
		InitialBackoff: o.InitialBackoff, MaxBackoff: o.MaxBackoff, MaxInUnschedulable: o.MaxInUnschedulable,
		PreEnqueue: fwk.RunPreEnqueuePlugins, Events: fwk.EventsToRegister(),
	})
	fwk.SetNominator(s.queue.Nominator())
	if p, ok := fwk.Plugin(defaultpreemption.Name).(*defaultpreemption.DefaultPreemption); ok {
		p.Preempted = func(victim, preemptor *v1.Pod, node string) {
			s.recorder.Eventf(victim, v1.EventTypeNormal, "Preempted", "Preempted by pod %s on node %s", preemptor.UID, node)
		}
	}
	if err := s.addEventHandlers(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Name implements controller.Component.
func (s *Scheduler) Name() string { return s.name }

// Stats returns running totals.
func (s *Scheduler) Stats() Stats {
	return Stats{Attempts: s.attempts.Load(), Scheduled: s.scheduled.Load(), Unschedulable: s.unschedulable.Load(),
		Errors: s.errs.Load(), BindErrors: s.bindErrs.Load(), AlgorithmTime: time.Duration(s.algoNanos.Load())}
}

// Run schedules pods until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	if !toolscache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return fmt.Errorf("wait for pod and node caches: %w", ctx.Err())
	}
	// Services, workloads, namespaces and budgets refine decisions but must not block
	// scheduling if the API server does not serve them.
	optCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if !toolscache.WaitForCacheSync(optCtx.Done(), s.optional...) && ctx.Err() == nil {
		s.log.Warn("optional informers not synced; scheduling without them for now")
	}
	cancel()
	s.log.Info("scheduler started")
	go s.queue.Run(ctx)
	go s.reportPending(ctx)
	for s.scheduleOne(ctx) {
	}
	s.inflight.Wait()
	return nil
}

func (s *Scheduler) reportPending(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a, b, u, g := s.queue.Counts()
			pendingPods.WithLabelValues("active").Set(float64(a))
			pendingPods.WithLabelValues("backoff").Set(float64(b))
			pendingPods.WithLabelValues("unschedulable").Set(float64(u))
			pendingPods.WithLabelValues("gated").Set(float64(g))
		}
	}
}

// skip reports pods that must not be scheduled now: being deleted, or already assumed
// (a duplicate queued while its binding is in flight).
func (s *Scheduler) skip(pod *v1.Pod) bool {
	return pod.DeletionTimestamp != nil || s.cache.IsAssumedPod(pod)
}

// scheduleOne runs one scheduling cycle; false means the queue closed.
func (s *Scheduler) scheduleOne(ctx context.Context) bool {
	pi, err := s.queue.Pop(ctx)
	if err != nil {
		return false
	}
	pod := pi.Pod
	if s.skip(pod) {
		s.queue.Done(pod)
		return true
	}
	s.attempts.Add(1)
	start := time.Now()
	state := framework.NewCycleState()
	s.cache.UpdateSnapshot(s.snapshot)
	res, err := s.algo.Schedule(ctx, s.fwk, state, pod)
	took := time.Since(start)
	s.algoNanos.Add(int64(took))
	algorithmDuration.Observe(took.Seconds())
	if err != nil {
		s.handleScheduleError(ctx, state, pi, err, start)
		return true
	}
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = res.SuggestedHost
	if err := s.cache.AssumePod(assumed); err != nil {
		s.fail(ctx, pi, v1.PodReasonSchedulerError, err.Error(), nil, start)
		return true
	}
	s.queue.Nominator().DeleteNominatedPodIfExists(pod)
	s.queue.Done(pod)
	s.log.Debug("assumed pod", "pod", framework.PodKey(pod), "node", res.SuggestedHost,
		"evaluatedNodes", res.EvaluatedNodes, "feasibleNodes", res.FeasibleNodes, "took", took)
	s.inflight.Add(1)
	select {
	case s.bindSem <- struct{}{}:
	case <-ctx.Done():
		s.inflight.Done()
		_ = s.cache.ForgetPod(assumed)
		return false
	}
	go func() {
		defer s.inflight.Done()
		defer func() { <-s.bindSem }()
		s.bind(ctx, state, pi, assumed, start)
	}()
	return true
}

// handleScheduleError runs PostFilter (preemption) for pods that fit nowhere and records
// the failure.
func (s *Scheduler) handleScheduleError(ctx context.Context, state *framework.CycleState, pi *queue.QueuedPodInfo, err error, start time.Time) {
	pod := pi.Pod
	var fitErr *framework.FitError
	var nominating *framework.NominatingInfo
	switch {
	case errors.Is(err, framework.ErrNoNodesAvailable):
		pi.UnschedulablePlugins = nil
		s.fail(ctx, pi, v1.PodReasonUnschedulable, err.Error(), nil, start)
	case errors.As(err, &fitErr):
		pi.UnschedulablePlugins = fitErr.Diagnosis.UnschedulablePlugins
		if s.fwk.HasPostFilterPlugins() {
			preemptionAttempts.Inc()
			res, st := s.fwk.RunPostFilterPlugins(ctx, state, pod, fitErr.Diagnosis.NodeToStatus)
			if st.Code() == framework.Error {
				s.log.Error("preemption failed", "pod", framework.PodKey(pod), "err", st.AsError())
			} else {
				fitErr.Diagnosis.PostFilterMsg = st.Message()
			}
			if res != nil {
				nominating = res.NominatingInfo
			}
		}
		s.fail(ctx, pi, v1.PodReasonUnschedulable, fitErr.Error(), nominating, start)
	default:
		pi.UnschedulablePlugins = nil
		s.fail(ctx, pi, v1.PodReasonSchedulerError, err.Error(), nil, start)
	}
}

// bind runs the bind plugins; on failure it forgets the assumed pod and retries it.
func (s *Scheduler) bind(ctx context.Context, state *framework.CycleState, pi *queue.QueuedPodInfo, assumed *v1.Pod, start time.Time) {
	st := s.fwk.RunBindPlugins(ctx, state, assumed, assumed.Spec.NodeName)
	if !st.IsSuccess() {
		s.bindErrs.Add(1)
		if err := s.cache.ForgetPod(assumed); err != nil {
			s.log.Error("forget assumed pod", "pod", framework.PodKey(assumed), "err", err)
		}
		// The room the pod held is free again.
		s.queue.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodDelete, nil)
		if ctx.Err() != nil {
			return
		}
		pi.UnschedulablePlugins = nil
		s.fail(ctx, pi, v1.PodReasonSchedulerError, fmt.Sprintf("Binding rejected: %v", st.AsError()), nil, start)
		return
	}
	s.scheduled.Add(1)
	scheduleAttempts.WithLabelValues("scheduled", s.name).Inc()
	attemptDuration.WithLabelValues("scheduled", s.name).Observe(time.Since(start).Seconds())
	e2eDuration.WithLabelValues(strconv.Itoa(min(pi.Attempts, 15))).Observe(time.Since(pi.InitialTimestamp).Seconds())
	s.recorder.Eventf(assumed, v1.EventTypeNormal, "Scheduled", "Successfully assigned %v/%v to %v",
		assumed.Namespace, assumed.Name, assumed.Spec.NodeName)
}
