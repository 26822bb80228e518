// Package nodeipam gives every node a pod CIDR: a subnet (a /24 by default) of the cluster
// CIDR (10.42.0.0/16 by default), written to spec.podCIDR and spec.podCIDRs, each subnet to
// one node only. The subnets in use are learned from the nodes at start, so a restarted or
// newly elected controller never hands one out twice; a deleted node's subnets go back to
// the pool. With one cluster CIDR per IP family (dual stack) a node gets one subnet of each.
package nodeipam

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Config sets the address ranges.
type Config struct {
	// ClusterCIDRs are the pod address ranges, at most one per IP family (default
	// 10.42.0.0/16).
	ClusterCIDRs []string
	// NodeMaskSizeIPv4 and NodeMaskSizeIPv6 are the sizes of node subnets (default 24 and
	// 64).
	NodeMaskSizeIPv4, NodeMaskSizeIPv6 int
}

// DefaultClusterCIDR is the default pod address range.
const DefaultClusterCIDR = "10.42.0.0/16"

// Defaults is the configuration New uses; the server sets it from its flags before the
// controllers are built.
var Defaults = Config{ClusterCIDRs: []string{DefaultClusterCIDR}, NodeMaskSizeIPv4: 24, NodeMaskSizeIPv6: 64}

// Name is the component's name (and its event source).
const Name = "node-ipam-controller"

// Controller allocates node pod CIDRs.
type Controller struct {
	client   kubernetes.Interface
	log      *slog.Logger
	recorder record.EventRecorder
	nodes    corelisters.NodeLister
	synced   cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]

	mu   sync.Mutex
	sets []*cidrSet // one per cluster CIDR
	// held are the subnets each node has or is being given (the set's holders).
	held map[string][]netip.Prefix
}

// New builds the controller with Defaults.
func New(ctx *controller.Context) (controller.Component, error) { return NewWithConfig(ctx, Defaults) }

// Factory returns a component factory with cfg (for controlplane.Config.Controllers).
func Factory(cfg Config) func(*controller.Context) (controller.Component, error) {
	return func(ctx *controller.Context) (controller.Component, error) { return NewWithConfig(ctx, cfg) }
}

// NewWithConfig builds the controller.
func NewWithConfig(ctx *controller.Context, cfg Config) (*Controller, error) {
	sets, err := buildSets(cfg)
	if err != nil {
		return nil, err
	}
	log := ctx.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		client: ctx.Client, log: log.With("controller", Name), sets: sets, held: map[string][]netip.Prefix{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodeipam"}),
	}
	if ctx.Recorder != nil {
		c.recorder = ctx.Recorder(Name)
	}
	inf := ctx.Informers.Core().V1().Nodes()
	c.nodes, c.synced = inf.Lister(), inf.Informer().HasSynced
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.observe(obj.(*corev1.Node)) },
		UpdateFunc: func(_, obj interface{}) { c.observe(obj.(*corev1.Node)) },
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				c.forget(n.Name)
				c.requeueWaiting()
			}
		},
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func buildSets(cfg Config) ([]*cidrSet, error) {
	if len(cfg.ClusterCIDRs) == 0 {
		cfg.ClusterCIDRs = []string{DefaultClusterCIDR}
	}
	if cfg.NodeMaskSizeIPv4 == 0 {
		cfg.NodeMaskSizeIPv4 = 24
	}
	if cfg.NodeMaskSizeIPv6 == 0 {
		cfg.NodeMaskSizeIPv6 = 64
	}
	var sets []*cidrSet
	families := map[bool]bool{}
	for _, s := range cfg.ClusterCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("nodeipam: cluster CIDR %q: %w", s, err)
		}
		if families[p.Addr().Is4()] {
			return nil, fmt.Errorf("nodeipam: more than one cluster CIDR of the same IP family in %v", cfg.ClusterCIDRs)
		}
		families[p.Addr().Is4()] = true
		mask := cfg.NodeMaskSizeIPv6
		if p.Addr().Is4() {
			mask = cfg.NodeMaskSizeIPv4
		}
		set, err := newCIDRSet(p, mask)
		if err != nil {
			return nil, fmt.Errorf("nodeipam: %w", err)
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

// nodeCIDRs parses a node's pod CIDRs (podCIDRs, or the legacy podCIDR).
func nodeCIDRs(n *corev1.Node) []netip.Prefix {
	list := n.Spec.PodCIDRs
	if len(list) == 0 && n.Spec.PodCIDR != "" {
		list = []string{n.Spec.PodCIDR}
	}
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// observe records the subnets a node has, or queues it for one.
func (c *Controller) observe(n *corev1.Node) {
	cidrs := nodeCIDRs(n)
	if len(cidrs) == 0 {
		c.queue.Add(n.Name)
		return
	}
	c.mu.Lock()
	c.setHeldLocked(n.Name, cidrs)
	c.mu.Unlock()
}

// setHeldLocked makes the node's holdings cidrs, releasing what it no longer holds.
func (c *Controller) setHeldLocked(name string, cidrs []netip.Prefix) {
	old := c.held[name]
	same := len(old) == len(cidrs)
	for i := 0; same && i < len(old); i++ {
		same = old[i] == cidrs[i]
	}
	if same {
		return
	}
	for _, p := range old {
		for _, s := range c.sets {
			s.release(p)
		}
	}
	for _, p := range cidrs {
		for _, s := range c.sets {
			s.occupy(p)
		}
	}
	if len(cidrs) == 0 {
		delete(c.held, name)
	} else {
		c.held[name] = cidrs
	}
}

// forget returns a deleted node's subnets to the pool.
func (c *Controller) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setHeldLocked(name, nil)
}

// requeueWaiting queues the nodes still waiting for a subnet (one was just freed).
func (c *Controller) requeueWaiting() {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	for _, n := range nodes {
		if len(nodeCIDRs(n)) == 0 {
			c.queue.Add(n.Name)
		}
	}
}

// Run rebuilds the subnets in use from the nodes, then allocates until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return ctx.Err()
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	c.mu.Lock()
	for _, n := range nodes {
		if cidrs := nodeCIDRs(n); len(cidrs) > 0 {
			c.setHeldLocked(n.Name, cidrs)
		}
	}
	c.mu.Unlock()
	for _, n := range nodes {
		if len(nodeCIDRs(n)) == 0 {
			c.queue.Add(n.Name)
		}
	}
	c.log.Info("started", "nodes", len(nodes))
	// One worker: allocations are serialized anyway, and a single writer per node keeps a
	// retried patch on the subnet first chosen.
	go wait.UntilWithContext(ctx, c.worker, time.Second)
	<-ctx.Done()
	return nil
}

func (c *Controller) worker(ctx context.Context) {
	for {
		key, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.sync(ctx, key)
		if err == nil {
			c.queue.Forget(key)
		} else if ctx.Err() == nil {
			c.log.Debug("sync failed", "node", key, "err", err)
			c.queue.AddRateLimited(key)
		}
		c.queue.Done(key)
	}
}

func (c *Controller) sync(ctx context.Context, name string) error {
	n, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(name)
		return nil
	}
	if err != nil {
		return err
	}
	if cidrs := nodeCIDRs(n); len(cidrs) > 0 {
		c.mu.Lock()
		c.setHeldLocked(name, cidrs)
		c.mu.Unlock()
		return nil
	}
	cidrs, err := c.reserve(name)
	if err != nil {
		if c.recorder != nil {
			c.recorder.Eventf(&corev1.ObjectReference{Kind: "Node", Name: name, UID: n.UID, APIVersion: "v1"},
				corev1.EventTypeWarning, "CIDRNotAvailable", "Node %s status is now: CIDRNotAvailable", name)
		}
		return err
	}
	strs := make([]string, len(cidrs))
	for i, p := range cidrs {
		strs[i] = p.String()
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": strs[0], "podCIDRs": strs}})
	_, err = c.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil:
		c.log.Info("assigned pod CIDR", "node", name, "podCIDRs", strs)
		if c.recorder != nil {
			c.recorder.Eventf(&corev1.ObjectReference{Kind: "Node", Name: name, UID: n.UID, APIVersion: "v1"},
				corev1.EventTypeNormal, "CIDRAssignmentSucceeded", "Node %s was assigned pod CIDRs %v", name, strs)
		}
		return nil
	case apierrors.IsNotFound(err):
		c.forget(name)
		return nil
	case apierrors.IsInvalid(err) || apierrors.IsForbidden(err):
		// Someone else set the node's CIDRs meanwhile: the informer brings them, and ours go
		// back to the pool.
		c.forget(name)
		return err
	default:
		// Kept reserved: the retry patches the same subnets.
		return err
	}
}

// reserve returns the subnets reserved for a node that has none yet: those chosen before
// (a retry), else fresh ones, one per cluster CIDR.
func (c *Controller) reserve(name string) ([]netip.Prefix, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if held := c.held[name]; len(held) > 0 {
		return held, nil
	}
	var got []netip.Prefix
	for _, s := range c.sets {
		p, err := s.allocate()
		if err != nil {
			for i, q := range got {
				c.sets[i].release(q)
			}
			return nil, fmt.Errorf("%w (%s)", err, s.cluster)
		}
		got = append(got, p)
	}
	// allocate already counted the node as holder in its own set; record it so that delete
	// and observation release exactly once.
	c.held[name] = got
	return got, nil
}

// Free returns how many node subnets are left in each cluster CIDR.
func (c *Controller) Free() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint64{}
	for _, s := range c.sets {
		out[s.cluster.String()] = s.free()
	}
	return out
}
