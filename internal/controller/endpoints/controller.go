// Package endpoints is the Endpoints controller: for every Service with a selector it keeps
// an Endpoints object of the same name listing the IPs of the pods the selector matches
// (ready ones in addresses, others in notReadyAddresses), as Kubernetes' endpoint
// controller does. Endpoints of services without selectors belong to their users and are
// never touched.
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

const (
	// Name is the component's name (and the event source).
	Name = "endpoint-controller"
	// LabelManagedBy marks the Endpoints this controller manages; its value is Name.
	LabelManagedBy = "endpoints.kubernetes.io/managed-by"
	// AnnotationOverCapacity is set to "truncated" on Endpoints cut to MaxAddresses.
	AnnotationOverCapacity = "endpoints.kubernetes.io/over-capacity"
	// LabelHeadless marks the endpoints of headless services.
	LabelHeadless = corev1.IsHeadlessService
	// ReasonFailedToUpdate is the event reason of a failed write.
	ReasonFailedToUpdate = "FailedToUpdateEndpoint"
)

// Controller keeps the Endpoints of selector-based services.
type Controller struct {
	log      *slog.Logger
	client   kubernetes.Interface
	services corelisters.ServiceLister
	pods     corelisters.PodLister
	eps      corelisters.EndpointsLister
	index    *ServiceIndex
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	workers  int
}

// New builds the controller from the shared context.
func New(cc *controller.Context) (controller.Component, error) {
	if cc.Client == nil || cc.Informers == nil {
		return nil, errors.New("endpoints controller: needs a client and informers")
	}
	log := cc.Logger
	if log == nil {
		log = slog.Default()
	}
	var rec record.EventRecorder = &record.FakeRecorder{}
	if cc.Recorder != nil {
		rec = cc.Recorder(Name)
	}
	core := cc.Informers.Core().V1()
	return NewController(log, cc.Client, core.Services(), core.Pods(), core.Endpoints(), rec, cc.Options.WorkersOr(5)), nil
}

// NewController builds the controller from its parts (tests use fakes).
func NewController(log *slog.Logger, client kubernetes.Interface, services coreinformers.ServiceInformer,
	pods coreinformers.PodInformer, endpoints coreinformers.EndpointsInformer, rec record.EventRecorder, workers int) *Controller {
	if workers <= 0 {
		workers = 1
	}
	c := &Controller{
		log: log.With("controller", Name), client: client,
		services: services.Lister(), pods: pods.Lister(), eps: endpoints.Lister(),
		index: NewServiceIndex(),
		synced: []cache.InformerSynced{services.Informer().HasSynced, pods.Informer().HasSynced,
			endpoints.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpoint"}),
		recorder: rec,
		workers:  workers,
	}
	_, _ = services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.serviceChanged,
		UpdateFunc: func(_, obj interface{}) { c.serviceChanged(obj) },
		DeleteFunc: c.serviceDeleted,
	})
	_, _ = pods.Informer().AddEventHandler(PodHandler(c.index, c.queue.Add))
	_, _ = endpoints.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Managed Endpoints left over from a service deleted while no controller ran.
		AddFunc: func(obj interface{}) {
			if ep, ok := obj.(*corev1.Endpoints); ok && ep.Labels[LabelManagedBy] == Name {
				c.enqueueObj(obj)
			}
		},
		UpdateFunc: func(old, cur interface{}) {
			o, n := old.(*corev1.Endpoints), cur.(*corev1.Endpoints)
			if o.ResourceVersion != n.ResourceVersion {
				c.enqueueObj(cur)
			}
		},
		DeleteFunc: c.enqueueObj,
	})
	return c
}

// PodHandler maps pod events to the keys of the services selecting the pod (before and
// after a label change), ignoring updates that cannot change any endpoint.
func PodHandler(index *ServiceIndex, enqueue func(string)) cache.ResourceEventHandler {
	add := func(pod *corev1.Pod) {
		for _, name := range index.Matching(pod.Namespace, pod.Labels) {
			enqueue(pod.Namespace + "/" + name)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			if pod, ok := obj.(*corev1.Pod); ok {
				add(pod)
			}
		},
		UpdateFunc: func(old, cur interface{}) {
			o, ok1 := old.(*corev1.Pod)
			n, ok2 := cur.(*corev1.Pod)
			if !ok1 || !ok2 || o.ResourceVersion == n.ResourceVersion || !PodChanged(o, n) {
				return
			}
			add(n)
			if !labels.Equals(o.Labels, n.Labels) {
				add(o)
			}
		},
		DeleteFunc: func(obj interface{}) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				add(pod)
			}
		},
	}
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

func (c *Controller) serviceChanged(obj interface{}) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	c.index.Set(svc)
	c.queue.Add(svc.Namespace + "/" + svc.Name)
}

func (c *Controller) serviceDeleted(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	c.index.Delete(svc.Namespace, svc.Name)
	c.queue.Add(svc.Namespace + "/" + svc.Name)
}

func (c *Controller) enqueueObj(obj interface{}) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

// Run works the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("starting")
	defer c.log.Info("stopped")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil
	}
	controllerutil.RunWorkers(ctx, c.queue, c.workers, c.runWorker)
	return nil
}

func (c *Controller) runWorker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	return controllerutil.ProcessNext(ctx, c.queue, c.log, c.sync)
}

// sync brings the Endpoints of one service (namespace/name) to the desired state.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	if ns == metav1.NamespaceDefault && name == "kubernetes" {
		return nil // the API server maintains it
	}
	svc, err := c.services.Services(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if apierrors.IsNotFound(err) || !ServiceWantsEndpoints(svc) {
		return c.deleteManaged(ctx, ns, name)
	}

	pods, err := c.pods.Pods(ns).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	subsets, truncated := Desired(svc, pods, 0)
	wantLabels := DesiredLabels(svc, LabelManagedBy, Name)

	cur, err := c.eps.Endpoints(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if cur == nil {
		ep := &corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: wantLabels},
			Subsets:    subsets,
		}
		if truncated {
			ep.Annotations = map[string]string{AnnotationOverCapacity: "truncated"}
		}
		_, err := c.client.CoreV1().Endpoints(ns).Create(ctx, ep, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // the namespace is going away with the service
			}
			if !apierrors.IsAlreadyExists(err) {
				c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonFailedToUpdate, "Failed to create endpoint for service %s/%s: %v", ns, name, err)
			}
			return err
		}
		return nil
	}

	_, overCap := cur.Annotations[AnnotationOverCapacity]
	if overCap == truncated && maps.Equal(cur.Labels, wantLabels) &&
		apiequality.Semantic.DeepEqual(Canonical(cur.Subsets), subsets) {
		return nil
	}
	ep := cur.DeepCopy()
	ep.Labels = wantLabels
	ep.Subsets = subsets
	if truncated {
		if ep.Annotations == nil {
			ep.Annotations = map[string]string{}
		}
		ep.Annotations[AnnotationOverCapacity] = "truncated"
	} else {
		delete(ep.Annotations, AnnotationOverCapacity)
	}
	if _, err := c.client.CoreV1().Endpoints(ns).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonFailedToUpdate, "Failed to update endpoint %s/%s: %v", ns, name, err)
		}
		return err
	}
	return nil
}

// deleteManaged deletes the Endpoints of a service that is gone or no longer has a
// selector, if this controller manages them (hand-written ones stay).
func (c *Controller) deleteManaged(ctx context.Context, ns, name string) error {
	cur, err := c.eps.Endpoints(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.Labels[LabelManagedBy] != Name {
		return nil
	}
	err = c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &cur.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete endpoints %s/%s: %w", ns, name, err)
	}
	return nil
}

// DesiredLabels are the service's labels plus the managed-by label, and the headless label
// for headless services.
func DesiredLabels(svc *corev1.Service, managedByKey, managedBy string) map[string]string {
	out := make(map[string]string, len(svc.Labels)+2)
	maps.Copy(out, svc.Labels)
	out[managedByKey] = managedBy
	if IsHeadless(svc) {
		out[LabelHeadless] = ""
	} else {
		delete(out, LabelHeadless)
	}
	return out
}
