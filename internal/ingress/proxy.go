package ingress

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-sh/skiff/internal/promutil"
)

// metrics of the proxy.
type metrics struct {
	requests *prometheus.CounterVec   // ingress, code
	upstream *prometheus.HistogramVec // ingress
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_ingress_requests_total",
			Help: "Requests through the ingress proxy by Ingress (namespace/name, empty when no rule matched) and status code.",
		}, []string{"ingress", "code"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_ingress_upstream_latency_seconds",
			Help:    "Time from sending a request to an endpoint to its response headers, by Ingress.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"ingress"}),
	}
	m.requests, _ = promutil.Register(reg, m.requests)
	m.upstream, _ = promutil.Register(reg, m.upstream)
	return m
}

type ctxKey struct{}

// proxy is the HTTP handler of both listeners.
type proxy struct {
	log     *slog.Logger
	table   *atomic.Pointer[table]
	metrics *metrics
	rp      *httputil.ReverseProxy
}

func newProxy(log *slog.Logger, t *atomic.Pointer[table], m *metrics) *proxy {
	p := &proxy{log: log, table: t, metrics: m}
	base := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          2048,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    &retryTransport{base: base, metrics: m},
		ErrorHandler: p.proxyError,
		BufferPool:   bufferPool{},
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	be, ok := p.table.Load().lookup(r.Host, r.URL.Path)
	switch {
	case !ok:
		http.Error(sw, "404 page not found: no ingress rule matches", http.StatusNotFound)
	case len(be.addrs) == 0:
		http.Error(sw, "503 service unavailable: "+be.reason, http.StatusServiceUnavailable)
	default:
		p.rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, be)))
	}
	code := sw.code
	if code == 0 {
		code = http.StatusOK
		if r.Header.Get("Upgrade") != "" {
			code = http.StatusSwitchingProtocols // hijacked by the reverse proxy
		}
	}
	label := ""
	if be != nil {
		label = be.ingress
	}
	p.metrics.requests.WithLabelValues(label, strconv.Itoa(code)).Inc()
}

// rewrite sends the request to the next endpoint of its backend with the original Host header,
// X-Forwarded-For/Host/Proto/Port and X-Real-IP.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	be := pr.In.Context().Value(ctxKey{}).(*backend)
	addr, _ := be.pick()
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = addr
	pr.SetXForwarded()
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		pr.Out.Header.Set("X-Real-IP", ip)
	}
	if la, ok := pr.In.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(la.String()); err == nil {
			pr.Out.Header.Set("X-Forwarded-Port", port)
		}
	}
}

func (p *proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		// The client went away; 499 as nginx logs it (nobody reads the answer).
		w.WriteHeader(499)
		return
	}
	code := http.StatusBadGateway
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		code = http.StatusGatewayTimeout
	}
	p.log.Debug("upstream error", "host", r.Host, "path", r.URL.Path, "upstream", r.URL.Host, "err", err)
	http.Error(w, http.StatusText(code), code)
}

// retryTransport sends the request and, when the endpoint refuses the connection (nothing
// was sent), retries once on another endpoint of the same backend. It records upstream latency.
type retryTransport struct {
	base    http.RoundTripper
	metrics *metrics
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	be, _ := req.Context().Value(ctxKey{}).(*backend)
	var body *onceBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &onceBody{rc: req.Body}
		req.Body = body
	}
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err != nil && be != nil && len(be.addrs) > 1 && errors.Is(err, syscall.ECONNREFUSED) &&
		(body == nil || body.read.Load() == 0) && req.Context().Err() == nil {
		failed := req.URL.Host
		for range len(be.addrs) {
			addr, _ := be.pick()
			if addr == failed {
				continue
			}
			retry := req.Clone(req.Context())
			retry.URL.Host = addr
			start = time.Now()
			resp, err = t.base.RoundTrip(retry)
			break
		}
	}
	if be != nil && err == nil {
		t.metrics.upstream.WithLabelValues(be.ingress).Observe(time.Since(start).Seconds())
	}
	return resp, err
}

// onceBody counts what the transport read of a request body and keeps the body open when
// the transport closes it after a failed attempt (the server closes it after the handler).
type onceBody struct {
	rc   io.ReadCloser
	read atomic.Int64
}

func (b *onceBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *onceBody) Close() error { return nil }

// statusWriter records the status code; Unwrap lets http.ResponseController reach Flush and
// Hijack of the underlying writer (streaming, websockets).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufferPool recycles the copy buffers of the reverse proxy.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
