// Package hpa is the horizontal pod autoscaler controller. Every sync period it reads each
// autoscaler's target through the /scale subresource, computes a replica count from the
// pods' resource metrics (metrics.k8s.io by default), applies the scaling behavior
// (stabilization windows, rate policies, min/max) and writes the new scale, recording
// status, conditions and events as Kubernetes does.
package hpa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// Name is the component's name.
const Name = "horizontal-pod-autoscaler-controller"

// Config tunes the controller; zero fields take Kubernetes' defaults.
type Config struct {
	// SyncPeriod is how often each autoscaler is evaluated (15s).
	SyncPeriod time.Duration
	// Tolerance is the usage ratio band around 1.0 that causes no change (0.1).
	Tolerance float64
	// DownscaleStabilization is the scale-down stabilization window of autoscalers that set
	// none (300s).
	DownscaleStabilization time.Duration
	// CPUInitializationPeriod (5m) and InitialReadinessDelay (30s) decide which pods are not
	// yet ready for CPU.
	CPUInitializationPeriod time.Duration
	InitialReadinessDelay   time.Duration
	// Metrics reads pod usage; default: the metrics.k8s.io API of the control plane.
	Metrics MetricsClient
	// Now is the clock (tests).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.SyncPeriod <= 0 {
		c.SyncPeriod = 15 * time.Second
	}
	if c.Tolerance <= 0 {
		c.Tolerance = 0.1
	}
	if c.DownscaleStabilization <= 0 {
		c.DownscaleStabilization = 300 * time.Second
	}
	if c.CPUInitializationPeriod <= 0 {
		c.CPUInitializationPeriod = 5 * time.Minute
	}
	if c.InitialReadinessDelay <= 0 {
		c.InitialReadinessDelay = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// New builds the controller with the default Config.
func New(cc *controller.Context) (controller.Component, error) { return NewFactory(Config{})(cc) }

// NewFactory returns a component factory building the controller with cfg.
func NewFactory(cfg Config) func(cc *controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		if cc.Client == nil || cc.Informers == nil {
			return nil, errors.New("hpa controller: needs a client and informers")
		}
		if cfg.Metrics == nil {
			if cc.Config == nil {
				return nil, errors.New("hpa controller: needs a REST config or a metrics client")
			}
			m, err := NewResourceMetricsClient(cc.Config)
			if err != nil {
				return nil, err
			}
			cfg.Metrics = m
		}
		var rec record.EventRecorder = &record.FakeRecorder{}
		if cc.Recorder != nil {
			rec = cc.Recorder("horizontal-pod-autoscaler") // the "From" Kubernetes shows
		}
		log := cc.Logger
		if log == nil {
			log = slog.Default()
		}
		return NewController(log, cc.Client, cc.Informers, rec, cfg, cc.Options.WorkersOr(1)), nil
	}
}

// Controller is the horizontal pod autoscaler controller.
type Controller struct {
	log      *slog.Logger
	client   kubernetes.Interface
	recorder record.EventRecorder
	cfg      Config
	calc     *ReplicaCalculator
	lister   autoscalinglisters.HorizontalPodAutoscalerLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	workers  int

	mu        sync.Mutex
	histories map[string]*history
	scheduled map[string]time.Time // next periodic sync per key
}

// NewController builds the controller on an informer factory.
func NewController(log *slog.Logger, client kubernetes.Interface, inf informers.SharedInformerFactory, rec record.EventRecorder, cfg Config, workers int) *Controller {
	cfg = cfg.withDefaults()
	if workers <= 0 {
		workers = 1
	}
	hpas := inf.Autoscaling().V2().HorizontalPodAutoscalers()
	pods := inf.Core().V1().Pods()
	c := &Controller{
		log: log.With("controller", Name), client: client, recorder: rec, cfg: cfg,
		calc: &ReplicaCalculator{Metrics: cfg.Metrics, Pods: pods.Lister(), Tolerance: cfg.Tolerance,
			CPUInitializationPeriod: cfg.CPUInitializationPeriod, InitialReadinessDelay: cfg.InitialReadinessDelay, Now: cfg.Now},
		lister: hpas.Lister(),
		synced: []cache.InformerSynced{hpas.Informer().HasSynced, pods.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "horizontalpodautoscaler"}),
		workers:   workers,
		histories: map[string]*history{},
		scheduled: map[string]time.Time{},
	}
	_, _ = hpas.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, obj interface{}) {
			o, ok1 := old.(*autoscalingv2.HorizontalPodAutoscaler)
			n, ok2 := obj.(*autoscalingv2.HorizontalPodAutoscaler)
			// Our own status writes do not need a new evaluation; spec changes do.
			if ok1 && ok2 && equalityDeep(o.Spec, n.Spec) {
				return
			}
			c.enqueue(obj)
		},
		DeleteFunc: func(obj interface{}) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.mu.Lock()
				delete(c.histories, key)
				delete(c.scheduled, key)
				c.mu.Unlock()
			}
		},
	})
	// Pods are only read through the lister.
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{})
	return c
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

func (c *Controller) enqueue(obj interface{}) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

// Run works the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("starting", "syncPeriod", c.cfg.SyncPeriod)
	defer c.log.Info("stopped")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil
	}
	controllerutil.RunWorkers(ctx, c.queue, c.workers, func(ctx context.Context) {
		for c.processNext(ctx) {
		}
	})
	return nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.sync(ctx, key)
	if err != nil && ctx.Err() == nil {
		c.log.Debug("sync failed", "hpa", key, "err", err)
	}
	c.queue.Forget(key)
	if ns, name, err := cache.SplitMetaNamespaceKey(key); err != nil {
		return true
	} else if _, err := c.lister.HorizontalPodAutoscalers(ns).Get(name); apierrors.IsNotFound(err) {
		return true // deleted: no more periodic syncs
	}
	// Every autoscaler is evaluated once per sync period, failed or not.
	c.mu.Lock()
	now := time.Now()
	if next, ok := c.scheduled[key]; !ok || !next.After(now) {
		c.scheduled[key] = now.Add(c.cfg.SyncPeriod)
		c.queue.AddAfter(key, c.cfg.SyncPeriod)
	}
	c.mu.Unlock()
	return true
}

func (c *Controller) historyOf(key string) *history {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.histories[key]
	if h == nil {
		h = &history{}
		c.histories[key] = h
	}
	return h
}

// sync evaluates one autoscaler.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.lister.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.histories, key)
		delete(c.scheduled, key)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	hpa := cached.DeepCopy()
	oldStatus := hpa.Status.DeepCopy()
	now := c.cfg.Now()
	ref := fmt.Sprintf("%s/%s", hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name)

	scale, err := c.getScale(ctx, ns, hpa.Spec.ScaleTargetRef)
	if err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetScale", err.Error())
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale",
			fmt.Sprintf("the HPA controller was unable to get the target's current scale: %v", err), now)
		c.writeStatus(ctx, hpa, oldStatus)
		return fmt.Errorf("failed to query scale subresource for %s: %w", ref, err)
	}
	setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale",
		"the HPA controller was able to get the target's current scale", now)

	current := scale.Spec.Replicas
	minReplicas := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	maxReplicas := hpa.Spec.MaxReplicas
	hpa.Status.CurrentReplicas = scale.Status.Replicas
	desired := current
	reason := ""
	var metricStatuses []autoscalingv2.MetricStatus
	h := c.historyOf(key)
	up, down := rules(hpa.Spec.Behavior, c.cfg.DownscaleStabilization)

	switch {
	case current == 0 && minReplicas != 0:
		// The target was scaled to zero by hand: autoscaling is off until it is scaled up.
		desired = 0
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled",
			"scaling is disabled since the replica count of the target is zero", now)
		metricStatuses = hpa.Status.CurrentMetrics
	case current > maxReplicas:
		reason = "Current number of replicas above Spec.MaxReplicas"
		desired = maxReplicas
		setCondition(hpa, autoscalingv2.ScalingLimited, corev1.ConditionTrue, "TooManyReplicas",
			"the desired replica count is more than the maximum replica count", now)
		metricStatuses = hpa.Status.CurrentMetrics
	case current < minReplicas:
		reason = "Current number of replicas below Spec.MinReplicas"
		desired = minReplicas
		setCondition(hpa, autoscalingv2.ScalingLimited, corev1.ConditionTrue, "TooFewReplicas",
			"the desired replica count is less than the minimum replica count", now)
		metricStatuses = hpa.Status.CurrentMetrics
	default:
		proposed, metricName, statuses, err := c.replicasForMetrics(ctx, hpa, scale, current, now)
		metricStatuses = statuses
		if err != nil && proposed < 0 {
			hpa.Status.CurrentMetrics = metricStatuses
			hpa.Status.DesiredReplicas = current
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedComputeMetricsReplicas", err.Error())
			c.writeStatus(ctx, hpa, oldStatus)
			return fmt.Errorf("failed to compute desired number of replicas based on listed metrics for %s: %w", ref, err)
		}
		var able, limited limitReason
		desired, able, limited = h.normalize(now, current, proposed, minReplicas, maxReplicas, up, down)
		setCondition(hpa, able.condType, corev1.ConditionTrue, able.reason, able.message, now)
		status := corev1.ConditionTrue
		if limited.reason == "DesiredWithinRange" {
			status = corev1.ConditionFalse
		}
		setCondition(hpa, autoscalingv2.ScalingLimited, status, limited.reason, limited.message, now)
		switch {
		case proposed > current:
			reason = metricName + " above target"
		case proposed < current:
			reason = "All metrics below target"
		}
	}

	if desired != current {
		scale.Spec.Replicas = desired
		if err := c.updateScale(ctx, ns, hpa.Spec.ScaleTargetRef, scale); err != nil {
			c.recorder.Eventf(hpa, corev1.EventTypeWarning, "FailedRescale", "New size: %d; reason: %s; error: %v", desired, reason, err)
			setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale",
				fmt.Sprintf("the HPA controller was unable to update the target scale: %v", err), now)
			hpa.Status.CurrentMetrics = metricStatuses
			c.writeStatus(ctx, hpa, oldStatus)
			return fmt.Errorf("failed to rescale %s: %w", ref, err)
		}
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale",
			fmt.Sprintf("the HPA controller was able to update the target scale to %d", desired), now)
		c.recorder.Eventf(hpa, corev1.EventTypeNormal, "SuccessfulRescale", "New size: %d; reason: %s", desired, reason)
		h.record(now, desired-current, longestPeriod(up, down))
		t := metav1.NewTime(now)
		hpa.Status.LastScaleTime = &t
		c.log.Info("rescaled", "hpa", key, "target", ref, "from", current, "to", desired, "reason", reason)
	}
	hpa.Status.DesiredReplicas = desired
	hpa.Status.CurrentMetrics = metricStatuses
	c.writeStatus(ctx, hpa, oldStatus)
	return nil
}

// writeStatus stores the status when it changed.
func (c *Controller) writeStatus(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, old *autoscalingv2.HorizontalPodAutoscalerStatus) {
	g := hpa.Generation
	hpa.Status.ObservedGeneration = &g
	if statusEqual(&hpa.Status, old) {
		return
	}
	if _, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(hpa.Namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		c.log.Debug("status update failed", "hpa", hpa.Namespace+"/"+hpa.Name, "err", err)
	}
}

func statusEqual(a, b *autoscalingv2.HorizontalPodAutoscalerStatus) bool {
	ac, bc := a.DeepCopy(), b.DeepCopy()
	return equalityDeep(ac, bc)
}

// replicasForMetrics computes the largest recommendation of the autoscaler's metrics. It
// returns -1 with the error when no recommendation can be made: all metrics failed, or
// some failed and the rest would scale down.
func (c *Controller) replicasForMetrics(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, scale *autoscalingv1.Scale, current int32, now time.Time) (int32, string, []autoscalingv2.MetricStatus, error) {
	if scale.Status.Selector == "" {
		msg := "the HPA target's scale is missing a selector"
		c.recorder.Event(hpa, corev1.EventTypeWarning, "SelectorRequired", msg)
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", msg, now)
		return -1, "", nil, errors.New(msg)
	}
	selector, err := labels.Parse(scale.Status.Selector)
	if err != nil {
		msg := fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "InvalidSelector", msg)
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", msg, now)
		return -1, "", nil, errors.New(msg)
	}
	statuses := make([]autoscalingv2.MetricStatus, len(hpa.Spec.Metrics))
	best, bestName := int32(-1), ""
	invalid := 0
	var firstErr error
	var invalidReason, invalidMsg string
	for i, spec := range hpa.Spec.Metrics {
		replicas, name, status, reason, err := c.replicasForMetric(ctx, hpa, spec, current, selector)
		if err != nil {
			if spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil {
				// An unknown current value: `kubectl get hpa` shows <unknown>.
				statuses[i] = autoscalingv2.MetricStatus{Type: spec.Type,
					Resource: &autoscalingv2.ResourceMetricStatus{Name: spec.Resource.Name}}
			}
			if invalid == 0 {
				firstErr, invalidReason, invalidMsg = err, reason, fmt.Sprintf("the HPA was unable to compute the replica count: %v", err)
			}
			invalid++
			continue
		}
		statuses[i] = status
		if replicas > best {
			best, bestName = replicas, name
		}
	}
	if invalid > 0 && (invalid == len(hpa.Spec.Metrics) || best < current) {
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, invalidReason, invalidMsg, now)
		return -1, "", statuses, fmt.Errorf("invalid metrics (%d invalid out of %d), first error is: %w", invalid, len(hpa.Spec.Metrics), firstErr)
	}
	if len(hpa.Spec.Metrics) == 0 {
		return current, "", statuses, nil
	}
	setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound",
		fmt.Sprintf("the HPA was able to successfully calculate a replica count from %s", bestName), now)
	return best, bestName, statuses, nil
}

// replicasForMetric computes one metric's recommendation; on failure it records the event
// and returns the condition reason.
func (c *Controller) replicasForMetric(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, spec autoscalingv2.MetricSpec, current int32, selector labels.Selector) (int32, string, autoscalingv2.MetricStatus, string, error) {
	var st autoscalingv2.MetricStatus
	if spec.Type != autoscalingv2.ResourceMetricSourceType || spec.Resource == nil {
		reason := "FailedGet" + string(spec.Type) + "Metric"
		err := fmt.Errorf("%s metrics are not supported: only Resource metrics are served by this cluster", spec.Type)
		c.recorder.Event(hpa, corev1.EventTypeWarning, reason, err.Error())
		return 0, "", st, reason, err
	}
	res := spec.Resource.Name
	target := spec.Resource.Target
	switch {
	case target.AverageValue != nil:
		r, err := c.calc.RawResourceReplicas(ctx, current, target.AverageValue.MilliValue(), res, hpa.Namespace, selector)
		if err != nil {
			err = fmt.Errorf("failed to get %s usage: %w", res, err)
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetResourceMetric", err.Error())
			return 0, "", st, "FailedGetResourceMetric", err
		}
		st = autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
			Name: res, Current: autoscalingv2.MetricValueStatus{AverageValue: milliQuantity(r.RawAverage, res)}}}
		return r.Replicas, fmt.Sprintf("%s resource", res), st, "", nil
	case target.AverageUtilization != nil:
		r, err := c.calc.ResourceReplicas(ctx, current, *target.AverageUtilization, res, hpa.Namespace, selector)
		if err != nil {
			err = fmt.Errorf("failed to get %s utilization: %w", res, err)
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetResourceMetric", err.Error())
			return 0, "", st, "FailedGetResourceMetric", err
		}
		u := r.Utilization
		st = autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
			Name: res, Current: autoscalingv2.MetricValueStatus{AverageUtilization: &u, AverageValue: milliQuantity(r.RawAverage, res)}}}
		return r.Replicas, fmt.Sprintf("%s resource utilization (percentage of request)", res), st, "", nil
	}
	err := fmt.Errorf("invalid resource metric source: neither a utilization target nor a value target was set")
	c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetResourceMetric", err.Error())
	return 0, "", st, "FailedGetResourceMetric", err
}

func milliQuantity(v int64, res corev1.ResourceName) *resource.Quantity {
	format := resource.DecimalSI
	if res == corev1.ResourceMemory {
		format = resource.BinarySI
		if v%1000 == 0 {
			return resource.NewQuantity(v/1000, format)
		}
	}
	return resource.NewMilliQuantity(v, format)
}

// setCondition sets a condition, moving its transition time only when its status changes.
func setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, t autoscalingv2.HorizontalPodAutoscalerConditionType, status corev1.ConditionStatus, reason, msg string, now time.Time) {
	for i := range hpa.Status.Conditions {
		c := &hpa.Status.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = metav1.NewTime(now)
		}
		c.Status, c.Reason, c.Message = status, reason, msg
		return
	}
	hpa.Status.Conditions = append(hpa.Status.Conditions, autoscalingv2.HorizontalPodAutoscalerCondition{
		Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(now)})
}
