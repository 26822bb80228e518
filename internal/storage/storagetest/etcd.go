// Package storagetest starts etcd for tests: embedded by default, or an external etcd process
// when SKIFF_TEST_ETCD=external (the binary from $SKIFF_ETCD_BINARY, `etcd` on PATH, or
// bin/etcd built by `make etcd`).
package storagetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-sh/skiff/internal/storage"
)

// Mode is "embedded" or "external".
func Mode() string {
	if os.Getenv("SKIFF_TEST_ETCD") == "external" {
		return "external"
	}
	return "embedded"
}

// Start returns a client to a fresh etcd that lives as long as the test.
func Start(t testing.TB) *clientv3.Client {
	t.Helper()
	if Mode() == "external" {
		return startExternal(t)
	}
	e, err := storage.StartEtcd(context.Background(), storage.EtcdConfig{DataDir: filepath.Join(t.TempDir(), "etcd"), ProgressNotifyInterval: time.Second})
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Client
}

// Binary finds an etcd binary.
func Binary() (string, error) {
	if b := os.Getenv("SKIFF_ETCD_BINARY"); b != "" {
		return b, nil
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	// Walk up to the module root's bin/etcd.
	dir, _ := os.Getwd()
	for i := 0; i < 6; i++ {
		p := filepath.Join(dir, "bin", "etcd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		dir = filepath.Dir(dir)
	}
	return "", fmt.Errorf("no etcd binary: set SKIFF_ETCD_BINARY or run `make etcd`")
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startExternal(t testing.TB) *clientv3.Client {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cport, pport := freePort(t), freePort(t)
	curl := fmt.Sprintf("http://127.0.0.1:%d", cport)
	purl := fmt.Sprintf("http://127.0.0.1:%d", pport)
	cmd := exec.Command(bin, "--data-dir", dir, "--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl, "--initial-cluster", "default="+purl,
		"--watch-progress-notify-interval=1s", "--log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	e, err := storage.StartEtcd(context.Background(), storage.EtcdConfig{Endpoints: []string{curl}})
	if err != nil {
		t.Fatalf("connect to external etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Client
}
