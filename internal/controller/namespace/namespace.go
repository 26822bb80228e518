// Package namespace is the namespace controller: it empties namespaces being deleted and then
// releases them to the API server.
//
// A namespace with a deletionTimestamp is Terminating. While spec.finalizers holds
// "kubernetes", the controller deletes every namespaced object in it (pods first, then every
// other resource that supports delete; deletecollection where served, else list and delete,
// all through the metadata client), reports progress in the namespace's status conditions as
// Kubernetes does, and waits until nothing is left, requeueing while pods finish their grace
// periods or finalizers run. Then it removes "kubernetes" through the finalize subresource and
// the API server removes the namespace once no finalizer remains.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// Name is the component's name.
const Name = "namespace-controller"

const (
	// DefaultDeletionDelay is how long after a namespace's deletion is observed the controller
	// starts emptying it, so that creations admitted just before the deletion reach storage
	// first. Kubernetes waits 5s for several API servers and etcd members; skiff has one API
	// server, whose admission sees the Terminating phase within milliseconds.
	DefaultDeletionDelay = time.Second
	// finalizerEstimateSeconds is the wait assumed for objects held by finalizers.
	finalizerEstimateSeconds int64 = 15
	// maxRemainingRequeue caps the wait before looking again at remaining content.
	maxRemainingRequeue = 5 * time.Second
)

// DiscoverFunc returns the namespaced resources at their preferred versions (for instance
// discovery.DiscoveryInterface.ServerPreferredNamespacedResources).
type DiscoverFunc func() ([]*metav1.APIResourceList, error)

// Controller is the namespace controller.
type Controller struct {
	log      *slog.Logger
	client   kubernetes.Interface
	metadata metadata.Interface
	discover DiscoverFunc
	lister   corelisters.NamespaceLister
	synced   cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	workers  int
	// DeletionDelay: see DefaultDeletionDelay.
	DeletionDelay time.Duration
	now           func() time.Time

	// unsupported remembers operations a resource turned out not to serve.
	unsupported sync.Map // opKey → true
}

type opKey struct {
	op  string
	gvr schema.GroupVersionResource
}

// New builds the namespace controller from the shared context.
func New(ctx *controller.Context) (controller.Component, error) {
	if ctx.Client == nil || ctx.Metadata == nil || ctx.Informers == nil {
		return nil, errors.New("namespace controller: needs a client, a metadata client and informers")
	}
	log := ctx.Logger
	if log == nil {
		log = slog.Default()
	}
	return NewController(log, ctx.Client, ctx.Metadata, ctx.Client.Discovery().ServerPreferredNamespacedResources,
		ctx.Informers.Core().V1().Namespaces(), ctx.Options.WorkersOr(5)), nil
}

// NewController builds the controller from its parts (tests use fakes).
func NewController(log *slog.Logger, client kubernetes.Interface, md metadata.Interface, discover DiscoverFunc,
	namespaces coreinformers.NamespaceInformer, workers int) *Controller {
	if workers <= 0 {
		workers = 5
	}
	rl := workqueue.NewTypedMaxOfRateLimiter[string](
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second),
		&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
	)
	c := &Controller{
		log: log.With("controller", Name), client: client, metadata: md, discover: discover,
		lister: namespaces.Lister(), synced: namespaces.Informer().HasSynced,
		queue:   workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"}),
		workers: workers, DeletionDelay: DefaultDeletionDelay, now: time.Now,
	}
	_, _ = namespaces.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj interface{}) { c.enqueue(obj) },
	})
	return c
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

func (c *Controller) enqueue(obj interface{}) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok || ns.DeletionTimestamp == nil {
		return
	}
	c.queue.AddAfter(ns.Name, c.DeletionDelay)
}

// Run works the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("starting")
	defer c.log.Info("stopped")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
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
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	err := c.sync(ctx, name)
	var remaining *ResourcesRemainingError
	switch {
	case err == nil:
		c.queue.Forget(name)
	case errors.As(err, &remaining):
		c.queue.Forget(name)
		wait := time.Duration(remaining.Estimate/2+1) * time.Second
		if wait > maxRemainingRequeue {
			wait = maxRemainingRequeue
		}
		c.queue.AddAfter(name, wait)
	default:
		if ctx.Err() == nil {
			c.log.Debug("namespace deletion incomplete; retrying", "namespace", name, "err", err)
		}
		c.queue.AddRateLimited(name)
	}
	return true
}

// ResourcesRemainingError reports content still going away: look again in about Estimate
// seconds.
type ResourcesRemainingError struct{ Estimate int64 }

func (e *ResourcesRemainingError) Error() string {
	return fmt.Sprintf("some content remains in the namespace, estimate %d seconds before it is removed", e.Estimate)
}

// sync empties one namespace being deleted and removes the "kubernetes" finalizer once it is
// empty.
func (c *Controller) sync(ctx context.Context, name string) error {
	nsClient := c.client.CoreV1().Namespaces()
	ns, err := nsClient.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil {
		return nil
	}
	if ns.Status.Phase != corev1.NamespaceTerminating {
		ns, err = c.updateNamespace(ctx, ns, func(n *corev1.Namespace) (*corev1.Namespace, error) {
			if n.Status.Phase == corev1.NamespaceTerminating {
				return n, nil
			}
			n.Status.Phase = corev1.NamespaceTerminating
			return nsClient.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if !hasFinalizer(ns, corev1.FinalizerKubernetes) {
		return nil
	}
	estimate, err := c.deleteAllContent(ctx, ns)
	if err != nil {
		return err
	}
	if estimate > 0 {
		return &ResourcesRemainingError{Estimate: estimate}
	}
	_, err = c.updateNamespace(ctx, ns, func(n *corev1.Namespace) (*corev1.Namespace, error) {
		if !hasFinalizer(n, corev1.FinalizerKubernetes) {
			return n, nil
		}
		var rest []corev1.FinalizerName
		for _, f := range n.Spec.Finalizers {
			if f != corev1.FinalizerKubernetes {
				rest = append(rest, f)
			}
		}
		n.Spec.Finalizers = rest
		return nsClient.Finalize(ctx, n, metav1.UpdateOptions{})
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		c.log.Info("namespace emptied and finalized", "namespace", name)
	}
	return err
}

// updateNamespace applies fn to ns, re-reading it after a conflict; it fails if the namespace
// was replaced (another UID) meanwhile.
func (c *Controller) updateNamespace(ctx context.Context, ns *corev1.Namespace, fn func(*corev1.Namespace) (*corev1.Namespace, error)) (*corev1.Namespace, error) {
	cur := ns.DeepCopy()
	var out *corev1.Namespace
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			latest, err := c.client.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if latest.UID != ns.UID {
				return fmt.Errorf("namespace %s was replaced while being deleted", ns.Name)
			}
			cur = latest
		}
		first = false
		var err error
		out, err = fn(cur.DeepCopy())
		return err
	})
	return out, err
}

func hasFinalizer(ns *corev1.Namespace, f corev1.FinalizerName) bool {
	for _, x := range ns.Spec.Finalizers {
		if x == f {
			return true
		}
	}
	return false
}
