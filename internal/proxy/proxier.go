// Package proxy is skiff's service proxy: it programs one nftables table (family ip) so that
// connections to a Service's cluster IPs, node ports, external IPs and load-balancer IPs are
// DNATed to its ready endpoints, as kube-proxy's nftables mode does. See rules.go for the
// table's layout. The servicelb sub-package fills in load-balancer addresses.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Name is the component's name.
const Name = "service-proxy"

// Defaults.
const (
	DefaultTableName       = "skiff-proxy"
	DefaultClusterCIDR     = "10.42.0.0/16"
	DefaultSyncPeriod      = time.Minute
	DefaultMinSyncInterval = 100 * time.Millisecond
	DefaultMasqueradeMark  = 0x4000
)

// Config configures the proxy. The zero value works (with defaults) for a single node.
type Config struct {
	// NodeName is this node: endpoints on it are "local" for traffic policies Local, and its
	// Node object's addresses accept node ports.
	NodeName string
	// NodeIPs are addresses that accept node ports besides those of the Node object (every
	// local address does anyway, except 127.0.0.0/8).
	NodeIPs []string
	// ClusterCIDR is the pod network: traffic to a cluster IP from outside it is
	// masqueraded. Default 10.42.0.0/16; "none" disables that masquerading.
	ClusterCIDR string
	// TableName is the nftables table (family ip). Default skiff-proxy.
	TableName string
	// SyncPeriod is the period of full resyncs (default 1m).
	SyncPeriod time.Duration
	// MinSyncInterval is the least time between two syncs; changes within it are coalesced
	// (default 100ms).
	MinSyncInterval time.Duration
	// MasqueradeMark is the packet mark bit asking for masquerade (default 0x4000).
	MasqueradeMark uint32
	Logger         *slog.Logger
	// Registerer receives the metrics (default prometheus.DefaultRegisterer).
	Registerer prometheus.Registerer
	// NFT replaces the real nftables (tests: knftables.NewFake(knftables.IPv4Family, table)).
	NFT knftables.Interface
	// SkipSysctls leaves net.ipv4.ip_forward and net.bridge.bridge-nf-call-iptables alone.
	SkipSysctls bool
	// ProcSys is where sysctls are written (default /proc/sys).
	ProcSys string
	// KeepTableOnStop leaves the table in place when Run returns (default: removed).
	KeepTableOnStop bool
}

func (c *Config) setDefaults() error {
	if c.TableName == "" {
		c.TableName = DefaultTableName
	}
	switch c.ClusterCIDR {
	case "":
		c.ClusterCIDR = DefaultClusterCIDR
	case "none":
	default:
		pfx, err := netip.ParsePrefix(c.ClusterCIDR)
		if err != nil || !pfx.Addr().Is4() {
			return fmt.Errorf("proxy: cluster CIDR %q is not an IPv4 prefix", c.ClusterCIDR)
		}
		c.ClusterCIDR = pfx.Masked().String()
	}
	if c.SyncPeriod <= 0 {
		c.SyncPeriod = DefaultSyncPeriod
	}
	if c.MinSyncInterval <= 0 {
		c.MinSyncInterval = DefaultMinSyncInterval
	}
	if c.MasqueradeMark == 0 {
		c.MasqueradeMark = DefaultMasqueradeMark
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.DefaultRegisterer
	}
	if c.ProcSys == "" {
		c.ProcSys = "/proc/sys"
	}
	return nil
}

// Proxier programs the table from Services and EndpointSlices.
type Proxier struct {
	cfg         Config
	clusterCIDR string // "" when disabled
	log         *slog.Logger
	nft         knftables.Interface
	metrics     *metrics

	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	nodes     corelisters.NodeLister // nil without NodeName
	hasSynced []cache.InformerSynced

	// clearUDP forgets the conntrack entries of UDP flows to a removed endpoint: without it,
	// a client that keeps sending (DNS) stays stuck on the dead endpoint. nil: no conntrack.
	clearUDP func(endpoint)

	trigger   chan struct{}
	ready     chan struct{}
	readyOnce sync.Once

	// What the last successful sync programmed (only touched by the sync loop).
	mu           sync.Mutex
	programmed   *ruleset
	needFull     bool
	failures     int
	lastSyncTime time.Time
}

// NewFactory returns a component factory (assignable to controlplane.ComponentFactory) that
// builds the proxy from the shared context.
func NewFactory(cfg Config) func(cc *controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		if cc.Informers == nil {
			return nil, errors.New("proxy: needs informers")
		}
		c := cfg
		if c.Logger == nil {
			c.Logger = cc.Logger
		}
		return New(c, cc.Client, cc.Informers)
	}
}

// New builds a proxy; it asks factory for its informers (start the factory afterwards).
func New(cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory) (*Proxier, error) {
	_ = client // everything is read through the informers
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Proxier{
		cfg: cfg, log: cfg.Logger.With("component", Name, "table", cfg.TableName),
		trigger: make(chan struct{}, 1), ready: make(chan struct{}), needFull: true,
	}
	if cfg.ClusterCIDR != "none" {
		p.clusterCIDR = cfg.ClusterCIDR
	}
	if cfg.NFT != nil {
		p.nft = cfg.NFT
	} else {
		nft, err := knftables.New(knftables.IPv4Family, cfg.TableName)
		if err != nil {
			return nil, fmt.Errorf("proxy: nftables: %w", err)
		}
		p.nft = nft
	}
	if cfg.NFT == nil {
		if path, err := exec.LookPath("conntrack"); err == nil {
			p.clearUDP = func(e endpoint) { p.conntrackDelete(path, e) }
		} else {
			p.log.Warn("conntrack not found: UDP flows to removed endpoints are not cleared")
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p.metrics = m

	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { p.Trigger() },
		UpdateFunc: func(_, _ interface{}) { p.Trigger() },
		DeleteFunc: func(interface{}) { p.Trigger() },
	}
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	if _, err := svcInf.Informer().AddEventHandler(handler); err != nil {
		return nil, err
	}
	if _, err := sliceInf.Informer().AddEventHandler(handler); err != nil {
		return nil, err
	}
	p.services, p.slices = svcInf.Lister(), sliceInf.Lister()
	p.hasSynced = []cache.InformerSynced{svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced}
	if cfg.NodeName != "" {
		nodeInf := factory.Core().V1().Nodes()
		_, err := nodeInf.Informer().AddEventHandler(cache.FilteringResourceEventHandler{
			FilterFunc: func(obj interface{}) bool {
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				n, ok := obj.(*corev1.Node)
				return ok && n.Name == cfg.NodeName
			},
			Handler: handler,
		})
		if err != nil {
			return nil, err
		}
		p.nodes = nodeInf.Lister()
		p.hasSynced = append(p.hasSynced, nodeInf.Informer().HasSynced)
	}
	return p, nil
}

// Name implements controller.Component.
func (p *Proxier) Name() string { return Name }

// Ready is closed after the first successful sync.
func (p *Proxier) Ready() <-chan struct{} { return p.ready }

// Trigger asks for a sync (coalesced).
func (p *Proxier) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// RequestFullSync makes the next sync rewrite the whole table (and triggers it).
func (p *Proxier) RequestFullSync() {
	p.mu.Lock()
	p.needFull = true
	p.mu.Unlock()
	p.Trigger()
}

// Run programs the table until ctx ends, then removes it.
func (p *Proxier) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	p.log.Info("starting")
	defer p.log.Info("stopped")
	if !p.cfg.SkipSysctls {
		p.setSysctls()
	}
	if !cache.WaitForCacheSync(ctx.Done(), p.hasSynced...) {
		return nil
	}
	defer func() {
		if p.cfg.KeepTableOnStop {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.DeleteTable(cctx); err != nil {
			p.log.Error("removing table", "err", err)
		}
	}()

	full := time.NewTimer(p.cfg.SyncPeriod)
	defer full.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var last time.Time
	for {
		// Coalesce: never sync more often than MinSyncInterval.
		if wait := p.cfg.MinSyncInterval - time.Since(last); !last.IsZero() && wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		// Drain a pending trigger: this sync covers it.
		select {
		case <-p.trigger:
		default:
		}
		last = time.Now()
		if err := p.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			delay := time.Duration(1<<min(p.failures, 6)) * 250 * time.Millisecond // 0.5s .. 16s
			p.log.Error("sync failed", "err", err, "retry", delay)
			retry.Reset(delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		case <-retry.C:
		case <-full.C:
			p.mu.Lock()
			p.needFull = true
			p.mu.Unlock()
			full.Reset(p.cfg.SyncPeriod)
		}
	}
}

// Sync programs the table once: a full rewrite when needed (start, error, period), else only
// the chains and elements that changed since the last sync. One nft transaction.
func (p *Proxier) Sync(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	services, err := p.services.List(labels.Everything())
	if err != nil {
		return err
	}
	slices, err := p.slices.List(labels.Everything())
	if err != nil {
		return err
	}
	sort.Slice(services, func(i, j int) bool {
		return services[i].Namespace+"/"+services[i].Name < services[j].Namespace+"/"+services[j].Name
	})
	want := p.buildRuleset(buildServicePorts(services, slices, p.cfg.NodeName), p.nodeIPs())

	full := p.needFull || p.programmed == nil
	// After repeated failures, start over from an empty table.
	recreate := p.failures >= 2
	tx, err := p.transaction(ctx, want, full, recreate)
	computed := time.Since(start)
	if err == nil {
		err = p.nft.Run(ctx, tx)
	}
	elapsed := time.Since(start)
	if err != nil {
		p.failures++
		p.needFull = true
		p.metrics.syncErrors.Inc()
		return fmt.Errorf("proxy sync (full=%v, %d operations): %w", full, tx.NumOperations(), err)
	}
	p.failures = 0
	p.needFull = false
	prev := p.programmed
	p.programmed = want
	if prev != nil && p.clearUDP != nil {
		for _, e := range removedUDPEndpoints(prev, want) {
			p.clearUDP(e)
		}
	}
	p.lastSyncTime = time.Now()
	p.metrics.syncDuration.WithLabelValues(map[bool]string{true: "full", false: "partial"}[full]).Observe(elapsed.Seconds())
	p.metrics.lastSync.SetToCurrentTime()
	p.metrics.services.Set(float64(want.services))
	p.log.Debug("synced", "full", full, "operations", tx.NumOperations(), "services", want.services,
		"chains", len(want.chains), "compute", computed, "duration", elapsed)
	p.readyOnce.Do(func() { close(p.ready) })
	return nil
}

// transaction builds the nft transaction from the programmed state to want.
func (p *Proxier) transaction(ctx context.Context, want *ruleset, full, recreate bool) (*knftables.Transaction, error) {
	tx := p.nft.NewTransaction()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff service proxy")})
	have := p.programmed
	if full {
		have = newRuleset()
		if recreate {
			tx.Delete(&knftables.Table{})
			tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff service proxy")})
		} else if p.programmed != nil && p.failures == 0 {
			// Periodic resync: every chain is rewritten anyway; what we programmed is what
			// is there (listing a big table costs more than the rest of the sync).
			for c := range p.programmed.chains {
				have.chains[c] = nil
			}
			for s := range p.programmed.affinity {
				have.affinity[s] = 0
			}
		} else {
			// What is really there: chains and affinity sets we no longer want get removed.
			existing, err := p.nft.ListAll(ctx)
			if err != nil && !knftables.IsNotFound(err) {
				return tx, err
			}
			for _, c := range existing["chain"] {
				have.chains[c] = nil
			}
			for _, s := range existing["set"] {
				if strings.HasPrefix(s, "aff-") {
					have.affinity[s] = 0
				}
			}
		}
		objs, rules := p.staticObjects()
		for _, o := range objs {
			tx.Add(o)
		}
		for _, o := range objs {
			switch o := o.(type) {
			case *knftables.Chain:
				tx.Flush(o)
				delete(have.chains, o.Name)
			case *knftables.Map:
				tx.Flush(o)
			case *knftables.Set:
				tx.Flush(o)
			}
		}
		for _, name := range sortedKeys(rules) {
			for _, r := range rules[name] {
				tx.Add(&knftables.Rule{Chain: name, Rule: r})
			}
		}
	}

	// New affinity sets first (rules refer to them), then every new chain (rules jump
	// between them), then the rules of new or changed chains.
	for _, name := range sortedKeys(want.affinity) {
		if _, ok := have.affinity[name]; !ok || full {
			tx.Add(&knftables.Set{Name: name, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
				Timeout: knftables.PtrTo(want.affinity[name])})
		}
	}
	chains := sortedKeys(want.chains)
	for _, name := range chains {
		if _, ok := have.chains[name]; !ok || full {
			tx.Add(&knftables.Chain{Name: name})
		}
	}
	for _, name := range chains {
		old, ok := have.chains[name]
		if ok && !full && equalRules(old, want.chains[name]) {
			continue
		}
		if ok || full {
			tx.Flush(&knftables.Chain{Name: name})
		}
		for _, r := range want.chains[name] {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}

	// Elements: on a full sync the maps were flushed, so have is empty and all are added.
	for _, set := range sortedKeys(want.elements) {
		obj := func(e element) *knftables.Element {
			el := &knftables.Element{Key: e.Key, Value: e.Value}
			if set == setClusterIPs || set == setNodeIPs {
				el.Set = set
			} else {
				el.Map = set
			}
			return el
		}
		oldEls, newEls := have.elements[set], want.elements[set]
		for _, k := range sortedKeys(oldEls) {
			if ne, ok := newEls[k]; !ok || !equalRules(ne.Value, oldEls[k].Value) {
				tx.Delete(obj(oldEls[k]))
			}
		}
		for _, k := range sortedKeys(newEls) {
			if oe, ok := oldEls[k]; !ok || !equalRules(oe.Value, newEls[k].Value) {
				tx.Add(obj(newEls[k]))
			}
		}
	}

	// Chains and sets no longer wanted: flush every one first (they jump to each other),
	// then delete them, then the affinity sets their rules used.
	var stale []string
	for _, name := range sortedKeys(have.chains) {
		if _, ok := want.chains[name]; !ok {
			stale = append(stale, name)
			tx.Flush(&knftables.Chain{Name: name})
		}
	}
	for _, name := range stale {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, name := range sortedKeys(have.affinity) {
		if _, ok := want.affinity[name]; !ok {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
	return tx, nil
}

func equalRules(a, b []string) bool {
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

// nodeIPs are the configured addresses plus the Node object's InternalIP/ExternalIP ones.
func (p *Proxier) nodeIPs() []string {
	ips := ipv4s(p.cfg.NodeIPs)
	if p.nodes != nil {
		if n, err := p.nodes.Get(p.cfg.NodeName); err == nil {
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
					ips = append(ips, ipv4s([]string{a.Address})...)
				}
			}
		}
	}
	sort.Strings(ips)
	return dedupe(ips)
}

// removedUDPEndpoints are the endpoints UDP service ports used in prev and no longer do.
func removedUDPEndpoints(prev, want *ruleset) []endpoint {
	seen := map[endpoint]bool{}
	var out []endpoint
	for _, id := range sortedKeys(prev.udp) {
		still := map[endpoint]bool{}
		for _, e := range want.udp[id] {
			still[e] = true
		}
		for _, e := range prev.udp[id] {
			if !still[e] && !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// conntrackDelete deletes the UDP flows whose replies come from e (every flow DNATed to it).
func (p *Proxier) conntrackDelete(path string, e endpoint) {
	out, err := exec.Command(path, "-D", "-p", "udp", "--reply-src", e.IP, "--reply-port-src", strconv.Itoa(int(e.Port))).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) { // 1: no such flow
		p.log.Warn("conntrack delete", "endpoint", e.String(), "err", err, "output", strings.TrimSpace(string(out)))
	}
}

// DeleteTable removes the proxy's table (no error if it is absent).
func (p *Proxier) DeleteTable(ctx context.Context) error {
	tx := p.nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	err := p.nft.Run(ctx, tx)
	p.mu.Lock()
	p.programmed, p.needFull = nil, true
	p.mu.Unlock()
	return err
}

// setSysctls enables forwarding and, when the bridge module is there, netfilter on bridged
// traffic (pod-to-pod traffic through a service crosses the node's bridge).
func (p *Proxier) setSysctls() {
	for _, s := range []struct {
		path     string
		optional bool
	}{{"net/ipv4/ip_forward", false}, {"net/bridge/bridge-nf-call-iptables", true}} {
		path := filepath.Join(p.cfg.ProcSys, s.path)
		if cur, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(cur)) == "1" {
			continue
		}
		if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
			if s.optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			p.log.Warn("cannot set sysctl", "path", path, "err", err)
		}
	}
}
