package network

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name, ip string, cidrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	}
	return n
}

func TestDesiredRoutes(t *testing.T) {
	nodes := []*corev1.Node{
		node("self", "10.0.0.1", "10.42.0.0/24"),
		node("b", "10.0.0.2", "10.42.1.0/24", "fd00:42:1::/64"),
		node("c", "10.0.0.1", "10.42.2.0/24"), // same machine as self
		node("d", "", "10.42.3.0/24"),         // no address yet
		node("e", "10.0.0.5"),                 // no CIDR yet
		node("f", "10.0.0.6", "10.42.4.7/24"), // not masked
	}
	got := DesiredRoutes("self", []string{"10.0.0.1"}, nodes)
	want := []Route{{"10.42.1.0/24", "10.0.0.2"}, {"10.42.4.0/24", "10.0.0.6"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// Sync against the kernel, inside a private network namespace.
func TestSyncInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 missing")
	}
	ns := fmt.Sprintf("skiffrt%d", os.Getpid())
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	sh("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	// No dummy devices in this kernel: a veth pair inside the namespace carries the subnet.
	sh("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	sh("-n", ns, "addr", "add", "192.168.77.1/24", "dev", "v0")
	sh("-n", ns, "link", "set", "v0", "up")
	sh("-n", ns, "link", "set", "v1", "up")
	sh("-n", ns, "route", "add", "10.99.0.0/24", "via", "192.168.77.9") // someone else's
	ipIn := func(ctx context.Context, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("%v: %s", err, out)
		}
		return string(out), nil
	}
	routes := func() string {
		out, _ := ipIn(context.Background(), "-4", "route", "show")
		return out
	}

	cs := fake.NewSimpleClientset(node("self", "192.168.77.1", "10.42.0.0/24"), node("b", "192.168.77.2", "10.42.1.0/24"))
	f := informers.NewSharedInformerFactory(cs, 0)
	r := New(Config{NodeName: "self", NodeIPs: []string{"192.168.77.1"}, IP: ipIn}, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx.Done())
	go func() { _ = r.Run(ctx) }()
	waitFor := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok(routes()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s; routes:\n%s", what, routes())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("route to b", func(s string) bool { return strings.Contains(s, "10.42.1.0/24 via 192.168.77.2") })

	// A node joins, one leaves; the foreign route stays.
	if _, err := cs.CoreV1().Nodes().Create(ctx, node("c", "192.168.77.3", "10.42.2.0/24"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Nodes().Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("route to c and none to b", func(s string) bool {
		return strings.Contains(s, "10.42.2.0/24 via 192.168.77.3") && !strings.Contains(s, "10.42.1.0/24")
	})
	if !strings.Contains(routes(), "10.99.0.0/24 via 192.168.77.9") {
		t.Fatalf("foreign route removed:\n%s", routes())
	}
	// A route someone deleted comes back at the next sync.
	sh("-n", ns, "route", "del", "10.42.2.0/24")
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("route to c restored", func(s string) bool { return strings.Contains(s, "10.42.2.0/24 via 192.168.77.3") })
}
