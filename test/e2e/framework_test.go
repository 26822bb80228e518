package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is the skiff binary under test: $SKIFF_BINARY or <repo>/bin/skiff (make build).
func binary(t testing.TB) string {
	if b := os.Getenv("SKIFF_BINARY"); b != "" {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	b := filepath.Join(filepath.Dir(file), "..", "..", "bin", "skiff")
	if _, err := os.Stat(b); err != nil {
		t.Fatalf("no skiff binary at %s: run `make build` first", b)
	}
	return b
}

// server is a `skiff server` process.
type server struct {
	t          testing.TB
	cmd        *exec.Cmd
	dataDir    string
	kubeconfig string
	url        string
	log        *bytes.Buffer
	args       []string
}

// startServer runs `skiff server` without a node agent on a free port with its own data dir
// and waits for /readyz. Several run side by side.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	return startServerArgs(t, append([]string{"--disable-agent"}, extra...)...)
}

// startServerArgs runs `skiff server` with exactly the extra flags given (with the node
// agent unless they disable it).
func startServerArgs(t testing.TB, extra ...string) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), log: &bytes.Buffer{}}
	s.kubeconfig = filepath.Join(s.dataDir, "kubeconfig.yaml")
	s.args = append([]string{"server", "--data-dir", s.dataDir, "--https-listen-port", "0"}, extra...)
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	_ = os.Remove(s.kubeconfig)
	s.cmd = exec.Command(binary(s.t), s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(s.kubeconfig); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, "server: https://") {
					s.url = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "server:"))
				}
			}
			if s.url != "" && s.ready() {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("server not ready in 30s; log:\n%s", s.log.String())
}

func (s *server) ready() bool {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(s.url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", tail(s.log.String(), 60))
	}
}

// kill9 kills the server without any chance to clean up.
func (s *server) kill9() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kubectl is one kubectl binary: the machine's real one or `skiff kubectl`.
type kubectl struct {
	name     string
	argv     []string
	kc       string
	t        testing.TB
	extraEnv []string
}

// kubectls returns both kubectls pointed at s (the machine's kubectl only when installed).
func (s *server) kubectls() []kubectl {
	var out []kubectl
	if _, err := os.Stat("/usr/bin/kubectl"); err == nil {
		out = append(out, kubectl{name: "kubectl", argv: []string{"/usr/bin/kubectl"}, kc: s.kubeconfig, t: s.t})
	}
	out = append(out, kubectl{name: "skiff-kubectl", argv: []string{binary(s.t), "kubectl"}, kc: s.kubeconfig, t: s.t})
	return out
}

func (k kubectl) cmd(ctx context.Context, stdin string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, k.argv[0], append(k.argv[1:], args...)...)
	c.Env = append(append(os.Environ(), "KUBECONFIG="+k.kc, "KUBECTL_COMMAND_HEADERS=false"), k.extraEnv...)
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	return c
}

// run runs kubectl and returns stdout, failing the test on error.
func (k kubectl) run(args ...string) string {
	k.t.Helper()
	out, errOut, err := k.try("", args...)
	if err != nil {
		k.t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", k.name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// apply pipes a manifest to kubectl (e.g. apply -f -).
func (k kubectl) stdin(manifest string, args ...string) string {
	k.t.Helper()
	out, errOut, err := k.try(manifest, args...)
	if err != nil {
		k.t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", k.name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// try runs kubectl and returns stdout, stderr and the error.
func (k kubectl) try(stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := k.cmd(ctx, stdin, args...)
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	return out.String(), errOut.String(), err
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met in %v: %v", timeout, err)
}

func mustContain(t testing.TB, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Fatalf("output does not contain %q:\n%s", w, out)
		}
	}
}

var _ = fmt.Sprintf

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func chmodX(t testing.TB, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
}
