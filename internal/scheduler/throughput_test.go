package scheduler_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// BenchmarkThroughput is a small in-process schedbench: the default controllers and
// scheduler, SKIFF_BENCH_NODES simulated nodes (default 200), and b.N plain pods created by
// 20 clients; it reports bound pods per second and the CPU time (whole process: control
// plane, simulated kubelets and clients) per pod, which a shared machine disturbs less. Run it with -cpu 1 and -cpuprofile to see
// where a pod's time goes in the whole control plane:
//
//	go test ./internal/scheduler -run XXX -bench Throughput -benchtime 2000x -cpu 1 -cpuprofile cpu.out
func BenchmarkThroughput(b *testing.B) {
	nodes := 200
	if s := os.Getenv("SKIFF_BENCH_NODES"); s != "" {
		nodes, _ = strconv.Atoi(s)
	}
	c := skifftest.Start(b, skifftest.Options{
		Controllers:    controlplane.DefaultControllers(),
		NodeComponents: []controlplane.ComponentFactory{simnode.NewFactory(simnode.Config{Count: nodes, StartDelay: time.Nanosecond})},
	})
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err == nil && len(l.Items) == nodes {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("nodes not registered")
		}
		time.Sleep(100 * time.Millisecond)
	}
	ns := "bench"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var bound atomic.Int64
	all := make(chan struct{})
	var once sync.Once
	seen := sync.Map{}
	mark := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return
		}
		if _, loaded := seen.LoadOrStore(p.Name, struct{}{}); !loaded && bound.Add(1) == int64(b.N) {
			once.Do(func() { close(all) })
		}
	}
	f := informers.NewSharedInformerFactoryWithOptions(c.Client, 0, informers.WithNamespace(ns))
	_, _ = f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: mark, UpdateFunc: func(_, o any) { mark(o) }})
	stop := make(chan struct{})
	defer close(stop)
	f.Start(stop)
	f.WaitForCacheSync(stop)

	const clients = 20
	css := make([]kubernetes.Interface, clients)
	for i := range css {
		cfg := rest.CopyConfig(c.Config)
		cfg.QPS, cfg.Burst = 100000, 100000
		css[i] = kubernetes.NewForConfigOrDie(cfg)
	}
	req := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("p-", i)}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "c", Image: "skiff.local/web:v1", Resources: corev1.ResourceRequirements{Requests: req}}}}}
				if _, err := css[w].CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	created := time.Since(start)
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d bound", bound.Load(), b.N)
	}
	took := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/pod")
	b.ReportMetric(float64(b.N)/took.Seconds(), "bound/s")
	if os.Getenv("SKIFF_BENCH_REQUESTS") != "" {
		// The API requests the run made, to check what a pod costs.
		data, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "apiserver_request_total") || strings.HasPrefix(l, "apiserver_registered_watchers") {
				fmt.Fprintln(os.Stderr, l)
			}
		}
	}
	b.ReportMetric(float64(b.N)/created.Seconds(), "created/s")
}

// cpuTime is this process's user+system CPU time: the whole control plane and the clients.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
