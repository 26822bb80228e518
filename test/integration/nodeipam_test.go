package integration

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller/nodeipam"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func ipamStart(t *testing.T, dir string, port int) *skifftest.Cluster {
	t.Helper()
	return skifftest.Start(t, skifftest.Options{DataDir: dir, Port: port, Controllers: []controlplane.ComponentFactory{nodeipam.New}})
}

// ipamWaitCIDRs waits until every named node has a pod CIDR and returns them by node.
func ipamWaitCIDRs(t *testing.T, c *skifftest.Cluster, names ...string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]string{}
		for _, name := range names {
			n, err := c.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
			if err == nil && n.Spec.PodCIDR != "" {
				if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
					t.Fatalf("node %s: podCIDR %q, podCIDRs %v", name, n.Spec.PodCIDR, n.Spec.PodCIDRs)
				}
				got[name] = n.Spec.PodCIDR
			}
		}
		if len(got) == len(names) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes without a pod CIDR after 30s: have %v of %v", got, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ipamCheckDistinct checks that every node of the cluster holds its own /24 of 10.42.0.0/16.
func ipamCheckDistinct(t *testing.T, c *skifftest.Cluster) map[string]string {
	t.Helper()
	nodes, err := c.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cluster := netip.MustParsePrefix(nodeipam.DefaultClusterCIDR)
	owner := map[string]string{}
	for _, n := range nodes.Items {
		if n.Spec.PodCIDR == "" {
			continue
		}
		p, err := netip.ParsePrefix(n.Spec.PodCIDR)
		if err != nil || p.Bits() != 24 || !cluster.Contains(p.Addr()) || p.Masked() != p {
			t.Errorf("node %s has pod CIDR %q, want a /24 of %s", n.Name, n.Spec.PodCIDR, cluster)
		}
		if other, dup := owner[n.Spec.PodCIDR]; dup {
			t.Errorf("nodes %s and %s share pod CIDR %s", other, n.Name, n.Spec.PodCIDR)
		}
		owner[n.Spec.PodCIDR] = n.Name
	}
	return owner
}

func ipamCreateNodes(t *testing.T, c *skifftest.Cluster, nodes ...*corev1.Node) []string {
	t.Helper()
	var names []string
	for _, n := range nodes {
		if _, err := c.Client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, n.Name)
	}
	return names
}

func TestNodeIPAM(t *testing.T) {
	dir := t.TempDir()
	c := ipamStart(t, dir, 0)
	ctx := context.Background()

	// A node that arrives with a pod CIDR keeps it, and nobody else gets it.
	preset := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "preset"}, Spec: corev1.NodeSpec{PodCIDR: "10.42.0.0/24"}}
	var nodes []*corev1.Node
	for i := 0; i < 6; i++ {
		nodes = append(nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i)}})
	}
	names := ipamCreateNodes(t, c, append([]*corev1.Node{preset}, nodes...)...)
	got := ipamWaitCIDRs(t, c, names...)
	if got["preset"] != "10.42.0.0/24" {
		t.Errorf("preset node's CIDR changed to %s", got["preset"])
	}
	if owners := ipamCheckDistinct(t, c); len(owners) != 7 {
		t.Errorf("%d distinct CIDRs for 7 nodes: %v", len(owners), owners)
	}

	// A deleted node's CIDR goes back to the pool; new nodes still get distinct ones.
	freed := got["node-2"]
	if err := c.Client.CoreV1().Nodes().Delete(ctx, "node-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	more := ipamCreateNodes(t, c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "late-0"}}, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "late-1"}})
	ipamWaitCIDRs(t, c, more...)
	if owners := ipamCheckDistinct(t, c); len(owners) != 8 {
		t.Errorf("%d distinct CIDRs for 8 nodes: %v", len(owners), owners)
	}
	t.Logf("freed %s; after deletion: %v", freed, ipamCheckDistinct(t, c))

	// A restarted control plane learns the CIDRs in use from the nodes.
	c.Stop()
	start := time.Now()
	c2 := ipamStart(t, dir, 0)
	after := ipamCreateNodes(t, c2, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "after-restart-0"}}, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "after-restart-1"}})
	ipamWaitCIDRs(t, c2, after...)
	if owners := ipamCheckDistinct(t, c2); len(owners) != 10 {
		t.Errorf("%d distinct CIDRs for 10 nodes after a restart: %v", len(owners), owners)
	}
	t.Logf("CIDRs assigned %s after the restart", time.Since(start).Round(time.Millisecond))
}
