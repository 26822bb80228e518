package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/agent/runtime"
)

// requireRuntime skips unless this machine can run real containers (root, containerd, runc
// and the CNI plugins: hack/setup.sh installs them, and CI runs it).
func requireRuntime(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("real containers need root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (hack/setup.sh installs it)", bin)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Skip("CNI plugins missing (containernetworking-plugins)")
	}
}

// startNodeServer runs `skiff server` with its node agent (managed containerd, real pods).
// Image tarballs prebuilt into $SKIFF_IMAGE_DIR or <repo>/bin/images (make test-images) are
// linked into the agent's import directory; without them the agent builds its own.
func startNodeServer(t *testing.T, extra ...string) *server {
	t.Helper()
	requireRuntime(t)
	dataDir := t.TempDir()
	stageImages(t, dataDir)
	s := &server{t: t, dataDir: dataDir, log: &bytes.Buffer{}}
	s.kubeconfig = filepath.Join(dataDir, "kubeconfig.yaml")
	s.args = append([]string{"server", "--data-dir", dataDir, "--https-listen-port", "0",
		"--kubelet-port", strconv.Itoa(freePort(t)), "--node-name", "e2e-node"}, extra...)
	s.start()
	t.Cleanup(func() { reapRuntime(t, dataDir) })
	t.Cleanup(s.stop)
	k := s.kubectls()[0]
	// Runs before the server stops: pods are deleted through the API so that the agent tears
	// their sandboxes and networks down as it would in a cluster.
	t.Cleanup(func() {
		k.try("", "delete", "pods", "--all", "-A", "--grace-period=1", "--wait=false")
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if out, _, err := k.try("", "get", "pods", "-A", "-o", "name"); err == nil && strings.TrimSpace(out) == "" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	eventually(t, 90*time.Second, func() error {
		out, _, _ := k.try("", "get", "nodes", "--no-headers")
		if !strings.Contains(out, "e2e-node   Ready") {
			return fmt.Errorf("node not ready:\n%s", out)
		}
		return nil
	})
	// Pods must not land before the default service account exists.
	eventually(t, 30*time.Second, func() error {
		_, _, err := k.try("", "get", "serviceaccount", "default")
		return err
	})
	return s
}

// reapRuntime stops what the agent deliberately leaves running when it stops (containerd
// shims, so that a restarted agent adopts its containers) and unmounts what they held, so
// that the test's data directory can be removed.
func reapRuntime(t *testing.T, dataDir string) {
	if _, err := runtime.KillShims(filepath.Join(dataDir, "agent", "containerd", "containerd.sock")); err != nil {
		t.Logf("killing shims: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := runtime.UnmountUnder(dataDir); err != nil {
		t.Logf("unmounting: %v", err)
	}
	// Network namespaces of the killed sandboxes (no process left in them).
	nss, _ := filepath.Glob("/var/run/netns/cni-*")
	for _, ns := range nss {
		if out, err := exec.Command("ip", "netns", "pids", filepath.Base(ns)).Output(); err == nil && strings.TrimSpace(string(out)) == "" {
			_ = runtime.RemoveNetNS(ns)
		}
	}
}

// squash collapses runs of blanks, so that table rows compare whatever the column widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// imageDir holds the prebuilt image tarballs: $SKIFF_IMAGE_DIR or <repo>/bin/images.
func imageDir() string {
	if d := os.Getenv("SKIFF_IMAGE_DIR"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(), "bin", "images")
}

// stageImages links (or copies) the prebuilt image tarballs into an agent's import
// directory under dataDir; without them the agent builds its own.
func stageImages(t *testing.T, dataDir string) {
	t.Helper()
	tars, _ := filepath.Glob(filepath.Join(imageDir(), "*.tar"))
	if len(tars) == 0 {
		return
	}
	dst := filepath.Join(dataDir, "agent", "images")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tar := range tars {
		if err := os.Link(tar, filepath.Join(dst, filepath.Base(tar))); err != nil {
			copyFile(t, tar, filepath.Join(dst, filepath.Base(tar)))
		}
	}
}

// repoRoot is the repository's top directory.
func repoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data))
}

// httpGet fetches url from the host (pod IPs are routed through the node's bridge).
func httpGet(url string) (int, string, error) {
	// A new connection per request: services spread connections, not requests.
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

const seedPod = `apiVersion: v1
kind: Pod
metadata:
  name: nginx
  namespace: default
  labels:
    app: nginx
    tier: frontend
spec:
  containers:
  - name: nginx
    image: skiff.local/web:v1
    imagePullPolicy: IfNotPresent
    ports:
    - name: http
      containerPort: 80
      protocol: TCP
`

// WALKTHROUGH steps 1, 2, 10 and then 3–8 and 11 with real containers on the server's own
// node, with the real kubectl.
func TestNodeWalkthrough(t *testing.T) {
	s := startNodeServer(t)
	k := s.kubectls()[0]

	// Step 1: the node is Ready with its role, runtime and address.
	out := k.run("get", "nodes", "-o", "wide")
	mustContain(t, out, "e2e-node", "Ready", "control-plane", "containerd://")
	k.run("get", "pods", "-A")

	// Step 2: a single-container pod runs; logs, exec and describe work.
	k.stdin(seedPod, "apply", "-f", "-")
	k.run("wait", "--for=condition=Ready", "pod/nginx", "--timeout=60s")
	out = squash(k.run("get", "pod", "nginx", "-o", "wide"))
	mustContain(t, out, "nginx 1/1 Running 0", "e2e-node")
	ip := strings.TrimSpace(k.run("get", "pod", "nginx", "-o", "jsonpath={.status.podIP}"))
	if !strings.HasPrefix(ip, "10.42.") {
		t.Fatalf("pod IP %q not in the pod network", ip)
	}
	code, body, err := httpGet("http://" + ip + "/")
	if err != nil || code != 200 || !strings.Contains(body, "skiff web v1 hostname=nginx") {
		t.Fatalf("GET pod: %d %q %v", code, body, err)
	}
	mustContain(t, k.run("logs", "nginx"), "skiff web v1 listening")
	mustContain(t, k.run("exec", "nginx", "--", "web", "version"), "skiff web v1")
	mustContain(t, k.run("describe", "pod", "nginx"),
		"Status:           Running", "IP:               "+ip, "Successfully assigned default/nginx to e2e-node",
		`Container image "skiff.local/web:v1" already present on machine`, "Started container nginx")

	// Step 10: a container that dies is restarted and counted; a failing liveness probe
	// restarts it; a deleted pod of a ReplicaSet comes back as a new one.
	mustContain(t, k.run("exec", "nginx", "--", "web", "get", "http://localhost/exit?code=1"), "exiting with code 1")
	eventually(t, 30*time.Second, func() error {
		out := squash(k.run("get", "pod", "nginx", "--no-headers"))
		if !strings.Contains(out, "1/1 Running 1 (") {
			return fmt.Errorf("not restarted once:\n%s", out)
		}
		return nil
	})
	mustContain(t, k.run("get", "pod", "nginx", "-o", "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}"), "1")
	mustContain(t, k.run("logs", "nginx", "--previous"), "skiff web v1 listening")

	k.stdin(`apiVersion: apps/v1
kind: Deployment
metadata: {name: healer}
spec:
  replicas: 1
  selector: {matchLabels: {app: healer}}
  template:
    metadata: {labels: {app: healer}}
    spec:
      containers:
      - name: web
        image: skiff.local/web:v1
        livenessProbe:
          httpGet: {path: /healthz, port: 80}
          periodSeconds: 1
          failureThreshold: 2
`, "apply", "-f", "-")
	k.run("rollout", "status", "deploy/healer", "--timeout=60s")
	pod := strings.TrimSpace(k.run("get", "pods", "-l", "app=healer", "-o", "jsonpath={.items[0].metadata.name}"))
	k.run("exec", pod, "--", "web", "get", "http://localhost/fail")
	eventually(t, 30*time.Second, func() error {
		if got := k.run("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); got != "1" {
			return fmt.Errorf("restartCount %q after liveness failures", got)
		}
		return nil
	})
	mustContain(t, k.run("get", "events", "--field-selector", "involvedObject.name="+pod),
		"Liveness probe failed: HTTP probe failed with statuscode: 503", "failed liveness probe, will be restarted")
	k.run("delete", "pod", pod, "--wait=false")
	eventually(t, 60*time.Second, func() error {
		out := squash(k.run("get", "pods", "-l", "app=healer", "--no-headers"))
		if strings.Contains(out, pod) || !strings.Contains(out, "1/1 Running") {
			return fmt.Errorf("no replacement pod running yet:\n%s", out)
		}
		return nil
	})
	k.run("delete", "deploy/healer", "pod/nginx")

	// Steps 3–8 and 11 with real pods.
	deploymentWalkthrough(t, k, "skiff.local/web:v3")

	// Every container of deleted pods is gone from the runtime.
	eventually(t, 60*time.Second, func() error {
		if out := strings.TrimSpace(k.run("get", "pods", "-A", "-o", "name")); out != "" {
			return fmt.Errorf("pods left:\n%s", out)
		}
		return nil
	})
}

// Pod features users rely on, with real containers: crash loops, OOM kills, readiness,
// init containers, ConfigMap and Secret volumes and env, logs -f, exec with stdin,
// port-forward and kubectl top.
func TestNodePodFeatures(t *testing.T) {
	s := startNodeServer(t)
	k := s.kubectls()[0]
	k.run("create", "configmap", "app-config", "--from-literal=greeting=hello", "--from-literal=mode=demo")
	k.run("create", "secret", "generic", "app-secret", "--from-literal=password=s3cr3t")
	k.stdin(`apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: c
    image: skiff.local/busybox:latest
    command: ["sh", "-c", "echo dying; exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  containers:
  - name: c
    image: skiff.local/busybox:latest
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: skiff.local/busybox:latest
    command: ["sh", "-c", "tail /dev/zero"]
    resources:
      limits: {memory: 32Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: app, labels: {app: app}}
spec:
  initContainers:
  - name: init
    image: skiff.local/busybox:latest
    command: ["sh", "-c", "echo initialized > /work/init.txt"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: web
    image: skiff.local/web:v1
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: app-config, key: greeting}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: app-secret, key: password}}
    - name: MY_POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: MY_POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    envFrom:
    - prefix: CFG_
      configMapRef: {name: app-config}
    readinessProbe:
      httpGet: {path: /readyz, port: 80}
      periodSeconds: 1
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: config, mountPath: /etc/config}
    - {name: secret, mountPath: /etc/secret}
    - {name: podinfo, mountPath: /etc/podinfo}
  volumes:
  - {name: work, emptyDir: {}}
  - {name: config, configMap: {name: app-config}}
  - {name: secret, secret: {secretName: app-secret}}
  - name: podinfo
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
`, "apply", "-f", "-")

	// Init container ran first; env and volumes carry the ConfigMap, Secret and pod fields.
	k.run("wait", "--for=condition=Ready", "pod/app", "--timeout=60s")
	ip := strings.TrimSpace(k.run("get", "pod", "app", "-o", "jsonpath={.status.podIP}"))
	get := func(path string) string {
		t.Helper()
		code, body, err := httpGet("http://" + ip + path)
		if err != nil || code != 200 {
			t.Fatalf("GET %s: %d %q %v", path, code, body, err)
		}
		return body
	}
	mustContain(t, get("/file?path=/work/init.txt"), "initialized")
	mustContain(t, get("/env"), "GREETING=hello", "PASSWORD=s3cr3t", "MY_POD_NAME=app", "MY_POD_IP="+ip, "CFG_mode=demo")
	mustContain(t, get("/file?path=/etc/config/greeting"), "hello")
	mustContain(t, get("/file?path=/etc/secret/password"), "s3cr3t")
	mustContain(t, get("/file?path=/etc/podinfo/labels"), `app="app"`)
	mustContain(t, k.run("get", "pod", "app", "-o", "jsonpath={.status.initContainerStatuses[0].state.terminated.reason}"), "Completed")

	// A ConfigMap change reaches the mounted volume of the running pod.
	k.run("patch", "configmap", "app-config", "-p", `{"data":{"greeting":"bonjour"}}`)
	eventually(t, 90*time.Second, func() error {
		if body := get("/file?path=/etc/config/greeting"); body != "bonjour" {
			return fmt.Errorf("volume still says %q", body)
		}
		return nil
	})

	// Readiness toggles READY without restarting the container.
	get("/unready")
	eventually(t, 20*time.Second, func() error {
		if out := squash(k.run("get", "pod", "app", "--no-headers")); !strings.Contains(out, "0/1 Running 0") {
			return fmt.Errorf("still ready:\n%s", out)
		}
		return nil
	})
	get("/ready")
	k.run("wait", "--for=condition=Ready", "pod/app", "--timeout=30s")

	// exec with stdin; logs --tail and -f stream new lines as they are written.
	if got, errOut, err := k.try("piped line\n", "exec", "-i", "ticker", "--", "cat"); err != nil || got != "piped line\n" {
		t.Fatalf("exec -i: %q %q %v", got, errOut, err)
	}
	eventually(t, 20*time.Second, func() error {
		out := k.run("logs", "ticker", "--tail=1")
		if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "tick ") || out == "tick 0\n" {
			return fmt.Errorf("logs --tail=1: %q", out)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	follow := k.cmd(ctx, "", "logs", "-f", "--tail=1", "ticker")
	pipe, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(pipe)
	var seen []string
	for len(seen) < 4 && lines.Scan() {
		seen = append(seen, lines.Text())
	}
	cancel()
	_ = follow.Wait()
	if len(seen) < 4 {
		t.Fatalf("logs -f streamed only %q", seen)
	}
	first, _ := strconv.Atoi(strings.TrimPrefix(seen[0], "tick "))
	last, _ := strconv.Atoi(strings.TrimPrefix(seen[3], "tick "))
	if last != first+3 {
		t.Fatalf("logs -f lines not consecutive: %q", seen)
	}

	// attach streams the running container's output; exec -it gets a terminal.
	actx, acancel := context.WithTimeout(context.Background(), 20*time.Second)
	attach := k.cmd(actx, "", "attach", "ticker")
	apipe, _ := attach.StdoutPipe()
	if err := attach.Start(); err != nil {
		t.Fatal(err)
	}
	alines := bufio.NewScanner(apipe)
	var attached []string
	for len(attached) < 2 && alines.Scan() {
		if strings.HasPrefix(alines.Text(), "tick ") {
			attached = append(attached, alines.Text())
		}
	}
	acancel()
	_ = attach.Wait()
	if len(attached) < 2 {
		t.Fatalf("attach streamed %q", attached)
	}
	if _, err := exec.LookPath("script"); err == nil {
		cmdline := strings.Join(append(append([]string{}, k.argv...), "exec", "-it", "ticker", "--", "sh", "-c", "tty; echo term=$TERM"), " ")
		sc := exec.Command("script", "-qec", cmdline, "/dev/null")
		sc.Env = append(os.Environ(), "KUBECONFIG="+k.kc, "TERM=xterm")
		out, err := sc.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/dev/pts/") || !strings.Contains(string(out), "term=xterm") {
			t.Fatalf("exec -it: %v\n%s", err, out)
		}
	}

	port := freePort(t)
	pf := k.cmd(context.Background(), "", "port-forward", "pod/app", fmt.Sprintf("%d:80", port))
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
	eventually(t, 15*time.Second, func() error {
		code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/version", port))
		if err != nil || code != 200 || strings.TrimSpace(body) != "v1" {
			return fmt.Errorf("port-forward: %d %q %v", code, body, err)
		}
		return nil
	})

	// A crashing container goes into CrashLoopBackOff with its exit code.
	eventually(t, 60*time.Second, func() error {
		out := k.run("get", "pod", "crasher", "--no-headers")
		if !strings.Contains(out, "CrashLoopBackOff") {
			return fmt.Errorf("not crash looping:\n%s", out)
		}
		return nil
	})
	mustContain(t, k.run("get", "pod", "crasher", "-o", "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}"), "3")
	mustContain(t, k.run("describe", "pod", "crasher"), "Back-off restarting failed container")

	// A container over its memory limit is OOM-killed (exit 137) and reported so.
	eventually(t, 60*time.Second, func() error {
		out := k.run("get", "pod", "hog", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].state.terminated.exitCode}/{.status.phase}")
		if out != "OOMKilled/137/Failed" {
			return fmt.Errorf("hog: %q", out)
		}
		return nil
	})

	// containerd killed with SIGKILL: the agent starts it again, running containers keep
	// running (no restart counted) and new pods start.
	out, err := exec.Command("pgrep", "-f", "containerd --config "+s.dataDir).Output()
	if err != nil {
		t.Fatalf("managed containerd not found: %v", err)
	}
	pid, _ := strconv.Atoi(strings.Fields(string(out))[0])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	k.stdin(`apiVersion: v1
kind: Pod
metadata: {name: after-restart}
spec:
  containers:
  - {name: web, image: skiff.local/web:v1}
`, "apply", "-f", "-")
	k.run("wait", "--for=condition=Ready", "pod/after-restart", "--timeout=50s")
	mustContain(t, get("/version"), "v1")
	if got := k.run("get", "pod", "app", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); got != "0" {
		t.Fatalf("app restarted %s times across the containerd restart", got)
	}

	// Resource metrics through the API server's metrics.k8s.io.
	eventually(t, 60*time.Second, func() error {
		out, errOut, err := k.try("", "top", "pod", "app")
		if err != nil || !strings.Contains(out, "app") {
			return fmt.Errorf("top pod: %s %s %v", out, errOut, err)
		}
		out, errOut, err = k.try("", "top", "node")
		if err != nil || !strings.Contains(out, "e2e-node") {
			return fmt.Errorf("top node: %s %s %v", out, errOut, err)
		}
		return nil
	})
}
