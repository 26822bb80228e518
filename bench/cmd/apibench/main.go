// Command apibench measures the API server on this machine: start to /readyz, idle RSS,
// create/get/list throughput and latency at 1, 10 and 50 clients beside a plain etcd put/get
// baseline, custom resources (definition to served, create/get/list), a LIST of 10,000 pods,
// and one event fanned out to 1,000 watchers.
//
//	go run ./bench/cmd/apibench [-skiff bin/skiff] [-etcd bin/etcd] [-pods 10000] [-watchers 1000]
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/bench/internal/benchutil"
)

func main() {
	skiff := flag.String("skiff", "bin/skiff", "skiff binary")
	etcdBin := flag.String("etcd", "bin/etcd", "etcd binary for the baseline (empty: no baseline)")
	pods := flag.Int("pods", 10000, "pods for the LIST benchmark")
	watchers := flag.Int("watchers", 1000, "watchers for the fan-out benchmark")
	ops := flag.Int("ops", 2000, "operations per throughput run")
	flag.Parse()

	fmt.Printf("# skiff API benchmark — %s, %d CPUs\n\n", time.Now().UTC().Format(time.RFC3339), numCPU())
	dir, _ := os.MkdirTemp("", "apibench")
	defer os.RemoveAll(dir)

	// Start to /readyz, three fresh starts and one restart with existing data.
	var fresh []time.Duration
	for i := 0; i < 3; i++ {
		d := filepath.Join(dir, fmt.Sprintf("start%d", i))
		p, took := startSkiff(*skiff, d)
		fresh = append(fresh, took)
		benchutil.Stop(p)
	}
	p, restart := startSkiff(*skiff, filepath.Join(dir, "start0"))
	benchutil.Stop(p)
	fmt.Printf("## Start to /readyz\nfresh: %v (min %v)   with existing data: %v   [real Kubernetes here: 3.75–4.28 s fresh]\n\n", fresh, minDur(fresh), restart.Round(time.Millisecond))

	data := filepath.Join(dir, "main")
	proc, _ := startSkiff(*skiff, data)
	defer benchutil.Stop(proc)
	time.Sleep(3 * time.Second)
	fmt.Printf("## Idle RSS\nskiff server (etcd embedded, no agent): %.1f MB   [real Kubernetes control plane: 513 MB]\n\n", rssMB(proc.Process.Pid))

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(data, "kubeconfig.yaml"))
	must(err)
	cfg.QPS, cfg.Burst = 100000, 100000
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	var ec *clientv3.Client
	if *etcdBin != "" {
		var stopEtcd func()
		ec, stopEtcd = startEtcd(*etcdBin, filepath.Join(dir, "etcd-baseline"))
		defer stopEtcd()
	}

	fmt.Println("## Throughput and latency (client-go, protobuf; each client its own connection)")
	fmt.Println("| op | clients | ops/s | p50 | p99 | etcd baseline ops/s | p99 | ratio (skiff/etcd ops/s) |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, clients := range []int{1, 10, 50} {
		ns := fmt.Sprintf("bench-%d", clients)
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		must(err)
		n := *ops
		if clients == 1 {
			n = *ops / 4
		}
		clientsets := make([]*kubernetes.Clientset, clients)
		for i := range clientsets {
			c := rest.CopyConfig(cfg)
			c.Transport = nil
			clientsets[i] = kubernetes.NewForConfigOrDie(c)
		}
		create := run(clients, n, func(w, i int) error {
			_, err := clientsets[w].CoreV1().Pods(ns).Create(ctx, benchPod(fmt.Sprintf("p-%d-%d", w, i)), metav1.CreateOptions{})
			return err
		})
		var ePut, eGet result
		if ec != nil {
			ePut = run(clients, n, func(w, i int) error {
				_, err := ec.Put(ctx, fmt.Sprintf("/bench/%d/%d-%d", clients, w, i), strings.Repeat("x", 600))
				return err
			})
		}
		report("create pod", clients, create, ePut)
		get := run(clients, n, func(w, i int) error {
			_, err := clientsets[w].CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("p-%d-%d", w, i%max(1, n/clients)), metav1.GetOptions{})
			return err
		})
		if ec != nil {
			eGet = run(clients, n, func(w, i int) error {
				_, err := ec.Get(ctx, fmt.Sprintf("/bench/%d/%d-%d", clients, w, i%max(1, n/clients)))
				return err
			})
		}
		report("get pod", clients, get, eGet)
		list := run(clients, max(clients*4, n/10), func(w, i int) error {
			_, err := clientsets[w].CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 50})
			return err
		})
		report("list 50 pods", clients, list, result{})
	}
	fmt.Println()

	customResources(ctx, cfg, *ops)

	// LIST of N pods.
	fmt.Printf("## LIST of %d pods (client decode included)\n", *pods)
	ns := "bench-list"
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	t0 := time.Now()
	run(50, *pods, func(w, i int) error {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, benchPod(fmt.Sprintf("l-%d-%d", w, i)), metav1.CreateOptions{})
		return err
	})
	fmt.Printf("created %d pods in %v\n", *pods, time.Since(t0).Round(time.Millisecond))
	// Consistent first: it must see every pod; resourceVersion=0 may be served from a watch
	// cache a few events behind the last create (as in Kubernetes), so it is timed after.
	for _, rv := range []string{"", "0"} {
		var ds []time.Duration
		for i := 0; i < 5; i++ {
			s := time.Now()
			l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: rv})
			must(err)
			if len(l.Items) != *pods {
				panic(fmt.Sprintf("listed %d pods", len(l.Items)))
			}
			ds = append(ds, time.Since(s))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		name := map[string]string{"0": "resourceVersion=0 (watch cache)", "": "consistent (watch cache after a revision check)"}[rv]
		fmt.Printf("%s: p50 %v, min %v   [real Kubernetes here: rv=0 p50 464 ms, consistent p50 351 ms]\n", name, ds[2].Round(time.Millisecond), ds[0].Round(time.Millisecond))
	}
	fmt.Printf("RSS with %d pods stored: %.1f MB\n\n", *pods+*ops*3, rssMB(proc.Process.Pid))

	// Fan-out: one ConfigMap created, seen by N watchers.
	fmt.Printf("## One event delivered to %d watchers\n", *watchers)
	fanout(cfg, *watchers)
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "skiff.local/web:v1",
			Ports: []corev1.ContainerPort{{ContainerPort: 80}}}}}}
}

type result struct {
	n     int
	errs  int64
	total time.Duration
	lat   []time.Duration
}

func (r result) rate() float64 { return float64(r.n) / r.total.Seconds() }
func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*p)]
}

// run performs n operations spread over c concurrent workers and records each latency.
func run(c, n int, op func(worker, i int) error) result {
	per := n / c
	lat := make([][]time.Duration, c)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				s := time.Now()
				if err := op(w, i); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "error:", err)
					}
				}
				lat[w] = append(lat[w], time.Since(s))
			}
		}(w)
	}
	wg.Wait()
	r := result{n: per * c, total: time.Since(start), errs: errs.Load()}
	for _, l := range lat {
		r.lat = append(r.lat, l...)
	}
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	return r
}

func report(op string, clients int, r, base result) {
	b, bp, ratio := "-", "-", "-"
	if base.n > 0 {
		b = fmt.Sprintf("%.0f", base.rate())
		bp = ms(base.pct(0.99))
		ratio = fmt.Sprintf("%.2f", r.rate()/base.rate())
	}
	errs := ""
	if r.errs > 0 {
		errs = fmt.Sprintf(" (%d errors)", r.errs)
	}
	fmt.Printf("| %s | %d | %.0f%s | %s | %s | %s | %s | %s |\n", op, clients, r.rate(), errs, ms(r.pct(0.5)), ms(r.pct(0.99)), b, bp, ratio)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func fanout(cfg *rest.Config, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns := "bench-fanout"
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	l, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	must(err)
	// Watchers share a few HTTP/2 connections, as the informers of many clients would.
	var ready sync.WaitGroup
	seen := make(chan time.Time, n)
	for i := 0; i < n; i++ {
		c := cs
		if i%100 == 0 {
			c = kubernetes.NewForConfigOrDie(rest.CopyConfig(cfg))
		}
		ready.Add(1)
		go func(c *kubernetes.Clientset) {
			// Only the benchmark's object: the root CA publisher adds kube-root-ca.crt to
			// every new namespace.
			w, err := c.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion, FieldSelector: "metadata.name=fan"})
			ready.Done()
			if err != nil {
				fmt.Fprintln(os.Stderr, "watch:", err)
				return
			}
			for range w.ResultChan() {
				seen <- time.Now()
				return
			}
		}(c)
	}
	ready.Wait()
	time.Sleep(time.Second)
	start := time.Now()
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fan"}}, metav1.CreateOptions{})
	must(err)
	var ds []time.Duration
	timeout := time.After(30 * time.Second)
	for len(ds) < n {
		select {
		case t := <-seen:
			ds = append(ds, t.Sub(start))
		case <-timeout:
			fmt.Printf("only %d of %d watchers saw the event within 30s\n", len(ds), n)
			n = len(ds)
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	fmt.Printf("%d watchers: p50 %v, p99 %v, last %v   [real Kubernetes here: p50 36 ms, p99 62 ms]\n",
		len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)*99/100].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}

func startSkiff(bin, dataDir string) (*exec.Cmd, time.Duration) {
	kc := filepath.Join(dataDir, "kubeconfig.yaml")
	_ = os.Remove(kc)
	start := time.Now()
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--https-listen-port", "0", "--log-level", "warn", "--disable-agent")
	cmd.Stderr = os.Stderr
	must(cmd.Start())
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for time.Since(start) < 30*time.Second {
		if url := benchutil.ServerURL(kc); url != "" {
			if resp, err := client.Get(url + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd, time.Since(start)
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	panic("skiff did not become ready")
}

func startEtcd(bin, dir string) (*clientv3.Client, func()) {
	cport, pport := freePort(), freePort()
	curl := fmt.Sprintf("http://127.0.0.1:%d", cport)
	purl := fmt.Sprintf("http://127.0.0.1:%d", pport)
	cmd := exec.Command(bin, "--data-dir", dir, "--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl, "--initial-cluster", "default="+purl, "--log-level", "error")
	must(cmd.Start())
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{curl}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	must(err)
	for i := 0; i < 200; i++ {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Put(sctx, "/probe", "x")
		cancel()
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c, func() { c.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func rssMB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(sc.Text())[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}

func minDur(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		if d < m {
			m = d
		}
	}
	return m.Round(time.Millisecond)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// customResources times a CustomResourceDefinition until Established, then creates, gets and
// lists custom objects through the dynamic client (JSON, as every client of custom resources).
func customResources(ctx context.Context, cfg *rest.Config, n int) {
	fmt.Println("## Custom resources (dynamic client, JSON)")
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	schema := &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"image": {Type: "string"}, "replicas": {Type: "integer", Default: &apiextensionsv1.JSON{Raw: []byte("1")}}}}}}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "crontabs.bench.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: "bench.example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "crontabs", Kind: "CronTab"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: schema}}}}}
	t0 := time.Now()
	_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{})
	must(err)
	gvr := k8sschema.GroupVersionResource{Group: "bench.example.com", Version: "v1", Resource: "crontabs"}
	dyn := dynamic.NewForConfigOrDie(cfg)
	for {
		if _, err := dyn.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
			break
		}
		if time.Since(t0) > 10*time.Second {
			panic("custom resources not served after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("definition created → its resources served: %v\n\n", time.Since(t0).Round(time.Millisecond))
	fmt.Println("| op | clients | ops/s | p50 | p99 |")
	fmt.Println("|---|---|---|---|---|")
	obj := func(name string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "bench.example.com/v1", "kind": "CronTab",
			"metadata": map[string]interface{}{"name": name}, "spec": map[string]interface{}{"image": "web:v1"}}}
	}
	for _, clients := range []int{1, 50} {
		ns := fmt.Sprintf("bench-%d", clients)
		dyns := make([]dynamic.NamespaceableResourceInterface, clients)
		for i := range dyns {
			c := rest.CopyConfig(cfg)
			c.Transport = nil
			dyns[i] = dynamic.NewForConfigOrDie(c).Resource(gvr)
		}
		ops := n
		if clients == 1 {
			ops = n / 4
		}
		create := run(clients, ops, func(w, i int) error {
			_, err := dyns[w].Namespace(ns).Create(ctx, obj(fmt.Sprintf("c-%d-%d", w, i)), metav1.CreateOptions{})
			return err
		})
		fmt.Printf("| create custom object | %d | %.0f | %s | %s |\n", clients, create.rate(), ms(create.pct(0.5)), ms(create.pct(0.99)))
		get := run(clients, ops, func(w, i int) error {
			_, err := dyns[w].Namespace(ns).Get(ctx, fmt.Sprintf("c-%d-%d", w, i%max(1, ops/clients)), metav1.GetOptions{})
			return err
		})
		fmt.Printf("| get custom object | %d | %.0f | %s | %s |\n", clients, get.rate(), ms(get.pct(0.5)), ms(get.pct(0.99)))
	}
	var ds []time.Duration
	var items int
	for i := 0; i < 5; i++ {
		s := time.Now()
		l, err := dyn.Resource(gvr).Namespace("bench-50").List(ctx, metav1.ListOptions{})
		must(err)
		items = len(l.Items)
		ds = append(ds, time.Since(s))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	fmt.Printf("\nconsistent LIST of %d custom objects: p50 %v, min %v\n\n", items, ds[2].Round(time.Millisecond), ds[0].Round(time.Millisecond))
}
