// Package daemonset runs the DaemonSet controller: one pod per eligible node (nodeSelector,
// required node affinity, taints against the template's tolerations plus the standard daemon
// tolerations), each created with a required node affinity on the node's name so that the
// scheduler places it; RollingUpdate (maxUnavailable or maxSurge) and OnDelete updates over
// ControllerRevision history; and the DaemonSet status kubectl reads.
package daemonset

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
	"github.com/skiff-sh/skiff/internal/controller/history"
)

// Name is the controller's name (events' source component).
const Name = "daemonset-controller"

var gvk = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// BurstReplicas caps how many pods one sync creates.
const BurstReplicas = 250

// Controller manages DaemonSets.
type Controller struct {
	client   kubernetes.Interface
	dsLister appslisters.DaemonSetLister
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	hist     history.History
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	exp      *controllerutil.Expectations
	recorder record.EventRecorder
	podCtl   controllerutil.PodControl
	log      *slog.Logger
	workers  int
	now      func() time.Time
	// failedBackoff spaces out the replacement of failed pods per DaemonSet and node.
	failedBackoff *flowcontrol.Backoff
}

// New builds the DaemonSet controller.
func New(cc *controller.Context) (controller.Component, error) {
	return newController(cc)
}

func newController(cc *controller.Context) (*Controller, error) {
	dsInf := cc.Informers.Apps().V1().DaemonSets()
	podInf := cc.Informers.Core().V1().Pods()
	nodeInf := cc.Informers.Core().V1().Nodes()
	crInf := cc.Informers.Apps().V1().ControllerRevisions()
	recorder := cc.Recorder(Name)
	logger := cc.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c := &Controller{
		client:   cc.Client,
		dsLister: dsInf.Lister(),
		pods:     podInf.Lister(),
		nodes:    nodeInf.Lister(),
		hist:     history.History{Client: cc.Client, Lister: crInf.Lister()},
		synced: []cache.InformerSynced{dsInf.Informer().HasSynced, podInf.Informer().HasSynced,
			nodeInf.Informer().HasSynced, crInf.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		exp:      controllerutil.NewExpectations(),
		recorder: recorder,
		podCtl:   controllerutil.PodControl{Client: cc.Client, Recorder: recorder},
		log:      logger.With("controller", Name),
		workers:  cc.Options.WorkersOr(2),
		now:      time.Now,

		failedBackoff: flowcontrol.NewBackOff(time.Second, 15*time.Minute),
	}
	if _, err := dsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.enqueueKey(controllerutil.Key(obj)) },
		UpdateFunc: func(_, cur interface{}) { c.enqueueKey(controllerutil.Key(cur)) },
		DeleteFunc: func(obj interface{}) {
			key := controllerutil.Key(obj)
			c.exp.Forget(key)
			c.enqueueKey(key)
		},
	}); err != nil {
		return nil, err
	}
	owned := &controllerutil.OwnedPods[*appsv1.DaemonSet]{
		GVK: gvk, Queue: c.queue, Expectations: c.exp,
		Get: func(ns, name string) (*appsv1.DaemonSet, error) { return c.dsLister.DaemonSets(ns).Get(name) },
		List: func(ns string) ([]*appsv1.DaemonSet, error) {
			return c.dsLister.DaemonSets(ns).List(labels.Everything())
		},
		Selects: func(ds *appsv1.DaemonSet, pod *corev1.Pod) bool {
			return controllerutil.SelectsPod(ds.Spec.Selector, pod)
		},
		MinReadySeconds: func(ds *appsv1.DaemonSet) int32 { return ds.Spec.MinReadySeconds },
	}
	if _, err := podInf.Informer().AddEventHandler(owned.Handlers()); err != nil {
		return nil, err
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(interface{}) { c.enqueueAll() },
		UpdateFunc: func(old, cur interface{}) {
			o, n := old.(*corev1.Node), cur.(*corev1.Node)
			if !reflect.DeepEqual(o.Labels, n.Labels) || !reflect.DeepEqual(o.Spec.Taints, n.Spec.Taints) {
				c.enqueueAll()
			}
		},
		DeleteFunc: func(interface{}) { c.enqueueAll() },
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
	go wait.Until(c.failedBackoff.GC, time.Minute, ctx.Done())
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

func (c *Controller) enqueueKey(key string) {
	if key != "" {
		c.queue.Add(key)
	}
}

func dsKey(ds *appsv1.DaemonSet) string { return ds.Namespace + "/" + ds.Name }

func (c *Controller) enqueueAll() {
	all, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range all {
		c.queue.Add(dsKey(ds))
	}
}

// --- pod events ---

// --- sync ---

// nodeState is what one node has of a DaemonSet.
type nodeState struct {
	node      *corev1.Node
	place     placement
	pods      []*corev1.Pod // active (not terminating, not finished), oldest first
	failed    []*corev1.Pod // finished and not yet deleted
	finishing bool          // some pod on the node is terminating
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	shared, err := c.dsLister.DaemonSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	ds := shared.DeepCopy()
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || selector.Empty() {
		return nil // validation prevents this; an empty selector would take every pod
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	all, err := c.pods.Pods(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	claimer := &controllerutil.Claimer{
		Client: c.client, Controller: ds, Kind: gvk, Selector: selector,
		Recheck: func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		},
	}
	pods, err := claimer.ClaimPods(ctx, all)
	if err != nil {
		return err
	}
	if ds.DeletionTimestamp != nil {
		return nil // the garbage collector removes the pods
	}

	revs, err := c.hist.Owned(ctx, ds, gvk, selector)
	if err != nil {
		return err
	}
	cur, collisions, err := c.hist.Ensure(ctx, ds, gvk, &ds.Spec.Template, revs, ds.Status.CollisionCount)
	if err != nil {
		if collisions != nil && !reflect.DeepEqual(collisions, ds.Status.CollisionCount) {
			ds.Status.CollisionCount = collisions
			_, _ = c.client.AppsV1().DaemonSets(namespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{})
		}
		return err
	}
	if collisions != nil && (*collisions != 0 || ds.Status.CollisionCount != nil) {
		ds.Status.CollisionCount = collisions // kept unset until a collision happens
	}
	hash := cur.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]

	states, orphaned := groupByNode(ds, nodes, pods)
	var manageErr error
	if c.exp.Satisfied(key) {
		manageErr = c.manage(ctx, key, ds, hash, states, orphaned)
	}

	st := c.calculateStatus(ds, hash, states)
	if err := c.updateStatus(ctx, ds, st); err != nil {
		return errors.Join(manageErr, err)
	}
	if manageErr != nil {
		return manageErr
	}
	if ds.Spec.MinReadySeconds > 0 && st.NumberAvailable < st.NumberReady {
		c.queue.AddAfter(key, time.Duration(ds.Spec.MinReadySeconds)*time.Second)
	}
	return c.cleanupHistory(ctx, ds, cur, revs, pods)
}

// groupByNode sorts the claimed pods by the node they are on (or pinned to); pods pinned to
// no existing node are returned apart.
func groupByNode(ds *appsv1.DaemonSet, nodes []*corev1.Node, pods []*corev1.Pod) (map[string]*nodeState, []*corev1.Pod) {
	states := make(map[string]*nodeState, len(nodes))
	for _, n := range nodes {
		states[n.Name] = &nodeState{node: n, place: nodeShouldRun(n, ds)}
	}
	var orphaned []*corev1.Pod
	for _, p := range pods {
		s := states[podNode(p)]
		switch {
		case s == nil:
			if p.DeletionTimestamp == nil {
				orphaned = append(orphaned, p)
			}
		case p.DeletionTimestamp != nil:
			s.finishing = true
		case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
			s.failed = append(s.failed, p)
		default:
			s.pods = append(s.pods, p)
		}
	}
	for _, s := range states {
		sortOldestFirst(s.pods)
	}
	return states, orphaned
}

func sortOldestFirst(pods []*corev1.Pod) {
	for i := 1; i < len(pods); i++ {
		for j := i; j > 0 && olderThan(pods[j], pods[j-1]); j-- {
			pods[j], pods[j-1] = pods[j-1], pods[j]
		}
	}
}

func olderThan(a, b *corev1.Pod) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// updateStatus writes status when it changed.
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, st appsv1.DaemonSetStatus) error {
	if reflect.DeepEqual(ds.Status, st) {
		return nil
	}
	ds.Status = st
	_, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *Controller) calculateStatus(ds *appsv1.DaemonSet, hash string, states map[string]*nodeState) appsv1.DaemonSetStatus {
	st := *ds.Status.DeepCopy()
	gen, hasGen := templateGeneration(ds)
	now := c.now()
	var desired, current, misscheduled, ready, available, updated int32
	for _, s := range states {
		scheduled := len(s.pods) > 0
		if !s.place.shouldRun {
			if scheduled {
				misscheduled++
			}
			continue
		}
		desired++
		if !scheduled {
			continue
		}
		current++
		// With a surge the node may have an old and a new pod: judge by the newest updated pod,
		// else by the oldest.
		pod := s.pods[0]
		for _, p := range s.pods {
			if isUpdated(p, hash, gen, hasGen) {
				pod = p
			}
		}
		if controllerutil.IsPodReady(pod) {
			ready++
			if controllerutil.IsPodAvailable(pod, ds.Spec.MinReadySeconds, now) {
				available++
			}
		}
		if isUpdated(pod, hash, gen, hasGen) {
			updated++
		}
	}
	st.DesiredNumberScheduled = desired
	st.CurrentNumberScheduled = current
	st.NumberMisscheduled = misscheduled
	st.NumberReady = ready
	st.NumberAvailable = available
	st.NumberUnavailable = max(desired-available, 0)
	st.UpdatedNumberScheduled = updated
	st.ObservedGeneration = ds.Generation
	return st
}

// cleanupHistory deletes revisions beyond revisionHistoryLimit that no pod uses.
func (c *Controller) cleanupHistory(ctx context.Context, ds *appsv1.DaemonSet, cur *appsv1.ControllerRevision, revs []*appsv1.ControllerRevision, pods []*corev1.Pod) error {
	limit := int32(10)
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = *ds.Spec.RevisionHistoryLimit
	}
	if len(revs) <= int(limit)+1 {
		return nil
	}
	live := map[string]bool{}
	for _, p := range pods {
		if h := p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]; h != "" {
			live[h] = true
		}
	}
	keep := map[string]bool{cur.Name: true}
	for _, r := range revs {
		if live[r.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]] {
			keep[r.Name] = true
		}
	}
	return c.hist.Truncate(ctx, revs, keep, limit)
}
