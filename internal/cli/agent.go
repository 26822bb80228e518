package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

// newAgentCmd joins this machine to a cluster as a node: the agent, service proxy, cluster
// DNS and ingress, talking to the server with a bootstrap token.
func newAgentCmd() *cobra.Command {
	var (
		serverURL, token, caHash, dataDir, metricsAddr string
		node                                           nodeOptions
	)
	cmd := &cobra.Command{
		Use:   "agent --server URL --token TOKEN",
		Short: "Join this machine to a skiff cluster as a node",
		Long: `Run a node of an existing cluster on this machine: the node agent (containers through
containerd), the service proxy, cluster DNS and the ingress controller. The token comes from
` + "`skiff token create`" + ` on the server; --ca-cert-hash pins the cluster CA before the token is sent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serverURL == "" || token == "" {
				return errors.New("--server and --token are required")
			}
			ctx := cmd.Context()
			ca, err := discoverCA(ctx, serverURL, caHash)
			if err != nil {
				return err
			}
			rc := &rest.Config{Host: serverURL, BearerToken: token, QPS: 50, Burst: 100,
				TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})}}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			if _, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
				return fmt.Errorf("the server refused the token: %w", err)
			}
			factories, gatherers, err := node.factories(dataDir, true)
			if err != nil {
				return err
			}
			md, err := metadata.NewForConfig(rc)
			if err != nil {
				return err
			}
			broadcaster := record.NewBroadcaster(record.WithContext(ctx))
			broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
			defer broadcaster.Shutdown()
			cc := &controller.Context{
				Config: rc, Client: cs, Metadata: md,
				Informers:         informers.NewSharedInformerFactory(cs, 0),
				MetadataInformers: metadatainformer.NewSharedInformerFactory(md, 0),
				Recorder: func(component string) record.EventRecorder {
					return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
				},
				Logger: slog.Default(),
			}
			var comps []controller.Component
			for _, f := range factories {
				c, err := f(cc)
				if err != nil {
					return err
				}
				comps = append(comps, c)
			}
			cc.Informers.Start(ctx.Done())
			cc.MetadataInformers.Start(ctx.Done())
			if metricsAddr != "" {
				go serveAgentMetrics(ctx, metricsAddr, append(prometheus.Gatherers{prometheus.DefaultGatherer}, gatherers...))
			}
			slog.Info("joining the cluster", "server", serverURL, "ca", caCertHash(ca))
			var wg sync.WaitGroup
			for _, c := range comps {
				wg.Add(1)
				go func(c controller.Component) {
					defer wg.Done()
					if err := c.Run(ctx); err != nil && ctx.Err() == nil {
						slog.Error("component failed", "component", c.Name(), "err", err)
					}
				}(c)
			}
			wg.Wait()
			cc.Informers.Shutdown()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server", "", "URL of the cluster's API server, e.g. https://10.0.0.1:6443")
	f.StringVar(&token, "token", "", "bootstrap token from 'skiff token create'")
	f.StringVar(&caHash, "ca-cert-hash", "", "sha256:<hex> of the cluster CA's public key (printed by 'skiff token create'); without it the CA the server presents is trusted")
	f.StringVar(&dataDir, "data-dir", "/var/lib/skiff-agent", "directory for the agent's state, containerd and images")
	f.StringVar(&metricsAddr, "metrics-bind-address", "127.0.0.1:10249", "address serving /metrics and /healthz (empty: off)")
	node.addFlags(f)
	_ = f.MarkHidden("disable-agent")
	return cmd
}

// discoverCA connects without verification, takes the CA from the certificate chain the
// server presents, checks it against the pinned hash (when given) and verifies the server's
// certificate with it, all before any credential is sent.
func discoverCA(ctx context.Context, serverURL, pin string) (*x509.Certificate, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want https://host:port", serverURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // verified below
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", serverURL, err)
	}
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	conn.Close()
	if len(chain) == 0 {
		return nil, errors.New("the server presented no certificate")
	}
	var ca *x509.Certificate
	for _, c := range chain[1:] {
		if !c.IsCA {
			continue
		}
		if pin == "" || strings.EqualFold(caCertHash(c), pin) {
			ca = c
		}
	}
	if ca == nil {
		if pin != "" {
			return nil, fmt.Errorf("the server's CA does not match --ca-cert-hash %s", pin)
		}
		return nil, errors.New("the server presented no CA certificate; is it a skiff server?")
	}
	if pin == "" {
		slog.Warn("trusting the CA the server presented; pin it with --ca-cert-hash", "hash", caCertHash(ca))
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: u.Hostname()}); err != nil {
		return nil, fmt.Errorf("the server's certificate: %w", err)
	}
	return ca, nil
}

func serveAgentMetrics(ctx context.Context, addr string, g prometheus.Gatherers) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Warn("metrics server", "addr", addr, "err", err)
	}
}
