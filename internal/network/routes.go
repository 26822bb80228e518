// Package network holds the node's side of the pod network that is not CNI's: routes to the
// other nodes' pod CIDRs, so that pods on different machines reach each other directly (as
// flannel's host-gw backend does; the nodes must share a layer-2 network).
package network

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
)

// RouteProtocol marks the routes this package owns (ip route ... proto 66), so that stale
// ones are found and removed without touching anybody else's.
const RouteProtocol = "66"

// Route sends a pod CIDR to the node that owns it.
type Route struct {
	CIDR string // e.g. 10.42.1.0/24
	Via  string // the node's InternalIP
}

// DesiredRoutes are the routes to every other node's pod CIDRs (IPv4), through the node's
// InternalIP. Nodes without an address or CIDR, and nodes that share this node's address
// (several agents on one machine reach each other's bridges directly), get none.
func DesiredRoutes(self string, selfIPs []string, nodes []*corev1.Node) []Route {
	own := map[string]bool{}
	for _, ip := range selfIPs {
		own[ip] = true
	}
	var out []Route
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		via := ""
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
					via = ip.String()
					break
				}
			}
		}
		if via == "" || own[via] {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
				out = append(out, Route{CIDR: p.Masked().String(), Via: via})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CIDR < out[j].CIDR })
	return out
}

// Config configures the route syncer.
type Config struct {
	NodeName string
	NodeIPs  []string
	// IP runs the ip command (default: exec "ip"); tests point it into a network namespace.
	IP     func(ctx context.Context, args ...string) (string, error)
	Logger *slog.Logger
	// ResyncPeriod re-applies routes that someone removed (default 30 s).
	ResyncPeriod time.Duration
}

// Routes keeps this node's routes to the other nodes' pod CIDRs.
type Routes struct {
	cfg     Config
	nodes   corelisters.NodeLister
	synced  cache.InformerSynced
	changed chan struct{}
}

// NewFactory returns the component factory.
func NewFactory(cfg Config) func(*controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		if cfg.Logger == nil {
			cfg.Logger = cc.Logger
		}
		return New(cfg, cc.Informers), nil
	}
}

// New builds the syncer on the factory's node informer.
func New(cfg Config, f informers.SharedInformerFactory) *Routes {
	if cfg.IP == nil {
		cfg.IP = runIP
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ResyncPeriod <= 0 {
		cfg.ResyncPeriod = 30 * time.Second
	}
	cfg.Logger = cfg.Logger.With("component", "pod-routes")
	inf := f.Core().V1().Nodes()
	r := &Routes{cfg: cfg, nodes: inf.Lister(), synced: inf.Informer().HasSynced, changed: make(chan struct{}, 1)}
	poke := func(any) {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: poke,
		UpdateFunc: func(_, n any) { poke(n) }, DeleteFunc: poke})
	return r
}

// Name implements controller.Component.
func (r *Routes) Name() string { return "pod-routes" }

// Run syncs routes on node changes and periodically until ctx ends; it leaves the routes in
// place (pods keep running when the agent restarts).
func (r *Routes) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), r.synced) {
		return ctx.Err()
	}
	t := time.NewTicker(r.cfg.ResyncPeriod)
	defer t.Stop()
	for {
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("syncing pod routes", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.changed:
		case <-t.C:
		}
	}
}

// Sync makes the kernel's routes (of RouteProtocol) match DesiredRoutes.
func (r *Routes) Sync(ctx context.Context) error {
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	want := map[string]string{}
	for _, rt := range DesiredRoutes(r.cfg.NodeName, r.cfg.NodeIPs, nodes) {
		want[rt.CIDR] = rt.Via
	}
	out, err := r.cfg.IP(ctx, "-4", "route", "show", "proto", RouteProtocol)
	if err != nil {
		return err
	}
	have := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "via" {
			have[f[0]] = f[2]
		}
	}
	var errs []string
	for cidr, via := range want {
		if have[cidr] == via {
			continue
		}
		if _, err := r.cfg.IP(ctx, "-4", "route", "replace", cidr, "via", via, "proto", RouteProtocol); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		r.cfg.Logger.Info("route added", "cidr", cidr, "via", via)
	}
	for cidr := range have {
		if _, ok := want[cidr]; ok {
			continue
		}
		if _, err := r.cfg.IP(ctx, "-4", "route", "del", cidr, "proto", RouteProtocol); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		r.cfg.Logger.Info("route removed", "cidr", cidr)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func runIP(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
