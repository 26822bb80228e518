package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// EtcdConfig selects embedded or external etcd.
type EtcdConfig struct {
	DataDir   string   // embedded etcd's directory (<data-dir>/etcd)
	Endpoints []string // external etcd; empty means embedded
	CAFile    string
	CertFile  string
	KeyFile   string
	// ProgressNotifyInterval paces the watch progress notifications that move the watch cache's
	// revision forward when a resource sees no writes (embedded etcd only; default 5s).
	ProgressNotifyInterval time.Duration
}

// Etcd is a running etcd connection, embedded or not.
type Etcd struct {
	Client    *clientv3.Client
	Endpoints []string
	server    *embed.Etcd
	stopOnce  sync.Once
}

// StartEtcd connects to external etcd or starts the embedded one on free loopback ports, so
// that several servers can run side by side on one machine with different data dirs.
func StartEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) > 0 {
		tlsCfg, err := clientTLS(cfg)
		if err != nil {
			return nil, err
		}
		c, err := newClient(cfg.Endpoints, tlsCfg)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := c.Status(sctx, cfg.Endpoints[0]); err != nil {
			c.Close()
			return nil, fmt.Errorf("reach etcd %v: %w", cfg.Endpoints, err)
		}
		return &Etcd{Client: c, Endpoints: cfg.Endpoints}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd dir: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = "skiff"
	ec.Dir = cfg.DataDir
	clientURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports[0]))
	peerURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialCluster = fmt.Sprintf("skiff=%s", peerURL.String())
	ec.InitialClusterToken = "skiff"
	ec.LogLevel = "error"
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// One member and no peers: a short election timeout costs nothing and makes the first
	// leader election, which dominates start-up, take tens of milliseconds instead of ~1 s.
	ec.TickMs = 10
	ec.ElectionMs = 100
	ec.MaxRequestBytes = 4 * 1024 * 1024
	ec.QuotaBackendBytes = 8 * 1024 * 1024 * 1024
	ec.WatchProgressNotifyInterval = cfg.ProgressNotifyInterval
	if ec.WatchProgressNotifyInterval == 0 {
		ec.WatchProgressNotifyInterval = 5 * time.Second
	}
	// Existing member data: restart as that member instead of bootstrapping anew.
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "member")); err == nil {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	srv, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		srv.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		srv.Close()
		return nil, errors.New("embedded etcd did not become ready within 60s")
	case <-ctx.Done():
		srv.Close()
		return nil, ctx.Err()
	}
	endpoints := []string{clientURL.String()}
	c, err := newClient(endpoints, nil)
	if err != nil {
		srv.Close()
		return nil, err
	}
	slog.Info("embedded etcd ready", "dir", cfg.DataDir, "endpoint", endpoints[0])
	return &Etcd{Client: c, Endpoints: endpoints, server: srv}, nil
}

// Close closes the client and stops the embedded server, flushing its data.
func (e *Etcd) Close() {
	e.stopOnce.Do(func() {
		e.Client.Close()
		if e.server != nil {
			e.server.Close()
		}
	})
}

func newClient(endpoints []string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        10 * time.Second,
		TLS:                tlsCfg,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: 8 * 1024 * 1024,
		MaxCallRecvMsgSize: 512 * 1024 * 1024,
		DialOptions:        []grpc.DialOption{},
	})
}

func clientTLS(cfg EtcdConfig) (*tls.Config, error) {
	usesTLS := false
	for _, ep := range cfg.Endpoints {
		if strings.HasPrefix(ep, "https://") {
			usesTLS = true
		}
	}
	if !usesTLS && cfg.CAFile == "" && cfg.CertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read etcd ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd ca %s holds no certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load etcd client cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RunCompactor compacts etcd every interval to the revision seen one interval earlier, so
// that watches may resume within that window and history does not grow without bound.
func RunCompactor(ctx context.Context, c *clientv3.Client, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := c.Get(ctx, "/registry/compact-revision", clientv3.WithCountOnly())
		if err != nil {
			slog.Warn("compaction: read revision", "err", err)
			continue
		}
		if last > 0 {
			if _, err := c.Compact(ctx, last); err != nil && !strings.Contains(err.Error(), "compacted") {
				slog.Warn("compaction failed", "revision", last, "err", err)
			} else {
				slog.Debug("compacted etcd", "revision", last)
			}
		}
		last = resp.Header.Revision
	}
}
