package nodeipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/controller"
)

func TestCIDRSet(t *testing.T) {
	s, err := newCIDRSet(netip.MustParsePrefix("10.42.0.0/22"), 24)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 4; i++ {
		p, err := s.allocate()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String())
	}
	if fmt.Sprint(got) != "[10.42.0.0/24 10.42.1.0/24 10.42.2.0/24 10.42.3.0/24]" {
		t.Errorf("allocated %v", got)
	}
	if _, err := s.allocate(); !errors.Is(err, ErrFull) {
		t.Errorf("full set: %v", err)
	}
	s.release(netip.MustParsePrefix("10.42.1.0/24"))
	if p, err := s.allocate(); err != nil || p.String() != "10.42.1.0/24" || s.free() != 0 {
		t.Errorf("after release: %v %v, %d free", p, err, s.free())
	}

	// Occupying: a larger prefix covers several subnets, a smaller one its subnet; outside
	// prefixes are ignored.
	s, _ = newCIDRSet(netip.MustParsePrefix("10.42.0.0/16"), 24)
	if !s.occupy(netip.MustParsePrefix("10.42.0.0/23")) || !s.occupy(netip.MustParsePrefix("10.42.2.128/25")) {
		t.Fatal("occupy inside")
	}
	if s.occupy(netip.MustParsePrefix("10.43.0.0/24")) || s.occupy(netip.MustParsePrefix("fd00::/64")) {
		t.Fatal("occupy outside")
	}
	if p, _ := s.allocate(); p.String() != "10.42.3.0/24" {
		t.Errorf("first free after occupied = %v", p)
	}
	if s.free() != 256-4 {
		t.Errorf("free %d", s.free())
	}
	// Held twice, released once: still taken.
	s.occupy(netip.MustParsePrefix("10.42.3.0/24"))
	s.release(netip.MustParsePrefix("10.42.3.0/24"))
	if s.free() != 256-4 {
		t.Errorf("free after double hold %d", s.free())
	}

	v6, err := newCIDRSet(netip.MustParsePrefix("fd00:42::/56"), 64)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := v6.allocate()
	b, _ := v6.allocate()
	if a.String() != "fd00:42::/64" || b.String() != "fd00:42:0:1::/64" || v6.count != 256 {
		t.Errorf("v6 %v %v %d", a, b, v6.count)
	}
	if _, err := newCIDRSet(netip.MustParsePrefix("10.0.0.0/8"), 30); err == nil {
		t.Error("22 bits of subnets accepted")
	}
	if _, err := newCIDRSet(netip.MustParsePrefix("10.0.0.0/24"), 16); err == nil {
		t.Error("node mask larger than the cluster CIDR accepted")
	}
}

func TestBuildSets(t *testing.T) {
	sets, err := buildSets(Config{ClusterCIDRs: []string{"10.42.0.0/16", "fd00:42::/48"}})
	if err != nil || len(sets) != 2 || sets[0].maskSize != 24 || sets[1].maskSize != 64 {
		t.Fatalf("%v %v", sets, err)
	}
	for _, bad := range [][]string{{"10.42.0.0/16", "10.43.0.0/16"}, {"nonsense"}} {
		if _, err := buildSets(Config{ClusterCIDRs: bad}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func node(name string, cidrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if len(cidrs) > 0 {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidrs[0], cidrs
	}
	return n
}

func TestControllerWithFakeClient(t *testing.T) {
	// Nodes that already have CIDRs when the controller starts (another controller gave
	// them out) must not be given out again.
	client := fake.NewSimpleClientset(
		node("a", "10.42.0.0/24"),
		node("b", "10.42.2.0/24"),
		node("c"),
		node("outside", "192.168.7.0/24"),
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf := informers.NewSharedInformerFactory(client, 0)
	c, err := NewWithConfig(&controller.Context{Client: client, Informers: inf}, Config{ClusterCIDRs: []string{"10.42.0.0/22"}})
	if err != nil {
		t.Fatal(err)
	}
	inf.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	waitCIDR := func(name string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err == nil && n.Spec.PodCIDR != "" {
				if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
					t.Errorf("node %s: podCIDR %q podCIDRs %v", name, n.Spec.PodCIDR, n.Spec.PodCIDRs)
				}
				return n.Spec.PodCIDR
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s got no pod CIDR (%v)", name, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := waitCIDR("c"); got != "10.42.1.0/24" {
		t.Errorf("c got %s", got)
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node("d"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitCIDR("d"); got != "10.42.3.0/24" {
		t.Errorf("d got %s", got)
	}
	// The range is full now: e waits until a node goes.
	if _, err := client.CoreV1().Nodes().Create(ctx, node("e"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n, _ := client.CoreV1().Nodes().Get(ctx, "e", metav1.GetOptions{}); n.Spec.PodCIDR != "" {
		t.Fatalf("e got %s from a full range", n.Spec.PodCIDR)
	}
	if err := client.CoreV1().Nodes().Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitCIDR("e"); got != "10.42.2.0/24" {
		t.Errorf("e got %s", got)
	}
	if free := c.Free()["10.42.0.0/22"]; free != 0 {
		t.Errorf("free = %d", free)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDualStack(t *testing.T) {
	client := fake.NewSimpleClientset(node("a"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf := informers.NewSharedInformerFactory(client, 0)
	c, err := NewWithConfig(&controller.Context{Client: client, Informers: inf}, Config{ClusterCIDRs: []string{"10.42.0.0/16", "fd00:42::/56"}})
	if err != nil {
		t.Fatal(err)
	}
	inf.Start(ctx.Done())
	go c.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := client.CoreV1().Nodes().Get(ctx, "a", metav1.GetOptions{})
		if len(n.Spec.PodCIDRs) > 0 {
			if fmt.Sprint(n.Spec.PodCIDRs) != "[10.42.0.0/24 fd00:42::/64]" || n.Spec.PodCIDR != "10.42.0.0/24" {
				t.Errorf("podCIDRs %v podCIDR %s", n.Spec.PodCIDRs, n.Spec.PodCIDR)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no CIDRs")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
