package agent_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// TestAgentRestartAdoptsContainers stops the agent (and its managed containerd) with pods
// running, deletes one pod meanwhile, and starts a new agent on the same directory: the
// running pod keeps its container and stays Ready, the deleted pod's containers go.
func TestAgentRestartAdoptsContainers(t *testing.T) {
	skipUnlessRuntime(t)
	dir := t.TempDir()
	logs := &syncBuffer{}
	var logOut io.Writer = logs
	if os.Getenv("SKIFF_TEST_VERBOSE") != "" {
		logOut = io.MultiWriter(logs, os.Stderr)
	}
	cfg := agent.Config{
		NodeName: testNode, DataDir: filepath.Join(dir, "agent"), PodCIDR: testPodCIDR, Bridge: testBridge,
		NetworkName: "skiff-agent-test", Logger: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	cluster := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	cs := cluster.Client

	start := func() (*agent.Agent, context.CancelFunc) {
		t.Helper()
		a, err := agent.New(cfg, cs)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			if err := a.Run(ctx); err != nil {
				t.Errorf("agent: %v", err)
			}
		}()
		select {
		case <-a.Ready():
		case <-a.Done():
			t.Fatal("agent stopped before it was ready")
		case <-time.After(5 * time.Minute):
			t.Fatal("agent not ready")
		}
		return a, cancel
	}
	a, cancel := start()
	current := a
	stopCurrent := cancel
	t.Cleanup(func() { teardown(t, cluster, current, func() { stopCurrent() }, cfg, logs) })

	ctx, done := context.WithTimeout(context.Background(), 5*time.Minute)
	defer done()
	web := webPodSimple("default", "keeper")
	doomed := initPod("default")
	doomed.Name = "doomed"
	mustCreate(t, ctx, cs, web)
	mustCreate(t, ctx, cs, doomed)
	waitPod(t, ctx, cs, "default", "keeper", "Ready", podReady)
	waitPod(t, ctx, cs, "default", "doomed", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	before, _ := cs.CoreV1().Pods("default").Get(ctx, "keeper", metav1.GetOptions{})
	gone, _ := cs.CoreV1().Pods("default").Get(ctx, "doomed", metav1.GetOptions{})
	id := before.Status.ContainerStatuses[0].ContainerID

	cancel()
	<-a.Done()
	t.Log("agent stopped")
	zero := int64(0)
	if err := cs.CoreV1().Pods("default").Delete(ctx, "doomed", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	body := httpGet(t, "http://"+before.Status.PodIP+"/")
	if !strings.Contains(body, "hostname=keeper") {
		t.Errorf("pod not serving while the agent is down: %q", body)
	}

	t0 := time.Now()
	a2, cancel2 := start()
	current, stopCurrent = a2, cancel2
	t.Logf("new agent ready in %s", time.Since(t0).Round(time.Millisecond))

	// For a while, the kept pod must stay Ready with the same container.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "keeper", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := p.Status.ContainerStatuses[0]
		if !podReady(p) || s.ContainerID != id || s.RestartCount != 0 || s.State.Running == nil {
			t.Fatalf("after the agent restart: %s (container was %s)", podSummary(p), id)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The deleted pod's sandbox and containers are removed.
	sel := map[string]string{"io.kubernetes.pod.uid": string(gone.UID)}
	deadline = time.Now().Add(30 * time.Second)
	for {
		sbs, err := a2.Runtime().ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
		if err == nil && len(sbs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphaned sandboxes still there: %d (%v)", len(sbs), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "pods", string(gone.UID))); !os.IsNotExist(err) {
		t.Errorf("orphan's pod directory left (%v)", err)
	}
}

func webPodSimple(ns, name string) *corev1.Pod {
	p := livenessPod(ns)
	p.Name = name
	c := &p.Spec.Containers[0]
	c.Ports = nil
	c.ReadinessProbe, c.LivenessProbe = c.LivenessProbe, nil
	return p
}
