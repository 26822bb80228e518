// Package replicaset runs the ReplicaSet controller, and the same logic over v1
// ReplicationControllers: it keeps the number of active pods owned by each ReplicaSet at
// spec.replicas, adopting orphans its selector matches and releasing pods it no longer
// matches, and reports replicas, fullyLabeledReplicas, readyReplicas and availableReplicas.
package replicaset

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// BurstReplicas caps how many pods one sync creates or deletes.
const BurstReplicas = 500

// Controller manages ReplicaSets (or ReplicationControllers).
type Controller struct {
	name   string
	client kubernetes.Interface
	kind   kind
	pods   corelisters.PodLister
	podInf cache.SharedIndexInformer
	// podEvents route pod events to their owners (controllerutil.OwnedPods).
	podEvents cache.ResourceEventHandlerFuncs
	rsInf     cache.SharedIndexInformer // ReplicaSets, for pods related through a Deployment
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	exp       *controllerutil.Expectations
	recorder  record.EventRecorder
	podCtl    controllerutil.PodControl
	log       *slog.Logger
	workers   int
	burst     int
	now       func() time.Time
}

// New builds the ReplicaSet controller.
func New(ctx *controller.Context) (controller.Component, error) {
	return newController(ctx, "replicaset-controller", newRSKind(ctx))
}

// NewRC builds the ReplicationController controller.
func NewRC(ctx *controller.Context) (controller.Component, error) {
	return newController(ctx, "replication-controller", newRCKind(ctx))
}

func newController(ctx *controller.Context, name string, k kind) (*Controller, error) {
	podInf := ctx.Informers.Core().V1().Pods()
	rsInf := ctx.Informers.Apps().V1().ReplicaSets().Informer()
	recorder := ctx.Recorder(name)
	logger := ctx.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c := &Controller{
		name:   name,
		client: ctx.Client,
		kind:   k,
		pods:   podInf.Lister(),
		podInf: podInf.Informer(),
		rsInf:  rsInf,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
		exp:      controllerutil.NewExpectations(),
		recorder: recorder,
		podCtl:   controllerutil.PodControl{Client: ctx.Client, Recorder: recorder},
		log:      logger.With("controller", name),
		workers:  ctx.Options.WorkersOr(5),
		burst:    BurstReplicas,
		now:      time.Now,
	}
	c.synced = []cache.InformerSynced{c.podInf.HasSynced, k.informer().HasSynced, rsInf.HasSynced}
	if _, err := k.informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addOwner,
		UpdateFunc: c.updateOwner,
		DeleteFunc: c.deleteOwner,
	}); err != nil {
		return nil, err
	}
	c.podEvents = (&controllerutil.OwnedPods[*appsv1.ReplicaSet]{
		GVK: k.gvk(), Queue: c.queue, Expectations: c.exp, Get: k.get, List: k.list,
		Selects: func(rs *appsv1.ReplicaSet, pod *corev1.Pod) bool {
			return selectorOf(rs).Matches(labels.Set(pod.Labels))
		},
		MinReadySeconds: func(rs *appsv1.ReplicaSet) int32 { return rs.Spec.MinReadySeconds },
	}).Handlers()
	if _, err := c.podInf.AddEventHandler(c.podEvents); err != nil {
		return nil, err
	}
	return c, nil
}

// Name implements controller.Component.
func (c *Controller) Name() string { return c.name }

// Run implements controller.Component.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("starting")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return ctx.Err()
	}
	controllerutil.RunWorkers(ctx, c.queue, c.workers, c.worker)
	return nil
}

func (c *Controller) worker(ctx context.Context) {
	for c.next(ctx) {
	}
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

func (c *Controller) enqueue(rs *appsv1.ReplicaSet) {
	c.queue.Add(rs.Namespace + "/" + rs.Name)
}

func (c *Controller) enqueueAfter(rs *appsv1.ReplicaSet, d time.Duration) {
	c.queue.AddAfter(rs.Namespace+"/"+rs.Name, d)
}

// --- owner events ---

func (c *Controller) addOwner(obj interface{}) {
	if rs, ok := c.kind.view(obj); ok {
		c.enqueue(rs)
	}
}

func (c *Controller) updateOwner(_, cur interface{}) {
	if rs, ok := c.kind.view(cur); ok {
		c.enqueue(rs)
	}
}

func (c *Controller) deleteOwner(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	rs, ok := c.kind.view(obj)
	if !ok {
		return
	}
	key := rs.Namespace + "/" + rs.Name
	c.exp.Forget(key)
	c.queue.Add(key)
}

// --- pod events ---

// resolve returns the controller a controllerRef points at, if it is of our kind and the
// same object (UID) we know.
// --- sync ---

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	rs, err := c.kind.get(namespace, name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	needsSync := c.exp.Satisfied(key)
	selector := selectorOf(rs)

	all, err := c.pods.Pods(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	claimer := &controllerutil.Claimer{
		Client: c.client, Controller: rs, Kind: c.kind.gvk(), Selector: selector,
		Recheck: func(ctx context.Context) (metav1.Object, error) { return c.kind.fresh(ctx, namespace, name) },
	}
	pods, err := claimer.ClaimPods(ctx, controllerutil.FilterActivePods(all))
	if err != nil {
		return err
	}

	var manageErr error
	creating := len(pods) < int(*rs.Spec.Replicas)
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, key, rs, pods, all)
	}

	status := calculateStatus(rs, pods, manageErr, creating, c.now())
	updated, err := c.updateStatus(ctx, rs, status)
	if err != nil {
		return errors.Join(manageErr, err)
	}
	if manageErr == nil && updated.Spec.MinReadySeconds > 0 &&
		updated.Status.ReadyReplicas == *updated.Spec.Replicas &&
		updated.Status.AvailableReplicas != *updated.Spec.Replicas {
		c.enqueueAfter(updated, time.Duration(updated.Spec.MinReadySeconds)*time.Second)
	}
	return manageErr
}

// updateStatus writes status when it differs, retrying once on a conflict with a fresh copy.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	if statusEqual(rs.Status, status) {
		return rs, nil
	}
	for attempt := 0; ; attempt++ {
		rs.Status = status
		out, err := c.kind.updateStatus(ctx, rs)
		if err == nil {
			return out, nil
		}
		if apierrors.IsNotFound(err) {
			return rs, nil
		}
		if !apierrors.IsConflict(err) || attempt >= 1 {
			return nil, err
		}
		fresh, gerr := c.kind.fresh(ctx, rs.Namespace, rs.Name)
		if gerr != nil {
			return nil, err
		}
		if frs, ok := c.kind.view(fresh); ok {
			if frs.Generation != rs.Generation {
				// The spec moved on; the next sync computes a new status.
				return nil, err
			}
			rs = frs
		} else {
			return nil, err
		}
	}
}

func statusEqual(a, b appsv1.ReplicaSetStatus) bool {
	return a.Replicas == b.Replicas && a.FullyLabeledReplicas == b.FullyLabeledReplicas &&
		a.ReadyReplicas == b.ReadyReplicas && a.AvailableReplicas == b.AvailableReplicas &&
		a.ObservedGeneration == b.ObservedGeneration && reflect.DeepEqual(a.Conditions, b.Conditions)
}

// manageReplicas creates or deletes pods so that rs owns spec.replicas active pods.
func (c *Controller) manageReplicas(ctx context.Context, key string, rs *appsv1.ReplicaSet, pods, all []*corev1.Pod) error {
	diff := len(pods) - int(*rs.Spec.Replicas)
	switch {
	case diff < 0:
		n := min(-diff, c.burst)
		c.exp.ExpectCreations(key, n)
		ref := controllerutil.ControllerRef(rs, c.kind.gvk())
		obj := c.kind.object(rs)
		c.log.Debug("creating pods", "key", key, "need", n)
		created, err := controllerutil.SlowStartBatch(n, 1, func() error {
			_, err := c.podCtl.Create(ctx, rs.Namespace, &rs.Spec.Template, obj, rs.Name, ref)
			if err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // the namespace is going away; nothing to do
			}
			return err
		})
		// Calls never made (or failed) will produce no informer event: stop expecting them.
		for i := 0; i < n-created; i++ {
			c.exp.CreationObserved(key)
		}
		return err
	case diff > 0:
		n := min(diff, c.burst)
		victims := podsToDelete(pods, c.relatedPods(rs, all), n, c.now())
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = p.Namespace + "/" + p.Name
		}
		c.exp.ExpectDeletions(key, keys)
		c.log.Debug("deleting pods", "key", key, "count", n)
		obj := c.kind.object(rs)
		errCh := make(chan error, len(victims))
		var wg sync.WaitGroup
		for i, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.podCtl.Delete(ctx, p.Namespace, p.Name, obj); err != nil {
					c.exp.DeletionObserved(key, keys[i])
					if !apierrors.IsNotFound(err) {
						errCh <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errCh)
		if err, ok := <-errCh; ok {
			return err
		}
	}
	return nil
}

// relatedPods are the pods of every ReplicaSet that shares rs's controller (the
// Deployment's other ReplicaSets), or rs's own candidates when it has no controller.
func (c *Controller) relatedPods(rs *appsv1.ReplicaSet, all []*corev1.Pod) []*corev1.Pod {
	owners := map[string]bool{string(rs.UID): true}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		objs, _ := c.rsInf.GetIndexer().ByIndex(cache.NamespaceIndex, rs.Namespace)
		for _, o := range objs {
			if sib := o.(*appsv1.ReplicaSet); metav1.GetControllerOf(sib) != nil && metav1.GetControllerOf(sib).UID == ref.UID {
				owners[string(sib.UID)] = true
			}
		}
	}
	var out []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && owners[string(ref.UID)] {
			out = append(out, p)
		}
	}
	return out
}

func notFound(gr schema.GroupResource, name string) error {
	return apierrors.NewNotFound(gr, name)
}
