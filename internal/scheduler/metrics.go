package scheduler

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-sh/skiff/internal/promutil"
)

// Metrics, named as kube-scheduler names them.
var (
	metricsOnce sync.Once

	scheduleAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "scheduler", Name: "schedule_attempts_total",
		Help: "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
	}, []string{"result", "profile"})
	attemptDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "scheduler", Name: "scheduling_attempt_duration_seconds",
		Help:    "Scheduling attempt latency in seconds (scheduling algorithm + binding).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"result", "profile"})
	algorithmDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "scheduler", Name: "scheduling_algorithm_duration_seconds",
		Help:    "Scheduling algorithm latency in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15),
	})
	e2eDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "scheduler", Name: "pod_scheduling_sli_duration_seconds",
		Help:    "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue until it is bound.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 20),
	}, []string{"attempts"})
	pendingPods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "scheduler", Name: "pending_pods",
		Help: "Number of pending pods, by the queue type.",
	}, []string{"queue"})
	preemptionAttempts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "scheduler", Name: "preemption_attempts_total",
		Help: "Total preemption attempts in the cluster till now.",
	})
)

// register adds c to the default registry, reusing an identical collector already there
// (several schedulers in one process, as in tests).
func register[T prometheus.Collector](c T) T {
	c, _ = promutil.Register(prometheus.DefaultRegisterer, c)
	return c
}

func registerMetrics() {
	metricsOnce.Do(func() {
		scheduleAttempts = register(scheduleAttempts)
		attemptDuration = register(attemptDuration)
		algorithmDuration = register(algorithmDuration)
		e2eDuration = register(e2eDuration)
		pendingPods = register(pendingPods)
		preemptionAttempts = register(preemptionAttempts)
	})
}
