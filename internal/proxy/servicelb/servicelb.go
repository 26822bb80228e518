// Package servicelb is the built-in load balancer for Services of type LoadBalancer that name
// no loadBalancerClass: their status.loadBalancer.ingress lists the InternalIP of every Ready
// node (the service proxy then accepts the service's port on those addresses). When a service
// stops being of type LoadBalancer, the addresses are cleared.
package servicelb

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
const Name = "servicelb-controller"

// Controller keeps load-balancer addresses of class-less LoadBalancer services.
type Controller struct {
	log       *slog.Logger
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	nodes     corelisters.NodeLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	workers   int
	lastNodes sync.Map // node name → addresses fingerprint, to notice relevant node changes
}

// New builds the controller from the shared context (a controlplane.ComponentFactory).
func New(cc *controller.Context) (controller.Component, error) {
	if cc.Client == nil || cc.Informers == nil {
		return nil, errors.New("servicelb: needs a client and informers")
	}
	log := cc.Logger
	if log == nil {
		log = slog.Default()
	}
	return NewController(log, cc.Client, cc.Informers.Core().V1().Services(), cc.Informers.Core().V1().Nodes(), cc.Options.WorkersOr(2)), nil
}

// NewController builds the controller from its parts.
func NewController(log *slog.Logger, client kubernetes.Interface, services coreinformers.ServiceInformer,
	nodes coreinformers.NodeInformer, workers int) *Controller {
	if workers <= 0 {
		workers = 1
	}
	c := &Controller{
		log: log.With("controller", Name), client: client,
		services: services.Lister(), nodes: nodes.Lister(),
		synced: []cache.InformerSynced{services.Informer().HasSynced, nodes.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "servicelb"}),
		workers: workers,
	}
	_, _ = services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueService,
		UpdateFunc: func(_, obj interface{}) { c.enqueueService(obj) },
	})
	_, _ = nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.nodeChanged,
		UpdateFunc: func(_, obj interface{}) { c.nodeChanged(obj) },
		DeleteFunc: c.nodeChanged,
	})
	return c
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

func (c *Controller) enqueueService(obj interface{}) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

// nodeChanged requeues every LoadBalancer service when a node's readiness or address changed.
func (c *Controller) nodeChanged(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	fp := ""
	if n.DeletionTimestamp == nil {
		if ip := nodeAddress(n); ip != "" && nodeReady(n) {
			fp = ip
		}
	}
	if _, err := c.nodes.Get(n.Name); err != nil {
		fp = "" // deleted (the informer's store is updated before handlers run)
	}
	if prev, ok := c.lastNodes.Load(n.Name); ok && prev.(string) == fp {
		return
	}
	c.lastNodes.Store(n.Name, fp)
	svcs, err := c.services.List(labels.Everything())
	if err != nil {
		return
	}
	for _, s := range svcs {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			c.enqueueService(s)
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
	controllerutil.RunWorkers(ctx, c.queue, c.workers, func(ctx context.Context) {
		for c.processNext(ctx) {
		}
	})
	return nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	return controllerutil.ProcessNext(ctx, c.queue, c.log, c.sync)
}

// Addresses are the load-balancer addresses for class-less LoadBalancer services: the
// InternalIP (else ExternalIP) of every Ready node, sorted.
func (c *Controller) Addresses() ([]string, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range nodes {
		if n.DeletionTimestamp != nil || !nodeReady(n) {
			continue
		}
		if ip := nodeAddress(n); ip != "" && !seen[ip] {
			seen[ip] = true
			out = append(out, ip)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return netip.MustParseAddr(out[i]).Less(netip.MustParseAddr(out[j]))
	})
	return out, nil
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var want []string
	switch {
	case svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil:
		if want, err = c.Addresses(); err != nil {
			return err
		}
	case svc.Spec.Type == corev1.ServiceTypeLoadBalancer:
		return nil // another load balancer's service
	default:
		// Not a LoadBalancer (any more): no load-balancer addresses.
	}
	var have []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		have = append(have, ing.IP)
	}
	if equal(have, want) {
		return nil
	}
	vip := corev1.LoadBalancerIPModeVIP // the proxy short-circuits the address
	upd := svc.DeepCopy()
	upd.Status.LoadBalancer.Ingress = nil
	for _, ip := range want {
		upd.Status.LoadBalancer.Ingress = append(upd.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip, IPMode: &vip})
	}
	_, err = c.client.CoreV1().Services(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		c.log.Info("load balancer addresses", "service", key, "ingress", want)
	}
	return err
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeAddress is the node's first valid InternalIP, else its first ExternalIP.
func nodeAddress(n *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type != t {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				return ip.String()
			}
		}
	}
	return ""
}
