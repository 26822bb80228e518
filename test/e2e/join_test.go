package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// WALKTHROUGH step 13: a second node joins with `skiff agent --server ... --token ...` (here on
// the same machine, with its own containerd, bridge and ports); pods spread over both nodes;
// the API server reaches the joined node's pods (logs, exec); stopping that node marks it
// NotReady and its pods are recreated on the other one.
func TestNodeJoinWithToken(t *testing.T) {
	s := startNodeServer(t, "--node-monitor-grace-period", "8s",
		"--default-not-ready-toleration-seconds", "3", "--default-unreachable-toleration-seconds", "3",
		"--disable", "ingress")
	k := s.kubectls()[0]

	// Bad input first: a wrong CA pin and a made-up token are refused before anything runs.
	tok := exec.Command(binary(t), "token", "create", "--kubeconfig", s.kubeconfig, "--ttl", "1h", "--description", "e2e")
	var stdout, stderr bytes.Buffer
	tok.Stdout, tok.Stderr = &stdout, &stderr
	if err := tok.Run(); err != nil {
		t.Fatalf("token create: %v\n%s", err, stderr.String())
	}
	token := strings.TrimSpace(stdout.String())
	if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`).MatchString(token) {
		t.Fatalf("token %q", token)
	}
	hash := regexp.MustCompile(`--ca-cert-hash (sha256:[0-9a-f]{64})`).FindStringSubmatch(stderr.String())
	if hash == nil || !strings.Contains(stderr.String(), "skiff agent --server "+s.url+" --token "+token) {
		t.Fatalf("join command not printed:\n%s", stderr.String())
	}
	mustContain(t, k.run("get", "secret", "-n", "kube-system", "bootstrap-token-"+token[:6], "-o", "jsonpath={.type}"), "bootstrap.kubernetes.io/token")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--token", token, "--ca-cert-hash", "sha256:" + strings.Repeat("0", 64)}, "does not match --ca-cert-hash"},
		{[]string{"--token", "abcdef.0123456789abcdef", "--ca-cert-hash", hash[1]}, "the server refused the token"},
	} {
		cmd := exec.Command(binary(t), append([]string{"agent", "--server", s.url, "--data-dir", t.TempDir()}, c.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Fatalf("agent %v: %v\n%s", c.args, err, out)
		}
	}

	// Join.
	dataDir := t.TempDir()
	stageImages(t, dataDir)
	var agentLog bytes.Buffer
	agent := exec.Command(binary(t), "agent", "--server", s.url, "--token", token, "--ca-cert-hash", hash[1],
		"--data-dir", dataDir, "--node-name", "e2e-node2", "--kubelet-port", strconv.Itoa(freePort(t)),
		"--cni-bridge", "skiffe2e1", "--disable", "proxy,dns,ingress", "--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	agent.Stdout, agent.Stderr = &agentLog, &agentLog
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = agent.Process.Signal(syscall.SIGTERM)
			_ = agent.Wait()
		}
		reapRuntime(t, dataDir)
		_ = exec.Command("ip", "link", "delete", "skiffe2e1").Run()
		if t.Failed() {
			t.Logf("agent log:\n%s", tail(agentLog.String(), 40))
		}
	})
	eventually(t, 60*time.Second, func() error {
		out := squash(k.run("get", "nodes", "--no-headers"))
		if !strings.Contains(out, "e2e-node Ready control-plane") || !strings.Contains(out, "e2e-node2 Ready <none>") {
			return fmt.Errorf("nodes:\n%s", out)
		}
		return nil
	})

	// Pods spread over both nodes; the joined node's pods answer logs and exec.
	k.stdin(`apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: spread}}}
      containers:
      - {name: web, image: skiff.local/web:v1}
`, "apply", "-f", "-")
	k.run("rollout", "status", "deploy/spread", "--timeout=90s")
	placement := func() map[string][]string {
		out := k.run("get", "pods", "-l", "app=spread", "--field-selector", "status.phase=Running", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}`)
		m := map[string][]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 { // not terminating
				m[f[1]] = append(m[f[1]], f[0])
			}
		}
		return m
	}
	p := placement()
	if len(p["e2e-node"]) != 2 || len(p["e2e-node2"]) != 2 {
		t.Fatalf("pods not spread 2/2: %v", p)
	}
	onNode2 := p["e2e-node2"][0]
	mustContain(t, k.run("logs", onNode2), "skiff web v1 listening")
	mustContain(t, k.run("exec", onNode2, "--", "web", "version"), "skiff web v1")

	// The joined node stops: NotReady, its pods are evicted and recreated on the first node.
	_ = agent.Process.Signal(syscall.SIGTERM)
	_ = agent.Wait()
	stopped = true
	eventually(t, 40*time.Second, func() error {
		if out := squash(k.run("get", "node", "e2e-node2", "--no-headers")); !strings.Contains(out, "e2e-node2 NotReady") {
			return fmt.Errorf("node2: %s", out)
		}
		return nil
	})
	mustContain(t, k.run("get", "node", "e2e-node2", "-o", "jsonpath={.spec.taints[*].key}"), "node.kubernetes.io/unreachable")
	eventually(t, 60*time.Second, func() error {
		// nodeTaintsPolicy Honor leaves the tainted node out of the spread, so the
		// replacements run on e2e-node.
		out := k.run("get", "pods", "-l", "app=spread", "-o", `jsonpath={range .items[*]}{.spec.nodeName}/{.status.phase}/{.metadata.deletionTimestamp}{"\n"}{end}`)
		fresh := 0
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Split(l, "/"); len(f) == 3 && f[2] == "" && f[0] == "e2e-node" && f[1] == "Running" {
				fresh++
			}
		}
		if fresh != 4 {
			return fmt.Errorf("want 4 running pods on e2e-node:\n%s", out)
		}
		return nil
	})
}
