// Package serviceaccount is the service account controller: every active namespace has a
// "default" ServiceAccount, recreated if deleted. (Tokens are not handled here.)
package serviceaccount

import (
	"context"
	"errors"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// Name is the component's name.
const Name = "serviceaccount-controller"

// DefaultServiceAccounts are the service accounts every active namespace gets.
var DefaultServiceAccounts = []string{"default"}

// Controller ensures the default service accounts exist.
type Controller struct {
	log      *slog.Logger
	client   kubernetes.Interface
	accounts []string
	nsLister corelisters.NamespaceLister
	saLister corelisters.ServiceAccountLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	workers  int
}

// New builds the controller from the shared context.
func New(ctx *controller.Context) (controller.Component, error) {
	if ctx.Client == nil || ctx.Informers == nil {
		return nil, errors.New("serviceaccount controller: needs a client and informers")
	}
	log := ctx.Logger
	if log == nil {
		log = slog.Default()
	}
	return NewController(log, ctx.Client, ctx.Informers.Core().V1().Namespaces(), ctx.Informers.Core().V1().ServiceAccounts(),
		ctx.Options.WorkersOr(1)), nil
}

// NewController builds the controller from its parts (tests use fakes).
func NewController(log *slog.Logger, client kubernetes.Interface, namespaces coreinformers.NamespaceInformer,
	accounts coreinformers.ServiceAccountInformer, workers int) *Controller {
	if workers <= 0 {
		workers = 1
	}
	c := &Controller{
		log: log.With("controller", Name), client: client, accounts: DefaultServiceAccounts,
		nsLister: namespaces.Lister(), saLister: accounts.Lister(),
		synced: []cache.InformerSynced{namespaces.Informer().HasSynced, accounts.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "serviceaccount"}),
		workers: workers,
	}
	_, _ = namespaces.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.namespaceChanged,
		UpdateFunc: func(_, obj interface{}) { c.namespaceChanged(obj) },
	})
	_, _ = accounts.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: c.accountDeleted,
	})
	return c
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

func (c *Controller) namespaceChanged(obj interface{}) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		c.queue.Add(ns.Name)
	}
}

func (c *Controller) accountDeleted(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	sa, ok := obj.(*corev1.ServiceAccount)
	if !ok {
		return
	}
	for _, name := range c.accounts {
		if sa.Name == name {
			c.queue.Add(sa.Namespace)
			return
		}
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

// sync creates the missing default service accounts of an active namespace.
func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.nsLister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase != corev1.NamespaceActive || ns.DeletionTimestamp != nil {
		return nil
	}
	var errs []error
	for _, sa := range c.accounts {
		if _, err := c.saLister.ServiceAccounts(name).Get(sa); err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		_, err := c.client.CoreV1().ServiceAccounts(name).Create(ctx,
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		switch {
		case err == nil, apierrors.IsAlreadyExists(err):
		case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			// The namespace started terminating meanwhile.
		default:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
