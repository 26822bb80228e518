package simnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// NodeNameIndex indexes pods by spec.nodeName. Components that share a pod informer share it.
const NodeNameIndex = "spec.nodeName"

// AddNodeNameIndex adds NodeNameIndex to a pod informer unless it has it already.
func AddNodeNameIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[NodeNameIndex]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{NodeNameIndex: func(obj interface{}) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}})
}

type keyKind uint8

const (
	kindPod keyKind = iota
	kindLease
	kindNode
)

// key is one unit of work: a pod to advance, a lease to renew, a node status to post.
type key struct {
	kind      keyKind
	namespace string
	name      string
}

// simNode is a node this manager simulates.
type simNode struct {
	name   string
	uid    types.UID
	ip     string
	ips    *podIPs
	paused bool
	lease  *coordinationv1.Lease // as last written
}

// podSim is what the simulated kubelet remembers about a pod beyond its status. Only the
// worker holding the pod's key touches it.
type podSim struct {
	uid         types.UID
	seen        time.Time // first seen bound to a simulated node
	runStart    time.Time // start of the current container run
	deleteSeen  time.Time // first seen with a deletionTimestamp
	deleted     bool      // final delete sent
	ip, node    string
	ipAllocated bool
}

// Manager simulates the kubelets of a set of nodes.
type Manager struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger
	now    func() time.Time

	nodeInf cache.SharedIndexInformer
	podInf  cache.SharedIndexInformer
	// queue holds pods; nodeQueue leases and node status, with workers of their own, so that
	// a burst of pods never delays lease renewals (a kubelet's lease loop does not wait for
	// its pod workers either) until nodes go NotReady.
	queue     workqueue.TypedRateLimitingInterface[key]
	nodeQueue workqueue.TypedRateLimitingInterface[key]
	indices   *indexAllocator

	mu    sync.Mutex
	nodes map[string]*simNode
	pods  map[string]*podSim // by namespace/name
}

// NewFactory returns a component factory for the control plane's always-on components: it
// keeps cfg.Count simulated nodes registered and simulates every node owned by cfg.Owner.
func NewFactory(cfg Config) func(*controller.Context) (controller.Component, error) {
	return func(ctx *controller.Context) (controller.Component, error) {
		if cfg.Logger == nil {
			cfg.Logger = ctx.Logger
		}
		// Leases must outpace the node lifecycle controller's grace period.
		if cfg.LeaseDuration <= 0 && ctx.Options.NodeMonitorGracePeriod > 0 {
			cfg.LeaseDuration = ctx.Options.NodeMonitorGracePeriod
		}
		return New(ctx.Client, ctx.Informers, cfg)
	}
}

// New builds a manager on a shared informer factory; the factory must be started after.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) (*Manager, error) {
	cfg = cfg.withDefaults()
	m := &Manager{
		cfg: cfg, client: client, log: cfg.Logger.With("component", "simnode", "owner", cfg.Owner), now: time.Now,
		nodeInf: factory.Core().V1().Nodes().Informer(),
		podInf:  factory.Core().V1().Pods().Informer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[key](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[key]{Name: "simnode"}),
		nodeQueue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[key](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[key]{Name: "simnode-nodes"}),
		indices: newIndexAllocator(hostBitsFor(cfg.Pods.Value())),
		nodes:   map[string]*simNode{},
		pods:    map[string]*podSim{},
	}
	if err := AddNodeNameIndex(m.podInf); err != nil {
		return nil, err
	}
	if _, err := m.nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { m.observeNode(obj.(*corev1.Node)) },
		UpdateFunc: func(_, obj interface{}) { m.observeNode(obj.(*corev1.Node)) },
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				m.forgetNode(n.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := m.podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { m.observePod(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj interface{}) { m.observePod(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				m.forgetPod(p)
			}
		},
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// Name implements controller.Component.
func (m *Manager) Name() string { return "simnode" }

// Run registers the configured nodes and simulates until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	defer m.queue.ShutDown()
	defer m.nodeQueue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), m.nodeInf.HasSynced, m.podInf.HasSynced) {
		return ctx.Err()
	}
	var wg sync.WaitGroup
	work := func(q workqueue.TypedRateLimitingInterface[key], n int) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for controllerutil.ProcessNext(ctx, q, m.log, m.sync) {
				}
			}()
		}
	}
	work(m.queue, m.cfg.Workers)
	work(m.nodeQueue, m.cfg.LeaseWorkers)
	names := make([]string, 0, m.cfg.Count)
	for i := 0; i < m.cfg.Count; i++ {
		names = append(names, m.cfg.Prefix+strconv.Itoa(i))
	}
	if err := m.register(ctx, names); err != nil && ctx.Err() == nil {
		m.log.Error("register simulated nodes", "err", err)
	}
	<-ctx.Done()
	m.queue.ShutDown()
	m.nodeQueue.ShutDown()
	wg.Wait()
	return nil
}

// register creates the named nodes that do not exist yet, with their leases, a few at a time.
func (m *Manager) register(ctx context.Context, names []string) error {
	lister := m.nodeInf.GetIndexer()
	for _, obj := range lister.List() {
		m.indices.observe(obj.(*corev1.Node))
	}
	var todo []string
	for _, name := range names {
		obj, ok, _ := lister.GetByKey(name)
		if !ok {
			todo = append(todo, name)
			continue
		}
		if n := obj.(*corev1.Node); n.Annotations[AnnotationSimulated] != m.cfg.Owner {
			m.log.Warn("node exists and is not ours; leaving it alone", "node", name)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	start := m.now()
	errs := createNodes(ctx, m.client, m.cfg, m.indices, todo, m.now, func(n *corev1.Node, l *coordinationv1.Lease) {
		m.adopt(n, l)
	})
	m.log.Info("registered simulated nodes", "count", len(todo)-len(errs), "elapsed", m.now().Sub(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// createNodes creates nodes and their leases with a bounded number of requests in flight.
func createNodes(ctx context.Context, client kubernetes.Interface, cfg Config, idx *indexAllocator, names []string,
	now func() time.Time, done func(*corev1.Node, *coordinationv1.Lease)) []error {
	hostBits := hostBitsFor(cfg.Pods.Value())
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return append(errs, ctx.Err())
		}
		wg.Add(1)
		go func(name string) {
			defer func() { <-sem; wg.Done() }()
			n, l, err := createNode(ctx, client, cfg, idx, hostBits, name, now())
			if apierrors.IsAlreadyExists(err) {
				// Registered meanwhile by someone else; the informer adopts it if it is ours.
				return
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %s: %w", name, err))
				mu.Unlock()
				return
			}
			if done != nil {
				done(n, l)
			}
		}(name)
	}
	wg.Wait()
	return errs
}

func createNode(ctx context.Context, client kubernetes.Interface, cfg Config, idx *indexAllocator, hostBits int,
	name string, now time.Time) (*corev1.Node, *coordinationv1.Lease, error) {
	i, err := idx.allocate()
	if err != nil {
		return nil, nil, err
	}
	ip, cidr := nodeAddrs(i, hostBits)
	want := newNode(cfg, name, ip, cidr, now)
	n, err := client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
	if err != nil {
		idx.release(i)
		return nil, nil, err
	}
	// An API server that drops status on create gets it in a second write.
	if len(n.Status.Conditions) == 0 {
		want.ObjectMeta = n.ObjectMeta
		want.Spec = n.Spec
		if n, err = client.CoreV1().Nodes().UpdateStatus(ctx, want, metav1.UpdateOptions{}); err != nil {
			return nil, nil, err
		}
	}
	l, err := client.CoordinationV1().Leases(NodeLeaseNamespace).Create(ctx, newLease(cfg, name, n.UID, now), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		l, err = nil, nil // renewed (and owned) by the first renewal
	}
	return n, l, err
}

// ---------------------------------------------------------------------------------------
// Ownership

// observeNode tracks a node from the informer: adopts it when it is ours, forgets it when
// it stops being ours, and queues what its state calls for.
func (m *Manager) observeNode(n *corev1.Node) {
	if n.Annotations[AnnotationSimulated] != m.cfg.Owner {
		m.forgetNode(n.Name)
		return
	}
	m.indices.observe(n)
	m.adopt(n, nil)
}

// adopt starts simulating a node (or refreshes what is known of it).
func (m *Manager) adopt(n *corev1.Node, l *coordinationv1.Lease) {
	paused := n.Annotations[AnnotationPaused] == "true"
	m.mu.Lock()
	sn, known := m.nodes[n.Name]
	if !known {
		sn = &simNode{name: n.Name}
		if cidr, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil && cidr.Addr().Is4() {
			sn.ips = newPodIPs(cidr)
		}
		m.nodes[n.Name] = sn
	}
	if sn.uid != n.UID && n.UID != "" {
		sn.uid = n.UID
	}
	sn.ip = nodeIP(n)
	if l != nil {
		sn.lease = l
	}
	wasPaused := sn.paused
	sn.paused = paused
	m.mu.Unlock()

	if paused {
		return
	}
	switch {
	case !known && l != nil:
		// Just registered with a fresh lease: renew on the regular schedule.
		m.nodeQueue.AddAfter(key{kind: kindLease, name: n.Name}, m.jitter(m.cfg.RenewInterval))
	case !known && m.now().Sub(n.CreationTimestamp.Time) < m.cfg.RenewInterval/2:
		// Registered just now (by this manager or Add): its lease is fresh.
		m.nodeQueue.AddAfter(key{kind: kindLease, name: n.Name}, m.jitter(m.cfg.RenewInterval))
	case !known:
		// Adopted after a restart: renew soon, spread out.
		m.nodeQueue.AddAfter(key{kind: kindLease, name: n.Name}, m.jitter(m.cfg.RenewInterval/4))
	case wasPaused:
		m.nodeQueue.Add(key{kind: kindLease, name: n.Name})
	}
	if !nodeHealthy(n) {
		m.nodeQueue.Add(key{kind: kindNode, name: n.Name})
	}
	if !known || wasPaused {
		pods, _ := m.podInf.GetIndexer().ByIndex(NodeNameIndex, n.Name)
		for _, obj := range pods {
			p := obj.(*corev1.Pod)
			m.queue.Add(key{kind: kindPod, namespace: p.Namespace, name: p.Name})
		}
	}
}

// jitter spreads first renewals over [d/2, d) so thousands of nodes do not renew at once.
func (m *Manager) jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func (m *Manager) forgetNode(name string) {
	m.mu.Lock()
	_, ok := m.nodes[name]
	delete(m.nodes, name)
	m.mu.Unlock()
	if ok {
		// The lease goes with the node.
		m.nodeQueue.Add(key{kind: kindLease, name: name})
	}
}

// node returns a copy of what is known of a simulated node.
func (m *Manager) node(name string) (simNode, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sn, ok := m.nodes[name]
	if !ok {
		return simNode{}, false
	}
	return *sn, true
}

// Nodes returns the names of the nodes this manager simulates.
func (m *Manager) Nodes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.nodes))
	for n := range m.nodes {
		out = append(out, n)
	}
	return out
}

func (m *Manager) observePod(p *corev1.Pod) {
	if p.Spec.NodeName == "" {
		return
	}
	m.mu.Lock()
	_, ours := m.nodes[p.Spec.NodeName]
	m.mu.Unlock()
	if ours {
		m.queue.Add(key{kind: kindPod, namespace: p.Namespace, name: p.Name})
	}
}

// forgetPod queues a deleted pod so its worker drops its state and address.
func (m *Manager) forgetPod(p *corev1.Pod) {
	m.mu.Lock()
	_, known := m.pods[p.Namespace+"/"+p.Name]
	m.mu.Unlock()
	if known {
		m.queue.Add(key{kind: kindPod, namespace: p.Namespace, name: p.Name})
	}
}

// ---------------------------------------------------------------------------------------
// Work

// sync does the work one key stands for.
func (m *Manager) sync(ctx context.Context, k key) error {
	switch k.kind {
	case kindPod:
		return m.syncPod(ctx, k.namespace, k.name)
	case kindLease:
		return m.syncLease(ctx, k.name)
	case kindNode:
		return m.syncNode(ctx, k.name)
	}
	return nil
}

// syncLease renews a node's lease (creating it if it is gone) and schedules the next renewal.
// A node no longer simulated loses its lease.
func (m *Manager) syncLease(ctx context.Context, name string) error {
	leases := m.client.CoordinationV1().Leases(NodeLeaseNamespace)
	m.mu.Lock()
	sn := m.nodes[name]
	var cur *coordinationv1.Lease
	var uid types.UID
	paused := false
	if sn != nil {
		cur, uid, paused = sn.lease, sn.uid, sn.paused
	}
	m.mu.Unlock()
	if sn == nil {
		err := leases.Delete(ctx, name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if paused {
		return nil
	}
	now := m.now()
	var out *coordinationv1.Lease
	var err error
	if cur == nil {
		cur, err = leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out, err = leases.Create(ctx, newLease(m.cfg, name, uid, now), metav1.CreateOptions{})
		} else if err != nil {
			return err
		}
	}
	if out == nil && err == nil {
		l := cur.DeepCopy()
		want := newLease(m.cfg, name, uid, now)
		l.Spec.HolderIdentity = want.Spec.HolderIdentity
		l.Spec.LeaseDurationSeconds = want.Spec.LeaseDurationSeconds
		l.Spec.RenewTime = want.Spec.RenewTime
		if len(l.OwnerReferences) == 0 {
			l.OwnerReferences = want.OwnerReferences
		}
		out, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		// A stale copy or a vanished lease: start again from the server's state.
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			m.setLease(name, nil)
		}
		return err
	}
	m.setLease(name, out)
	m.nodeQueue.AddAfter(key{kind: kindLease, name: name}, m.cfg.RenewInterval)
	return nil
}

func (m *Manager) setLease(name string, l *coordinationv1.Lease) {
	m.mu.Lock()
	if sn := m.nodes[name]; sn != nil {
		sn.lease = l
	}
	m.mu.Unlock()
}

// syncNode posts a healthy status for a node someone else marked otherwise (the node
// lifecycle controller, while this process was away).
func (m *Manager) syncNode(ctx context.Context, name string) error {
	if _, ok := m.node(name); !ok {
		return nil
	}
	obj, ok, err := m.nodeInf.GetIndexer().GetByKey(name)
	if err != nil || !ok {
		return err
	}
	n := obj.(*corev1.Node)
	if n.Annotations[AnnotationSimulated] != m.cfg.Owner || n.Annotations[AnnotationPaused] == "true" || nodeHealthy(n) {
		return nil
	}
	n = n.DeepCopy()
	n.Status.Conditions = healthyConditions(n.Status.Conditions, metav1.NewTime(m.now()))
	_, err = m.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// podState returns (creating) what is remembered about a pod; a pod recreated under the same
// name starts afresh.
func (m *Manager) podState(p *corev1.Pod, now time.Time) *podSim {
	k := p.Namespace + "/" + p.Name
	m.mu.Lock()
	ps := m.pods[k]
	if ps != nil && ps.uid == p.UID {
		m.mu.Unlock()
		return ps
	}
	fresh := &podSim{uid: p.UID, seen: now, node: p.Spec.NodeName}
	m.pods[k] = fresh
	m.mu.Unlock()
	if ps != nil {
		m.releaseIP(ps)
	}
	return fresh
}

// dropPod forgets a pod that is gone.
func (m *Manager) dropPod(k string) {
	m.mu.Lock()
	ps := m.pods[k]
	delete(m.pods, k)
	m.mu.Unlock()
	if ps != nil {
		m.releaseIP(ps)
	}
}

// syncPod advances one pod on a simulated node: start it, end its containers when scripted,
// finish its graceful deletion.
func (m *Manager) syncPod(ctx context.Context, ns, name string) error {
	obj, ok, err := m.podInf.GetIndexer().GetByKey(ns + "/" + name)
	if err != nil {
		return err
	}
	if !ok {
		m.dropPod(ns + "/" + name)
		return nil
	}
	pod := obj.(*corev1.Pod)
	sn, ok := m.node(pod.Spec.NodeName)
	if !ok || sn.paused {
		return nil
	}
	now := m.now()
	ps := m.podState(pod, now)
	k := key{kind: kindPod, namespace: ns, name: name}
	pods := m.client.CoreV1().Pods(ns)

	if pod.DeletionTimestamp != nil {
		if ps.deleted {
			return nil
		}
		if ps.deleteSeen.IsZero() {
			ps.deleteSeen = now
		}
		stop := m.cfg.StopDelay
		if g := pod.DeletionGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < stop {
			stop = time.Duration(*g) * time.Second
		}
		if wait := ps.deleteSeen.Add(stop).Sub(now); wait > 0 {
			m.queue.AddAfter(k, wait)
			return nil
		}
		if pod.Status.Phase == corev1.PodRunning {
			p := pod.DeepCopy()
			p.Status = *stoppedStatus(pod, metav1.NewTime(now))
			if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		m.releaseIP(ps)
		zero := int64(0)
		uid := pod.UID
		err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
		ps.deleted = true
		return nil
	}
	if isTerminal(pod) {
		m.releaseIP(ps)
		return nil
	}
	plan, scripted, perr := parseExit(pod)
	if perr != nil {
		m.log.Warn("ignoring bad exit annotation", "pod", ns+"/"+name, "err", perr)
	}

	if pod.Status.Phase != corev1.PodRunning {
		if wait := ps.seen.Add(m.cfg.StartDelay).Sub(now); wait > 0 {
			m.queue.AddAfter(k, wait)
			return nil
		}
		ip, err := m.allocateIP(pod, &sn, ps)
		if err != nil {
			return err
		}
		p := pod.DeepCopy()
		p.Status = *runningStatus(pod, sn.ip, ip, metav1.NewTime(now))
		if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		ps.runStart = now
		if scripted {
			m.queue.AddAfter(k, plan.after)
		}
		return nil
	}

	// Running.
	m.markIP(pod, &sn, ps)
	if scripted {
		start := ps.runStart
		if rs := runStart(pod); start.IsZero() || rs.After(start.Add(time.Second)) {
			start = rs
		}
		if wait := start.Add(plan.after).Sub(now); wait > 0 {
			m.queue.AddAfter(k, wait)
			return nil
		}
		p := pod.DeepCopy()
		st, terminal := exitedStatus(pod, plan.code, metav1.NewTime(now))
		p.Status = *st
		if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		if terminal {
			m.releaseIP(ps)
			return nil
		}
		ps.runStart = now
		m.queue.AddAfter(k, plan.after)
		return nil
	}
	if needsReadyRepair(pod) {
		p := pod.DeepCopy()
		t := metav1.NewTime(now)
		setCondition(&p.Status, corev1.ContainersReady, corev1.ConditionTrue, "", "", t)
		setReady(pod, &p.Status, true, t)
		if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (m *Manager) allocateIP(pod *corev1.Pod, sn *simNode, ps *podSim) (string, error) {
	if pod.Spec.HostNetwork {
		return sn.ip, nil
	}
	if ps.ip != "" {
		return ps.ip, nil
	}
	if sn.ips == nil {
		return "", fmt.Errorf("node %s has no podCIDR", sn.name)
	}
	a, ok := sn.ips.allocate()
	if !ok {
		return "", fmt.Errorf("node %s: pod addresses exhausted", sn.name)
	}
	ps.ip, ps.ipAllocated, ps.node = a.String(), true, sn.name
	return ps.ip, nil
}

// markIP records the address of a pod found running (after a restart).
func (m *Manager) markIP(pod *corev1.Pod, sn *simNode, ps *podSim) {
	if ps.ip != "" || pod.Spec.HostNetwork || sn.ips == nil || pod.Status.PodIP == "" {
		return
	}
	if sn.ips.mark(pod.Status.PodIP) {
		ps.ip, ps.ipAllocated, ps.node = pod.Status.PodIP, true, sn.name
	}
}

func (m *Manager) releaseIP(ps *podSim) {
	if !ps.ipAllocated {
		return
	}
	if sn, ok := m.node(ps.node); ok && sn.ips != nil {
		sn.ips.release(ps.ip)
	}
	ps.ipAllocated = false
}
