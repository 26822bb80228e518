// Package statefulset runs the StatefulSet controller: pods with stable names <set>-<ordinal>,
// hostnames and subdomains, one PersistentVolumeClaim per claim template and ordinal created
// before the pod, ordered (OrderedReady) or parallel creation and termination, RollingUpdate
// (highest ordinal first, down to the partition, within maxUnavailable) and OnDelete updates
// over ControllerRevision history, and the StatefulSet status kubectl reads.
package statefulset

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
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
	"github.com/skiff-sh/skiff/internal/controller/history"
)

// Name is the controller's name (events' source component).
const Name = "statefulset-controller"

var gvk = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Controller manages StatefulSets.
type Controller struct {
	client    kubernetes.Interface
	setLister appslisters.StatefulSetLister
	pods      corelisters.PodLister
	claims    corelisters.PersistentVolumeClaimLister
	hist      history.History
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	deleting  *deletions
	recorder  record.EventRecorder
	log       *slog.Logger
	workers   int
	now       func() time.Time
}

// New builds the StatefulSet controller.
func New(cc *controller.Context) (controller.Component, error) {
	return newController(cc)
}

func newController(cc *controller.Context) (*Controller, error) {
	setInf := cc.Informers.Apps().V1().StatefulSets()
	podInf := cc.Informers.Core().V1().Pods()
	pvcInf := cc.Informers.Core().V1().PersistentVolumeClaims()
	crInf := cc.Informers.Apps().V1().ControllerRevisions()
	logger := cc.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c := &Controller{
		client:    cc.Client,
		setLister: setInf.Lister(),
		pods:      podInf.Lister(),
		claims:    pvcInf.Lister(),
		hist:      history.History{Client: cc.Client, Lister: crInf.Lister()},
		synced: []cache.InformerSynced{setInf.Informer().HasSynced, podInf.Informer().HasSynced,
			pvcInf.Informer().HasSynced, crInf.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		deleting: newDeletions(),
		recorder: cc.Recorder(Name),
		log:      logger.With("controller", Name),
		workers:  cc.Options.WorkersOr(5),
		now:      time.Now,
	}
	if _, err := setInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.enqueueKey(controllerutil.Key(obj)) },
		UpdateFunc: func(_, cur interface{}) { c.enqueueKey(controllerutil.Key(cur)) },
		DeleteFunc: func(obj interface{}) {
			c.enqueueKey(controllerutil.Key(obj))
		},
	}); err != nil {
		return nil, err
	}
	owned := &controllerutil.OwnedPods[*appsv1.StatefulSet]{
		GVK: gvk, Queue: c.queue,
		Get: func(ns, name string) (*appsv1.StatefulSet, error) { return c.setLister.StatefulSets(ns).Get(name) },
		List: func(ns string) ([]*appsv1.StatefulSet, error) {
			return c.setLister.StatefulSets(ns).List(labels.Everything())
		},
		Selects: func(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
			return controllerutil.SelectsPod(set.Spec.Selector, pod)
		},
		MinReadySeconds: func(set *appsv1.StatefulSet) int32 { return set.Spec.MinReadySeconds },
	}
	if _, err := podInf.Informer().AddEventHandler(owned.Handlers()); err != nil {
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

func (c *Controller) enqueueKey(key string) {
	if key != "" {
		c.queue.Add(key)
	}
}

func setKey(set *appsv1.StatefulSet) string { return set.Namespace + "/" + set.Name }

// --- pod events ---

// --- sync ---

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	shared, err := c.setLister.StatefulSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	set := shared.DeepCopy()
	selector, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || selector.Empty() {
		return nil
	}
	all, err := c.pods.Pods(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	claimer := &controllerutil.Claimer{
		Client: c.client, Controller: set, Kind: gvk, Selector: selector,
		Recheck: func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		},
	}
	pods, err := claimer.ClaimPods(ctx, all, func(p *corev1.Pod) bool { return ordinalOf(set, p) >= 0 })
	if err != nil {
		return err
	}
	if set.DeletionTimestamp != nil {
		return nil
	}

	revs, err := c.hist.Owned(ctx, set, gvk, selector)
	if err != nil {
		return err
	}
	update, collisions, err := c.hist.Ensure(ctx, set, gvk, &set.Spec.Template, revs, set.Status.CollisionCount)
	if err != nil {
		return err
	}
	current := update
	currentTmpl := &set.Spec.Template
	if set.Status.CurrentRevision != "" && set.Status.CurrentRevision != update.Name {
		for _, r := range revs {
			if r.Name == set.Status.CurrentRevision {
				if t, err := history.TemplateOf(r); err == nil {
					current, currentTmpl = r, t
				}
			}
		}
	}
	r := &round{c: c, set: set, current: current, update: update, currentTmpl: currentTmpl, now: c.now()}
	manageErr := r.manage(ctx, pods)

	st := r.status(pods, collisions)
	if err := c.updateStatus(ctx, set, st); err != nil {
		return errors.Join(manageErr, err)
	}
	if manageErr != nil {
		return manageErr
	}
	if set.Spec.MinReadySeconds > 0 && st.AvailableReplicas < st.ReadyReplicas {
		c.queue.AddAfter(key, time.Duration(set.Spec.MinReadySeconds)*time.Second)
	}
	return c.cleanupHistory(ctx, set, revs, pods, current, update)
}

func (c *Controller) updateStatus(ctx context.Context, set *appsv1.StatefulSet, st appsv1.StatefulSetStatus) error {
	if reflect.DeepEqual(set.Status, st) {
		return nil
	}
	set.Status = st
	_, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, set, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// cleanupHistory deletes revisions beyond revisionHistoryLimit that are neither current,
// update, nor used by a pod.
func (c *Controller) cleanupHistory(ctx context.Context, set *appsv1.StatefulSet, revs []*appsv1.ControllerRevision, pods []*corev1.Pod, current, update *appsv1.ControllerRevision) error {
	limit := int32(10)
	if set.Spec.RevisionHistoryLimit != nil {
		limit = *set.Spec.RevisionHistoryLimit
	}
	if len(revs) <= int(limit)+2 {
		return nil
	}
	keep := map[string]bool{current.Name: true, update.Name: true}
	for _, p := range pods {
		keep[revisionOf(p)] = true
	}
	return c.hist.Truncate(ctx, revs, keep, limit)
}
