// Command dnsbench measures skiff's cluster DNS server: it starts the server in this process
// on 127.0.0.1 with a fake clientset holding S services (a tenth of them headless with three
// ready endpoints each), waits until all are indexed, then runs C concurrent UDP clients, each
// in a closed loop (send, wait for the answer, repeat) for D, and prints queries per second and
// latency percentiles. The query mix: 80% A of an existing ClusterIP service, 10% A of a headless
// service, 10% names that do not exist (NXDOMAIN, as a search-path miss).
//
// Clients and server share the process and the machine's cores, so the figures are a lower
// bound on what the server alone does; the load average is printed because the machine may be
// shared.
//
//	go run ./bench/cmd/dnsbench [-services 1000] [-clients 8] [-duration 5s] [-cpuprofile file]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	skiffdns "github.com/skiff-sh/skiff/internal/dns"
)

func main() {
	services := flag.Int("services", 1000, "services in the cluster")
	clients := flag.Int("clients", 8, "concurrent UDP clients")
	duration := flag.Duration("duration", 5*time.Second, "measurement time")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measurement to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dnsbench:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(*services, *clients, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type svcName struct {
	name     string
	headless bool
}

func objects(n int) ([]kruntime.Object, []svcName) {
	var objs []kruntime.Object
	var names []svcName
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("ns%d", i%10)
		name := fmt.Sprintf("svc%d", i)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
		headless := i%10 == 9
		if headless {
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
			es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-a",
				Labels: map[string]string{discoveryv1.LabelServiceName: name}}, AddressType: discoveryv1.AddressTypeIPv4,
				Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(80)), Protocol: ptr.To(corev1.ProtocolTCP)}}}
			for j := 0; j < 3; j++ {
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.42.%d.%d", i%250, j+1)},
					Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
			}
			objs = append(objs, es)
		} else {
			ip := fmt.Sprintf("10.43.%d.%d", 1+i/250, i%250+1)
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
		}
		objs = append(objs, svc)
		names = append(names, svcName{name: name + "." + ns + ".svc.cluster.local.", headless: headless})
	}
	return objs, names
}

func run(nServices, nClients int, d time.Duration) error {
	objs, names := objects(nServices)
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	srv, err := skiffdns.New(skiffdns.Config{ListenAddresses: []string{"127.0.0.1:0"}, ResolvConf: "/nonexistent",
		DisableClusterIntegration: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, client, factory)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := srv.WaitReady(wctx); err != nil {
		return err
	}
	addr := srv.Addr()
	// Every service indexed: the last one answers.
	for deadline := time.Now().Add(30 * time.Second); ; {
		m := new(dns.Msg)
		m.SetQuestion(names[len(names)-1].name, dns.TypeA)
		if r, err := dns.Exchange(m, addr); err == nil && len(r.Answer) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("services not indexed in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var plain, headless []string
	for _, n := range names {
		if n.headless {
			headless = append(headless, n.name)
		} else {
			plain = append(plain, n.name)
		}
	}

	cpu0 := cpuTime()
	var mu sync.Mutex
	var all []time.Duration
	var errs, bad int
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for c := 0; c < nClients; c++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			conn, err := dns.Dial("udp", addr)
			if err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
				return
			}
			defer conn.Close()
			lat := make([]time.Duration, 0, 1<<16)
			var e, b int
			m := new(dns.Msg)
			for time.Now().Before(end) {
				var name string
				wantRcode := dns.RcodeSuccess
				switch p := rng.IntN(10); {
				case p < 8:
					name = plain[rng.IntN(len(plain))]
				case p < 9 && len(headless) > 0:
					name = headless[rng.IntN(len(headless))]
				default:
					name = "nope" + plain[rng.IntN(len(plain))]
					wantRcode = dns.RcodeNameError
				}
				m.SetQuestion(name, dns.TypeA)
				m.Id = dns.Id()
				t0 := time.Now()
				_ = conn.SetDeadline(t0.Add(2 * time.Second))
				if err := conn.WriteMsg(m); err != nil {
					e++
					continue
				}
				r, err := conn.ReadMsg()
				if err != nil {
					e++
					continue
				}
				lat = append(lat, time.Since(t0))
				if r.Rcode != wantRcode || (wantRcode == dns.RcodeSuccess && len(r.Answer) == 0) {
					b++
				}
			}
			mu.Lock()
			all = append(all, lat...)
			errs += e
			bad += b
			mu.Unlock()
		}(uint64(c + 1))
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	fmt.Printf("dnsbench: %d services (%d headless), %d UDP clients, %v, GOMAXPROCS=%d, load average %s\n",
		nServices, len(headless), nClients, d, runtime.GOMAXPROCS(0), loadavg())
	fmt.Printf("queries %d  qps %.0f  p50 %v  p90 %v  p99 %v  max %v  timeouts/errors %d  wrong answers %d\n",
		len(all), float64(len(all))/elapsed.Seconds(), pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond),
		pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond), errs, bad)
	fmt.Printf("process CPU %.2fs over %.2fs wall (clients and server together): %.1f µs CPU per query\n",
		cpu.Seconds(), elapsed.Seconds(), float64(cpu.Microseconds())/float64(max(1, len(all))))
	if bad > 0 {
		return fmt.Errorf("%d wrong answers", bad)
	}
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
