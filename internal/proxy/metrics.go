package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-sh/skiff/internal/promutil"
)

type metrics struct {
	syncDuration *prometheus.HistogramVec
	lastSync     prometheus.Gauge
	services     prometheus.Gauge
	syncErrors   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_proxy_sync_duration_seconds",
			Help:    "Time to compute and program the service proxy's nftables rules, by kind (full or partial).",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_proxy_last_sync_timestamp_seconds",
			Help: "Unix time of the last successful sync of the service proxy's rules.",
		}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "skiff_proxy_programmed_services",
			Help: "Number of services with rules in the service proxy's table.",
		}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_proxy_sync_errors_total",
			Help: "Failed syncs of the service proxy's rules.",
		}),
	}
	var err error
	m.syncDuration = register(reg, m.syncDuration, &err)
	m.lastSync = register(reg, m.lastSync, &err)
	m.services = register(reg, m.services, &err)
	m.syncErrors = register(reg, m.syncErrors, &err)
	return m, err
}

// register registers c (see promutil.Register), keeping the first error in *errp.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	c, err := promutil.Register(reg, c)
	if err != nil && *errp == nil {
		*errp = err
	}
	return c
}
