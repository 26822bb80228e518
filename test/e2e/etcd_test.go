package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func etcdBinary(t *testing.T) string {
	if b := os.Getenv("SKIFF_ETCD_BINARY"); b != "" {
		return b
	}
	b := filepath.Join(filepath.Dir(binary(t)), "etcd")
	if _, err := os.Stat(b); err != nil {
		t.Skipf("no etcd binary at %s (make etcd)", b)
	}
	return b
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// skiff server over an external etcd keeps its objects there: a second server started on the
// same etcd (after the first stops) sees them.
func TestServerWithExternalEtcd(t *testing.T) {
	cport, pport := freePort(t), freePort(t)
	curl := fmt.Sprintf("http://127.0.0.1:%d", cport)
	purl := fmt.Sprintf("http://127.0.0.1:%d", pport)
	etcd := exec.Command(etcdBinary(t), "--data-dir", t.TempDir(), "--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl, "--initial-cluster", "default="+purl, "--log-level", "error")
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = etcd.Process.Kill(); _ = etcd.Wait() })
	time.Sleep(300 * time.Millisecond)

	s1 := startServer(t, "--etcd-endpoints", curl)
	k := s1.kubectls()[0]
	k.run("create", "configmap", "external", "--from-literal=a=b")
	s1.stop()

	s2 := startServer(t, "--etcd-endpoints", curl)
	k2 := s2.kubectls()[0]
	if got := k2.run("get", "cm", "external", "-o", "jsonpath={.data.a}"); got != "b" {
		t.Fatalf("object from the first server: %q", got)
	}
	if _, err := os.Stat(filepath.Join(s2.dataDir, "etcd")); err == nil {
		t.Fatal("an embedded etcd data dir was created although --etcd-endpoints was given")
	}
	mustContain(t, strings.ToLower(k2.run("get", "--raw", "/readyz?verbose")), "[+]etcd ok")
}
