package simnode

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestNodeAddrs(t *testing.T) {
	hb := hostBitsFor(110)
	if hb != 8 {
		t.Fatalf("hostBits for 110 pods = %d, want 8", hb)
	}
	ip, cidr := nodeAddrs(0, hb)
	if ip.String() != "10.64.0.1" || cidr.String() != "10.128.0.0/24" {
		t.Fatalf("node 0: %s %s", ip, cidr)
	}
	ip, cidr = nodeAddrs(300, hb)
	if ip.String() != "10.64.1.45" || cidr.String() != "10.129.44.0/24" {
		t.Fatalf("node 300: %s %s", ip, cidr)
	}
	if hostBitsFor(253) != 8 || hostBitsFor(254) != 9 || hostBitsFor(500) != 9 {
		t.Fatalf("hostBits: %d %d %d", hostBitsFor(253), hostBitsFor(254), hostBitsFor(500))
	}
	if n := maxIndex(8); n != 32768 {
		t.Fatalf("maxIndex(8) = %d", n)
	}
	// Every index gets distinct ranges.
	seen := map[netip.Prefix]bool{}
	for i := 0; i < 5000; i++ {
		_, c := nodeAddrs(i, hb)
		if seen[c] || !podBase.Contains(c.Addr()) {
			t.Fatalf("index %d: %s reused or out of range", i, c)
		}
		seen[c] = true
	}
}

func TestIndexAllocatorSkipsUsed(t *testing.T) {
	a := newIndexAllocator(8)
	ip, cidr := nodeAddrs(0, 8)
	a.observe(&corev1.Node{Spec: corev1.NodeSpec{PodCIDRs: []string{cidr.String()}}})
	// A node elsewhere numbered only by its InternalIP takes index 1.
	ip1, _ := nodeAddrs(1, 8)
	a.observe(&corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip1.String()}}}})
	// Real nodes outside the ranges take nothing.
	a.observe(&corev1.Node{Spec: corev1.NodeSpec{PodCIDRs: []string{"192.168.0.0/24"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.1"}}}})
	_ = ip
	got, err := a.allocate()
	if err != nil || got != 2 {
		t.Fatalf("allocate = %d, %v; want 2", got, err)
	}
	a.release(2)
	if got, _ := a.allocate(); got != 2 {
		t.Fatalf("released index not reused: %d", got)
	}
}

func TestPodIPs(t *testing.T) {
	p := newPodIPs(netip.MustParsePrefix("10.128.5.0/24"))
	first, ok := p.allocate()
	if !ok || first.String() != "10.128.5.2" {
		t.Fatalf("first = %v %v", first, ok)
	}
	seen := map[string]bool{first.String(): true}
	for i := 0; i < 252; i++ {
		a, ok := p.allocate()
		if !ok {
			t.Fatalf("exhausted after %d", i+1)
		}
		s := a.String()
		if seen[s] || s == "10.128.5.0" || s == "10.128.5.1" || s == "10.128.5.255" {
			t.Fatalf("bad address %s", s)
		}
		seen[s] = true
	}
	if _, ok := p.allocate(); ok {
		t.Fatal("254th address handed out")
	}
	if p.used() != 253 {
		t.Fatalf("used = %d", p.used())
	}
	p.release("10.128.5.77")
	a, ok := p.allocate()
	if !ok || a.String() != "10.128.5.77" {
		t.Fatalf("after release got %v %v", a, ok)
	}
	// Round-robin: a freed address is not handed out again at once.
	q := newPodIPs(netip.MustParsePrefix("10.128.6.0/24"))
	a1, _ := q.allocate()
	q.release(a1.String())
	a2, _ := q.allocate()
	if a1 == a2 {
		t.Fatalf("address %s reused at once", a1)
	}
	if !q.mark("10.128.6.9") || q.mark("10.0.0.1") {
		t.Fatal("mark")
	}
	if q.used() != 2 {
		t.Fatalf("used = %d", q.used())
	}
}

func TestRenewIntervalDefaults(t *testing.T) {
	for _, c := range []struct {
		count int
		lease time.Duration
		want  time.Duration
	}{
		{50, 0, 10 * time.Second},
		{5000, 0, 40 * time.Second / 3},
		{50, 3 * time.Second, 750 * time.Millisecond},
		{50, 2 * time.Minute, 30 * time.Second},
		{50, 20 * time.Second, 10 * time.Second},
		{50, 16 * time.Second, 4 * time.Second},
	} {
		got := Config{Count: c.count, LeaseDuration: c.lease}.withDefaults().RenewInterval
		if got != c.want {
			t.Errorf("count %d lease %v: renew every %v, want %v", c.count, c.lease, got, c.want)
		}
	}
}
