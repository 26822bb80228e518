// Package resourcequota is the resource quota controller: it keeps each ResourceQuota's
// status (hard as the spec says, used as its namespace's objects add up) current as objects
// come and go. Admission (internal/apiserver/quota.go) charges new objects at once; this
// controller is what gives usage back when they are deleted or finish, and corrects a charge
// for a create that failed after admission.
package resourcequota

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
	"github.com/skiff-sh/skiff/internal/quota"
)

// Name is the component's name.
const Name = "resourcequota-controller"

// resyncPeriod recounts every namespace with quotas, for charges of creates that then failed.
const resyncPeriod = time.Minute

// Controller keeps ResourceQuota status current.
type Controller struct {
	log     *slog.Logger
	client  kubernetes.Interface
	quotas  corelisters.ResourceQuotaLister
	lists   map[string]func(ns string) ([]runtime.Object, error)
	synced  []cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]
	workers int
}

// New builds the controller from the shared context.
func New(cc *controller.Context) (controller.Component, error) {
	if cc.Client == nil || cc.Informers == nil {
		return nil, errors.New("resource quota controller: needs a client and informers")
	}
	log := cc.Logger
	if log == nil {
		log = slog.Default()
	}
	core := cc.Informers.Core().V1()
	c := &Controller{
		log: log.With("controller", Name), client: cc.Client, quotas: core.ResourceQuotas().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "resourcequota"}),
		workers: cc.Options.WorkersOr(1),
	}
	informers := map[string]cache.SharedIndexInformer{
		"pods": core.Pods().Informer(), "services": core.Services().Informer(), "configmaps": core.ConfigMaps().Informer(),
		"secrets": core.Secrets().Informer(), "persistentvolumeclaims": core.PersistentVolumeClaims().Informer(),
		"replicationcontrollers": core.ReplicationControllers().Informer(), "resourcequotas": core.ResourceQuotas().Informer(),
	}
	c.lists = map[string]func(string) ([]runtime.Object, error){}
	for name, inf := range informers {
		inf := inf
		c.synced = append(c.synced, inf.HasSynced)
		c.lists[name] = func(ns string) ([]runtime.Object, error) {
			items, err := inf.GetIndexer().ByIndex(cache.NamespaceIndex, ns)
			out := make([]runtime.Object, 0, len(items))
			for _, it := range items {
				if o, ok := it.(runtime.Object); ok {
					out = append(out, o)
				}
			}
			return out, err
		}
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueue,
			UpdateFunc: func(_, obj interface{}) { c.enqueue(obj) },
			DeleteFunc: c.enqueue,
		})
	}
	return c, nil
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

func (c *Controller) enqueue(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if m, ok := obj.(metav1.Object); ok && m.GetNamespace() != "" {
		// A burst of changes in one namespace is one recount.
		c.queue.AddAfter(m.GetNamespace(), 100*time.Millisecond)
	}
}

// Run implements controller.Component.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil
	}
	go func() {
		t := time.NewTicker(resyncPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				qs, _ := c.quotas.List(labels.Everything())
				for _, q := range qs {
					c.queue.Add(q.Namespace)
				}
			}
		}
	}()
	controllerutil.RunWorkers(ctx, c.queue, c.workers, func(ctx context.Context) {
		for controllerutil.ProcessNext(ctx, c.queue, c.log, c.sync) {
		}
	})
	return nil
}

// sync recounts a namespace and writes the status of its quotas that changed.
func (c *Controller) sync(ctx context.Context, ns string) error {
	qs, err := c.quotas.ResourceQuotas(ns).List(labels.Everything())
	if err != nil || len(qs) == 0 {
		return err
	}
	used := corev1.ResourceList{}
	for _, list := range c.lists {
		objs, err := list(ns)
		if err != nil {
			return err
		}
		for _, o := range objs {
			quota.Add(used, quota.Usage(o))
		}
	}
	var errs []error
	for _, q := range qs {
		want := corev1.ResourceQuotaStatus{Hard: q.Spec.Hard.DeepCopy(), Used: quota.Mask(used, q.Spec.Hard)}
		if apiequality.Semantic.DeepEqual(q.Status, want) {
			continue
		}
		cp := q.DeepCopy()
		cp.Status = want
		if _, err := c.client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
