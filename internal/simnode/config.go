// Package simnode simulates kubelets: it registers Node objects that look like real worker
// nodes, keeps their leases fresh, and plays the part of the kubelet for pods bound to them
// (Running and Ready after a short delay with an IP from the node's podCIDR, graceful
// deletion, and scripted container exits). Nothing runs: no containers, no network.
//
// It is built to be cheap in bulk. Every node and pod is a key in a rate-limited workqueue
// whose delaying heap is the only timer — one queue for pods, one for leases and node status,
// so that a burst of pods never holds lease renewals up — and a few workers do the writes. Thousands of nodes
// cost a lease update each per renew interval, spread evenly, and nothing else while idle.
//
// Simulated nodes carry the annotation skiff.dev/simulated=<owner>. A manager touches only
// the nodes whose annotation names its owner, so real nodes and other simulators coexist.
package simnode

import (
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	// AnnotationSimulated marks a simulated node; its value names the owner that simulates it.
	AnnotationSimulated = "skiff.dev/simulated"
	// AnnotationPaused on a simulated node ("true") stops its kubelet: no lease renewals, no
	// status updates, no pod handling — the node goes Unknown as if it had died.
	AnnotationPaused = "skiff.dev/sim-paused"
	// AnnotationExitCode on a pod makes its containers exit with that code (after
	// AnnotationExitAfter, default at once).
	AnnotationExitCode = "skiff.dev/sim-exit-code"
	// AnnotationExitAfter on a pod makes its containers exit this long after they start
	// (a Go duration such as "30s", or seconds); the exit code defaults to 0.
	AnnotationExitAfter = "skiff.dev/sim-exit-after"

	// DefaultOwner is the owner a Config without one gets.
	DefaultOwner = "skiff"
	// InstanceType is the node.kubernetes.io/instance-type of simulated nodes.
	InstanceType = "skiff-simulated"
	// KubeletVersion is what simulated nodes report.
	KubeletVersion = "v1.37.2-skiff-sim"
	// RuntimeVersion is the container runtime simulated nodes report; container IDs use its scheme.
	RuntimeVersion = "skiff-sim://1.0"
	runtimeScheme  = "skiff-sim://"

	// NodeLeaseNamespace holds the node leases.
	NodeLeaseNamespace = "kube-node-lease"
	kubeletPort        = 10250
)

// Config describes a set of simulated nodes. The zero value of every field means its default.
type Config struct {
	// Count is how many nodes to keep: <Prefix>0 … <Prefix><Count-1>.
	Count int
	// Prefix starts every node name (default "sim-").
	Prefix string
	// Owner is the value of the skiff.dev/simulated annotation; a manager simulates every node
	// carrying its owner, including ones another process registered with Add (default "skiff").
	Owner string

	// CPU, Memory, Pods and EphemeralStorage are each node's capacity (defaults 32, 256Gi,
	// 110, 1Ti); allocatable equals capacity.
	CPU, Memory, Pods, EphemeralStorage resource.Quantity
	// Labels are added to every node besides the well-known ones.
	Labels map[string]string
	// Taints are set on every node at registration.
	Taints []corev1.Taint

	// StartDelay is how long after binding a pod goes Running and Ready (default 500ms).
	StartDelay time.Duration
	// StopDelay caps how long a graceful deletion takes: the pod goes after
	// min(grace period, StopDelay) (default 1s).
	StopDelay time.Duration
	// LeaseDuration is each node lease's leaseDurationSeconds (default 40s; NewFactory uses the
	// control plane's NodeMonitorGracePeriod when that is set).
	LeaseDuration time.Duration
	// RenewInterval is how often each lease is renewed (default LeaseDuration/4 but at least
	// 10s, LeaseDuration/3 beyond 1000 nodes; LeaseDuration/4 when 10s would exceed half the
	// lease). Renewals are spread evenly over the interval.
	RenewInterval time.Duration

	// Workers write pod status to the API (default 4).
	Workers int
	// LeaseWorkers renew leases and repair node status, apart from the pod workers (default
	// one per 500 nodes, at least 4: thousands of nodes renew hundreds of leases a second).
	LeaseWorkers int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "sim-"
	}
	if c.Owner == "" {
		c.Owner = DefaultOwner
	}
	if c.CPU.IsZero() {
		c.CPU = resource.MustParse("32")
	}
	if c.Memory.IsZero() {
		c.Memory = resource.MustParse("256Gi")
	}
	if c.Pods.IsZero() {
		c.Pods = resource.MustParse("110")
	}
	if c.EphemeralStorage.IsZero() {
		c.EphemeralStorage = resource.MustParse("1Ti")
	}
	if c.StartDelay == 0 {
		c.StartDelay = 500 * time.Millisecond
	}
	if c.StopDelay == 0 {
		c.StopDelay = time.Second
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 40 * time.Second
	}
	if c.RenewInterval <= 0 {
		// A kubelet renews every quarter lease, at least every 10s; thousands of nodes renew
		// every third. Never less often than twice per lease.
		c.RenewInterval = c.LeaseDuration / 4
		if c.Count > 1000 {
			c.RenewInterval = c.LeaseDuration / 3
		}
		if c.RenewInterval < 10*time.Second {
			c.RenewInterval = 10 * time.Second
		}
		if c.RenewInterval > c.LeaseDuration/2 {
			c.RenewInterval = c.LeaseDuration / 4
		}
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.LeaseWorkers <= 0 {
		c.LeaseWorkers = max(4, c.Count/500)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
