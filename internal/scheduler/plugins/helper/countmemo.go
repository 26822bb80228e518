package helper

import (
	"context"
	"sync"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// CountMemo remembers, per node, how many of its pods match some predicate (a spread
// selector, an affinity term), keyed by a string naming the predicate. A count stays
// valid while the node's generation is unchanged, and between two cycles only the
// nodes that changed (usually the one the last pod went to) have new generations — so
// the cluster-wide counting spreading and affinity need costs a map lookup per node
// instead of a label match per pod.
type CountMemo struct {
	mu      sync.Mutex
	max     int
	tick    int64
	entries map[string]*memoEntry
}

type memoEntry struct {
	mu     sync.RWMutex
	used   int64
	counts map[string]memoCount
}

type memoCount struct {
	gen int64
	n   int
}

// NewCountMemo keeps up to max predicates, forgetting the least recently used.
func NewCountMemo(max int) *CountMemo {
	return &CountMemo{max: max, entries: map[string]*memoEntry{}}
}

func (m *CountMemo) entry(key string) *memoEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick++
	e, ok := m.entries[key]
	if !ok {
		if len(m.entries) >= m.max {
			var oldest string
			var oldestUsed int64 = -1
			for k, v := range m.entries {
				if oldestUsed < 0 || v.used < oldestUsed {
					oldest, oldestUsed = k, v.used
				}
			}
			delete(m.entries, oldest)
		}
		e = &memoEntry{counts: map[string]memoCount{}}
		m.entries[key] = e
	}
	e.used = m.tick
	return e
}

// Counts returns count(node) for every node (in the same order), computing in parallel
// only those not remembered for the node's current generation. count must depend only
// on the node's pods.
func (m *CountMemo) Counts(ctx context.Context, par framework.Parallelizer, key string, nodes []*framework.NodeInfo, count func(*framework.NodeInfo) int) []int {
	e := m.entry(key)
	out := make([]int, len(nodes))
	fresh := make([]bool, len(nodes))
	e.mu.RLock()
	par.Until(ctx, len(nodes), func(i int) {
		ni := nodes[i]
		if c, ok := e.counts[ni.Node().Name]; ok && c.gen == ni.Generation {
			out[i] = c.n
			return
		}
		out[i] = count(ni)
		fresh[i] = true
	})
	e.mu.RUnlock()
	e.mu.Lock()
	for i, f := range fresh {
		if f {
			e.counts[nodes[i].Node().Name] = memoCount{gen: nodes[i].Generation, n: out[i]}
		}
	}
	// Forget nodes that left the cluster once they dominate the entry.
	if len(e.counts) > 2*len(nodes)+64 {
		keep := make(map[string]memoCount, len(nodes))
		for _, ni := range nodes {
			if c, ok := e.counts[ni.Node().Name]; ok {
				keep[ni.Node().Name] = c
			}
		}
		e.counts = keep
	}
	e.mu.Unlock()
	return out
}
