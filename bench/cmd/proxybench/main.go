// Command proxybench measures skiff's service proxy against the real nftables of this machine
// (root and the nft binary needed), fed by a fake clientset (no API server): the time to
// program N services with E endpoints each from cold, a full resync over them, and the time
// for one endpoint change to show in `nft list`. It uses a scratch table and removes it.
//
//	go run ./bench/cmd/proxybench [-services 1000] [-endpoints 3] [-changes 20]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/proxy"
)

func main() {
	services := flag.Int("services", 1000, "services")
	endpoints := flag.Int("endpoints", 3, "endpoints per service")
	changes := flag.Int("changes", 20, "single-endpoint changes to time")
	table := flag.String("table", fmt.Sprintf("skiff-bench-%d", os.Getpid()), "scratch nftables table (family ip)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fail("needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		fail("needs the nft binary")
	}
	nftVersion, _ := exec.Command("nft", "--version").Output()
	fmt.Printf("# skiff service proxy benchmark — %s, %d CPUs, %s\n\n", time.Now().UTC().Format(time.RFC3339),
		runtime.NumCPU(), strings.TrimSpace(string(nftVersion)))

	var objs []k8sruntime.Object
	for i := 0; i < *services; i++ {
		objs = append(objs, svc(i), slice(i, *endpoints, 0))
	}
	cs := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(cs, 0)
	reg := prometheus.NewRegistry()
	p, err := proxy.New(proxy.Config{TableName: *table, NodeName: "bench", Registerer: reg, SkipSysctls: true,
		Logger: logger()}, cs, factory)
	if err != nil {
		fail(err.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	defer func() {
		cancel()
		<-done
		_ = exec.Command("nft", "delete", "table", "ip", *table).Run() // in case
	}()

	start := time.Now()
	factory.Start(ctx.Done())
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case <-time.After(5 * time.Minute):
		fail("no first sync in 5 minutes")
	}
	cold := time.Since(start)
	coldSync := lastSync(reg, "full")
	listStart := time.Now()
	dump := list(*table)
	listTime := time.Since(listStart)
	chains, rules := strings.Count(dump, "\tchain "), countRules(dump)
	if want := fmt.Sprintf("numgen random mod %d", *endpoints); strings.Count(dump, want) != *services {
		fail(fmt.Sprintf("expected %d services balanced over %d endpoints in the table", *services, *endpoints))
	}

	// Periodic full resync over the programmed table.
	before := syncCount(reg, "full")
	p.RequestFullSync()
	for syncCount(reg, "full") == before {
		time.Sleep(5 * time.Millisecond)
	}
	resync := lastSync(reg, "full")

	// One endpoint change at a time: until `nft list` shows the new endpoint.
	var visible, partial []time.Duration
	for c := 1; c <= *changes; c++ {
		i := (c * 7919) % *services
		newSlice := slice(i, *endpoints, c)
		want := fmt.Sprintf("dnat to %s:8080", epIP(i, *endpoints-1, c))
		before := syncCount(reg, "partial")
		t0 := time.Now()
		if _, err := cs.DiscoveryV1().EndpointSlices("bench").Update(ctx, newSlice, metav1.UpdateOptions{}); err != nil {
			fail(err.Error())
		}
		for {
			out, err := exec.Command("nft", "list", "chain", "ip", *table, fmt.Sprintf("ep/bench/s%d/tcp/80/%s/8080", i, epIP(i, *endpoints-1, c))).Output()
			if err == nil && strings.Contains(string(out), want) {
				break
			}
			if time.Since(t0) > 30*time.Second {
				fail("change not visible after 30 s")
			}
			time.Sleep(2 * time.Millisecond)
		}
		visible = append(visible, time.Since(t0))
		for syncCount(reg, "partial") == before {
			time.Sleep(time.Millisecond)
		}
		partial = append(partial, lastSync(reg, "partial"))
		time.Sleep(150 * time.Millisecond) // past the minimum sync interval, so changes are timed one by one
	}

	fmt.Printf("| what | figure |\n|---|---|\n")
	fmt.Printf("| table size | %d services × %d endpoints: %d chains, %d rules |\n", *services, *endpoints, chains, rules)
	fmt.Printf("| cold: Run → first sync done (informers + rules + nft) | %s |\n", ms(cold))
	fmt.Printf("| cold: the sync itself (compute + one nft transaction) | %s |\n", ms(coldSync))
	fmt.Printf("| full resync over the programmed table | %s |\n", ms(resync))
	fmt.Printf("| `nft list table` of it | %s |\n", ms(listTime))
	fmt.Printf("| one endpoint change → visible in `nft list chain` (%d changes) | p50 %s, max %s |\n", *changes, ms(pct(visible, 50)), ms(pct(visible, 100)))
	fmt.Printf("| one endpoint change: partial sync duration | p50 %s, max %s |\n", ms(pct(partial, 50)), ms(pct(partial, 100)))
}

func svc(i int) *corev1.Service {
	ip := fmt.Sprintf("10.43.%d.%d", 100+i/250, 1+i%250)
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("s%d", i)},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
}

// epIP is endpoint e of service i in generation gen (each change renumbers the last one).
func epIP(i, e, gen int) string {
	n := i*8 + e + gen*16
	return fmt.Sprintf("10.42.%d.%d", (n/250)%250, 1+n%250)
}

func slice(i, endpoints, gen int) *discoveryv1.EndpointSlice {
	name, port, proto, ready := "http", int32(8080), corev1.ProtocolTCP, true
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("s%d-1", i), Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("s%d", i)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	for e := 0; e < endpoints; e++ {
		g := 0
		if e == endpoints-1 {
			g = gen
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{epIP(i, e, g)}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

func list(table string) string {
	out, err := exec.Command("nft", "list", "table", "ip", table).Output()
	if err != nil {
		fail("nft list table: " + err.Error())
	}
	return string(out)
}

// countRules counts the rules of every chain in an `nft list table` dump.
func countRules(dump string) int {
	n, inChain := 0, false
	for _, l := range strings.Split(dump, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "chain "):
			inChain = true
		case inChain && l == "}":
			inChain = false
		case inChain && l != "" && !strings.HasPrefix(l, "type "):
			n++
		}
	}
	return n
}

// histogram reads the sync duration histogram of one kind: count and sum.
func histogram(reg *prometheus.Registry, kind string) (uint64, float64) {
	mfs, err := reg.Gather()
	if err != nil {
		fail(err.Error())
	}
	for _, mf := range mfs {
		if mf.GetName() != "skiff_proxy_sync_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return 0, 0
}

var lastSum = map[string]float64{}

func syncCount(reg *prometheus.Registry, kind string) uint64 {
	n, _ := histogram(reg, kind)
	return n
}

// lastSync is the duration of the latest sync of that kind (from the histogram's sum).
func lastSync(reg *prometheus.Registry, kind string) time.Duration {
	_, sum := histogram(reg, kind)
	d := sum - lastSum[kind]
	lastSum[kind] = sum
	return time.Duration(d * float64(time.Second))
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s) - 1) * p / 100
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "proxybench:", msg)
	os.Exit(1)
}

// logger discards the proxy's logs unless PROXYBENCH_VERBOSE is set.
func logger() *slog.Logger {
	if os.Getenv("PROXYBENCH_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
