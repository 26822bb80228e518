// Command svcbench measures the whole service path at scale on simulated nodes: a `skiff
// server` with its node agent's service proxy and N simulated nodes; N services, each with
// two pods bound to simulated nodes (which give them IPs and make them Ready). Reported:
// the time from the first create until the proxy has programmed every endpoint (the
// endpoints and EndpointSlice controllers, the proxy's informers and its nftables
// transactions in between), and for one more pod the time until its address is programmed.
// Runs as root (nftables); it owns the table `ip skiff-proxy` while it runs, so no other
// skiff server with an agent may run on the machine.
//
//	sudo go run ./bench/cmd/svcbench [-skiff bin/skiff] [-services 1000] [-nodes 20]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/bench/internal/benchutil"
	"github.com/skiff-sh/skiff/internal/agent/runtime"
)

func main() {
	skiff := flag.String("skiff", "bin/skiff", "skiff binary")
	imgDir := flag.String("images", "bin/images", "prebuilt image tarballs (make test-images)")
	services := flag.Int("services", 1000, "services, two pods each")
	nodes := flag.Int("nodes", 20, "simulated nodes")
	clients := flag.Int("clients", 20, "concurrent creating clients")
	flag.Parse()
	if os.Geteuid() != 0 {
		fail(fmt.Errorf("svcbench programs nftables: run it as root"))
	}
	fmt.Printf("# skiff services at scale — %s, %d CPUs, load average %s\n\n", time.Now().UTC().Format(time.RFC3339), benchutil.NumCPU(), benchutil.LoadAvg())
	dir, err := os.MkdirTemp("", "svcbench")
	fail(err)
	defer os.RemoveAll(dir)
	fail(benchutil.LinkImages(*imgDir, filepath.Join(dir, "agent", "images")))
	kport, err := benchutil.FreePort()
	fail(err)
	cmd := exec.Command(*skiff, "server", "--data-dir", dir, "--https-listen-port", "0", "--log-level", "warn",
		"--kubelet-port", strconv.Itoa(kport), "--disable", "ingress,dns",
		"--simulated-nodes", strconv.Itoa(*nodes), "--simulated-pod-start-delay", "0s", "--simulated-node-pods", "500")
	cmd.Stderr = os.Stderr
	fail(cmd.Start())
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_, _ = cmd.Process.Wait()
		_, _ = runtime.KillShims(filepath.Join(dir, "agent", "containerd", "containerd.sock"))
		_ = runtime.UnmountUnder(dir)
	}()
	kc := filepath.Join(dir, "kubeconfig.yaml")
	waitFor(2*time.Minute, time.Second, func() bool { _, err := os.Stat(kc); return err == nil })
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	fail(err)
	rc.QPS, rc.Burst = 100000, 100000
	cs, err := kubernetes.NewForConfig(rc)
	fail(err)
	ctx := context.Background()
	waitFor(2*time.Minute, 100*time.Millisecond, func() bool {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		ready := 0
		if err == nil {
			for _, n := range l.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		return ready >= *nodes+1
	})
	waitFor(2*time.Minute, 100*time.Millisecond, func() bool {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	baseline := countDNAT()

	pod := func(svc, i int) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d-%d", svc, i), Labels: map[string]string{"svc": strconv.Itoa(svc)}},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("sim-%d", (svc*2+i)%*nodes),
				Containers: []corev1.Container{{Name: "web", Image: "skiff.local/web:v1", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}}},
		}
	}
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i)},
					Spec: corev1.ServiceSpec{Selector: map[string]string{"svc": strconv.Itoa(i)},
						Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}}},
				}, metav1.CreateOptions{})
				fail(err)
				for j := 0; j < 2; j++ {
					_, err := cs.CoreV1().Pods("default").Create(ctx, pod(i, j), metav1.CreateOptions{})
					fail(err)
				}
			}
		}()
	}
	for i := 0; i < *services; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	created := time.Since(start)
	want := baseline + 2**services
	var last int
	waitFor(10*time.Minute, 200*time.Millisecond, func() bool { last = countDNAT(); return last >= want })
	programmed := time.Since(start)
	fmt.Printf("| what | time |\n|---|---|\n")
	fmt.Printf("| %d services + %d pods created (%d clients) | %s |\n", *services, 2**services, *clients, created.Round(time.Millisecond))
	fmt.Printf("| first create → every endpoint programmed in nftables (%d DNAT rules) | **%s** |\n", last-baseline, programmed.Round(time.Millisecond))

	// One endpoint change: a third pod for one service.
	var one []time.Duration
	for k := 0; k < 5; k++ {
		p := pod(k, 2+k)
		t0 := time.Now()
		_, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		fail(err)
		var ip string
		waitFor(time.Minute, 5*time.Millisecond, func() bool {
			got, err := cs.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
			ip = ""
			if err == nil {
				ip = got.Status.PodIP
			}
			return ip != ""
		})
		waitFor(time.Minute, 20*time.Millisecond, func() bool { return tableHas("dnat to " + ip + ":80") })
		one = append(one, time.Since(t0))
	}
	fmt.Printf("| one more endpoint: pod create → its address programmed (5 runs) | %v |\n", one)
	fmt.Printf("\nskiff RSS at the end: %.0f MB\n", float64(benchutil.RSSKB(cmd.Process.Pid))/1024)
}

func listTable() string {
	out, _ := exec.Command("nft", "list", "table", "ip", "skiff-proxy").Output()
	return string(out)
}

func countDNAT() int { return strings.Count(listTable(), "dnat to 10.") }

func tableHas(s string) bool { return strings.Contains(listTable(), s) }

func waitFor(d, every time.Duration, f func() bool) {
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("timed out after %v", d))
		}
		time.Sleep(every)
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "svcbench:", err)
		os.Exit(1)
	}
}
