package apiserver

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage/cacher"
	"github.com/skiff-sh/skiff/internal/storage/etcd3"
)

// Config configures the API server. Zero values mean defaults.
type Config struct {
	Etcd      *clientv3.Client
	Resources []*registry.Resource
	// Authenticate wraps the handler with authentication (nil: every request is anonymous
	// admin, for in-process tests only).
	Authenticate func(http.Handler) http.Handler
	// OpenAPI serves /openapi/v2 and /openapi/v3 (optional).
	OpenAPI http.Handler
	// ExtraHandlers serve further path prefixes (e.g. /apis/metrics.k8s.io) (optional).
	ExtraHandlers map[string]http.Handler
	// ExternalAddress is host:port as clients reach the server.
	ExternalAddress string
	// MaxInFlight bounds concurrent non-watch requests (default 400); the rest get 429.
	MaxInFlight int
	// Version reported at /version.
	Version version.Info
	Logger  *slog.Logger
	// Tokens issues and verifies service-account tokens (optional).
	Tokens *auth.TokenIssuer
	// Services sets the service cluster IP and node port ranges.
	Services ServiceConfig
	// ExtraGroups are API groups served by ExtraHandlers, for discovery (legacy and
	// aggregated forms).
	ExtraGroups []ExtraGroup
	// ReadyChecks are extra /readyz checks (name → check).
	ReadyChecks map[string]func(context.Context) error
	// Metrics are further gatherers /metrics serves beside the API server's own (the
	// components' registries); nil serves prometheus.DefaultGatherer with them.
	Metrics prometheus.Gatherers
	// AuthenticateToken answers TokenReviews (optional: without it no token is valid).
	AuthenticateToken func(token string) (*auth.User, bool)
	// ApplyModels returns the OpenAPI schemas of the served kinds, for server-side apply;
	// called once, on the first apply (nil: apply answers 415).
	ApplyModels func() (map[string]*spec.Schema, error)
}

// ExtraGroup is an API group served outside the registry (metrics.k8s.io).
type ExtraGroup struct {
	Legacy     metav1.APIGroup
	Aggregated apidiscoveryv2.APIGroupDiscovery
}

// Server is the Kubernetes API server over etcd.
type Server struct {
	cfg       Config
	log       *slog.Logger
	resources []*registry.Resource
	endpoints map[string]*endpoint
	cachers   []*cacher.Cacher
	inflight  chan struct{}
	metrics   *metrics
	handler   http.Handler
	now       func() time.Time
	// applyManagers serve server-side apply (apply.go).
	applyManagers *fieldManagers

	readyMu  sync.Mutex
	ready    bool
	notReady map[string]bool

	svcAlloc *serviceAllocator

	// custom serves the resources of CustomResourceDefinitions (crd.go).
	custom customAPI

	nsMu      sync.Mutex
	deletedNS map[string]time.Time // recently deleted namespaces, checked live on create

	// PodSubresources serves pods/log, exec, attach and portforward (set by the node side).
	PodSubresources SubresourceHandler
}

func gvrKey(group, version, resource string) string { return group + "/" + version + "/" + resource }

func metaOf(obj runtime.Object) (metav1.Object, error) { return meta.Accessor(obj) }

// New builds the server: one store and watch cache per resource.
func New(cfg Config) (*Server, error) {
	if cfg.Etcd == nil {
		return nil, errors.New("apiserver: no etcd client")
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 400
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, resources: cfg.Resources, endpoints: map[string]*endpoint{},
		inflight: make(chan struct{}, cfg.MaxInFlight), metrics: newMetrics(), now: time.Now,
		applyManagers: &fieldManagers{models: cfg.ApplyModels},
		custom:        customAPI{endpoints: map[string]*endpoint{}, defs: map[string]*servedDef{}}}
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	for _, res := range cfg.Resources {
		res := res
		if res.NotStored {
			s.endpoints[gvrKey(res.Group, res.Version, res.Resource)] = &endpoint{res: res, cacher: noStats{}}
			continue
		}
		if res.Stored != nil {
			continue
		}
		st := etcd3.New(cfg.Etcd, codec, res.GroupVersionKind(), res.New)
		prefix := storagePrefix(res)
		c := cacher.New(cacher.Config{Store: st, Prefix: prefix, NewFunc: res.New, NewListFunc: res.NewList,
			GetAttrs: attrsFunc(res), Logger: cfg.Logger})
		s.cachers = append(s.cachers, c)
		s.endpoints[gvrKey(res.Group, res.Version, res.Resource)] = &endpoint{res: res, store: c, prefix: prefix,
			fields: supportedFields(res), cacher: c}
	}
	for _, res := range cfg.Resources {
		if res.Stored == nil {
			continue
		}
		base := s.endpoints[gvrKey(res.Stored.Group, res.Stored.Version, res.Resource)]
		if base == nil {
			return nil, fmt.Errorf("%s/%s %s is stored as %s/%s, which is not served", res.Group, res.Version, res.Resource, res.Stored.Group, res.Stored.Version)
		}
		s.endpoints[gvrKey(res.Group, res.Version, res.Resource)] = &endpoint{res: res, prefix: base.prefix, fields: supportedFields(res),
			store: &convertingStore{inner: base.store, conv: res.Stored, attrs: attrsFunc(base.res)}, cacher: noStats{}}
	}
	alloc, err := newServiceAllocator(cfg.Etcd, cfg.Services)
	if err != nil {
		return nil, err
	}
	s.svcAlloc = alloc
	s.handler = s.buildHandler()
	s.metrics.registerCaches(s)
	return s, nil
}

// Handler is the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler { return s.handler }

// Run starts the watch caches and blocks until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, c := range s.cachers {
		wg.Add(1)
		go func(c *cacher.Cacher) { defer wg.Done(); c.Run(ctx) }(c)
	}
	for _, c := range s.cachers {
		if err := c.Ready(ctx); err != nil {
			return err
		}
	}
	if s.endpoints[crdKey] != nil {
		s.SetPending(crdSyncedCheck, true) // before ready: no window where /readyz says ok too early
	}
	s.readyMu.Lock()
	s.ready = true
	s.readyMu.Unlock()
	go s.runServiceRepair(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); s.runCustomResources(ctx) }()
	wg.Wait()
	return nil
}

// WaitReady blocks until every watch cache is loaded.
func (s *Server) WaitReady(ctx context.Context) error {
	for _, c := range s.cachers {
		if err := c.Ready(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ServiceIP returns the n-th address of the service CIDR (1: the kubernetes service, 10: DNS).
func (s *Server) ServiceIP(n uint32) string { return s.svcAlloc.ipAt(n) }

// SetPending marks a start-up step that /readyz waits for (done=false) or its completion.
func (s *Server) SetPending(name string, pending bool) {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if s.notReady == nil {
		s.notReady = map[string]bool{}
	}
	if pending {
		s.notReady[name] = true
	} else {
		delete(s.notReady, name)
	}
}

func (s *Server) isNamespaced(group, version, resource string) (bool, bool) {
	ep := s.endpoint(group, version, resource)
	if ep == nil {
		return false, false
	}
	return ep.res.Namespaced, true
}

func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.handleHealth)
	mux.HandleFunc("/healthz/", s.handleHealth)
	mux.HandleFunc("/livez", s.handleHealth)
	mux.HandleFunc("/livez/", s.handleHealth)
	mux.HandleFunc("/readyz", s.handleReady)
	mux.HandleFunc("/readyz/", s.handleReady)
	mux.HandleFunc("/version", s.handleVersion)
	mux.Handle("/metrics", s.metrics.handler(s.cfg.Metrics))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if s.cfg.OpenAPI != nil {
		mux.Handle("/openapi/", s.cfg.OpenAPI)
	}
	for prefix, h := range s.cfg.ExtraHandlers {
		mux.Handle(prefix, h)
	}
	mux.HandleFunc("/api", s.handleAPI)
	mux.HandleFunc("/apis", s.handleAPIs)
	mux.HandleFunc("/api/", s.serveResource)
	mux.HandleFunc("/apis/", s.serveResource)
	var h http.Handler = mux
	if s.cfg.Authenticate != nil {
		h = s.cfg.Authenticate(h)
	}
	return s.instrument(h)
}

// instrument recovers panics, counts and times requests, and bounds concurrency: long-running
// requests (watches) do not count against the in-flight limit.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic serving request", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				writeStatus(rw, apierrors.NewInternalError(fmt.Errorf("%v", p)))
			}
			s.metrics.observe(r, rw.code, time.Since(start))
		}()
		long := isLongRunning(r)
		if !long && !isHealthPath(r.URL.Path) {
			select {
			case s.inflight <- struct{}{}:
				defer func() { <-s.inflight }()
			default:
				se := apierrors.NewTooManyRequests("too many requests, please try again later", 1)
				writeStatus(rw, se)
				return
			}
		}
		next.ServeHTTP(rw, r)
	})
}

// isLongRunning: watches, followed logs and streams (exec, attach, port-forward) do not count
// against the in-flight limit, as in Kubernetes.
func isLongRunning(r *http.Request) bool {
	q := r.URL.Query()
	if q.Get("watch") == "true" || q.Get("watch") == "1" || strings.Contains(r.URL.Path, "/watch/") {
		return true
	}
	if strings.HasSuffix(r.URL.Path, "/log") && q.Get("follow") == "true" {
		return true
	}
	for _, s := range []string{"/exec", "/attach", "/portforward", "/proxy"} {
		if strings.HasSuffix(r.URL.Path, s) {
			return true
		}
	}
	return false
}

func isHealthPath(p string) bool {
	return p == "/healthz" || p == "/livez" || p == "/readyz" || p == "/version" || p == "/metrics"
}

type statusRecorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.code = code
		r.written = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer (hijacking for exec).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	failed := false
	check := func(name string, err error) {
		if err != nil {
			failed = true
			fmt.Fprintf(&b, "[-]%s failed: %v\n", name, err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", name)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	_, err := s.cfg.Etcd.Get(ctx, "/registry/readyz", clientv3.WithCountOnly())
	check("etcd", err)
	s.readyMu.Lock()
	ready := s.ready
	var pending []string
	for name := range s.notReady {
		pending = append(pending, name)
	}
	s.readyMu.Unlock()
	if !ready {
		check("watch-cache", errors.New("caches not loaded"))
	} else {
		check("watch-cache", nil)
	}
	for _, name := range pending {
		check(name, errors.New("not finished"))
	}
	for name, c := range s.cfg.ReadyChecks {
		check(name, c(ctx))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if failed {
		w.WriteHeader(http.StatusInternalServerError)
		b.WriteString("readyz check failed\n")
		_, _ = w.Write([]byte(b.String()))
		return
	}
	if r.URL.Query().Has("verbose") {
		b.WriteString("readyz check passed\n")
		_, _ = w.Write([]byte(b.String()))
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Version)
}

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request) {
	if s.handleDiscoveryPath(w, r) {
		return
	}
	info, ok := parseResourcePath(r, s.isNamespaced)
	if !ok {
		notFoundPath(w)
		return
	}
	info.req = r
	ep := s.endpoint(info.Group, info.Version, info.Resource)
	if ep == nil {
		notFoundPath(w)
		return
	}
	if ep.res.Namespaced && info.Namespace == "" && info.Name != "" {
		notFoundPath(w)
		return
	}
	if info.Subresource != "" {
		s.serveSubresource(w, r, ep, info)
		return
	}
	if !ep.res.Supports(info.Verb) {
		methodNotAllowed(w, info.Verb, ep.res.GroupResource())
		return
	}
	switch info.Verb {
	case "get":
		s.handleGet(w, r, ep, info)
	case "list":
		s.handleList(w, r, ep, info)
	case "watch":
		s.handleWatch(w, r, ep, info)
	case "create":
		if info.Name != "" {
			methodNotAllowed(w, "create", ep.res.GroupResource())
			return
		}
		s.handleCreate(w, r, ep, info)
	case "update":
		s.handleUpdate(w, r, ep, info)
	case "patch":
		s.handlePatch(w, r, ep, info)
	case "delete":
		s.handleDelete(w, r, ep, info)
	case "deletecollection":
		s.handleDeleteCollection(w, r, ep, info)
	default:
		methodNotAllowed(w, info.Verb, ep.res.GroupResource())
	}
}
