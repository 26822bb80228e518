// Package endpointslice is the EndpointSlice controller: for every Service with a selector
// it keeps EndpointSlices (discovery.k8s.io/v1) listing the pods the selector matches, with
// ready/serving/terminating conditions, at most 100 endpoints per slice, one group of
// slices per address type and resolved port set, as Kubernetes' endpointslice controller
// does. It only touches slices labelled managed-by endpointslice-controller.k8s.io.
package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
	"github.com/skiff-sh/skiff/internal/controller/endpoints"
)

const (
	// Name is the component's name (and the event source).
	Name = "endpointslice-controller"
	// ControllerName is the managed-by label value of the slices this controller owns.
	ControllerName = "endpointslice-controller.k8s.io"
	// ReasonFailedToUpdate is the event reason of failed writes.
	ReasonFailedToUpdate = "FailedToUpdateEndpointSlices"

	serviceIndex = "skiff-endpointslice-service"
	// staleRetry is how soon a sync is retried when the slice cache lags our own writes.
	staleRetry = 50 * time.Millisecond
)

// Labels are the labels of a service's managed slices: the service's own, plus the
// service-name and managed-by labels (and the headless label for headless services).
func Labels(svc *corev1.Service) map[string]string {
	l := endpoints.DesiredLabels(svc, discoveryv1.LabelManagedBy, ControllerName)
	l[discoveryv1.LabelServiceName] = svc.Name
	return l
}

// Controller keeps the EndpointSlices of selector-based services.
type Controller struct {
	log      *slog.Logger
	client   kubernetes.Interface
	services corelisters.ServiceLister
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	slices   cache.Indexer
	index    *endpoints.ServiceIndex
	tracker  *tracker
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	workers  int
	max      int
}

// New builds the controller from the shared context.
func New(cc *controller.Context) (controller.Component, error) {
	if cc.Client == nil || cc.Informers == nil {
		return nil, errors.New("endpointslice controller: needs a client and informers")
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
	return NewController(log, cc.Client, core.Services(), core.Pods(), core.Nodes(),
		cc.Informers.Discovery().V1().EndpointSlices(), rec, cc.Options.WorkersOr(5), MaxEndpointsPerSlice)
}

// NewController builds the controller from its parts (tests use fakes); max is the
// number of endpoints per slice.
func NewController(log *slog.Logger, client kubernetes.Interface, services coreinformers.ServiceInformer,
	pods coreinformers.PodInformer, nodes coreinformers.NodeInformer, slices discoveryinformers.EndpointSliceInformer,
	rec record.EventRecorder, workers, max int) (*Controller, error) {
	if workers <= 0 {
		workers = 1
	}
	if max <= 0 {
		max = MaxEndpointsPerSlice
	}
	sliceInf := slices.Informer()
	if _, ok := sliceInf.GetIndexer().GetIndexers()[serviceIndex]; !ok {
		if err := sliceInf.AddIndexers(cache.Indexers{serviceIndex: indexByService}); err != nil {
			return nil, fmt.Errorf("endpointslice controller: %w", err)
		}
	}
	c := &Controller{
		log: log.With("controller", Name), client: client,
		services: services.Lister(), pods: pods.Lister(), nodes: nodes.Lister(), slices: sliceInf.GetIndexer(),
		index: endpoints.NewServiceIndex(), tracker: newTracker(),
		synced: []cache.InformerSynced{services.Informer().HasSynced, pods.Informer().HasSynced,
			nodes.Informer().HasSynced, sliceInf.HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpointslice"}),
		recorder: rec,
		workers:  workers,
		max:      max,
	}
	_, _ = services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.serviceChanged,
		UpdateFunc: func(_, obj interface{}) { c.serviceChanged(obj) },
		DeleteFunc: c.serviceDeleted,
	})
	_, _ = pods.Informer().AddEventHandler(endpoints.PodHandler(c.index, c.queue.Add))
	_, _ = sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.sliceChanged,
		UpdateFunc: func(old, cur interface{}) {
			if old.(*discoveryv1.EndpointSlice).ResourceVersion != cur.(*discoveryv1.EndpointSlice).ResourceVersion {
				c.sliceChanged(cur)
			}
		},
		DeleteFunc: c.sliceDeleted,
	})
	return c, nil
}

// indexByService indexes managed slices by namespace/service-name.
func indexByService(obj interface{}) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != ControllerName || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
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

func (c *Controller) sliceChanged(obj interface{}) {
	if keys, _ := indexByService(obj); len(keys) == 1 {
		c.queue.Add(keys[0])
	}
}

func (c *Controller) sliceDeleted(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	c.tracker.gone(s.UID)
	c.sliceChanged(s)
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
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		if errors.Is(err, errStale) {
			c.queue.AddAfter(key, staleRetry)
			return true
		}
		if ctx.Err() == nil {
			c.log.Debug("retrying", "service", key, "err", err)
		}
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

var errStale = errors.New("endpointslice cache is older than our last writes")

// managedSlices are the managed slices labelled with the service's name.
func (c *Controller) managedSlices(key string) ([]*discoveryv1.EndpointSlice, error) {
	objs, err := c.slices.ByIndex(serviceIndex, key)
	if err != nil {
		return nil, err
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*discoveryv1.EndpointSlice))
	}
	return out, nil
}

func (c *Controller) zoneOf(node string) string {
	n, err := c.nodes.Get(node)
	if err != nil {
		return ""
	}
	return n.Labels[corev1.LabelTopologyZone]
}

// sync brings the slices of one service (namespace/name) to the desired state.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	existing, err := c.managedSlices(key)
	if err != nil {
		return err
	}
	if c.tracker.stale(key, existing) {
		return errStale
	}
	svc, err := c.services.Services(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	var plan Plan
	if apierrors.IsNotFound(err) || !endpoints.ServiceWantsEndpoints(svc) {
		// The service is gone (the garbage collector would delete its slices too) or
		// wants no endpoints from us.
		plan.Delete = existing
	} else {
		pods, err := c.pods.Pods(ns).List(labels.SelectorFromSet(svc.Spec.Selector))
		if err != nil {
			return err
		}
		plan = Reconcile(svc, existing, Desired(svc, pods, c.zoneOf), c.max)
		if svc.DeletionTimestamp != nil {
			// Pending deletion (foreground): creating slices would race the garbage
			// collector deleting them.
			plan.Create = nil
		}
	}
	if plan.Empty() {
		return nil
	}
	err = c.apply(ctx, key, &plan)
	if err != nil && svc != nil && !apierrors.IsConflict(err) && !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonFailedToUpdate,
			"Error updating Endpoint Slices for Service %s/%s: %v", ns, name, err)
	}
	return err
}

// apply writes a plan: creations and updates first, deletions last, so that consumers
// never see an endpoint disappear before its new slice exists.
func (c *Controller) apply(ctx context.Context, key string, p *Plan) error {
	api := func(ns string) interface {
		Create(context.Context, *discoveryv1.EndpointSlice, metav1.CreateOptions) (*discoveryv1.EndpointSlice, error)
		Update(context.Context, *discoveryv1.EndpointSlice, metav1.UpdateOptions) (*discoveryv1.EndpointSlice, error)
		Delete(context.Context, string, metav1.DeleteOptions) error
	} {
		return c.client.DiscoveryV1().EndpointSlices(ns)
	}
	var errs []error
	for _, s := range p.Create {
		got, err := api(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return err
			}
			errs = append(errs, err)
			continue
		}
		c.tracker.wrote(key, got)
	}
	for _, s := range p.Update {
		got, err := api(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.tracker.wrote(key, got)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, s := range p.Delete {
		err := api(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
			continue
		}
		c.tracker.deleted(key, s.UID)
	}
	return errors.Join(errs...)
}

// tracker remembers, per service, the slices this controller wrote (with the generation
// written) and deleted, until the informer's cache shows them; a sync on an older cache
// would otherwise create duplicate slices or fail on conflicts.
type tracker struct {
	mu  sync.Mutex
	svc map[string]map[types.UID]tracked
}

type tracked struct {
	generation int64 // -1: deleted
	at         time.Time
}

// trackTTL bounds how long a write is waited for (e.g. a slice someone else deleted before
// the cache saw it).
const trackTTL = 10 * time.Second

func newTracker() *tracker { return &tracker{svc: map[string]map[types.UID]tracked{}} }

func (t *tracker) wrote(key string, s *discoveryv1.EndpointSlice) {
	t.set(key, s.UID, tracked{generation: s.Generation, at: time.Now()})
}

func (t *tracker) deleted(key string, uid types.UID) {
	t.set(key, uid, tracked{generation: -1, at: time.Now()})
}

func (t *tracker) set(key string, uid types.UID, v tracked) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.svc[key]
	if m == nil {
		m = map[types.UID]tracked{}
		t.svc[key] = m
	}
	m[uid] = v
}

// gone forgets a slice the cache saw deleted.
func (t *tracker) gone(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, m := range t.svc {
		if _, ok := m[uid]; ok {
			delete(m, uid)
			if len(m) == 0 {
				delete(t.svc, key)
			}
			return
		}
	}
}

// stale reports whether the cached slices of a service are older than what was written,
// forgetting the writes the cache has caught up with.
func (t *tracker) stale(key string, cached []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.svc[key]
	if len(m) == 0 {
		return false
	}
	have := make(map[types.UID]int64, len(cached))
	for _, s := range cached {
		have[s.UID] = s.Generation
	}
	stale := false
	now := time.Now()
	for uid, w := range m {
		gen, present := have[uid]
		switch {
		case now.Sub(w.at) > trackTTL:
			delete(m, uid)
		case w.generation < 0 && present, w.generation >= 0 && (!present || gen < w.generation):
			stale = true
		default:
			delete(m, uid)
		}
	}
	if len(m) == 0 {
		delete(t.svc, key)
	}
	return stale
}
