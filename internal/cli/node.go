package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/agent/server"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controlplane"
)

// nodeOptions are the flags of the node's own components (agent, and with it the
// streaming server) shared by `skiff server`.
type nodeOptions struct {
	disableAgent bool
	agent        agent.Config
	labels       []string
}

func (o *nodeOptions) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.disableAgent, "disable-agent", false, "do not run a node agent (real containers) on this machine")
	f.StringVar(&o.agent.NodeName, "node-name", "", "name of this machine's Node (default: the hostname)")
	f.StringVar(&o.agent.RuntimeEndpoint, "container-runtime-endpoint", "", "socket of an existing containerd (default: start a managed one under <data-dir>/agent/containerd)")
	f.StringVar(&o.agent.ClusterDNS, "cluster-dns", "10.43.0.10", "DNS server address pods with dnsPolicy ClusterFirst use")
	f.StringVar(&o.agent.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	f.StringVar(&o.agent.NodeIP, "node-ip", "", "the node's InternalIP (default: the first non-loopback IPv4 address)")
	f.StringVar(&o.agent.PodCIDR, "pod-cidr", "", "this node's pod network (default: assigned by the control plane from 10.42.0.0/16)")
	f.IntVar(&o.agent.MaxPods, "max-pods", 110, "pods this node runs at most")
	f.IntVar(&o.agent.StreamingPort, "kubelet-port", 10250, "port of the agent's HTTPS server (logs, exec, port-forward, stats)")
	f.StringSliceVar(&o.labels, "node-label", nil, "extra Node labels, key=value (repeatable)")
}

// factories returns the node components `skiff server` runs beside the control plane.
func (o *nodeOptions) factories(dataDir string) ([]controlplane.ComponentFactory, error) {
	if o.disableAgent {
		return nil, nil
	}
	cfg := o.agent
	cfg.DataDir = filepath.Join(dataDir, "agent")
	cfg.Labels = map[string]string{"node-role.kubernetes.io/control-plane": "true"}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--node-label %q: want key=value", l)
		}
		cfg.Labels[k] = v
	}
	tlsDir := filepath.Join(dataDir, "tls")
	build := agent.NewFactory(cfg)
	return []controlplane.ComponentFactory{func(cc *controller.Context) (controller.Component, error) {
		c, err := build(cc)
		if err != nil {
			return nil, err
		}
		return &nodeAgent{Agent: c.(*agent.Agent), tlsDir: tlsDir}, nil
	}}, nil
}

// nodeAgent runs the agent and, once it is connected to its runtime, the agent's HTTPS
// server (logs, exec, attach, port-forward, stats) with a certificate from the cluster CA.
type nodeAgent struct {
	*agent.Agent
	tlsDir string
}

func (n *nodeAgent) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- n.Agent.Run(ctx) }()
	select {
	case err := <-errc:
		return err
	case <-n.Ready():
	}
	srv, err := n.server()
	if err != nil {
		return errors.Join(err, <-errc)
	}
	go func() {
		if err := srv.Run(ctx); err != nil && ctx.Err() == nil {
			n.Config().Logger.Error("agent server stopped", "err", err)
		}
	}()
	return <-errc
}

func (n *nodeAgent) server() (*server.Server, error) {
	cfg := n.Config()
	caCert, caKey, err := server.LoadCA(filepath.Join(n.tlsDir, "ca.crt"), filepath.Join(n.tlsDir, "ca.key"))
	if err != nil {
		return nil, fmt.Errorf("agent server certificate: %w", err)
	}
	hosts := []string{cfg.NodeName, "localhost", "127.0.0.1"}
	if cfg.NodeIP != "" {
		hosts = append(hosts, cfg.NodeIP)
	}
	if h, _ := os.Hostname(); h != "" && h != cfg.NodeName {
		hosts = append(hosts, h)
	}
	cert, err := server.SignServingCert(caCert, caKey, cfg.NodeName, hosts, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return server.New(server.Config{
		Addr:        net.JoinHostPort("", strconv.Itoa(cfg.StreamingPort)),
		Certificate: cert, ClientCAs: pool,
		Runtime: n.Runtime(), NodeName: cfg.NodeName, Pods: n.Pods, FsPath: cfg.DataDir,
		Logger: cfg.Logger,
	}), nil
}
