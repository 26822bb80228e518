package apiserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watchers prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apiserver_request_total",
		Help: "API requests by verb, resource and HTTP code."}, []string{"verb", "resource", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "apiserver_request_duration_seconds",
		Help: "API request latency by verb.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"verb"})
	m.watchers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "apiserver_registered_watchers", Help: "Open watch streams."})
	// Go and process metrics come from prometheus.DefaultGatherer, served beside these.
	m.reg.MustRegister(m.requests, m.latency, m.watchers)
	return m
}

func (m *metrics) registerCaches(s *Server) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "apiserver_watch_cache_objects",
		Help: "Objects held in the watch caches."}, func() float64 {
		n := 0
		for _, ep := range s.endpoints {
			o, _, _ := ep.cacher.Stats()
			n += o
		}
		return float64(n)
	}))
}

// handler serves the API server's metrics with the process-wide default registry (Go and
// process collectors, controllers, scheduler) and any further gatherers.
func (m *metrics) handler(extra prometheus.Gatherers) http.Handler {
	g := append(prometheus.Gatherers{m.reg, prometheus.DefaultGatherer}, extra...)
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func (m *metrics) observe(r *http.Request, code int, d time.Duration) {
	verb := r.Method
	if r.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	m.requests.WithLabelValues(verb, resourceOf(r.URL.Path), strconv.Itoa(code)).Inc()
	if verb != "WATCH" {
		m.latency.WithLabelValues(verb).Observe(d.Seconds())
	}
}

// resourceOf extracts the resource segment of an API path for metric labels (bounded set).
func resourceOf(path string) string {
	var parts []string
	start := 1
	for i := 1; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			parts = append(parts, path[start:i])
			start = i + 1
		}
	}
	if len(parts) < 3 {
		return ""
	}
	if parts[0] == "api" {
		parts = parts[2:]
	} else if parts[0] == "apis" && len(parts) >= 4 {
		parts = parts[3:]
	} else {
		return ""
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		return parts[2]
	}
	return parts[0]
}
