// Package controlplane assembles a running control plane: etcd (embedded or external), the
// cluster PKI, the API server over TLS, and the admin kubeconfig. `skiff server` and the
// in-process test harness both start one.
package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-sh/skiff/internal/apiserver"
	"github.com/skiff-sh/skiff/internal/apiserver/openapi"
	"github.com/skiff-sh/skiff/internal/apiserver/podproxy"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/loopback"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/all"
	"github.com/skiff-sh/skiff/internal/registry/scheduling"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/version"
)

// Config configures a control plane; zero values mean defaults.
type Config struct {
	DataDir     string // default /var/lib/skiff
	BindAddress string // default 127.0.0.1
	Port        int    // HTTPS port; 0 picks a free one
	// AdvertiseAddress is the API server's address for pods and other nodes (default: the
	// bind address, or the first non-loopback IPv4 address when bound to all interfaces).
	AdvertiseAddress string
	// AdvertiseHosts are extra names and IPs for the serving certificate.
	AdvertiseHosts []string
	// KubeconfigPath is where the admin kubeconfig goes (default <data-dir>/kubeconfig.yaml).
	KubeconfigPath string
	Etcd           storage.EtcdConfig // DataDir defaults to <data-dir>/etcd
	// CompactionInterval paces etcd compaction (default 5m).
	CompactionInterval time.Duration
	Logger             *slog.Logger
	// Controllers are leader-elected components (controllers, scheduler); nil means the
	// default set, an empty non-nil slice none.
	Controllers []ComponentFactory
	// NodeComponents run on every server regardless of leadership (simulated nodes).
	NodeComponents    []ComponentFactory
	ControllerOptions controller.Options
	// Metrics are further gatherers served at /metrics (components' own registries).
	Metrics prometheus.Gatherers
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	cfg        Config
	log        *slog.Logger
	Etcd       *storage.Etcd
	PKI        *auth.PKI
	Auth       *auth.Authenticator
	API        *apiserver.Server
	URL        string
	Kubeconfig string
	Resources  []*registry.Resource

	// background is the loopback lane of in-process work that may lag behind clients.
	background *loopback.Lane

	cancel         context.CancelFunc
	stopComponents context.CancelFunc
	httpSrv        *http.Server
	done           chan struct{}
	runErr         error
	stopOnce       sync.Once
}

// Start brings the control plane up and returns once it serves (readyz ok).
func Start(ctx context.Context, cfg Config) (*ControlPlane, error) {
	start := time.Now()
	if cfg.DataDir == "" {
		cfg.DataDir = "/var/lib/skiff"
	}
	if cfg.BindAddress == "" {
		cfg.BindAddress = "127.0.0.1"
	}
	if cfg.KubeconfigPath == "" {
		cfg.KubeconfigPath = filepath.Join(cfg.DataDir, "kubeconfig.yaml")
	}
	if cfg.Etcd.DataDir == "" {
		cfg.Etcd.DataDir = filepath.Join(cfg.DataDir, "etcd")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cp := &ControlPlane{cfg: cfg, log: cfg.Logger, cancel: cancel, done: make(chan struct{}),
		background: loopback.NewLane(backgroundConcurrency)}
	ok := false
	defer func() {
		if !ok {
			cp.Stop()
		}
	}()

	// etcd and the PKI are independent: prepare both at once.
	var wg sync.WaitGroup
	var etcdErr, pkiErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		cp.Etcd, etcdErr = storage.StartEtcd(ctx, cfg.Etcd)
	}()
	hosts := append([]string{cfg.BindAddress}, cfg.AdvertiseHosts...)
	if hn, err := os.Hostname(); err == nil {
		hosts = append(hosts, hn)
	}
	cp.PKI, pkiErr = auth.EnsurePKI(filepath.Join(cfg.DataDir, "tls"), hosts)
	wg.Wait()
	if err := errors.Join(etcdErr, pkiErr); err != nil {
		return nil, err
	}
	authn, err := auth.NewAuthenticator(cp.PKI, filepath.Join(cfg.DataDir, "tokens.csv"))
	if err != nil {
		return nil, err
	}
	cp.Auth = authn

	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	host := cfg.BindAddress
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	cp.URL = "https://" + net.JoinHostPort(host, strconv.Itoa(port))

	cp.Resources = all.Resources()
	oa, err := openapi.NewHandlerWithCustom(openapiResources(cp.Resources), func() (uint64, []openapi.Resource) {
		if cp.API == nil {
			return 0, nil
		}
		gen, rs := cp.API.CustomResources()
		return gen, openapiResources(rs)
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("openapi: %w", err)
	}
	proxy, err := cp.podProxy()
	if err != nil {
		ln.Close()
		return nil, err
	}
	metricsAPI := podproxy.NewMetricsAPI(proxy)
	tokens, err := auth.NewTokenIssuer(cp.PKI.SAKey)
	if err != nil {
		ln.Close()
		return nil, err
	}
	api, err := apiserver.New(apiserver.Config{
		Etcd: cp.Etcd.Client, Resources: cp.Resources, Authenticate: authn.Middleware, OpenAPI: oa, Tokens: tokens,
		ExtraHandlers:   map[string]http.Handler{podproxy.MetricsPrefix: metricsAPI, podproxy.MetricsPrefix + "/": metricsAPI},
		ExtraGroups:     []apiserver.ExtraGroup{{Legacy: podproxy.MetricsAPIGroup(), Aggregated: podproxy.MetricsAggregatedDiscovery()}},
		ExternalAddress: net.JoinHostPort(host, strconv.Itoa(port)), Version: version.Info(), Logger: cfg.Logger,
		Metrics: cfg.Metrics, AuthenticateToken: authn.AuthenticateToken,
		ApplyModels: func() (map[string]*spec.Schema, error) { return openapi.Models(openapiResources(cp.Resources)) },
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	cp.API = api
	api.PodSubresources = proxy.ServePodSubresource
	authn.AddTokenAuthenticator(api.AuthenticateServiceAccountToken)
	authn.AddTokenAuthenticator(api.AuthenticateBootstrapToken)
	api.SetPending("bootstrap", true)
	go func() {
		defer close(cp.done)
		cp.runErr = api.Run(ctx)
	}()
	go storage.RunCompactor(ctx, cp.Etcd.Client, cfg.CompactionInterval)
	if err := api.WaitReady(ctx); err != nil {
		ln.Close()
		return nil, err
	}

	tlsCfg := cp.PKI.ServingTLSConfig()
	cp.httpSrv = &http.Server{Handler: api.Handler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	go func() {
		if err := cp.httpSrv.Serve(tls.NewListener(ln, tlsCfg)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cp.log.Error("https server", "err", err)
		}
	}()

	if err := auth.WriteKubeconfig(cfg.KubeconfigPath, cp.URL, cp.PKI.CAPEM, cp.PKI.AdminCertPEM, cp.PKI.AdminKeyPEM); err != nil {
		return nil, err
	}
	cp.Kubeconfig = cfg.KubeconfigPath
	if err := cp.bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	api.SetPending("bootstrap", false)
	ctrls := cfg.Controllers
	if ctrls == nil {
		ctrls = DefaultControllers()
	}
	if err := cp.startComponents(ctx, ctrls, cfg.NodeComponents); err != nil {
		return nil, fmt.Errorf("start components: %w", err)
	}
	ok = true
	cp.log.Info("control plane ready", "url", cp.URL, "kubeconfig", cp.Kubeconfig, "elapsed", time.Since(start).Round(time.Millisecond))
	return cp, nil
}

func openapiResources(rs []*registry.Resource) []openapi.Resource {
	out := make([]openapi.Resource, 0, len(rs))
	for _, r := range rs {
		var subs []string
		if r.HasStatus {
			subs = append(subs, "status")
		}
		if r.Scale != nil {
			subs = append(subs, "scale")
		}
		if r.Group == "" {
			switch r.Resource {
			case "pods":
				subs = append(subs, "binding", "eviction", "log")
			case "serviceaccounts":
				subs = append(subs, "token")
			case "namespaces":
				subs = append(subs, "finalize")
			}
		}
		out = append(out, openapi.Resource{Group: r.Group, Version: r.Version, Kind: r.Kind, Resource: r.Resource,
			Namespaced: r.Namespaced, Verbs: r.SupportedVerbs(), Subresources: subs, Schema: r.OpenAPISchema})
	}
	return out
}

// backgroundConcurrency is how many background requests of the in-process components (event
// writes, the scheduler's reports of unschedulable pods) run at once. Unbounded, a burst of
// them took as much CPU as the clients' own requests: with 50 clients creating pods on a
// cluster without nodes, each create brought a FailedScheduling event and a status write, and
// the clients' p99 went from 47 to 75 ms (bench/RESULTS.md).
const backgroundConcurrency = 4

// LoopbackConfig is the client configuration of the components running inside this process:
// requests go straight to the API server's handler (internal/loopback), as system:admin,
// without TLS or a socket. Background work shares one narrow lane (backgroundConcurrency).
func (cp *ControlPlane) LoopbackConfig() *rest.Config {
	user := auth.LoopbackUser() // one for every request: handlers only read it
	return &rest.Config{
		Host: cp.URL, QPS: 5000, Burst: 10000,
		Transport: &loopback.Transport{Handler: cp.API.Handler(), Logger: cp.log,
			Context:        func(ctx context.Context) context.Context { return auth.WithUser(ctx, user) },
			BackgroundLane: cp.background, BackgroundRequest: isEventWrite},
	}
}

// isEventWrite reports whether r writes an Event (core/v1 or events.k8s.io/v1).
func isEventWrite(r *http.Request) bool {
	if r.Method == http.MethodGet {
		return false
	}
	p := r.URL.Path
	if strings.HasPrefix(p, "/apis/events.k8s.io/") {
		return true
	}
	rest, ok := strings.CutPrefix(p, "/api/v1/")
	if !ok {
		return false
	}
	seg := strings.Split(rest, "/")
	if len(seg) >= 3 && seg[0] == "namespaces" {
		seg = seg[2:] // namespaces/{name}/events[/{name}]
	}
	return seg[0] == "events"
}

// RESTConfig is an admin client configuration for this control plane.
func (cp *ControlPlane) RESTConfig() (*rest.Config, error) {
	c, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err != nil {
		return nil, err
	}
	c.QPS = 1000
	c.Burst = 2000
	return c, nil
}

// bootstrap creates what a cluster has from the start: the system namespaces, the system
// PriorityClasses and the kubernetes Service.
func (cp *ControlPlane) bootstrap(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(cp.LoopbackConfig())
	if err != nil {
		return err
	}
	for _, name := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	for _, pc := range scheduling.SystemClasses() {
		_, err := cs.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create priority class %s: %w", pc.Name, err)
		}
	}
	return cp.bootstrapKubernetesService(ctx, cs)
}

// Done is closed when the control plane has stopped.
func (cp *ControlPlane) Done() <-chan struct{} { return cp.done }

// Stop shuts down gracefully: in-flight requests finish, watches end, etcd flushes.
func (cp *ControlPlane) Stop() {
	cp.stopOnce.Do(func() {
		if cp.stopComponents != nil {
			cp.stopComponents()
		}
		if cp.httpSrv != nil {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			_ = cp.httpSrv.Shutdown(sctx)
			c()
			cp.httpSrv.Close()
		}
		cp.cancel()
		if cp.API != nil {
			select {
			case <-cp.done:
			case <-time.After(5 * time.Second):
			}
		}
		if cp.Etcd != nil {
			cp.Etcd.Close()
		}
	})
}
