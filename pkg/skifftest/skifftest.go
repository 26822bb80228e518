// Package skifftest starts a whole skiff control plane inside a Go test: embedded etcd in a
// temporary directory, the API server on a free loopback port, and an admin client. Nothing
// is downloaded; it is ready in well under a second.
//
//	func TestMyController(t *testing.T) {
//		c := skifftest.Start(t)
//		_, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
//		...
//	}
package skifftest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controlplane"
)

// Cluster is a running in-process control plane.
type Cluster struct {
	*controlplane.ControlPlane
	// Config is an admin client configuration; Client a clientset built from it.
	Config *rest.Config
	Client kubernetes.Interface
}

// Options tune Start; the zero value is fine.
type Options struct {
	// DataDir keeps etcd data in a chosen directory (default: a fresh t.TempDir()).
	DataDir string
	// Verbose sends the control plane's logs to stderr (also with SKIFF_TEST_VERBOSE=1).
	Verbose bool
	// Controllers replaces the default leader-elected components (controllers, scheduler):
	// nil runs the defaults, an empty non-nil slice runs none.
	Controllers []controlplane.ComponentFactory
	// NodeComponents run beside them (simulated nodes).
	NodeComponents []controlplane.ComponentFactory
	// Port fixes the API server's port (default: a free one), e.g. to restart on the same one.
	Port int
	// ControllerOptions shortens timings for tests.
	ControllerOptions controller.Options
}

// Start starts a control plane that stops when the test ends.
func Start(t testing.TB, opts ...Options) *Cluster {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.Verbose || os.Getenv("SKIFF_TEST_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cp, err := controlplane.Start(context.Background(), controlplane.Config{DataDir: o.DataDir, Port: o.Port, Logger: logger,
		Controllers: o.Controllers, NodeComponents: o.NodeComponents, ControllerOptions: o.ControllerOptions})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(cp.Stop)
	rc, err := cp.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &Cluster{ControlPlane: cp, Config: rc, Client: cs}
}
