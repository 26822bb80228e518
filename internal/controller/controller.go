// Package controller holds what every controller shares: the Context they are built from and
// the Component interface the control plane runs. Each controller lives in its own package
// under internal/controller/<name>, in the shape of kubernetes/sample-controller: informers →
// rate-limited workqueue of keys → sync(ctx, key) → act through the API.
package controller

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// Component is something the control plane runs: a controller, the scheduler, simulated nodes.
// Run blocks until ctx ends.
type Component interface {
	Name() string
	Run(ctx context.Context) error
}

// Context is what components are built from. Informers are shared: a component asks the
// factory for the informers it needs before Start; the control plane starts the factory
// once every component is built.
type Context struct {
	Config *rest.Config
	// CAData is the cluster CA (PEM) when Config does not carry it, as with the in-process
	// loopback configuration of `skiff server`; see ClusterCA.
	CAData    []byte
	Client    kubernetes.Interface
	Metadata  metadata.Interface
	Informers informers.SharedInformerFactory
	// MetadataInformers serve PartialObjectMetadata for any resource (garbage collector).
	MetadataInformers metadatainformer.SharedInformerFactory
	// Recorder builds event recorders for a component ("deployment-controller", ...).
	Recorder func(component string) record.EventRecorder
	Logger   *slog.Logger
	// SignCSR signs certificate requests with the cluster CA (nil where the CA key is not at
	// hand, as for a joined agent).
	SignCSR CSRSigner
	// Options tunes behaviour that tests need to shorten.
	Options Options
}

// CSRSigner issues a PEM certificate for a PEM certificate request with the given usages,
// valid for the given duration (0: the default).
type CSRSigner func(csrPEM []byte, usages []x509.ExtKeyUsage, keyUsage x509.KeyUsage, validity time.Duration) ([]byte, error)

// ClusterCA returns the cluster CA: CAData, else the one Config trusts (CAData, then CAFile).
func (c *Context) ClusterCA() ([]byte, error) {
	if len(c.CAData) > 0 {
		return c.CAData, nil
	}
	if c.Config == nil {
		return nil, nil
	}
	if len(c.Config.CAData) > 0 || c.Config.CAFile == "" {
		return c.Config.CAData, nil
	}
	return os.ReadFile(c.Config.CAFile)
}

// Options are timings and sizes with Kubernetes' defaults.
type Options struct {
	// NodeMonitorGracePeriod: a node whose lease is older is marked unknown (default 40s).
	NodeMonitorGracePeriod time.Duration
	Workers                int // workers per controller (default 5)
	// LocalStorageDir holds local-path volumes of this machine's node (default
	// /var/lib/skiff/storage); LocalNodeName names that node (default: the hostname).
	LocalStorageDir, LocalNodeName string
}

// Workers returns the configured worker count or the default.
func (o Options) WorkersOr(def int) int {
	if o.Workers > 0 {
		return o.Workers
	}
	return def
}
