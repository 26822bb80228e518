// Package podgc collects pods nobody else will: pods bound to nodes that no longer exist
// (after confirming with a live read that the node is gone), terminating pods on nodes taken
// out of service, terminating pods never bound to a node, and the oldest terminated pods
// beyond a threshold. Pods it removes that have not finished are first marked Failed with a
// DisruptionTarget condition, then force-deleted.
package podgc

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// NodeNameIndex indexes pods by spec.nodeName; components sharing the pod informer share it.
const NodeNameIndex = "spec.nodeName"

// Config tunes the collector; zero values take Kubernetes' defaults.
type Config struct {
	// TerminatedPodThreshold caps finished (Succeeded/Failed) pods; the oldest beyond it go.
	// 12500 by default; negative disables the cap.
	TerminatedPodThreshold int
	// Period paces the full pass (20s).
	Period time.Duration
	// Quarantine is how long a node must be missing from the cache before its pods are
	// collected (40s, or NodeMonitorGracePeriod when that is set).
	Quarantine time.Duration
	Workers    int
}

// ConfigFromOptions derives the configuration from the control plane's options.
func ConfigFromOptions(o controller.Options) Config {
	return Config{Quarantine: o.NodeMonitorGracePeriod, Workers: o.WorkersOr(0)}
}

func (c Config) withDefaults() Config {
	if c.TerminatedPodThreshold == 0 {
		c.TerminatedPodThreshold = 12500
	}
	if c.Period <= 0 {
		c.Period = 20 * time.Second
	}
	if c.Quarantine <= 0 {
		c.Quarantine = 40 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	return c
}

// Controller is the pod garbage collector.
type Controller struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger
	now    func() time.Time

	nodes  corelisters.NodeLister
	pods   cache.Indexer
	synced []cache.InformerSynced
	// nodeQ holds names of nodes suspected gone, delayed by the quarantine.
	nodeQ workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	missing map[string]time.Time // node name → first seen missing
}

// New builds the collector from the control plane's shared context.
func New(ctx *controller.Context) (controller.Component, error) {
	return NewWithConfig(ctx, ConfigFromOptions(ctx.Options))
}

// NewWithConfig builds the collector with explicit settings.
func NewWithConfig(ctx *controller.Context, cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	log := ctx.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		cfg: cfg, client: ctx.Client, log: log.With("controller", "pod-garbage-collector"), now: time.Now,
		nodeQ: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "podgc"}),
		missing: map[string]time.Time{},
	}
	nodeInf := ctx.Informers.Core().V1().Nodes()
	podInf := ctx.Informers.Core().V1().Pods().Informer()
	if _, ok := podInf.GetIndexer().GetIndexers()[NodeNameIndex]; !ok {
		if err := podInf.AddIndexers(cache.Indexers{NodeNameIndex: func(obj interface{}) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
				return []string{p.Spec.NodeName}, nil
			}
			return nil, nil
		}}); err != nil {
			return nil, err
		}
	}
	c.nodes, c.pods = nodeInf.Lister(), podInf.GetIndexer()
	c.synced = []cache.InformerSynced{nodeInf.Informer().HasSynced, podInf.HasSynced}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				c.suspect(n.Name)
			}
		},
		UpdateFunc: func(_, obj interface{}) {
			// A node taken out of service releases its terminating pods.
			if n := obj.(*corev1.Node); outOfService(n) {
				c.nodeQ.Add(n.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.observePod(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj interface{}) { c.observePod(obj.(*corev1.Pod)) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Name implements controller.Component.
func (c *Controller) Name() string { return "pod-garbage-collector" }

func (c *Controller) observePod(p *corev1.Pod) {
	if p.Spec.NodeName == "" {
		return
	}
	if _, err := c.nodes.Get(p.Spec.NodeName); apierrors.IsNotFound(err) {
		c.suspect(p.Spec.NodeName)
	}
}

// suspect queues a node that looks gone, to be checked once the quarantine has passed.
func (c *Controller) suspect(node string) {
	c.mu.Lock()
	if _, ok := c.missing[node]; ok {
		c.mu.Unlock()
		return
	}
	c.missing[node] = c.now()
	c.mu.Unlock()
	c.nodeQ.AddAfter(node, c.cfg.Quarantine)
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.nodeQ.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return ctx.Err()
	}
	var wg sync.WaitGroup
	for i := 0; i < c.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.processNext(ctx) {
			}
		}()
	}
	t := time.NewTicker(c.cfg.Period)
	defer t.Stop()
	c.pass(ctx)
	for {
		select {
		case <-ctx.Done():
			c.nodeQ.ShutDown()
			wg.Wait()
			return nil
		case <-t.C:
			c.pass(ctx)
		}
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	node, quit := c.nodeQ.Get()
	if quit {
		return false
	}
	defer c.nodeQ.Done(node)
	if err := c.syncNode(ctx, node); err != nil {
		if ctx.Err() == nil {
			c.log.Debug("podgc sync failed; retrying", "node", node, "err", err)
		}
		c.nodeQ.AddRateLimited(node)
		return true
	}
	c.nodeQ.Forget(node)
	return true
}

// syncNode collects the pods of a node that is gone (confirmed with a live read) or out of
// service.
func (c *Controller) syncNode(ctx context.Context, name string) error {
	if n, err := c.nodes.Get(name); err == nil {
		c.clearSuspect(name)
		if outOfService(n) {
			return c.collectTerminating(ctx, n)
		}
		return nil
	}
	c.mu.Lock()
	since, ok := c.missing[name]
	c.mu.Unlock()
	if !ok {
		since = c.now()
		c.mu.Lock()
		c.missing[name] = since
		c.mu.Unlock()
	}
	if wait := since.Add(c.cfg.Quarantine).Sub(c.now()); wait > 0 {
		c.nodeQ.AddAfter(name, wait)
		return nil
	}
	_, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		// The cache is behind: the node exists.
		c.clearSuspect(name)
		return nil
	case !apierrors.IsNotFound(err):
		return err
	}
	objs, err := c.pods.ByIndex(NodeNameIndex, name)
	if err != nil {
		return err
	}
	var firstErr error
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		c.log.Info("deleting orphaned pod", "pod", p.Namespace+"/"+p.Name, "node", name)
		if err := c.forceDelete(ctx, p, "PodGC: node no longer exists"); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		c.clearSuspect(name)
	}
	return firstErr
}

func (c *Controller) clearSuspect(name string) {
	c.mu.Lock()
	delete(c.missing, name)
	c.mu.Unlock()
}

// outOfService reports a node an operator declared gone: not ready, with the out-of-service
// NoExecute taint.
func outOfService(n *corev1.Node) bool {
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue
		}
	}
	if ready {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeOutOfService && t.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

func (c *Controller) collectTerminating(ctx context.Context, n *corev1.Node) error {
	objs, err := c.pods.ByIndex(NodeNameIndex, n.Name)
	if err != nil {
		return err
	}
	var firstErr error
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		if p.DeletionTimestamp == nil {
			continue
		}
		if err := c.forceDelete(ctx, p, "PodGC: node is out-of-service"); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// pass is the periodic sweep: nodes missing from the cache, unbound terminating pods, and
// the terminated-pod cap.
func (c *Controller) pass(ctx context.Context) {
	pods := c.pods.List()
	var terminated []*corev1.Pod
	for _, obj := range pods {
		p := obj.(*corev1.Pod)
		switch {
		case p.Spec.NodeName == "" && p.DeletionTimestamp != nil:
			if err := c.forceDelete(ctx, p, ""); err != nil {
				c.log.Debug("delete unscheduled terminating pod", "pod", p.Namespace+"/"+p.Name, "err", err)
			}
			continue
		case p.Spec.NodeName != "":
			if _, err := c.nodes.Get(p.Spec.NodeName); apierrors.IsNotFound(err) {
				c.suspect(p.Spec.NodeName)
			}
		}
		if (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) && p.DeletionTimestamp == nil {
			terminated = append(terminated, p)
		}
	}
	if nodes, err := c.nodes.List(labels.Everything()); err == nil {
		for _, n := range nodes {
			if outOfService(n) {
				c.nodeQ.Add(n.Name)
			}
		}
	}
	c.capTerminated(ctx, terminated)
}

// capTerminated deletes the oldest terminated pods beyond the threshold.
func (c *Controller) capTerminated(ctx context.Context, terminated []*corev1.Pod) {
	excess := len(terminated) - c.cfg.TerminatedPodThreshold
	if c.cfg.TerminatedPodThreshold < 0 || excess <= 0 {
		return
	}
	sort.Slice(terminated, func(i, j int) bool {
		a, b := terminated[i].CreationTimestamp, terminated[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return terminated[i].Name < terminated[j].Name
	})
	c.log.Info("deleting terminated pods beyond the threshold", "count", excess, "threshold", c.cfg.TerminatedPodThreshold)
	for _, p := range terminated[:excess] {
		if err := c.forceDelete(ctx, p, ""); err != nil {
			c.log.Debug("delete terminated pod", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
}

// forceDelete deletes a pod with no grace period (UID precondition). A pod that has not
// finished is first marked Failed with a DisruptionTarget condition (when reason is given).
func (c *Controller) forceDelete(ctx context.Context, p *corev1.Pod, reason string) error {
	pods := c.client.CoreV1().Pods(p.Namespace)
	if reason != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		cp := p.DeepCopy()
		cp.Status.Phase = corev1.PodFailed
		now := metav1.NewTime(c.now())
		cond := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
			Reason: "DeletionByPodGC", Message: reason, LastTransitionTime: now}
		replaced := false
		for i := range cp.Status.Conditions {
			if cp.Status.Conditions[i].Type == corev1.DisruptionTarget {
				cp.Status.Conditions[i], replaced = cond, true
			}
		}
		if !replaced {
			cp.Status.Conditions = append(cp.Status.Conditions, cond)
		}
		if _, err := pods.UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			if !apierrors.IsConflict(err) {
				return err
			}
		}
	}
	zero := int64(0)
	uid := p.UID
	err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	// NotFound: already gone; Conflict: a new pod of the same name, not ours to judge.
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return err
	}
	return nil
}
