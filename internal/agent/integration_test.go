package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/agent/runtime"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// A private pod network for this test, apart from a running skiff's (10.42.0.0/24 on
// skiff0) and the other packages' tests that may run at the same time (runtime:
// 10.244.250.0/24, server: 10.244.251.0/24).
const (
	testPodCIDR = "10.244.252.0/24"
	testBridge  = "skiffagt0"
	testNode    = "agent-test-node"
)

func skipUnlessRuntime(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real containers; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (hack/setup.sh installs it)", bin)
		}
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(runtime.DefaultCNIBinDir, p)); err != nil {
			t.Skipf("CNI plugin %s missing (containernetworking-plugins)", p)
		}
	}
	if _, err := os.Stat(images.BusyboxBinary); err != nil {
		t.Skip("busybox-static not installed (hack/setup.sh installs it)")
	}
}

// syncBuffer collects the agent's logs; they are printed when the test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAgentIntegration runs the control plane in-process with a real node agent on a
// managed containerd, and checks what the agent does with pods: running and ready web
// pods, crash loops, OOM kills, liveness and readiness probes, init containers,
// ConfigMap/Secret/projected volumes and environment, and deletion.
func TestAgentIntegration(t *testing.T) {
	skipUnlessRuntime(t)
	dir := t.TempDir()
	logs := &syncBuffer{}
	var logOut io.Writer = logs
	if os.Getenv("SKIFF_TEST_VERBOSE") != "" {
		logOut = io.MultiWriter(logs, os.Stderr)
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := agent.Config{
		NodeName:    testNode,
		DataDir:     filepath.Join(dir, "agent"),
		PodCIDR:     testPodCIDR,
		Bridge:      testBridge,
		NetworkName: "skiff-agent-test",
		Logger:      logger,
	}
	var (
		mu sync.Mutex
		ag *agent.Agent
	)
	factory := func(cc *controller.Context) (controller.Component, error) {
		c, err := agent.NewFactory(cfg)(cc)
		if err == nil {
			mu.Lock()
			ag = c.(*agent.Agent)
			mu.Unlock()
		}
		return c, err
	}
	start := time.Now()
	cluster := skifftest.Start(t, skifftest.Options{
		Controllers:    []controlplane.ComponentFactory{},
		NodeComponents: []controlplane.ComponentFactory{factory},
	})
	cs := cluster.Client
	mu.Lock()
	a := ag
	mu.Unlock()
	if a == nil {
		t.Fatal("the agent was not built")
	}
	t.Cleanup(func() { teardown(t, cluster, a, cluster.Stop, cfg, logs) })

	select {
	case <-a.Ready():
	case <-a.Done():
		t.Fatal("the agent stopped before it was ready")
	case <-time.After(5 * time.Minute):
		t.Fatal("the agent was not ready within 5 minutes")
	}
	t.Logf("agent ready %s after the control plane started", time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	checkNode(t, ctx, cs)
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("the node became Ready %s after the agent was ready", d.Round(time.Millisecond))
	}

	ns := "default"
	mustCreate(t, ctx, cs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web-config", Namespace: ns},
		Data: map[string]string{"greeting": "hello", "color": "blue"}})
	mustCreate(t, ctx, cs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-secret", Namespace: ns},
		Data: map[string][]byte{"password": []byte("s3cret")}})
	mustCreate(t, ctx, cs, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web-sa", Namespace: ns}})

	// The web pod starts alone (its start latency is measured); the others are then
	// created together and progress side by side.
	var web *corev1.Pod
	t.Run("web runs and is ready", func(t *testing.T) {
		created := time.Now()
		mustCreate(t, ctx, cs, webPod(ns))
		running := waitPodFor(t, ctx, cs, ns, "web", "Running", 90*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }, 10*time.Millisecond)
		t.Logf("pod start latency (creation -> Running, seen by a 10 ms poll): %s", running.Sub(created).Round(time.Millisecond))
		ready := waitPod(t, ctx, cs, ns, "web", "Ready", podReady)
		t.Logf("creation -> Ready (readiness probe every 1 s): %s", ready.Sub(created).Round(time.Millisecond))
		var err error
		web, err = cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkWebStatus(t, web)
		waitEvents(t, ctx, cs, ns, "web", "Pulled", "Created", "Started")
		if pods, err := a.Pods(ctx); err != nil || len(pods) != 1 || pods[0].Name != "web" {
			t.Errorf("Pods() = %d pods, %v", len(pods), err)
		}
		body := httpGet(t, "http://"+web.Status.PodIP+"/")
		if !strings.Contains(body, "skiff web v1 hostname=web") {
			t.Errorf("GET / = %q", body)
		}
	})
	if web == nil {
		t.FailNow()
	}
	base := "http://" + web.Status.PodIP
	hookDir := filepath.Join(dir, "hooks")
	for _, p := range []*corev1.Pod{crashPod(ns), oomPod(ns), livenessPod(ns), initPod(ns), hooksPod(ns, hookDir), completePod(ns),
		brokenPod(ns, "no-image", func(c *corev1.Container) { c.Image = "skiff.local/nope:v1" }),
		brokenPod(ns, "never-pull", func(c *corev1.Container) { c.Image = "skiff.local/nope:v1"; c.ImagePullPolicy = corev1.PullNever }),
		brokenPod(ns, "bad-config", func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Key: "k"}}}}
		}),
	} {
		mustCreate(t, ctx, cs, p)
	}

	t.Run("environment", func(t *testing.T) {
		env := httpGet(t, base+"/env")
		for _, want := range []string{"GREETING=hello", "PASSWORD=s3cret", "CFG_color=blue", "CFG_greeting=hello",
			"POD_NAME=web", "POD_NAMESPACE=default", "NODE_NAME=" + testNode, "POD_IP=" + web.Status.PodIP,
			"HOST_IP=" + web.Status.HostIP, "SA=web-sa", "MEM_LIMIT_MI=64", "CPU_REQUEST_M=100", "EXPANDED=hello-world",
			"APP_LABEL=web", "KUBERNETES_SERVICE_HOST=", "KUBERNETES_SERVICE_PORT=443"} {
			if !strings.Contains(env, want) {
				t.Errorf("environment lacks %q:\n%s", want, env)
			}
		}
	})

	t.Run("volumes", func(t *testing.T) {
		files := map[string]string{
			"/etc/config/greeting":  "hello",
			"/etc/secret/password":  "s3cret",
			"/etc/podinfo/labels":   `app="web"`,
			"/etc/podinfo/name":     "web",
			"/var/run/sa/namespace": "default",
			"/etc/config-sub":       "blue",
			"/etc/hosts":            web.Status.PodIP + "\tweb",
		}
		for path, want := range files {
			got := httpGet(t, base+"/file?path="+path)
			if !strings.Contains(got, want) {
				t.Errorf("%s = %q, want it to contain %q", path, got, want)
			}
		}
		tok := httpGet(t, base+"/file?path=/var/run/sa/token")
		if strings.Count(tok, ".") != 2 {
			t.Errorf("service account token %q is not a JWT", tok)
		}
		ca := httpGet(t, base+"/file?path=/var/run/sa/ca.crt")
		if !strings.Contains(ca, "BEGIN CERTIFICATE") {
			t.Errorf("ca.crt = %q", ca)
		}
		out := httpGet(t, base+"/file?path=/etc/resolv.conf")
		if !strings.Contains(out, "nameserver 10.43.0.10") || !strings.Contains(out, "search default.svc.cluster.local svc.cluster.local cluster.local") || !strings.Contains(out, "ndots:5") {
			t.Errorf("resolv.conf = %q", out)
		}
	})

	t.Run("readiness toggles Ready", func(t *testing.T) {
		httpGet(t, base+"/unready")
		waitPod(t, ctx, cs, ns, "web", "not Ready", func(p *corev1.Pod) bool { return !podReady(p) })
		httpGet(t, base+"/ready")
		waitPod(t, ctx, cs, ns, "web", "Ready again", podReady)
	})

	t.Run("init containers run in order", func(t *testing.T) {
		p := waitPod(t, ctx, cs, ns, "init", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		_ = p
		pod, _ := cs.CoreV1().Pods(ns).Get(ctx, "init", metav1.GetOptions{})
		for _, s := range pod.Status.InitContainerStatuses {
			if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 || s.State.Terminated.Reason != "Completed" {
				t.Errorf("init container %s: %+v", s.Name, s.State)
			}
		}
		if c := condition(pod, corev1.PodInitialized); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("Initialized = %+v", c)
		}
		out := execIn(t, ctx, a, pod, "main", "cat", "/work/order")
		if out != "one\ntwo\n" {
			t.Errorf("init order file = %q", out)
		}
	})

	t.Run("crash loop backs off", func(t *testing.T) {
		p := waitPodFor(t, ctx, cs, ns, "crash", "CrashLoopBackOff with 2+ restarts", 90*time.Second, func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			s := p.Status.ContainerStatuses[0]
			return s.RestartCount >= 2 && s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff"
		})
		_ = p
		pod, _ := cs.CoreV1().Pods(ns).Get(ctx, "crash", metav1.GetOptions{})
		s := pod.Status.ContainerStatuses[0]
		if s.LastTerminationState.Terminated == nil || s.LastTerminationState.Terminated.ExitCode != 3 || s.LastTerminationState.Terminated.Reason != "Error" {
			t.Errorf("lastState = %+v", s.LastTerminationState)
		}
		if pod.Status.Phase != corev1.PodRunning {
			t.Errorf("phase = %s, want Running (as Kubernetes shows crash-looping pods)", pod.Status.Phase)
		}
		waitEvents(t, ctx, cs, ns, "crash", "BackOff")
	})

	t.Run("OOM kill is reported", func(t *testing.T) {
		p := waitPod(t, ctx, cs, ns, "oom", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" })
		_ = p
		pod, _ := cs.CoreV1().Pods(ns).Get(ctx, "oom", metav1.GetOptions{})
		client := &http.Client{Timeout: 5 * time.Second}
		if resp, err := client.Get("http://" + pod.Status.PodIP + "/alloc?mb=200"); err == nil {
			resp.Body.Close()
		}
		waitPodFor(t, ctx, cs, ns, "oom", "Failed with OOMKilled", 60*time.Second, func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			term := p.Status.ContainerStatuses[0].State.Terminated
			return p.Status.Phase == corev1.PodFailed && term != nil && term.Reason == "OOMKilled" && term.ExitCode == 137
		})
	})

	t.Run("liveness failure restarts the container", func(t *testing.T) {
		waitPod(t, ctx, cs, ns, "liveness", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" })
		pod, _ := cs.CoreV1().Pods(ns).Get(ctx, "liveness", metav1.GetOptions{})
		httpGet(t, "http://"+pod.Status.PodIP+"/fail")
		waitPodFor(t, ctx, cs, ns, "liveness", "restarted after liveness failure", 60*time.Second, func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			s := p.Status.ContainerStatuses[0]
			return s.RestartCount >= 1 && s.State.Running != nil
		})
	})

	t.Run("waiting reasons", func(t *testing.T) {
		for name, want := range map[string]string{"no-image": "ImagePullBackOff", "never-pull": "ErrImageNeverPull", "bad-config": "CreateContainerConfigError"} {
			waitPod(t, ctx, cs, ns, name, "waiting with "+want, func(p *corev1.Pod) bool {
				if len(p.Status.ContainerStatuses) == 0 || p.Status.Phase != corev1.PodPending {
					return false
				}
				w := p.Status.ContainerStatuses[0].State.Waiting
				return w != nil && w.Reason == want && w.Message != ""
			})
		}
		pod, _ := cs.CoreV1().Pods(ns).Get(ctx, "bad-config", metav1.GetOptions{})
		if msg := pod.Status.ContainerStatuses[0].State.Waiting.Message; msg != `configmap "missing" not found` {
			t.Errorf("bad-config message %q", msg)
		}
	})

	t.Run("hostPort reaches the pod", func(t *testing.T) {
		pod, _ := cs.CoreV1().Pods(ns).Get(ctx, "liveness", metav1.GetOptions{})
		body := httpGet(t, fmt.Sprintf("http://%s:%d/version", pod.Status.HostIP, livenessHostPort))
		if strings.TrimSpace(body) != "v1" {
			t.Errorf("GET hostIP:%d/version = %q", livenessHostPort, body)
		}
	})

	t.Run("a finished pod succeeds", func(t *testing.T) {
		waitPod(t, ctx, cs, ns, "complete", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		pod, _ := cs.CoreV1().Pods(ns).Get(ctx, "complete", metav1.GetOptions{})
		s := pod.Status.ContainerStatuses[0]
		if s.State.Terminated == nil || s.State.Terminated.Reason != "Completed" || s.State.Terminated.Message != "all done\n" {
			t.Errorf("container state %+v", s.State)
		}
		if c := condition(pod, corev1.PodReady); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "PodCompleted" {
			t.Errorf("Ready %+v", c)
		}
	})

	t.Run("lifecycle hooks and graceful termination", func(t *testing.T) {
		waitPod(t, ctx, cs, ns, "hooks", "Ready", podReady)
		if b, err := os.ReadFile(filepath.Join(hookDir, "poststart")); err != nil || string(b) != "started\n" {
			t.Errorf("postStart hook: %q %v", b, err)
		}
		t0 := time.Now()
		if err := cs.CoreV1().Pods(ns).Delete(ctx, "hooks", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, ctx, cs, ns, "hooks", 60*time.Second)
		took := time.Since(t0)
		if b, err := os.ReadFile(filepath.Join(hookDir, "prestop")); err != nil || string(b) != "stopping\n" {
			t.Errorf("preStop hook: %q %v", b, err)
		}
		// sleep ignores SIGTERM: it is killed when the 3 s grace period ends.
		if took < 2*time.Second || took > 20*time.Second {
			t.Errorf("deletion took %s, want about the 3 s grace period", took)
		}
		t.Logf("pod with a preStop hook and a 3 s grace period deleted in %s", took.Round(time.Millisecond))
	})

	t.Run("configmap change reaches the volume", func(t *testing.T) {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["greeting"] = "bonjour"
		if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		deadline := t0.Add(90 * time.Second)
		for {
			if got := httpGet(t, base+"/file?path=/etc/config/greeting"); got == "bonjour" {
				t.Logf("ConfigMap update visible in the volume after %s", time.Since(t0).Round(time.Second))
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("ConfigMap update not visible in the volume after 90 s")
			}
			time.Sleep(time.Second)
		}
	})

	t.Run("deleting a pod removes its containers and the pod", func(t *testing.T) {
		t0 := time.Now()
		if err := cs.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, ctx, cs, ns, "web", 60*time.Second)
		t.Logf("pod deleted %s after the delete request", time.Since(t0).Round(time.Millisecond))
		sel := map[string]string{"io.kubernetes.pod.uid": string(web.UID)}
		cs, err := a.Runtime().ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
		if err != nil || len(cs) != 0 {
			t.Errorf("containers left: %d (%v)", len(cs), err)
		}
		sbs, err := a.Runtime().ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
		if err != nil || len(sbs) != 0 {
			t.Errorf("sandboxes left: %d (%v)", len(sbs), err)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "pods", string(web.UID))); !os.IsNotExist(err) {
			t.Errorf("pod directory left behind (%v)", err)
		}
	})
}

// teardown removes every pod through the agent, stops it (stop) and then makes sure
// nothing is left: sandboxes, shims, mounts, the bridge.
func teardown(t *testing.T, cluster *skifftest.Cluster, a *agent.Agent, stop func(), cfg agent.Config, logs *syncBuffer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := cluster.Client
	// Force-delete every pod: the agent removes their containers.
	zero := int64(0)
	if pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			_ = cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}
	}
	if cl := a.Runtime(); cl != nil {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			sbs, err := cl.ListPodSandbox(ctx, nil)
			if err != nil || len(sbs) == 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	stop()
	select {
	case <-a.Done():
	case <-time.After(60 * time.Second):
		t.Errorf("cleanup: the agent did not stop")
	}
	// Whatever is left goes through a containerd started again on the same directory.
	rcfg := runtime.Config{DataDir: cfg.DataDir, SandboxImage: images.Pause, CNIConfDir: filepath.Join(cfg.DataDir, "cni", "net.d"), StopTimeout: 5 * time.Second}
	if cd, err := runtime.Start(ctx, rcfg); err != nil {
		t.Errorf("cleanup: restarting containerd: %v", err)
	} else {
		if cl, err := cd.Dial(ctx); err == nil {
			if sbs, _ := cl.ListPodSandbox(ctx, nil); len(sbs) > 0 {
				t.Errorf("cleanup: %d sandboxes were left behind", len(sbs))
			}
			if err := cl.RemoveAllPods(ctx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			cl.Close()
		}
		if err := cd.Stop(); err != nil {
			t.Errorf("cleanup: stopping containerd: %v", err)
		}
		if n, _ := cd.KillShims(); n > 0 {
			t.Errorf("cleanup: %d shim processes killed", n)
		}
	}
	if err := runtime.UnmountUnder(cfg.DataDir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	_ = exec.Command("ip", "link", "del", testBridge).Run()
	if t.Failed() {
		out := logs.String()
		if len(out) > 60000 {
			out = out[len(out)-60000:]
		}
		t.Logf("agent logs (tail):\n%s", out)
	}
}

// waitEvents waits until the pod has events with every reason, from the kubelet of the
// test node.
func waitEvents(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, pod string, reasons ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
		seen := map[string]bool{}
		if err == nil {
			for _, e := range evs.Items {
				if e.Source.Component == "kubelet" && e.Source.Host == testNode {
					seen[e.Reason] = true
				}
			}
		}
		missing := []string{}
		for _, r := range reasons {
			if !seen[r] {
				missing = append(missing, r)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("pod %s: no %v events (saw %v, %v)", pod, missing, seen, err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitGone(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s still there after %s (err %v)", name, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustCreate(t *testing.T, ctx context.Context, cs kubernetes.Interface, obj any) {
	t.Helper()
	var err error
	switch o := obj.(type) {
	case *corev1.Pod:
		_, err = cs.CoreV1().Pods(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ConfigMap:
		_, err = cs.CoreV1().ConfigMaps(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Secret:
		_, err = cs.CoreV1().Secrets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		t.Fatalf("cannot create %T", obj)
	}
	if err != nil {
		t.Fatalf("create %T: %v", obj, err)
	}
}

func checkNode(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	t.Helper()
	var n *corev1.Node
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		n, err = cs.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		if err == nil && nodeReady(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not Ready: %v %+v", err, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n.Spec.PodCIDR != testPodCIDR {
		t.Errorf("podCIDR = %q", n.Spec.PodCIDR)
	}
	if n.Labels[corev1.LabelHostname] != testNode || n.Labels[corev1.LabelOSStable] != "linux" {
		t.Errorf("labels = %v", n.Labels)
	}
	if n.Status.Capacity.Cpu().IsZero() || n.Status.Capacity.Memory().IsZero() || n.Status.Allocatable.Pods().Value() != 110 {
		t.Errorf("capacity = %v allocatable = %v", n.Status.Capacity, n.Status.Allocatable)
	}
	info := n.Status.NodeInfo
	if !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://") || info.KubeletVersion != agent.KubeletVersion || info.KernelVersion == "" || info.OSImage == "" {
		t.Errorf("nodeInfo = %+v", info)
	}
	if n.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("daemonEndpoints = %+v", n.Status.DaemonEndpoints)
	}
	if _, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, testNode, metav1.GetOptions{}); err != nil {
		t.Errorf("node lease: %v", err)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue && c.Reason == "KubeletReady"
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	c := condition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func waitPod(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name, what string, ok func(*corev1.Pod) bool) time.Time {
	t.Helper()
	return waitPodFor(t, ctx, cs, ns, name, what, 90*time.Second, ok)
}

// waitPodFor polls the pod every 50 ms until ok and returns when it first saw it so.
func waitPodFor(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name, what string, timeout time.Duration, ok func(*corev1.Pod) bool, poll ...time.Duration) time.Time {
	t.Helper()
	interval := 50 * time.Millisecond
	if len(poll) > 0 {
		interval = poll[0]
	}
	deadline := time.Now().Add(timeout)
	var last *corev1.Pod
	for {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = p
			if ok(p) {
				return time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not %s within %s; status: %s", name, what, timeout, podSummary(last))
		}
		time.Sleep(interval)
	}
}

func podSummary(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s reason=%s ip=%s", p.Status.Phase, p.Status.Reason, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v state=%+v last=%+v]", s.Name, s.RestartCount, s.Ready, s.State, s.LastTerminationState)
	}
	return b.String()
}

func checkWebStatus(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if len(p.Status.ContainerStatuses) != 1 {
		t.Fatalf("containerStatuses = %+v", p.Status.ContainerStatuses)
	}
	s := p.Status.ContainerStatuses[0]
	if !s.Ready || s.Started == nil || !*s.Started || s.State.Running == nil || s.RestartCount != 0 {
		t.Errorf("container status = %+v", s)
	}
	if !strings.HasPrefix(s.ContainerID, "containerd://") || s.Image != images.WebV1 || s.ImageID == "" {
		t.Errorf("container IDs: id %q image %q imageID %q", s.ContainerID, s.Image, s.ImageID)
	}
	if !strings.HasPrefix(p.Status.PodIP, "10.244.252.") || len(p.Status.PodIPs) != 1 || p.Status.HostIP == "" || p.Status.StartTime == nil {
		t.Errorf("IPs: pod %q %v host %q start %v", p.Status.PodIP, p.Status.PodIPs, p.Status.HostIP, p.Status.StartTime)
	}
	if p.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("qosClass = %s", p.Status.QOSClass)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
		if c := condition(p, ct); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s = %+v", ct, c)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("%s %q %v", resp.Status, b, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// execIn runs cmd in a container of the pod through CRI, finding the container by the
// standard labels.
func execIn(t *testing.T, ctx context.Context, a *agent.Agent, pod *corev1.Pod, container string, cmd ...string) string {
	t.Helper()
	cl := a.Runtime()
	cs, err := cl.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": string(pod.UID), "io.kubernetes.container.name": container},
	})
	if err != nil || len(cs) != 1 {
		t.Fatalf("finding container %s of %s: %d found, %v", container, pod.Name, len(cs), err)
	}
	res, err := cl.ExecSync(ctx, cs[0].Id, cmd, 10*time.Second)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exec %v: exit %d, %v, stderr %q", cmd, res.ExitCode, err, res.Stderr)
	}
	return string(res.Stdout)
}

func int64p(n int64) *int64 { return &n }
func boolp(b bool) *bool    { return &b }

func webPod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			ServiceAccountName:            "web-sa",
			TerminationGracePeriodSeconds: int64p(5),
			Containers: []corev1.Container{{
				Name:            "web",
				Image:           images.WebV1,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
				Env: []corev1.EnvVar{
					{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}, Key: "greeting"}}},
					{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "password"}}},
					{Name: "MISSING", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "x", Optional: boolp(true)}}},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
					{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
					{Name: "APP_LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
					{Name: "MEM_LIMIT_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
					{Name: "CPU_REQUEST_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
					{Name: "EXPANDED", Value: "$(GREETING)-world"},
				},
				EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
					PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 1,
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "config", MountPath: "/etc/config"},
					{Name: "config", MountPath: "/etc/config-sub", SubPath: "color"},
					{Name: "secret", MountPath: "/etc/secret"},
					{Name: "podinfo", MountPath: "/etc/podinfo"},
					{Name: "sa", MountPath: "/var/run/sa"},
					{Name: "data", MountPath: "/data"},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}},
				{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "web-secret"}}},
				{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
					{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
				}}}},
				{Name: "sa", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: int64p(3607)}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
				}}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
			},
		},
	}
}

func crashPod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			TerminationGracePeriodSeconds: int64p(1),
			Containers: []corev1.Container{{Name: "crash", Image: images.Busybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sh", "-c", "exit 3"}}},
		},
	}
}

func oomPod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "oom", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: int64p(1),
			Containers: []corev1.Container{{Name: "web", Image: images.WebV1, ImagePullPolicy: corev1.PullIfNotPresent,
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")}}}},
		},
	}
}

const livenessHostPort = 31777

func livenessPod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "liveness", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			TerminationGracePeriodSeconds: int64p(2),
			Containers: []corev1.Container{{Name: "web", Image: images.WebV1, ImagePullPolicy: corev1.PullIfNotPresent,
				Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: livenessHostPort}},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(80)}},
					PeriodSeconds: 1, FailureThreshold: 2, SuccessThreshold: 1, TimeoutSeconds: 1,
				}}},
		},
	}
}

func initPod(ns string) *corev1.Pod {
	work := []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "init", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			TerminationGracePeriodSeconds: int64p(1),
			InitContainers: []corev1.Container{
				{Name: "one", Image: images.Busybox, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sh", "-c", "sleep 1; echo one >> /work/order"}, VolumeMounts: work},
				{Name: "two", Image: images.Busybox, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sh", "-c", "echo two >> /work/order"}, VolumeMounts: work},
			},
			Containers: []corev1.Container{{Name: "main", Image: images.Busybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"}, VolumeMounts: work}},
			Volumes: []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
}

func hooksPod(ns, hostDir string) *corev1.Pod {
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hooks", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			TerminationGracePeriodSeconds: int64p(3),
			Containers: []corev1.Container{{Name: "main", Image: images.Busybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"},
				Lifecycle: &corev1.Lifecycle{
					PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo started > /hooks/poststart"}}},
					PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo stopping > /hooks/prestop"}}},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/hooks/poststart"}}},
					PeriodSeconds: 1, TimeoutSeconds: 2},
				StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
					PeriodSeconds: 1, TimeoutSeconds: 2, FailureThreshold: 5},
				VolumeMounts: []corev1.VolumeMount{{Name: "hooks", MountPath: "/hooks"}},
			}},
			Volumes: []corev1.Volume{{Name: "hooks", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &dirOrCreate}}}},
		},
	}
}

func completePod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "complete", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:      testNode,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "job", Image: images.Busybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sh", "-c", "echo all done > /dev/termination-log"}}},
		},
	}
}

func brokenPod(ns, name string, mod func(*corev1.Container)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			TerminationGracePeriodSeconds: int64p(1),
			Containers: []corev1.Container{{Name: "main", Image: images.Busybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"}}},
		},
	}
	mod(&p.Spec.Containers[0])
	return p
}
