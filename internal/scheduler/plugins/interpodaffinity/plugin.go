// Package interpodaffinity implements inter-pod affinity and anti-affinity: required
// terms filter nodes by the pods already running in the same topology domain (and by
// the anti-affinity of those pods towards the incoming one); preferred terms, and the
// terms of existing pods, score them.
package interpodaffinity

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/helper"
)

// Name is the plugin's name.
const Name = "InterPodAffinity"

// Kubernetes' messages.
const (
	ErrReasonExistingAntiAffinityRulesNotMatch = "node(s) didn't satisfy existing pods anti-affinity rules"
	ErrReasonAffinityRulesNotMatch             = "node(s) didn't match pod affinity rules"
	ErrReasonAntiAffinityRulesNotMatch         = "node(s) didn't match pod anti-affinity rules"
)

// HardPodAffinityWeight is the score an existing pod's required affinity term gives a
// matching incoming pod (Kubernetes' default).
const HardPodAffinityWeight = 1

// InterPodAffinity is the plugin.
type InterPodAffinity struct {
	h        framework.Handle
	memo     *helper.CountMemo
	nsLister corelisters.NamespaceLister
}

var (
	_ framework.PreFilterPlugin     = (*InterPodAffinity)(nil)
	_ framework.PreFilterExtensions = (*InterPodAffinity)(nil)
	_ framework.FilterPlugin        = (*InterPodAffinity)(nil)
	_ framework.PreScorePlugin      = (*InterPodAffinity)(nil)
	_ framework.ScorePlugin         = (*InterPodAffinity)(nil)
	_ framework.ScoreExtensions     = (*InterPodAffinity)(nil)
	_ framework.EnqueueExtensions   = (*InterPodAffinity)(nil)
)

// New builds the plugin; with an informer factory it resolves namespace selectors.
func New(h framework.Handle) (framework.Plugin, error) {
	p := &InterPodAffinity{h: h, memo: helper.NewCountMemo(32)}
	if f := h.SharedInformerFactory(); f != nil {
		p.nsLister = f.Core().V1().Namespaces().Lister()
	}
	return p, nil
}

// Name implements framework.Plugin.
func (*InterPodAffinity) Name() string { return Name }

// EventsToRegister: pods coming, going or relabelled change what matches; nodes added or
// relabelled change the domains; namespaces relabelled change namespace selectors.
func (*InterPodAffinity) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.Pod, ActionType: framework.Add | framework.UpdatePodLabel | framework.Delete},
		{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeLabel | framework.UpdateNodeTaint},
		{Resource: framework.Namespace, ActionType: framework.Add | framework.UpdateNodeLabel},
	}
}

// namespaceLabels returns the labels of a namespace (nil when unknown).
func (p *InterPodAffinity) namespaceLabels(ns string) labels.Set {
	if p.nsLister == nil {
		return nil
	}
	n, err := p.nsLister.Get(ns)
	if err != nil {
		return nil
	}
	return n.Labels
}

// mergeNamespaces resolves the namespace selectors of the incoming pod's terms into
// namespace names, so matching existing pods needs no namespace lookup.
func (p *InterPodAffinity) mergeNamespaces(pi *framework.PodInfo) *framework.PodInfo {
	if p.nsLister == nil || !pi.HasAffinity() {
		return pi
	}
	var all []*v1.Namespace
	listed := false
	resolve := func(t *framework.AffinityTerm) {
		// A nil selector (Nothing) adds no namespace; {} (Everything) matches any
		// namespace's labels as it is.
		if t.NamespaceSelector.Empty() || isNothing(t.NamespaceSelector) {
			return
		}
		if !listed {
			all, _ = p.nsLister.List(labels.Everything())
			listed = true
		}
		ns := sets.New(t.Namespaces.UnsortedList()...)
		for _, n := range all {
			if t.NamespaceSelector.Matches(labels.Set(n.Labels)) {
				ns.Insert(n.Name)
			}
		}
		t.Namespaces = ns
		t.NamespaceSelector = labels.Nothing()
	}
	out := *pi
	out.RequiredAffinityTerms = cloneTerms(pi.RequiredAffinityTerms)
	out.RequiredAntiAffinityTerms = cloneTerms(pi.RequiredAntiAffinityTerms)
	out.PreferredAffinityTerms = cloneWeighted(pi.PreferredAffinityTerms)
	out.PreferredAntiAffinityTerms = cloneWeighted(pi.PreferredAntiAffinityTerms)
	for i := range out.RequiredAffinityTerms {
		resolve(&out.RequiredAffinityTerms[i])
	}
	for i := range out.RequiredAntiAffinityTerms {
		resolve(&out.RequiredAntiAffinityTerms[i])
	}
	for i := range out.PreferredAffinityTerms {
		resolve(&out.PreferredAffinityTerms[i].AffinityTerm)
	}
	for i := range out.PreferredAntiAffinityTerms {
		resolve(&out.PreferredAntiAffinityTerms[i].AffinityTerm)
	}
	return &out
}

// isNothing recognizes labels.Nothing(): the only selector that is not empty yet renders
// as "".
func isNothing(s labels.Selector) bool { return !s.Empty() && s.String() == "" }

func cloneTerms(ts []framework.AffinityTerm) []framework.AffinityTerm {
	return append([]framework.AffinityTerm(nil), ts...)
}

func cloneWeighted(ts []framework.WeightedAffinityTerm) []framework.WeightedAffinityTerm {
	return append([]framework.WeightedAffinityTerm(nil), ts...)
}

type topologyPair struct {
	key, value string
}

type topologyCounts map[topologyPair]int64

func (m topologyCounts) clone() topologyCounts {
	out := make(topologyCounts, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (m topologyCounts) add(key string, node *v1.Node, delta int64) {
	v, ok := node.Labels[key]
	if !ok {
		return
	}
	p := topologyPair{key, v}
	m[p] += delta
	if m[p] == 0 {
		delete(m, p)
	}
}

func (m topologyCounts) merge(o topologyCounts) {
	for k, v := range o {
		m[k] += v
		if m[k] == 0 {
			delete(m, k)
		}
	}
}

// termKey names what a term of the incoming pod matches (its namespaces have been
// resolved, so existing pods are matched without namespace labels).
func termKey(t *framework.AffinityTerm) string {
	ns := t.Namespaces.UnsortedList()
	slices.Sort(ns)
	return strings.Join(ns, ",") + "\x00" + t.Selector.String() + "\x00" +
		strconv.FormatBool(t.NamespaceSelector.Empty()) + t.NamespaceSelector.String()
}

// countMatching returns, per node, the pods matching every term (remembered across
// cycles for unchanged nodes).
func (p *InterPodAffinity) countMatching(ctx context.Context, prefix string, terms []framework.AffinityTerm, nodes []*framework.NodeInfo) []int {
	keys := make([]string, len(terms))
	for i := range terms {
		keys[i] = termKey(&terms[i])
	}
	return p.memo.Counts(ctx, p.h.Parallelizer(), prefix+strings.Join(keys, "\x01"), nodes, func(ni *framework.NodeInfo) int {
		n := 0
		for _, existing := range ni.Pods {
			if matchesAll(terms, existing.Pod) {
				n++
			}
		}
		return n
	})
}
