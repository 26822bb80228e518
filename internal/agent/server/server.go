// Package server is the node agent's HTTPS API, the kubelet's port 10250: container logs,
// exec, attach and port-forward (relayed to the container runtime's streaming server),
// resource usage (stats/v1alpha1 Summary and the Prometheus /metrics/resource that
// metrics-server scrapes), the pods it runs, and a health check.
//
// Only clients presenting a certificate issued by the cluster CA are served (in practice the
// API server); /healthz is open.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultAddr is where the agent listens unless told otherwise (the kubelet's port).
const DefaultAddr = ":10250"

// Config configures the agent's server.
type Config struct {
	// Addr is the listen address (default ":10250").
	Addr string
	// TLS is the serving configuration. When nil, one is built from Certificate and
	// ClientCAs.
	TLS *tls.Config
	// Certificate is the serving certificate, issued by the cluster CA for the node's
	// names and addresses (see SignServingCert).
	Certificate tls.Certificate
	// ClientCAs verifies client certificates; only verified clients are served (except
	// /healthz). Required.
	ClientCAs *x509.CertPool
	// Authorize, when set, further restricts which verified client certificates are served.
	Authorize func(cert *x509.Certificate) bool
	// Runtime is the CRI client (*runtime.Client).
	Runtime Runtime
	// NodeName is reported in the stats summary.
	NodeName string
	// FsPath is a path on the node's root filesystem for the node fs stats (default "/").
	FsPath string
	// Pods lists the pods the agent runs for /pods (default: derived from the runtime's
	// sandboxes).
	Pods func(ctx context.Context) ([]corev1.Pod, error)
	// SampleInterval paces the CPU sampler behind usageNanoCores (default 10s).
	SampleInterval time.Duration
	Logger         *slog.Logger
}

// Server is the agent's HTTPS server.
type Server struct {
	cfg             Config
	rt              Runtime
	log             *slog.Logger
	errorLog        *log.Logger
	stats           *statsProvider
	streamTransport *http.Transport
	handler         http.Handler
	// noAuth serves without client certificates (unit tests only).
	noAuth bool
}

// New builds the server; Run serves it.
func New(cfg Config) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.FsPath == "" {
		cfg.FsPath = "/"
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg: cfg, rt: cfg.Runtime, log: cfg.Logger.With("component", "agent-server"),
		streamTransport: newStreamTransport(),
	}
	s.errorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	s.stats = &statsProvider{rt: cfg.Runtime, nodeName: cfg.NodeName, fsPath: cfg.FsPath, procRoot: "/proc",
		now: time.Now, rates: newRateTracker(time.Second)}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.handleHealthz)
	mux.HandleFunc("/containerLogs/", s.handleContainerLogs)
	mux.HandleFunc("/exec/", s.handleExec)
	mux.HandleFunc("/attach/", s.handleAttach)
	mux.HandleFunc("/portForward/", s.handlePortForward)
	mux.HandleFunc("/stats/summary", s.handleSummary)
	mux.HandleFunc("/stats/summary/", s.handleSummary)
	mux.HandleFunc("/metrics/resource", s.handleResourceMetrics)
	mux.HandleFunc("/pods", s.handlePods)
	mux.HandleFunc("/pods/", s.handlePods)
	s.handler = s.authenticate(mux)
	return s
}

// Handler is the server's HTTP handler (authentication included: it needs TLS requests).
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig returns the serving configuration: Config.TLS, or one built from Certificate and
// ClientCAs that asks for (and verifies) client certificates.
func (s *Server) TLSConfig() (*tls.Config, error) {
	if s.cfg.TLS != nil {
		c := s.cfg.TLS.Clone()
		if c.ClientCAs == nil {
			c.ClientCAs = s.cfg.ClientCAs
		}
		if c.ClientAuth == tls.NoClientCert {
			c.ClientAuth = tls.VerifyClientCertIfGiven
		}
		return c, nil
	}
	if len(s.cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("agent server: no serving certificate")
	}
	if s.cfg.ClientCAs == nil {
		return nil, errors.New("agent server: no client CA")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{s.cfg.Certificate},
		ClientCAs:    s.cfg.ClientCAs,
		// Optional at the handshake so that /healthz answers without one; every other path
		// requires a verified certificate.
		ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12,
		// Streams are HTTP/1.1 upgrades.
		NextProtos: []string{"http/1.1"},
	}, nil
}

// Run listens on Addr and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("agent server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (TLS is added here) until ctx ends, and samples CPU usage meanwhile.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.rt == nil {
		ln.Close()
		return errors.New("agent server: no runtime")
	}
	tlsCfg, err := s.TLSConfig()
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 30 * time.Second, ErrorLog: s.errorLog,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, tlsCfg)) }()
	go s.sample(ctx)
	s.log.Info("agent server listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	srv.Close() // hijacked streams are not closed by Shutdown
	s.streamTransport.CloseIdleConnections()
	return nil
}

// sample keeps CPU samples fresh so that usageNanoCores covers a recent window.
func (s *Server) sample(ctx context.Context) {
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	for {
		if s.rt != nil {
			sctx, cancel := context.WithTimeout(ctx, s.cfg.SampleInterval)
			if _, err := s.stats.Summary(sctx); err != nil && ctx.Err() == nil {
				s.log.Debug("stats sample", "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// authenticate serves only clients with a verified certificate, except on /healthz.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || s.noAuth {
			next.ServeHTTP(w, r)
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			writeStatusError(w, errorf(http.StatusUnauthorized, "Unauthorized"))
			return
		}
		if s.cfg.Authorize != nil && !s.cfg.Authorize(r.TLS.VerifiedChains[0][0]) {
			writeStatusError(w, errorf(http.StatusForbidden, "Forbidden (user=%s, path=%s)", r.TLS.VerifiedChains[0][0].Subject.CommonName, r.URL.Path))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}

// writeStatusError answers with a metav1.Status, which client-go turns into a StatusError
// (also for failed stream upgrades).
func writeStatusError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	}
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Message: err.Error(), Reason: reasonFor(code), Code: int32(code)}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&st)
}

// reasonFor is the metav1.StatusReason Kubernetes uses for an HTTP status.
func reasonFor(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	case http.StatusConflict:
		return metav1.StatusReasonConflict
	case http.StatusTooManyRequests:
		return metav1.StatusReasonTooManyRequests
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return metav1.StatusReasonServiceUnavailable
	case http.StatusGatewayTimeout:
		return metav1.StatusReasonTimeout
	}
	if code >= 500 {
		return metav1.StatusReasonInternalError
	}
	return metav1.StatusReasonUnknown
}

// writeTextError answers with plain text, as the kubelet does for containerLogs.
func writeTextError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	}
	http.Error(w, err.Error(), code)
}

func (s *Server) handleContainerLogs(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeTextError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
		return
	}
	pod, name, ok := containerPath(r.URL.Path, "containerLogs")
	if !ok {
		writeTextError(w, errorf(http.StatusNotFound, "expected /containerLogs/{namespace}/{pod}/{container}"))
		return
	}
	opts, previous, err := parseLogOptions(r.URL.Query(), time.Now())
	if err != nil {
		writeTextError(w, err)
		return
	}
	ctx := r.Context()
	target, err := logFor(ctx, s.rt, pod, name, previous)
	if err != nil {
		writeTextError(w, err)
		return
	}
	if !opts.Follow || !target.running {
		opts.Follow = false
		if _, err := os.Stat(target.path); err != nil {
			writeTextError(w, errorf(http.StatusNotFound, "log file of container %q in pod %q: %v", name, pod.Name, err))
			return
		}
	} else {
		id := target.containerID
		opts.Running = func() bool {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			st, err := s.rt.ContainerStatus(cctx, id, false)
			if err != nil {
				return ctx.Err() == nil && status.Code(err) != codes.NotFound
			}
			return st.State == runtimeapi.ContainerState_CONTAINER_RUNNING || st.State == runtimeapi.ContainerState_CONTAINER_CREATED
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if err := WriteLogs(ctx, target.path, opts, w); err != nil && ctx.Err() == nil {
		s.log.Debug("writing container logs", "pod", pod.String(), "container", name, "err", err)
	}
}

// parseLogOptions reads the containerLogs query (PodLogOptions' parameter names).
func parseLogOptions(q url.Values, now time.Time) (LogOptions, bool, error) {
	o := LogOptions{TailLines: -1}
	boolParam := func(name string) (bool, error) {
		v := q.Get(name)
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, errorf(http.StatusBadRequest, "invalid %s %q", name, v)
		}
		return b, nil
	}
	var err error
	if o.Follow, err = boolParam("follow"); err != nil {
		return o, false, err
	}
	previous, err := boolParam("previous")
	if err != nil {
		return o, false, err
	}
	if o.Timestamps, err = boolParam("timestamps"); err != nil {
		return o, false, err
	}
	intParam := func(name string, min int64) (int64, bool, error) {
		v := q.Get(name)
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			return 0, false, errorf(http.StatusBadRequest, "invalid %s %q: must be an integer of at least %d", name, v, min)
		}
		return n, true, nil
	}
	if n, ok, err := intParam("tailLines", 0); err != nil {
		return o, false, err
	} else if ok {
		o.TailLines = n
	}
	if n, ok, err := intParam("limitBytes", 1); err != nil {
		return o, false, err
	} else if ok {
		o.LimitBytes = n
	}
	n, haveSeconds, err := intParam("sinceSeconds", 1)
	if err != nil {
		return o, false, err
	}
	if haveSeconds {
		o.Since = now.Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		if haveSeconds {
			return o, false, errorf(http.StatusBadRequest, "at most one of sinceTime or sinceSeconds may be specified")
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, false, errorf(http.StatusBadRequest, "invalid sinceTime %q: %v", v, err)
		}
		o.Since = t
	}
	switch strings.ToLower(q.Get("stream")) {
	case "", "all":
	case "stdout":
		o.Stream = StreamStdout
	case "stderr":
		o.Stream = StreamStderr
	default:
		return o, false, errorf(http.StatusBadRequest, "invalid stream %q: must be one of All, Stdout, Stderr", q.Get("stream"))
	}
	if o.Stream != "" && o.TailLines >= 0 {
		// As Kubernetes: tailLines cannot be combined with a single stream.
		return o, false, errorf(http.StatusBadRequest, "tailLines and specific stream are mutually exclusive for now")
	}
	return o, previous, nil
}

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeTextError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
		return
	}
	sum, err := s.stats.Summary(r.Context())
	if err != nil {
		writeTextError(w, errorf(http.StatusInternalServerError, "failed to get summary stats: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(sum)
}

func (s *Server) handleResourceMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeTextError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
		return
	}
	sum, err := s.stats.Summary(r.Context())
	failed := err != nil
	if failed {
		s.log.Debug("resource metrics", "err", err)
		sum = &Summary{Node: s.stats.nodeStats(r.Context(), time.Now())}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = resourceMetrics(w, sum, failed)
}

func (s *Server) handlePods(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeTextError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
		return
	}
	var pods []corev1.Pod
	var err error
	if s.cfg.Pods != nil {
		pods, err = s.cfg.Pods(r.Context())
	} else {
		pods, err = podsFromRuntime(r.Context(), s.rt)
	}
	if err != nil {
		writeTextError(w, errorf(http.StatusInternalServerError, "listing pods: %v", err))
		return
	}
	if pods == nil {
		pods = []corev1.Pod{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: pods})
}
