package simnode

import (
	"context"
	"errors"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Run simulates cfg's nodes from a process of its own (a CLI command, say) until ctx ends:
// it registers <Prefix>0 … <Prefix><Count-1> and simulates every node owned by cfg.Owner.
// Give each simulating process its own Owner (and Prefix) so none touches another's nodes.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	m, err := New(client, factory, cfg)
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	return m.Run(ctx)
}

// Add registers cfg.Count more simulated nodes in a running cluster and returns their names:
// <Prefix><i> for the lowest indices no node uses yet, owned by cfg.Owner, each with its
// lease. It returns once they exist; a manager of the same owner (the control plane's
// simulated nodes, or Run elsewhere) adopts and keeps them alive — without one they go
// Unknown once their leases expire.
func Add(ctx context.Context, client kubernetes.Interface, cfg Config) ([]string, error) {
	cfg = cfg.withDefaults()
	if cfg.Count <= 0 {
		return nil, nil
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	idx := newIndexAllocator(hostBitsFor(cfg.Pods.Value()))
	taken := map[string]bool{}
	for i := range list.Items {
		idx.observe(&list.Items[i])
		taken[list.Items[i].Name] = true
	}
	names := make([]string, 0, cfg.Count)
	for i := 0; len(names) < cfg.Count; i++ {
		if n := cfg.Prefix + strconv.Itoa(i); !taken[n] {
			names = append(names, n)
		}
	}
	var mu sync.Mutex
	var created []string
	errs := createNodes(ctx, client, cfg, idx, names, time.Now, func(n *corev1.Node, _ *coordinationv1.Lease) {
		mu.Lock()
		created = append(created, n.Name)
		mu.Unlock()
	})
	sortByIndex(created)
	return created, errors.Join(errs...)
}

var trailingDigits = regexp.MustCompile(`[0-9]+$`)

// sortByIndex orders names by their numeric suffix.
func sortByIndex(names []string) {
	num := func(s string) int {
		n, err := strconv.Atoi(trailingDigits.FindString(s))
		if err != nil {
			return -1
		}
		return n
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := num(names[i]), num(names[j])
		if a != b {
			return a < b
		}
		return names[i] < names[j]
	})
}
