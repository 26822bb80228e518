package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/knftables"
)

// requireRealNFT skips unless the test runs as root with the nft binary.
func requireRealNFT(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft")
	}
}

func uniqueTable(t *testing.T) string {
	return fmt.Sprintf("skiff-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
}

func tableExists(name string) bool {
	return exec.Command("nft", "list", "table", "ip", name).Run() == nil
}

func listTable(t *testing.T, name string) string {
	out, err := exec.Command("nft", "list", "table", "ip", name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v: %s", err, out)
	}
	return string(out)
}

// hostIPv4 is a non-loopback IPv4 address of an up interface.
func hostIPv4(t *testing.T) string {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
				return n.IP.To4().String()
			}
		}
	}
	t.Skip("no non-loopback IPv4 address")
	return ""
}

// TestRealRulesProgram programs every kind of service into a real table: nft must accept the
// whole ruleset, and a later partial sync and the removal of the table must work.
func TestRealRulesProgram(t *testing.T) {
	requireRealNFT(t)
	table := uniqueTable(t)
	nft, err := knftables.New(knftables.IPv4Family, table)
	if err != nil {
		t.Fatal(err)
	}
	local := func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.InternalTrafficPolicy = knftables.PtrTo(corev1.ServiceInternalTrafficPolicyLocal)
	}
	objs := []runtime.Object{
		service("default", "web", "10.43.250.1", 80, withAffinity(60)),
		slice("default", "web", "web-1", 8080, ep{ip: "10.42.0.5", node: "n1"}, ep{ip: "10.42.1.5", node: "n2"}),
		service("default", "np", "10.43.250.2", 80, withNodePort(30080)),
		slice("default", "np", "np-1", 8080, ep{ip: "10.42.0.6", node: "n1"}),
		service("default", "lb", "10.43.250.3", 443, withLB(30443, "192.0.2.10"), local),
		slice("default", "lb", "lb-1", 8443, ep{ip: "10.42.0.7", node: "n1"}, ep{ip: "10.42.1.7", node: "n2"}),
		service("default", "lbremote", "10.43.250.5", 443, withLB(30444, "192.0.2.11"), local),
		slice("default", "lbremote", "lbremote-1", 8443, ep{ip: "10.42.1.8", node: "n2"}),
		service("default", "empty", "10.43.250.4", 80, withNodePort(30081)),
	}
	p := newFakeProxy(t, Config{NFT: nft, TableName: table, NodeName: "n1", NodeIPs: []string{"192.0.2.1"}}, objs...)
	ctx := context.Background()
	t.Cleanup(func() { _ = p.DeleteTable(ctx) })
	if err := p.Sync(ctx); err != nil {
		t.Fatalf("full sync: %v", err)
	}
	dump := listTable(t, table)
	t.Logf("table:\n%s", dump)
	for _, want := range []string{"numgen random mod 2", "dnat to 10.42.0.5:8080", "update @aff-60/default/web/tcp/80/10.42.0.5/8080",
		"masquerade fully-random", "tcp . 30080 : goto ext/default/np/tcp/80", "10.43.250.4 . tcp . 80 : goto reject-service"} {
		if !strings.Contains(dump, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	// Partial: drop a service, change endpoints of another.
	if err := p.cs.CoreV1().Services("default").Delete(ctx, "np", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.cs.DiscoveryV1().EndpointSlices("default").Update(ctx,
		slice("default", "web", "web-1", 8080, ep{ip: "10.42.0.9", node: "n1"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "informers to see the changes", func() bool {
		_, err := p.services.Services("default").Get("np")
		s, _ := p.slices.EndpointSlices("default").Get("web-1")
		return err != nil && s != nil && s.Endpoints[0].Addresses[0] == "10.42.0.9"
	})
	if err := p.Sync(ctx); err != nil {
		t.Fatalf("partial sync: %v", err)
	}
	dump = listTable(t, table)
	for _, gone := range []string{"default/np/", "10.42.0.5", "aff-60/default/web/tcp/80/10.42.0.5"} {
		if strings.Contains(dump, gone) {
			t.Errorf("table still has %q:\n%s", gone, dump)
		}
	}
	if !strings.Contains(dump, "numgen random mod 1 vmap { 0 : goto ep/default/web/tcp/80/10.42.0.9/8080 }") {
		t.Errorf("web not rebalanced:\n%s", dump)
	}
	// A full resync over the existing table must succeed too.
	p.needFull = true
	if err := p.Sync(ctx); err != nil {
		t.Fatalf("full resync: %v", err)
	}
	if err := p.DeleteTable(ctx); err != nil {
		t.Fatal(err)
	}
	if tableExists(table) {
		t.Fatal("table still there")
	}
}

// freePort listens on 0.0.0.0:<free port> with an HTTP server answering "hello".
func serveHTTP(t *testing.T) int {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello from "+r.Host)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestRealTraffic runs the proxy against the real kernel: an HTTP server on this host is the
// endpoint of a ClusterIP+NodePort service; requests to the cluster IP and to the node port
// reach it; without endpoints connections are refused at once; the table goes on stop.
func TestRealTraffic(t *testing.T) {
	requireRealNFT(t)
	table := uniqueTable(t)
	hostIP := hostIPv4(t)
	port := serveHTTP(t)
	nodePort := int32(30000 + os.Getpid()%2000)
	clusterIP := fmt.Sprintf("10.43.250.%d", 10+os.Getpid()%200)
	svc := service("default", "web", clusterIP, 80, withNodePort(nodePort))
	sl := slice("default", "web", "web-1", int32(port), ep{ip: hostIP, node: "n1"})
	p := newFakeProxy(t, Config{TableName: table, NodeName: "n1", MinSyncInterval: 50 * time.Millisecond}, svc, sl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if tableExists(table) {
			_ = exec.Command("nft", "delete", "table", "ip", table).Run()
		}
	})
	select {
	case <-p.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready")
	}

	body, err := get(fmt.Sprintf("http://%s:80/", clusterIP))
	if err != nil || !strings.HasPrefix(body, "hello") {
		t.Fatalf("cluster IP: %q, %v\n%s", body, err, listTable(t, table))
	}
	body, err = get(fmt.Sprintf("http://%s:%d/", hostIP, nodePort))
	if err != nil || !strings.HasPrefix(body, "hello") {
		t.Fatalf("node port: %q, %v", body, err)
	}

	// No endpoints: connection refused, quickly (the change is programmed within a second).
	start := time.Now()
	if _, err := p.cs.DiscoveryV1().EndpointSlices("default").Update(ctx, slice("default", "web", "web-1", int32(port)), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "endpoint removal to be programmed", func() bool {
		return strings.Contains(listTable(t, table), clusterIP+" . tcp . 80 : goto reject-service")
	})
	t.Logf("endpoint removal programmed in %v", time.Since(start))
	for _, url := range []string{fmt.Sprintf("http://%s:80/", clusterIP), fmt.Sprintf("http://%s:%d/", hostIP, nodePort)} {
		t0 := time.Now()
		_, err := get(url)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("%s without endpoints: want connection refused, got %v", url, err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Fatalf("%s: refusal took %v", url, d)
		}
	}

	// Endpoint back: reachable again.
	if _, err := p.cs.DiscoveryV1().EndpointSlices("default").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "endpoint to come back", func() bool {
		b, err := get(fmt.Sprintf("http://%s:80/", clusterIP))
		return err == nil && strings.HasPrefix(b, "hello")
	})

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if tableExists(table) {
		t.Fatal("table still present after stop")
	}
}

// TestRealUDPConntrackCleared: a UDP flow through a cluster IP is forgotten by conntrack when
// its endpoint goes away, so the client's next datagram is balanced afresh.
func TestRealUDPConntrackCleared(t *testing.T) {
	requireRealNFT(t)
	if _, err := exec.LookPath("conntrack"); err != nil {
		t.Skip("needs conntrack")
	}
	table := uniqueTable(t)
	hostIP := hostIPv4(t)
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], addr)
		}
	}()
	port := int32(pc.LocalAddr().(*net.UDPAddr).Port)
	clusterIP := fmt.Sprintf("10.43.251.%d", 10+os.Getpid()%200)
	udpSvc := service("default", "dns", clusterIP, 53, udp)
	p := newFakeProxy(t, Config{TableName: table, MinSyncInterval: 20 * time.Millisecond}, udpSvc,
		udpSlice(slice("default", "dns", "dns-1", port, ep{ip: hostIP})))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-p.Ready()

	conn, err := net.Dial("udp4", clusterIP+":53")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("udp through the cluster IP: %q %v", buf[:n], err)
	}
	flows := func() string {
		out, _ := exec.Command("conntrack", "-L", "-p", "udp", "--orig-dst", clusterIP).CombinedOutput()
		return string(out)
	}
	if !strings.Contains(flows(), "dport=53") {
		t.Fatalf("no conntrack flow for the cluster IP:\n%s", flows())
	}
	if _, err := p.cs.DiscoveryV1().EndpointSlices("default").Update(ctx,
		udpSlice(slice("default", "dns", "dns-1", port, ep{ip: "10.42.250.250"})), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the flow to be deleted", func() bool { return !strings.Contains(flows(), "dport=53") })
}
