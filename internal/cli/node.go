package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/agent/server"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/dns"
	"github.com/skiff-sh/skiff/internal/ingress"
	"github.com/skiff-sh/skiff/internal/network"
	"github.com/skiff-sh/skiff/internal/proxy"
)

// nodeOptions are the flags of a node's own components (the agent with its HTTPS server, pod
// routes, service proxy, cluster DNS, ingress), shared by `skiff server` and `skiff agent`.
type nodeOptions struct {
	disableAgent bool
	disable      []string
	agent        agent.Config
	labels       []string
	ingressHTTP  int
	ingressHTTPS int
	dnsPort      int
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
	f.StringSliceVar(&o.disable, "disable", nil, "node components not to run with the agent: proxy, dns, ingress, routes (comma-separated)")
	f.IntVar(&o.ingressHTTP, "ingress-http-port", 80, "port of the ingress controller's HTTP listener (0: none)")
	f.IntVar(&o.ingressHTTPS, "ingress-https-port", 443, "port of the ingress controller's HTTPS listener (0: none)")
	f.StringVar(&o.agent.Bridge, "cni-bridge", "", "name of the pod network's bridge (default skiff0; two agents on one machine need two)")
	f.IntVar(&o.dnsPort, "cluster-dns-port", 53, "port the cluster DNS server listens on at the node IP (the kube-dns service forwards to it)")
}

// nodeName is the name of this machine's Node: --node-name, or the hostname in lower case.
func (o *nodeOptions) nodeName() string {
	if o.agent.NodeName != "" {
		return o.agent.NodeName
	}
	h, _ := os.Hostname()
	return strings.ToLower(h)
}

func (o *nodeOptions) disabled(name string) bool {
	for _, d := range o.disable {
		if strings.TrimSpace(d) == name {
			return true
		}
	}
	return false
}

// factories returns a node's components: the agent, pod routes, the service proxy, cluster
// DNS and the ingress controller (none of them with --disable-agent: they serve a real node),
// and the gatherers of their metrics.
// On a joined node (joined), the agent serves a self-signed certificate and the node is no
// control-plane node.
func (o *nodeOptions) factories(dataDir string, joined bool) ([]controlplane.ComponentFactory, prometheus.Gatherers, error) {
	if o.disableAgent {
		return nil, nil, nil
	}
	for _, d := range o.disable {
		switch strings.TrimSpace(d) {
		case "proxy", "dns", "ingress", "routes":
		default:
			return nil, nil, fmt.Errorf("--disable %q: want proxy, dns, ingress or routes", d)
		}
	}
	cfg := o.agent
	cfg.NodeName = o.nodeName()
	if cfg.NodeIP == "" {
		cfg.NodeIP = agent.DefaultNodeIP()
	}
	cfg.DataDir = filepath.Join(dataDir, "agent")
	cfg.Labels = map[string]string{}
	if !joined {
		cfg.Labels["node-role.kubernetes.io/control-plane"] = "true"
	}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, nil, fmt.Errorf("--node-label %q: want key=value", l)
		}
		cfg.Labels[k] = v
	}
	tlsDir := filepath.Join(dataDir, "tls")
	if joined {
		tlsDir = ""
	}
	build := agent.NewFactory(cfg)
	out := []controlplane.ComponentFactory{func(cc *controller.Context) (controller.Component, error) {
		c, err := build(cc)
		if err != nil {
			return nil, err
		}
		return &nodeAgent{Agent: c.(*agent.Agent), tlsDir: tlsDir}, nil
	}}
	var gatherers prometheus.Gatherers
	var nodeIPs []string
	if cfg.NodeIP != "" {
		nodeIPs = []string{cfg.NodeIP}
	}
	if !o.disabled("routes") {
		out = append(out, network.NewFactory(network.Config{NodeName: cfg.NodeName, NodeIPs: nodeIPs}))
	}
	if !o.disabled("proxy") {
		out = append(out, proxy.NewFactory(proxy.Config{NodeName: cfg.NodeName, NodeIPs: nodeIPs,
			Registerer: prometheus.DefaultRegisterer}))
	}
	if !o.disabled("dns") {
		reg := prometheus.NewRegistry()
		gatherers = append(gatherers, reg)
		host := cfg.NodeIP
		if host == "" {
			host = "127.0.0.1"
		}
		out = append(out, dns.NewFactory(dns.Config{
			ListenAddresses: []string{net.JoinHostPort(host, strconv.Itoa(o.dnsPort))},
			Domain:          cfg.ClusterDomain, NodeName: cfg.NodeName, NodeIP: cfg.NodeIP,
			ServiceIP: strings.Split(cfg.ClusterDNS, ",")[0], Registry: reg,
		}))
	}
	if !o.disabled("ingress") {
		ic := ingress.Config{NodeIP: cfg.NodeIP, Registry: prometheus.DefaultRegisterer,
			ListenHTTP: []string{}, ListenHTTPS: []string{}}
		if o.ingressHTTP > 0 {
			ic.ListenHTTP = []string{net.JoinHostPort("", strconv.Itoa(o.ingressHTTP))}
		}
		if o.ingressHTTPS > 0 {
			ic.ListenHTTPS = []string{net.JoinHostPort("", strconv.Itoa(o.ingressHTTPS))}
		}
		out = append(out, ingress.NewFactory(ic))
	}
	return out, gatherers, nil
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
	hosts := []string{cfg.NodeName, "localhost", "127.0.0.1"}
	if cfg.NodeIP != "" {
		hosts = append(hosts, cfg.NodeIP)
	}
	if h, _ := os.Hostname(); h != "" && h != cfg.NodeName {
		hosts = append(hosts, h)
	}
	pool := x509.NewCertPool()
	var cert tls.Certificate
	if n.tlsDir != "" {
		// On the server's own node: a serving certificate from the cluster CA.
		caCert, caKey, err := server.LoadCA(filepath.Join(n.tlsDir, "ca.crt"), filepath.Join(n.tlsDir, "ca.key"))
		if err != nil {
			return nil, fmt.Errorf("agent server certificate: %w", err)
		}
		if cert, err = server.SignServingCert(caCert, caKey, cfg.NodeName, hosts, 365*24*time.Hour); err != nil {
			return nil, err
		}
		pool.AddCert(caCert)
	} else {
		// A joined node has no CA key: a self-signed serving certificate (the API server
		// does not verify agents' certificates), and the cluster CA to verify the API
		// server's client certificate.
		var err error
		if cert, err = server.SelfSignedServingCert(cfg.NodeName, hosts, 365*24*time.Hour); err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			return nil, errors.New("agent server: no cluster CA to verify clients with")
		}
	}
	return server.New(server.Config{
		Addr:        net.JoinHostPort("", strconv.Itoa(cfg.StreamingPort)),
		Certificate: cert, ClientCAs: pool,
		Runtime: n.Runtime(), NodeName: cfg.NodeName, Pods: n.Pods, FsPath: cfg.DataDir,
		Logger: cfg.Logger,
	}), nil
}
