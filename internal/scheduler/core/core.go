// Package core turns a snapshot and a pod into a decision: run PreFilter, filter nodes
// (from a rotating start, stopping once enough feasible nodes are found on large
// clusters), score the feasible ones and pick the best, breaking ties at random. It
// never talks to the API server; the scheduler loop acts on its result.
package core

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
)

// Kubernetes' sampling bounds: clusters below minFeasibleNodesToFind nodes are always
// filtered entirely, and at least minFeasibleNodesPercentageToFind percent are looked at.
const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
)

// Result is a successful decision.
type Result struct {
	SuggestedHost string
	// EvaluatedNodes were filtered; FeasibleNodes passed.
	EvaluatedNodes int
	FeasibleNodes  int
}

// Algorithm holds what persists between decisions: where the next filtering pass starts
// (so sampling visits every node over time) and the tie-breaking randomness.
type Algorithm struct {
	mu        sync.Mutex
	nextStart int
	rnd       *rand.Rand
}

// NewAlgorithm returns an Algorithm; seed fixes tie-breaking (tests), 0 is random.
func NewAlgorithm(seed uint64) *Algorithm {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Algorithm{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// NumFeasibleNodesToFind returns how many feasible nodes are enough: all of them below
// 100 nodes; otherwise a percentage — the configured one, or adaptively 50% at 100 nodes
// falling by 1% per 125 nodes to a floor of 5% — but never fewer than 100.
func NumFeasibleNodesToFind(percentage int32, numAllNodes int) int {
	if numAllNodes < minFeasibleNodesToFind {
		return numAllNodes
	}
	p := int(percentage)
	if p <= 0 {
		p = 50 - numAllNodes/125
		p = max(p, minFeasibleNodesPercentageToFind)
	}
	n := numAllNodes * p / 100
	return max(n, minFeasibleNodesToFind)
}

// Schedule decides where pod goes. It returns a *framework.FitError when no node fits
// (with the diagnosis PostFilter and the failure message need), or
// framework.ErrNoNodesAvailable on an empty cluster.
func (a *Algorithm) Schedule(ctx context.Context, fwk *runtime.Framework, state *framework.CycleState, pod *v1.Pod) (Result, error) {
	nodes := fwk.SnapshotSharedLister().NodeInfos().List()
	if len(nodes) == 0 {
		return Result{}, framework.ErrNoNodesAvailable
	}
	feasible, diag, err := a.findNodesThatFit(ctx, fwk, state, pod, nodes)
	if err != nil {
		return Result{}, err
	}
	if len(feasible) == 0 {
		return Result{}, &framework.FitError{Pod: pod, NumAllNodes: len(nodes), Diagnosis: diag}
	}
	evaluated := len(feasible) + diag.NodeToStatus.Len()
	if len(feasible) == 1 {
		return Result{SuggestedHost: feasible[0].Node().Name, EvaluatedNodes: evaluated, FeasibleNodes: 1}, nil
	}
	scores, err := a.prioritize(ctx, fwk, state, pod, feasible)
	if err != nil {
		return Result{}, err
	}
	return Result{SuggestedHost: a.selectHost(scores), EvaluatedNodes: evaluated, FeasibleNodes: len(feasible)}, nil
}

func (a *Algorithm) findNodesThatFit(ctx context.Context, fwk *runtime.Framework, state *framework.CycleState, pod *v1.Pod, all []*framework.NodeInfo) ([]*framework.NodeInfo, framework.Diagnosis, error) {
	diag := framework.Diagnosis{NodeToStatus: framework.NewNodeToStatus(), UnschedulablePlugins: sets.New[string]()}
	pre, narrowing, s := fwk.RunPreFilterPlugins(ctx, state, pod)
	if !s.IsSuccess() {
		if !s.IsRejected() {
			return nil, diag, s.AsError()
		}
		// Every node fails the same way; the message shows PreFilter's reason once.
		diag.NodeToStatus.SetAbsentNodesStatus(s)
		diag.PreFilterMsg = s.Message()
		diag.AddPluginStatus(s)
		return nil, diag, nil
	}
	// A pod nominated by an earlier preemption tries its node first.
	if nom := pod.Status.NominatedNodeName; nom != "" {
		if ni, err := fwk.SnapshotSharedLister().NodeInfos().Get(nom); err == nil {
			st := fwk.RunFilterPluginsWithNominatedPods(ctx, state, pod, ni)
			if st.IsSuccess() {
				return []*framework.NodeInfo{ni}, diag, nil
			}
			if !st.IsRejected() {
				return nil, diag, st.AsError()
			}
		}
	}
	nodes := all
	if !pre.AllNodes() {
		nodes = make([]*framework.NodeInfo, 0, pre.NodeNames.Len())
		for _, ni := range all {
			if pre.NodeNames.Has(ni.Node().Name) {
				nodes = append(nodes, ni)
			}
		}
		diag.NodeToStatus.SetAbsentNodesStatus(framework.NewStatus(framework.UnschedulableAndUnresolvable,
			fmt.Sprintf("node(s) didn't satisfy plugin(s) %v", narrowing)))
		for _, n := range narrowing {
			diag.UnschedulablePlugins.Insert(n)
		}
	}
	feasible, err := a.findNodesThatPassFilters(ctx, fwk, state, pod, &diag, nodes)
	return feasible, diag, err
}

// findNodesThatPassFilters filters nodes in parallel from a rotating start and stops
// once enough are feasible. Nodes it did not reach are neither feasible nor failed.
func (a *Algorithm) findNodesThatPassFilters(ctx context.Context, fwk *runtime.Framework, state *framework.CycleState, pod *v1.Pod, diag *framework.Diagnosis, nodes []*framework.NodeInfo) ([]*framework.NodeInfo, error) {
	n := len(nodes)
	if n == 0 {
		return nil, nil
	}
	want := NumFeasibleNodesToFind(fwk.PercentageOfNodesToScore(), n)
	a.mu.Lock()
	start := a.nextStart % n
	a.mu.Unlock()
	if !fwk.HasFilterPlugins() {
		out := make([]*framework.NodeInfo, want)
		for i := range want {
			out[i] = nodes[(start+i)%n]
		}
		a.advance(want, n)
		return out, nil
	}
	feasible := make([]*framework.NodeInfo, want)
	// Rejections are collected as they come (most nodes usually pass, and a slice of n
	// statuses per cycle was a large share of the scheduler's garbage), then put in node
	// order, so the diagnosis does not depend on which goroutine filtered what.
	type rejection struct {
		i  int
		st *framework.Status
	}
	var mu sync.Mutex
	var rejected []rejection
	var found atomic.Int32
	var stop atomic.Bool
	var firstErr atomic.Pointer[framework.Status]
	filter := fwk.RunFilterPlugins
	if fwk.HasNominatedPods() {
		filter = fwk.RunFilterPluginsWithNominatedPods
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fwk.Parallelizer().Until(ctx, n, func(i int) {
		if stop.Load() {
			return
		}
		ni := nodes[(start+i)%n]
		st := filter(ctx, state, pod, ni)
		if st.IsSuccess() {
			k := found.Add(1)
			if int(k) > want {
				found.Add(-1)
				return
			}
			feasible[k-1] = ni
			if int(k) == want {
				stop.Store(true)
				cancel()
			}
			return
		}
		if !st.IsRejected() {
			firstErr.CompareAndSwap(nil, st)
			stop.Store(true)
			cancel()
			return
		}
		mu.Lock()
		rejected = append(rejected, rejection{i, st})
		mu.Unlock()
	})
	if st := firstErr.Load(); st != nil {
		return nil, st.AsError()
	}
	slices.SortFunc(rejected, func(a, b rejection) int { return a.i - b.i })
	processed := int(found.Load()) + len(rejected)
	for _, r := range rejected {
		diag.NodeToStatus.Set(nodes[(start+r.i)%n].Node().Name, r.st)
		diag.AddPluginStatus(r.st)
	}
	a.advance(processed, n)
	return feasible[:found.Load()], nil
}

func (a *Algorithm) advance(processed, n int) {
	a.mu.Lock()
	a.nextStart = (a.nextStart + processed) % n
	a.mu.Unlock()
}

func (a *Algorithm) prioritize(ctx context.Context, fwk *runtime.Framework, state *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) ([]runtime.NodePluginScores, error) {
	if !fwk.HasScorePlugins() {
		out := make([]runtime.NodePluginScores, len(nodes))
		for i, ni := range nodes {
			out[i] = runtime.NodePluginScores{Name: ni.Node().Name, TotalScore: 1}
		}
		return out, nil
	}
	if st := fwk.RunPreScorePlugins(ctx, state, pod, nodes); !st.IsSuccess() {
		return nil, st.AsError()
	}
	scores, st := fwk.RunScorePlugins(ctx, state, pod, nodes)
	if !st.IsSuccess() {
		return nil, st.AsError()
	}
	return scores, nil
}

// selectHost returns the highest total score, choosing uniformly among ties.
func (a *Algorithm) selectHost(scores []runtime.NodePluginScores) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	best, ties := 0, 1
	for i := 1; i < len(scores); i++ {
		switch {
		case scores[i].TotalScore > scores[best].TotalScore:
			best, ties = i, 1
		case scores[i].TotalScore == scores[best].TotalScore:
			ties++
			if a.rnd.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return scores[best].Name
}
