// Package nodelifecycle watches node heartbeats (leases and Ready conditions). A node silent
// for longer than the grace period has its kubelet conditions set to Unknown and its pods
// marked not ready; nodes get the NoSchedule taints their conditions call for and the
// not-ready/unreachable NoExecute taints, rate-limited per zone and withheld when every zone
// is down. Pods on nodes with NoExecute taints they do not tolerate (or tolerate only for
// tolerationSeconds) are deleted: taint-based eviction.
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// NodeLeaseNamespace holds node leases.
const NodeLeaseNamespace = "kube-node-lease"

// NodeNameIndex indexes pods by spec.nodeName; components sharing the pod informer share it.
const NodeNameIndex = "spec.nodeName"

// Config tunes the controller; zero values take Kubernetes' defaults.
type Config struct {
	// MonitorGracePeriod: a node without a heartbeat for this long becomes Unknown (40s).
	MonitorGracePeriod time.Duration
	// StartupGracePeriod replaces it for nodes that never posted Ready (60s, or 1.5× a
	// non-default MonitorGracePeriod).
	StartupGracePeriod time.Duration
	// MonitorPeriod paces the zone-health pass (5s, shorter with a short grace period).
	MonitorPeriod time.Duration
	// EvictionRate is how many nodes per second per zone may get a NoExecute taint (0.1);
	// SecondaryEvictionRate applies to large zones mostly down (0.01). Zones of at most
	// LargeClusterThreshold nodes (50) that are mostly down (UnhealthyZoneThreshold, 0.55)
	// get none.
	EvictionRate, SecondaryEvictionRate float64
	LargeClusterThreshold               int
	UnhealthyZoneThreshold              float64
	Workers                             int
}

// ConfigFromOptions derives the configuration from the control plane's options.
func ConfigFromOptions(o controller.Options) Config {
	return Config{MonitorGracePeriod: o.NodeMonitorGracePeriod, Workers: o.WorkersOr(0)}
}

func (c Config) withDefaults() Config {
	if c.MonitorGracePeriod <= 0 {
		c.MonitorGracePeriod = 40 * time.Second
	}
	if c.StartupGracePeriod <= 0 {
		c.StartupGracePeriod = 60 * time.Second
		if c.MonitorGracePeriod != 40*time.Second {
			c.StartupGracePeriod = c.MonitorGracePeriod * 3 / 2
		}
	}
	if c.MonitorPeriod <= 0 {
		c.MonitorPeriod = 5 * time.Second
		if p := c.MonitorGracePeriod / 8; p < c.MonitorPeriod {
			c.MonitorPeriod = p
		}
		if c.MonitorPeriod < 50*time.Millisecond {
			c.MonitorPeriod = 50 * time.Millisecond
		}
	}
	if c.EvictionRate <= 0 {
		c.EvictionRate = 0.1
	}
	if c.SecondaryEvictionRate <= 0 {
		c.SecondaryEvictionRate = 0.01
	}
	if c.LargeClusterThreshold <= 0 {
		c.LargeClusterThreshold = 50
	}
	if c.UnhealthyZoneThreshold <= 0 {
		c.UnhealthyZoneThreshold = 0.55
	}
	if c.Workers <= 0 {
		c.Workers = 5
	}
	return c
}

// health is what the controller observed of a node's heartbeats. probe is local time, so
// clock skew between kubelets and the control plane does not matter.
type health struct {
	probe     time.Time
	renew     time.Time // the lease's renewTime as last seen
	heartbeat time.Time // the Ready condition's lastHeartbeatTime as last seen
}

// Controller is the node lifecycle controller.
type Controller struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger
	now    func() time.Time

	nodes      corelisters.NodeLister
	leases     coordlisters.LeaseLister
	pods       cache.Indexer
	synced     []cache.InformerSynced
	nodeEvents record.EventRecorder
	podEvents  record.EventRecorder

	nodeQ workqueue.TypedRateLimitingInterface[string]
	podQ  workqueue.TypedRateLimitingInterface[string]

	mu           sync.Mutex
	health       map[string]*health
	zones        map[string]*zone
	allDisrupted bool
	lastPass     time.Time
	noticed      map[string]time.Time // pod key → first seen under NoExecute taints
}

// New builds the controller from the control plane's shared context.
func New(ctx *controller.Context) (controller.Component, error) {
	return NewWithConfig(ctx, ConfigFromOptions(ctx.Options))
}

// NewWithConfig builds the controller with explicit timings.
func NewWithConfig(ctx *controller.Context, cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	log := ctx.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		cfg: cfg, client: ctx.Client, log: log.With("controller", "node-lifecycle"), now: time.Now,
		nodeQ: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "node-lifecycle"}),
		podQ: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "taint-eviction"}),
		health:  map[string]*health{},
		zones:   map[string]*zone{},
		noticed: map[string]time.Time{},
	}
	if ctx.Recorder != nil {
		c.nodeEvents = ctx.Recorder("node-controller")
		c.podEvents = ctx.Recorder("taint-eviction-controller")
	} else {
		c.nodeEvents = &record.FakeRecorder{}
		c.podEvents = &record.FakeRecorder{}
	}
	nodeInf := ctx.Informers.Core().V1().Nodes()
	leaseInf := ctx.Informers.Coordination().V1().Leases()
	podInf := ctx.Informers.Core().V1().Pods().Informer()
	if err := addNodeNameIndex(podInf); err != nil {
		return nil, err
	}
	c.nodes, c.leases, c.pods = nodeInf.Lister(), leaseInf.Lister(), podInf.GetIndexer()
	c.synced = []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, podInf.HasSynced}

	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) { c.nodeQ.Add(obj.(*corev1.Node).Name) },
		UpdateFunc: func(oldObj, newObj interface{}) {
			old, n := oldObj.(*corev1.Node), newObj.(*corev1.Node)
			if nodeChanged(old, n) {
				c.nodeQ.Add(n.Name)
			}
			if readyStatus(old) != readyStatus(n) || !taintsEqual(noExecuteTaints(old), noExecuteTaints(n)) {
				c.enqueuePods(n.Name)
			}
		},
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				c.nodeQ.Add(n.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := leaseInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.observeLease(obj.(*coordinationv1.Lease)) },
		UpdateFunc: func(_, obj interface{}) { c.observeLease(obj.(*coordinationv1.Lease)) },
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.observePod(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj interface{}) { c.observePod(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				c.mu.Lock()
				delete(c.noticed, p.Namespace+"/"+p.Name)
				c.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func addNodeNameIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[NodeNameIndex]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{NodeNameIndex: func(obj interface{}) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}})
}

// nodeChanged reports changes the controller acts on: conditions, taints, schedulability.
func nodeChanged(old, n *corev1.Node) bool {
	if old.Spec.Unschedulable != n.Spec.Unschedulable || !taintsEqual(old.Spec.Taints, n.Spec.Taints) ||
		len(old.Status.Conditions) != len(n.Status.Conditions) || zoneOf(old) != zoneOf(n) {
		return true
	}
	for i := range n.Status.Conditions {
		a, b := &old.Status.Conditions[i], &n.Status.Conditions[i]
		if a.Type != b.Type || a.Status != b.Status || !a.LastHeartbeatTime.Equal(&b.LastHeartbeatTime) {
			return true
		}
	}
	return false
}

// Name implements controller.Component.
func (c *Controller) Name() string { return "node-lifecycle-controller" }

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.nodeQ.ShutDown()
	defer c.podQ.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return ctx.Err()
	}
	c.zonePass(c.now())
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, n := range nodes {
		c.nodeQ.Add(n.Name)
		if readyStatus(n) != corev1.ConditionTrue || len(noExecuteTaints(n)) > 0 {
			c.enqueuePods(n.Name)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < c.cfg.Workers; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for c.processNode(ctx) {
			}
		}()
		go func() {
			defer wg.Done()
			for c.processPod(ctx) {
			}
		}()
	}
	t := time.NewTicker(c.cfg.MonitorPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.nodeQ.ShutDown()
			c.podQ.ShutDown()
			wg.Wait()
			return nil
		case <-t.C:
			c.zonePass(c.now())
		}
	}
}

func (c *Controller) enqueuePods(node string) {
	objs, _ := c.pods.ByIndex(NodeNameIndex, node)
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		c.podQ.Add(p.Namespace + "/" + p.Name)
	}
}

// observeLease records a renewal as a heartbeat. A node in trouble is looked at at once; a
// healthy one at its next scheduled check.
func (c *Controller) observeLease(l *coordinationv1.Lease) {
	if l.Namespace != NodeLeaseNamespace || l.Spec.RenewTime == nil {
		return
	}
	now := c.now()
	c.mu.Lock()
	h := c.health[l.Name]
	if h != nil && !l.Spec.RenewTime.Time.Equal(h.renew) {
		h.renew, h.probe = l.Spec.RenewTime.Time, now
	}
	c.mu.Unlock()
	if h == nil {
		c.nodeQ.Add(l.Name)
		return
	}
	if n, err := c.nodes.Get(l.Name); err == nil && (readyStatus(n) != corev1.ConditionTrue || currentNoExecute(n) != "") {
		c.nodeQ.Add(l.Name)
	}
}

func (c *Controller) observePod(p *corev1.Pod) {
	if p.Spec.NodeName == "" {
		return
	}
	n, err := c.nodes.Get(p.Spec.NodeName)
	if err != nil {
		return
	}
	if readyStatus(n) != corev1.ConditionTrue || len(noExecuteTaints(n)) > 0 {
		c.podQ.Add(p.Namespace + "/" + p.Name)
	}
}

// observe updates a node's heartbeat record and returns its probe time. A first sight
// counts as a heartbeat, except for a node that never posted status: its clock starts at
// creation.
func (c *Controller) observe(n *corev1.Node, l *coordinationv1.Lease, now time.Time) time.Time {
	var renew, beat time.Time
	if l != nil && l.Spec.RenewTime != nil {
		renew = l.Spec.RenewTime.Time
	}
	ready := condition(n, corev1.NodeReady)
	// Heartbeats this controller wrote itself do not count.
	if ready != nil && ready.Reason != "NodeStatusUnknown" && ready.Reason != "NodeStatusNeverUpdated" {
		beat = ready.LastHeartbeatTime.Time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.health[n.Name]
	if h == nil {
		h = &health{probe: now, renew: renew, heartbeat: beat}
		if ready == nil && renew.IsZero() && n.CreationTimestamp.Time.Before(now) {
			h.probe = n.CreationTimestamp.Time
		}
		c.health[n.Name] = h
		return h.probe
	}
	if !renew.Equal(h.renew) {
		h.renew, h.probe = renew, now
	}
	if !beat.Equal(h.heartbeat) {
		h.heartbeat, h.probe = beat, now
	}
	return h.probe
}

func (c *Controller) processNode(ctx context.Context) bool {
	name, quit := c.nodeQ.Get()
	if quit {
		return false
	}
	defer c.nodeQ.Done(name)
	if err := c.syncNode(ctx, name); err != nil {
		if ctx.Err() == nil {
			c.log.Debug("node sync failed; retrying", "node", name, "err", err)
		}
		c.nodeQ.AddRateLimited(name)
		return true
	}
	c.nodeQ.Forget(name)
	return true
}

func (c *Controller) processPod(ctx context.Context) bool {
	key, quit := c.podQ.Get()
	if quit {
		return false
	}
	defer c.podQ.Done(key)
	if err := c.syncPod(ctx, key); err != nil {
		if ctx.Err() == nil {
			c.log.Debug("pod sync failed; retrying", "pod", key, "err", err)
		}
		c.podQ.AddRateLimited(key)
		return true
	}
	c.podQ.Forget(key)
	return true
}

// syncNode checks one node's heartbeat and brings its conditions and taints in line.
func (c *Controller) syncNode(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.health, name)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	now := c.now()
	lease, _ := c.leases.Leases(NodeLeaseNamespace).Get(name)
	probe := c.observe(node, lease, now)
	grace := c.cfg.MonitorGracePeriod
	if condition(node, corev1.NodeReady) == nil {
		grace = c.cfg.StartupGracePeriod
	}
	if deadline := probe.Add(grace); now.Before(deadline) {
		c.nodeQ.AddAfter(name, deadline.Sub(now)+10*time.Millisecond)
	} else if conds, changed := unknownConditions(node, metav1.NewTime(now)); changed {
		wasReady := readyStatus(node) == corev1.ConditionTrue
		n := node.DeepCopy()
		n.Status.Conditions = conds
		updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		c.log.Info("node stopped posting status", "node", name, "silentFor", now.Sub(probe).Round(time.Millisecond))
		if wasReady {
			c.nodeEvents.Eventf(&corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID},
				corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", name)
		}
		node = updated
		c.enqueuePods(name)
	}
	return c.reconcileTaints(ctx, node, now)
}

// reconcileTaints sets the node's managed taints. A new NoExecute taint waits for its zone's
// rate limiter and is withheld while every zone is down.
func (c *Controller) reconcileTaints(ctx context.Context, node *corev1.Node, now time.Time) error {
	wantNS := noScheduleTaints(node)
	wantNE := noExecuteTaint(node)
	cur := currentNoExecute(node)
	var retry time.Duration
	if wantNE != "" && cur == "" {
		c.mu.Lock()
		stale := now.Sub(c.lastPass) > 100*time.Millisecond
		c.mu.Unlock()
		if stale {
			c.zonePass(now)
		}
	}
	c.mu.Lock()
	switch {
	case c.allDisrupted:
		wantNE = ""
	case wantNE != "" && cur == "":
		z := c.zoneLocked(zoneOf(node), now)
		if ok, wait := z.limit.take(now); !ok {
			wantNE = ""
			retry = wait
			if retry < 0 || retry > c.cfg.MonitorPeriod {
				retry = c.cfg.MonitorPeriod
			}
		}
	}
	c.mu.Unlock()
	taints := desiredTaints(node.Spec.Taints, wantNS, wantNE, now)
	if !taintsEqual(node.Spec.Taints, taints) {
		n := node.DeepCopy()
		n.Spec.Taints = taints
		if _, err := c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	if retry > 0 {
		c.nodeQ.AddAfter(node.Name, retry)
	}
	return nil
}

func (c *Controller) zoneLocked(name string, now time.Time) *zone {
	z := c.zones[name]
	if z == nil {
		z = &zone{limit: newBucket(c.cfg.EvictionRate, now)}
		c.zones[name] = z
	}
	return z
}

// zonePass classifies every zone from its nodes' readiness and sets its tainting rate. When
// every zone is fully down, no node gets (or keeps) a NoExecute taint: the failure is more
// likely the control plane's than every node's. Leaving that state restarts every node's
// grace period.
func (c *Controller) zonePass(now time.Time) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	type counts struct{ ready, notReady int }
	per := map[string]*counts{}
	members := map[string][]string{}
	for _, n := range nodes {
		z := zoneOf(n)
		if per[z] == nil {
			per[z] = &counts{}
		}
		if readyStatus(n) == corev1.ConditionTrue {
			per[z].ready++
		} else {
			per[z].notReady++
		}
		members[z] = append(members[z], n.Name)
	}
	var requeue []string
	c.mu.Lock()
	c.lastPass = now
	all := len(per) > 0
	for name, ct := range per {
		z := c.zoneLocked(name, now)
		st := computeZoneState(ct.ready, ct.notReady, c.cfg.UnhealthyZoneThreshold)
		if st != zoneFullDisruption {
			all = false
		}
		z.size = ct.ready + ct.notReady
		rate := c.cfg.EvictionRate
		if st == zonePartialDisruption {
			rate = 0
			if z.size > c.cfg.LargeClusterThreshold {
				rate = c.cfg.SecondaryEvictionRate
			}
		}
		z.limit.setRate(rate, now)
		if st != z.state {
			c.log.Info("zone state changed", "zone", name, "from", z.state.String(), "to", st.String(), "ready", ct.ready, "notReady", ct.notReady)
			z.state = st
			requeue = append(requeue, members[name]...)
		}
	}
	for name := range c.zones {
		if per[name] == nil {
			delete(c.zones, name)
		}
	}
	if all != c.allDisrupted {
		if all {
			c.log.Warn("no node is ready in any zone: withholding NoExecute taints and evictions")
		} else {
			c.log.Info("nodes are ready again: leaving disruption mode")
			for _, h := range c.health {
				h.probe = now
			}
		}
		c.allDisrupted = all
		requeue = requeue[:0]
		for _, n := range nodes {
			requeue = append(requeue, n.Name)
		}
	}
	c.mu.Unlock()
	for _, n := range requeue {
		c.nodeQ.Add(n)
	}
}

// syncPod marks a pod on a not-ready node not ready, and evicts it from a node whose
// NoExecute taints it does not tolerate, once its toleration runs out.
func (c *Controller) syncPod(ctx context.Context, key string) error {
	obj, exists, err := c.pods.GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		c.forgetNoticed(key)
		return nil
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return nil
	}
	node, err := c.nodes.Get(pod.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	now := c.now()
	if readyStatus(node) != corev1.ConditionTrue && podReady(pod) {
		p := pod.DeepCopy()
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].Status = corev1.ConditionFalse
				p.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now)
			}
		}
		updated, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		c.podEvents.Event(updated, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
		pod = updated
	}
	if pod.DeletionTimestamp != nil {
		return nil
	}
	taints := noExecuteTaints(node)
	if len(taints) == 0 {
		c.forgetNoticed(key)
		return nil
	}
	c.mu.Lock()
	noticed, ok := c.noticed[key]
	if !ok {
		noticed = now
		c.noticed[key] = now
	}
	c.mu.Unlock()
	at, evict := evictionTime(pod.Spec.Tolerations, taints, noticed)
	if !evict {
		return nil
	}
	if wait := at.Sub(now); wait > 0 {
		c.podQ.AddAfter(key, wait)
		return nil
	}
	c.podEvents.Event(pod, corev1.EventTypeNormal, "TaintManagerEviction", fmt.Sprintf("Marking for deletion Pod %s/%s", pod.Namespace, pod.Name))
	uid := pod.UID
	err = c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return err
	}
	c.forgetNoticed(key)
	return nil
}

func (c *Controller) forgetNoticed(key string) {
	c.mu.Lock()
	delete(c.noticed, key)
	c.mu.Unlock()
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
