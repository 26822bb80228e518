// Command podbench measures pod startup on a real node (root, containerd, images present):
//
//   - the CRI floor: RunPodSandbox + CreateContainer + StartContainer of skiff.local/web:v1
//     straight through CRI against the same containerd, one at a time and N at once;
//
//   - skiff: from the pod's Create call to the watch event that shows it Running, for pods
//     created one at a time and N at once (scheduler, agent, CNI, container start and the
//     status write included);
//
//   - the node agent's idle memory: the RSS of `skiff server` with the agent minus that of
//     `skiff server --disable-agent`, each measured idle in its own run (containerd and shims
//     are separate processes and excluded).
//
//     sudo go run ./bench/cmd/podbench [-pods 30] [-images bin/images] [-skiff bin/skiff]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/bench/internal/benchutil"
	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/agent/runtime"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controlplane"
)

func main() {
	n := flag.Int("pods", 30, "pods per batch")
	imgDir := flag.String("images", "bin/images", "prebuilt image tarballs (make test-images)")
	skiff := flag.String("skiff", "bin/skiff", "skiff binary for the memory run (empty: skip it)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fail(fmt.Errorf("podbench runs real containers: run it as root"))
	}
	fmt.Printf("# skiff pod startup benchmark — %s, %d CPUs, load average %s\n\n", time.Now().UTC().Format(time.RFC3339), benchutil.NumCPU(), benchutil.LoadAvg())
	dir, err := os.MkdirTemp("", "podbench")
	fail(err)
	defer os.RemoveAll(dir)
	fail(benchutil.LinkImages(*imgDir, filepath.Join(dir, "agent", "images")))

	ctx, cancel := context.WithCancel(context.Background())
	var ag *agent.Agent
	build := agent.NewFactory(agent.Config{NodeName: "bench-node", DataDir: filepath.Join(dir, "agent"), StreamingPort: mustPort()})
	cp, err := controlplane.Start(ctx, controlplane.Config{
		DataDir: dir, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		NodeComponents: []controlplane.ComponentFactory{func(cc *controller.Context) (controller.Component, error) {
			c, err := build(cc)
			if err == nil {
				ag = c.(*agent.Agent)
			}
			return c, err
		}},
	})
	fail(err)
	defer func() {
		cancel()
		cp.Stop()
		<-ag.Done()
		if c := ag.Containerd(); c != nil {
			_, _ = runtime.KillShims(c.Socket())
		}
		_ = runtime.UnmountUnder(dir)
	}()
	rc, err := cp.RESTConfig()
	fail(err)
	rc.QPS, rc.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(rc)
	fail(err)
	select {
	case <-ag.Ready():
	case <-time.After(2 * time.Minute):
		fail(fmt.Errorf("agent not ready in 2 minutes"))
	}
	waitFor(func() bool {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	cri := ag.Runtime()

	// Warm up both paths once (first sandbox creates the bridge, first container unpacks).
	_, _ = floor(ctx, cri, dir, 1, 1, "warm")
	_, _ = skiffPods(ctx, cs, 1, false, "warm")

	fmt.Printf("| path | pods | p50 | p99 | max | wall |\n|---|---|---|---|---|---|\n")
	for _, c := range []struct {
		name       string
		concurrent bool
	}{{"one at a time", false}, {fmt.Sprintf("%d at once", *n), true}} {
		par := 1
		if c.concurrent {
			par = *n
		}
		fl, fwall := floor(ctx, cri, dir, *n, par, "f"+strconv.Itoa(par))
		row("CRI floor, "+c.name, fl, fwall)
		sk, swall := skiffPods(ctx, cs, *n, c.concurrent, "p"+strconv.Itoa(par))
		row("skiff, "+c.name, sk, swall)
		fmt.Printf("| overhead above the floor, %s | | %s | %s | | |\n", c.name,
			ms(pct(sk, 50)-pct(fl, 50)), ms(pct(sk, 99)-pct(fl, 99)))
	}
	cancel()

	if *skiff != "" {
		fmt.Println()
		memory(*skiff, *imgDir)
	}
}

// floor starts n web sandboxes straight through CRI, par at a time, and removes them.
func floor(ctx context.Context, cri *runtime.Client, dir string, n, par int, tag string) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, n)
	ids := make([]string, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("floor-%s-%d", tag, i)
			logDir := filepath.Join(dir, "floor", name)
			_ = os.MkdirAll(logDir, 0o755)
			sb := &runtimeapi.PodSandboxConfig{
				Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "podbench", Uid: name},
				Hostname:     name,
				LogDirectory: logDir,
				Linux:        &runtimeapi.LinuxPodSandboxConfig{},
			}
			t := time.Now()
			id, err := cri.RunPodSandbox(ctx, sb, "")
			fail(err)
			ids[i] = id
			cid, err := cri.CreateContainer(ctx, id, &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
				Image:    &runtimeapi.ImageSpec{Image: images.WebV1},
				LogPath:  "web.log",
				Linux:    &runtimeapi.LinuxContainerConfig{},
			}, sb)
			fail(err)
			fail(cri.StartContainer(ctx, cid))
			lat[i] = time.Since(t)
		}(i)
	}
	wg.Wait()
	wall := time.Since(start)
	for _, id := range ids {
		_ = cri.StopPodSandbox(ctx, id)
		_ = cri.RemovePodSandbox(ctx, id)
	}
	return lat, wall
}

// skiffPods creates n pods (all at once or one after the other) and times each from its
// Create call to the first watch event showing it Running; then deletes them.
func skiffPods(ctx context.Context, cs kubernetes.Interface, n int, concurrent bool, tag string) ([]time.Duration, time.Duration) {
	ns := "podbench-" + tag
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	fail(err)
	waitFor(func() bool {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	fail(err)
	var mu sync.Mutex
	created := map[string]time.Time{}
	running := map[string]time.Time{}
	done := make(chan struct{})
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			p := ev.Object.(*corev1.Pod)
			if p.Status.Phase != corev1.PodRunning {
				continue
			}
			mu.Lock()
			if _, seen := running[p.Name]; !seen {
				running[p.Name] = time.Now()
				if len(running) == n {
					close(done)
				}
			}
			mu.Unlock()
		}
	}()
	pod := func(i int) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: images.WebV1,
				ImagePullPolicy: corev1.PullIfNotPresent}}},
		}
	}
	create := func(i int) {
		p := pod(i)
		mu.Lock()
		created[p.Name] = time.Now()
		mu.Unlock()
		_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		fail(err)
	}
	start := time.Now()
	if concurrent {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) { defer wg.Done(); create(i) }(i)
		}
		wg.Wait()
	} else {
		for i := 0; i < n; i++ {
			create(i)
			name := pod(i).Name
			waitFor(func() bool { mu.Lock(); defer mu.Unlock(); _, ok := running[name]; return ok })
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		fail(fmt.Errorf("only %d of %d pods running after 5 minutes", len(running), n))
	}
	wall := time.Since(start)
	w.Stop()
	var lat []time.Duration
	mu.Lock()
	for name, t := range running {
		lat = append(lat, t.Sub(created[name]))
	}
	mu.Unlock()
	zero := int64(0)
	_ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	waitFor(func() bool {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0
	})
	return lat, wall
}

// memory starts the binary without and then with the agent, idles, and reads each RSS.
func memory(skiff, imgDir string) {
	measure := func(withAgent bool) (server, containerd int64) {
		dir, err := os.MkdirTemp("", "podbench-rss")
		fail(err)
		defer os.RemoveAll(dir)
		args := []string{"server", "--data-dir", dir, "--https-listen-port", "0", "--kubelet-port", strconv.Itoa(mustPort())}
		if withAgent {
			fail(benchutil.LinkImages(imgDir, filepath.Join(dir, "agent", "images")))
		} else {
			args = append(args, "--disable-agent")
		}
		cmd := exec.Command(skiff, args...)
		fail(cmd.Start())
		defer func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_, _ = cmd.Process.Wait()
			_, _ = runtime.KillShims(filepath.Join(dir, "agent", "containerd", "containerd.sock"))
			_ = runtime.UnmountUnder(dir)
		}()
		// Ready: the kubeconfig is written at start; the agent logs nothing we parse, so
		// give both runs the same settling time.
		time.Sleep(20 * time.Second)
		server = benchutil.RSSKB(cmd.Process.Pid)
		if out, err := exec.Command("pgrep", "-f", "containerd --config "+dir).Output(); err == nil {
			if pid, err := strconv.Atoi(strings.Fields(string(out))[0]); err == nil {
				containerd = benchutil.RSSKB(pid)
			}
		}
		return server, containerd
	}
	base, _ := measure(false)
	with, ctrd := measure(true)
	fmt.Printf("| idle RSS after 20 s | MB |\n|---|---|\n")
	fmt.Printf("| skiff server --disable-agent | %.1f |\n| skiff server (with agent) | %.1f |\n| agent (difference) | %.1f |\n| managed containerd (excluded) | %.1f |\n",
		mb(base), mb(with), mb(with-base), mb(ctrd))
}

func row(name string, lat []time.Duration, wall time.Duration) {
	fmt.Printf("| %s | %d | %s | %s | %s | %s |\n", name, len(lat), ms(pct(lat, 50)), ms(pct(lat, 99)), ms(pct(lat, 100)), ms(wall))
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	if i > len(s) {
		i = len(s)
	}
	return s[i-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

func mb(kb int64) float64 { return float64(kb) / 1024 }

func waitFor(f func() bool) {
	deadline := time.Now().Add(2 * time.Minute)
	for !f() {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("timed out waiting"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "podbench:", err)
		os.Exit(1)
	}
}

func mustPort() int {
	p, err := benchutil.FreePort()
	fail(err)
	return p
}
