// Package benchutil holds what the benchmark commands share: machine facts printed beside
// every figure, free ports, process memory, and the image tarballs real-node runs import.
package benchutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// NumCPU is the number of CPUs this process may use.
func NumCPU() int { return runtime.NumCPU() }

// LoadAvg is the 1, 5 and 15 minute load average, as /proc/loadavg gives it.
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// FreePort returns a TCP port free on loopback right now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// RSSKB is a process's resident set size in KiB (0 when unreadable).
func RSSKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			if f := strings.Fields(l); len(f) > 1 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}

// LinkImages puts the image tarballs of from (make test-images) into an agent's import
// directory, hard-linked where possible.
func LinkImages(from, to string) error {
	tars, _ := filepath.Glob(filepath.Join(from, "*.tar"))
	if len(tars) == 0 {
		return fmt.Errorf("no image tarballs in %s: run `make test-images`", from)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, t := range tars {
		dst := filepath.Join(to, filepath.Base(t))
		if err := os.Link(t, dst); err == nil {
			continue
		}
		data, err := os.ReadFile(t)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ServerURL is the API server address in a kubeconfig file ("" until it is written).
func ServerURL(kubeconfig string) string {
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if s := strings.TrimSpace(line); strings.HasPrefix(s, "server: ") {
			return strings.TrimPrefix(s, "server: ")
		}
	}
	return ""
}

// Stop interrupts a process and waits for it, killing it after 10 s.
func Stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
