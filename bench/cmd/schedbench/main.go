// Command schedbench measures the scheduler and the workload controllers on this machine
// against simulated nodes (skiff server --simulated-nodes N):
//
//   - scheduling throughput: P plain pods created by 50 concurrent client-go clients while a
//     watch counts them bound (spec.nodeName set); pods/s is P over the time from the first
//     create to the last binding seen, with the create rate beside it;
//   - a 1,000-replica Deployment on 100 simulated nodes: time to Available, then time for a
//     rolling update (image change) to complete.
//
// Each phase reports the skiff process's CPU seconds (utime+stime delta from /proc/<pid>/stat),
// its RSS (and peak RSS) and the load average, because the machine is shared.
//
// With -profile DIR it also saves, for each scheduling run, a CPU profile of the skiff process
// taken over the first -profile-seconds of the creates (DIR/sched-<nodes>.cpu.pprof, read with
// `go tool pprof -top bin/skiff FILE`; allocations over the same window in .allocs.pprof,
// `go tool pprof -top bin/skiff FILE`) and its goroutines a few seconds in
// (DIR/sched-<nodes>.goroutines.txt), through the API server's /debug/pprof handlers, and
// the API server's /metrics after the run (DIR/sched-<nodes>.metrics.txt: requests by verb).
//
//	go run ./bench/cmd/schedbench [-skiff bin/skiff] [-nodes 1000,5000] [-pods 10000] [-deploy-nodes 100] [-replicas 1000]
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/bench/internal/benchutil"
)

var (
	startDelay     string
	profileDir     string
	profileSeconds int
)

func main() {
	skiff := flag.String("skiff", "bin/skiff", "skiff binary")
	nodesFlag := flag.String("nodes", "1000,5000", "comma-separated simulated node counts for the scheduling run")
	pods := flag.Int("pods", 10000, "pods to schedule per node count")
	clients := flag.Int("clients", 50, "concurrent creating clients")
	deployNodes := flag.Int("deploy-nodes", 100, "simulated nodes for the Deployment run (0: skip)")
	replicas := flag.Int("replicas", 1000, "Deployment replicas")
	flag.StringVar(&startDelay, "start-delay", "0s", "--simulated-pod-start-delay")
	timeout := flag.Duration("timeout", 10*time.Minute, "limit for each phase")
	flag.StringVar(&profileDir, "profile", "", "save a CPU profile and a goroutine dump of skiff per scheduling run in this directory")
	flag.IntVar(&profileSeconds, "profile-seconds", 10, "length of the CPU profile")
	flag.Parse()

	fmt.Printf("# skiff scheduler benchmark — %s, %d CPUs, load average %s\n\n", time.Now().UTC().Format(time.RFC3339), numCPU(), loadavg())
	dir, _ := os.MkdirTemp("", "schedbench")
	defer os.RemoveAll(dir)

	fmt.Println("## Scheduling throughput (plain pods, 100m/64Mi requests, default scheduler)")
	fmt.Printf("%d pods from %d client-go clients (QPS unlimited), --simulated-pod-start-delay %s\n\n", *pods, *clients, startDelay)
	fmt.Println("| nodes | nodes Ready after | bound pods/s (first create → last bound) | create rate | bound at last create | bind rate after creates ended (lag) | control-plane CPU s | RSS after / peak | Scheduled events at last bind / 10 s later | load avg |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range strings.Split(*nodesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		must(err)
		schedRun(*skiff, filepath.Join(dir, fmt.Sprintf("sched-%d", n)), n, *pods, *clients, *timeout)
	}
	fmt.Println()
	if *deployNodes > 0 {
		deployRun(*skiff, filepath.Join(dir, "deploy"), *deployNodes, *replicas, *timeout)
	}
}

func schedRun(bin, dataDir string, nodes, pods, clients int, timeout time.Duration) {
	proc, cfg := startSkiff(bin, dataDir, nodes)
	defer benchutil.Stop(proc)
	pid := proc.Process.Pid
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	readyAfter := waitNodes(ctx, cs, nodes)

	ns := "sched"
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)

	// Count bindings with an informer on the namespace (relists and rewatches as needed).
	var bound atomic.Int64
	var lastBound atomic.Int64 // unix nanos
	seen := sync.Map{}
	all := make(chan struct{})
	var once sync.Once
	mark := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return
		}
		if _, loaded := seen.LoadOrStore(p.Name, struct{}{}); !loaded {
			lastBound.Store(time.Now().UnixNano())
			if bound.Add(1) == int64(pods) {
				once.Do(func() { close(all) })
			}
		}
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: mark, UpdateFunc: func(_, o any) { mark(o) }})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())

	css := make([]*kubernetes.Clientset, clients)
	for i := range css {
		c := rest.CopyConfig(cfg)
		c.Transport = nil
		css[i] = kubernetes.NewForConfigOrDie(c)
	}
	cpu0 := cpuSeconds(pid)
	var errs atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	profiled := profile(ctx, cs, fmt.Sprintf("sched-%d", nodes))
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(pods) {
					return
				}
				if _, err := css[w].CoreV1().Pods(ns).Create(ctx, benchPod(fmt.Sprintf("p-%d", i)), metav1.CreateOptions{}); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "create:", err)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	created := time.Since(start)
	createdAt := time.Now()
	boundAtCreated := bound.Load()
	select {
	case <-all:
	case <-ctx.Done():
		fmt.Fprintf(os.Stderr, "timeout: %d of %d pods bound\n", bound.Load(), pods)
	}
	end := time.Unix(0, lastBound.Load())
	took := end.Sub(start)
	lag := end.Sub(createdAt)
	if lag < 0 {
		lag = 0
	}
	cpu := cpuSeconds(pid) - cpu0
	rss, hwm := rssMB(pid, "VmRSS:"), rssMB(pid, "VmHWM:")
	// kube-scheduler records a Scheduled event per pod; how many did skiff write?
	eventsAtEnd := countEvents(ctx, cs, ns, "Scheduled")
	time.Sleep(10 * time.Second)
	eventsLater := countEvents(ctx, cs, ns, "Scheduled")
	errNote := ""
	if e := errs.Load(); e > 0 {
		errNote = fmt.Sprintf(" (%d create errors)", e)
	}
	<-profiled
	if profileDir != "" {
		// What the run asked of the API server (requests by resource, verb and code).
		if data, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx); err == nil {
			must(os.WriteFile(filepath.Join(profileDir, fmt.Sprintf("sched-%d.metrics.txt", nodes)), data, 0o644))
		}
	}
	fmt.Printf("| %d | %v | **%.0f** (%d in %v) | %.0f/s%s | %d | %.0f/s (%v) | %.1f | %.0f / %.0f MB | %d / %d | %s |\n",
		nodes, readyAfter.Round(time.Millisecond), float64(bound.Load())/took.Seconds(), bound.Load(), took.Round(time.Millisecond),
		float64(pods)/created.Seconds(), errNote, boundAtCreated, float64(bound.Load()-boundAtCreated)/lag.Seconds(), lag.Round(time.Millisecond), cpu, rss, hwm,
		eventsAtEnd, eventsLater, loadavg())
}

// countEvents counts the events of namespace ns with the given reason.
func countEvents(ctx context.Context, cs *kubernetes.Clientset, ns, reason string) int {
	l, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + reason})
	if err != nil {
		fmt.Fprintln(os.Stderr, "list events:", err)
		return -1
	}
	return len(l.Items)
}

func deployRun(bin, dataDir string, nodes, replicas int, timeout time.Duration) {
	fmt.Printf("## Deployment of %d replicas on %d simulated nodes (--simulated-pod-start-delay %s)\n\n", replicas, nodes, startDelay)
	proc, cfg := startSkiff(bin, dataDir, nodes)
	defer benchutil.Stop(proc)
	pid := proc.Process.Pid
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	waitNodes(ctx, cs, nodes)
	ns := "deploy"
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	r := int32(replicas)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &r,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       podSpec("skiff.local/web:v1"),
			},
		},
	}
	fmt.Println("| phase | time | control-plane CPU s | RSS after / peak | load avg |")
	fmt.Println("|---|---|---|---|---|")
	cpu0 := cpuSeconds(pid)
	start := time.Now()
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	must(err)
	waitDeploy(ctx, cs, ns, "web", replicas, 1)
	took := time.Since(start)
	cpu1 := cpuSeconds(pid)
	fmt.Printf("| create → availableReplicas == %d | **%v** | %.1f | %.0f / %.0f MB | %s |\n", replicas, took.Round(time.Millisecond), cpu1-cpu0, rssMB(pid, "VmRSS:"), rssMB(pid, "VmHWM:"), loadavg())

	start = time.Now()
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"skiff.local/web:v2"}]}}}}`)
	_, err = cs.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	must(err)
	waitDeploy(ctx, cs, ns, "web", replicas, 2)
	took = time.Since(start)
	cpu2 := cpuSeconds(pid)
	fmt.Printf("| image change → rolled out (updated == available == replicas == %d) | **%v** | %.1f | %.0f / %.0f MB | %s |\n", replicas, took.Round(time.Millisecond), cpu2-cpu1, rssMB(pid, "VmRSS:"), rssMB(pid, "VmHWM:"), loadavg())
	fmt.Println()
}

// profile starts, when -profile is set, a CPU profile of the skiff process and a goroutine
// dump a few seconds later; the channel closes once both are saved.
func profile(ctx context.Context, cs *kubernetes.Clientset, name string) <-chan struct{} {
	done := make(chan struct{})
	if profileDir == "" {
		close(done)
		return done
	}
	must(os.MkdirAll(profileDir, 0o755))
	save := func(file string, path string, params map[string]string) {
		req := cs.CoreV1().RESTClient().Get().AbsPath(path).Timeout(time.Duration(profileSeconds+30) * time.Second)
		for k, v := range params {
			req = req.Param(k, v)
		}
		data, err := req.DoRaw(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "profile %s: %v\n", path, err)
			return
		}
		must(os.WriteFile(filepath.Join(profileDir, file), data, 0o644))
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		save(name+".cpu.pprof", "/debug/pprof/profile", map[string]string{"seconds": strconv.Itoa(profileSeconds)})
	}()
	go func() {
		defer wg.Done()
		save(name+".allocs.pprof", "/debug/pprof/allocs", map[string]string{"seconds": strconv.Itoa(profileSeconds)})
	}()
	go func() {
		defer wg.Done()
		time.Sleep(time.Duration(profileSeconds) * time.Second / 2)
		save(name+".goroutines.txt", "/debug/pprof/goroutine", map[string]string{"debug": "1"})
	}()
	go func() { wg.Wait(); close(done) }()
	return done
}

// waitDeploy polls until the Deployment at generation gen has n updated, available replicas and
// no others (status.replicas counts old pods too).
func waitDeploy(ctx context.Context, cs *kubernetes.Clientset, ns, name string, n int, gen int64) {
	var last string
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			s := d.Status
			last = fmt.Sprintf("gen %d/%d replicas %d updated %d ready %d available %d", s.ObservedGeneration, d.Generation, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas)
			if d.Generation >= gen && s.ObservedGeneration >= d.Generation && int(s.UpdatedReplicas) == n &&
				int(s.AvailableReplicas) == n && int(s.Replicas) == n && s.UnavailableReplicas == 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			panic("deployment did not finish: " + last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func podSpec(image string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image,
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}}}}
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "sched"}}, Spec: podSpec("skiff.local/web:v1")}
}

// waitNodes waits for n Ready nodes and returns how long that took.
func waitNodes(ctx context.Context, cs *kubernetes.Clientset, n int) time.Duration {
	start := time.Now()
	for {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		ready := 0
		if err == nil {
			for _, nd := range l.Items {
				for _, c := range nd.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready >= n {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			panic(fmt.Sprintf("only %d of %d nodes Ready", ready, n))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func startSkiff(bin, dataDir string, nodes int) (*exec.Cmd, *rest.Config) {
	kc := filepath.Join(dataDir, "kubeconfig.yaml")
	start := time.Now()
	cmd := exec.Command(bin, "server", "--disable-agent", "--data-dir", dataDir, "--https-listen-port", "0", "--log-level", "warn",
		"--simulated-nodes", strconv.Itoa(nodes), "--simulated-pod-start-delay", startDelay)
	// The server's log goes to a file: shutting it down logs connection errors by the dozen.
	must(os.MkdirAll(dataDir, 0o700))
	logf, err := os.Create(dataDir + ".log")
	must(err)
	cmd.Stderr, cmd.Stdout = logf, logf
	must(cmd.Start())
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for time.Since(start) < 60*time.Second {
		if url := benchutil.ServerURL(kc); url != "" {
			if resp, err := client.Get(url + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					cfg, err := clientcmd.BuildConfigFromFlags("", kc)
					must(err)
					cfg.QPS, cfg.Burst = 100000, 100000
					return cmd, cfg
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	panic("skiff did not become ready")
}

// cpuSeconds is utime+stime of pid (all threads) from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields after the command: state is f[0], utime is field 14 of stat, i.e. f[11].
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ
}

func rssMB(pid int, key string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			kb, _ := strconv.Atoi(strings.Fields(sc.Text())[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
