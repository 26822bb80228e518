package cli

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff-sh/skiff/internal/apiserver"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/gctune"
	"github.com/skiff-sh/skiff/internal/simnode"
)

func newServerCmd() *cobra.Command {
	var (
		cfg          controlplane.Config
		etcdEndpoint string
		sim          simnode.Config
		simCPU       string
		simMemory    string
		simPods      string
		node         nodeOptions
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a whole cluster: etcd, API server and the cluster's components",
		Long: `Run a skiff cluster on this machine. The API server listens on HTTPS
(--bind-address:--https-listen-port, default 127.0.0.1:6443) over an embedded etcd kept under
--data-dir, or an external etcd cluster given with --etcd-endpoints. An admin kubeconfig is
written to <data-dir>/kubeconfig.yaml (or --write-kubeconfig).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if etcdEndpoint != "" {
				cfg.Etcd.Endpoints = strings.Split(etcdEndpoint, ",")
			}
			for name, v := range map[string]struct {
				s   string
				dst *resource.Quantity
			}{"--simulated-node-cpu": {simCPU, &sim.CPU}, "--simulated-node-memory": {simMemory, &sim.Memory}, "--simulated-node-pods": {simPods, &sim.Pods}} {
				q, err := resource.ParseQuantity(v.s)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				*v.dst = q
			}
			// The simulated kubelet always runs, so that nodes added later with
			// `skiff simnodes add` are kept alive too.
			cfg.NodeComponents = append(cfg.NodeComponents, simnode.NewFactory(sim))
			cfg.ControllerOptions.LocalStorageDir = filepath.Join(cfg.DataDir, "storage")
			cfg.ControllerOptions.LocalNodeName = node.nodeName()
			nodeFactories, gatherers, err := node.factories(cfg.DataDir, false)
			if err != nil {
				return err
			}
			cfg.NodeComponents = append(cfg.NodeComponents, nodeFactories...)
			cfg.Metrics = append(cfg.Metrics, gatherers...)
			ctx := cmd.Context()
			// Big clusters trade memory for CPU (GOGC 200 above a 128 MiB live heap); an
			// explicit GOGC wins.
			go gctune.Run(ctx, gctune.Options{}, slog.Default())
			cp, err := controlplane.Start(ctx, cfg)
			if err != nil {
				return err
			}
			slog.Info("skiff is running", "url", cp.URL, "kubeconfig", cp.Kubeconfig)
			fmt.Fprintf(cmd.ErrOrStderr(), "skiff is ready. Try: KUBECONFIG=%s kubectl get nodes\n", cp.Kubeconfig)
			select {
			case <-ctx.Done():
				slog.Info("shutting down")
			case <-cp.Done():
			}
			cp.Stop()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/skiff", "directory for etcd data, certificates and the kubeconfig")
	f.StringVar(&cfg.BindAddress, "bind-address", "127.0.0.1", "address the API server listens on")
	f.IntVar(&cfg.Port, "https-listen-port", 6443, "HTTPS port of the API server (0 picks a free port)")
	f.StringVar(&cfg.KubeconfigPath, "write-kubeconfig", "", "where to write the admin kubeconfig (default <data-dir>/kubeconfig.yaml)")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "address pods and nodes reach the API server on (default: bind address, or the first non-loopback IPv4)")
	f.StringSliceVar(&cfg.AdvertiseHosts, "tls-san", nil, "extra host names or IPs for the serving certificate")
	f.StringVar(&etcdEndpoint, "etcd-endpoints", "", "comma-separated external etcd endpoints (default: embedded etcd)")
	f.StringVar(&cfg.Etcd.CAFile, "etcd-cafile", "", "CA bundle for an external etcd")
	f.StringVar(&cfg.Etcd.CertFile, "etcd-certfile", "", "client certificate for an external etcd")
	f.StringVar(&cfg.Etcd.KeyFile, "etcd-keyfile", "", "client key for an external etcd")
	f.DurationVar(&cfg.CompactionInterval, "etcd-compaction-interval", 5*time.Minute, "how often etcd history is compacted")
	f.IntVar(&sim.Count, "simulated-nodes", 0, "number of simulated nodes (pods on them go Running without containers)")
	f.StringVar(&simCPU, "simulated-node-cpu", "32", "CPU capacity of each simulated node")
	f.StringVar(&simMemory, "simulated-node-memory", "256Gi", "memory capacity of each simulated node")
	f.StringVar(&simPods, "simulated-node-pods", "110", "pod capacity of each simulated node")
	f.DurationVar(&sim.StartDelay, "simulated-pod-start-delay", 500*time.Millisecond, "how long a pod on a simulated node takes to become Running and Ready")
	f.DurationVar(&cfg.ControllerOptions.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "how long a node may go without renewing its lease before it is marked unhealthy")
	f.Int64Var(&apiserver.DefaultNotReadyTolerationSeconds, "default-not-ready-toleration-seconds", 300, "tolerationSeconds added to pods for the not-ready taint")
	f.Int64Var(&apiserver.DefaultUnreachableTolerationSeconds, "default-unreachable-toleration-seconds", 300, "tolerationSeconds added to pods for the unreachable taint")
	node.addFlags(f)
	return cmd
}
