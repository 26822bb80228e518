package framework

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Score bounds: every Score plugin's normalized scores lie in [MinNodeScore, MaxNodeScore]
// before the plugin's weight is applied.
const (
	MaxNodeScore int64 = 100
	MinNodeScore int64 = 0
)

// Plugin is the common part of every plugin.
type Plugin interface {
	Name() string
}

// PreEnqueuePlugin decides whether a pod may enter the active queue at all (scheduling
// gates). A pod rejected here waits until it is updated.
type PreEnqueuePlugin interface {
	Plugin
	PreEnqueue(ctx context.Context, pod *v1.Pod) *Status
}

// PreFilterResult narrows the nodes Filter runs on; nil NodeNames means all nodes.
type PreFilterResult struct {
	NodeNames sets.Set[string]
}

// AllNodes reports whether the result leaves every node eligible.
func (r *PreFilterResult) AllNodes() bool { return r == nil || r.NodeNames == nil }

// Merge intersects two results.
func (r *PreFilterResult) Merge(in *PreFilterResult) *PreFilterResult {
	if r.AllNodes() && in.AllNodes() {
		return nil
	}
	if r.AllNodes() {
		return &PreFilterResult{NodeNames: sets.New(in.NodeNames.UnsortedList()...)}
	}
	if in.AllNodes() {
		return &PreFilterResult{NodeNames: sets.New(r.NodeNames.UnsortedList()...)}
	}
	return &PreFilterResult{NodeNames: r.NodeNames.Intersection(in.NodeNames)}
}

// PreFilterExtensions let a plugin keep its PreFilter state right when pods are added to
// or removed from a node during preemption dry runs and nominated-pod evaluation.
type PreFilterExtensions interface {
	AddPod(ctx context.Context, state *CycleState, podToSchedule *v1.Pod, podInfoToAdd *PodInfo, nodeInfo *NodeInfo) *Status
	RemovePod(ctx context.Context, state *CycleState, podToSchedule *v1.Pod, podInfoToRemove *PodInfo, nodeInfo *NodeInfo) *Status
}

// PreFilterPlugin runs once per cycle before filtering. Returning Skip skips the plugin's
// Filter for this cycle; a rejection makes every node fail with the same status.
type PreFilterPlugin interface {
	Plugin
	PreFilter(ctx context.Context, state *CycleState, pod *v1.Pod) (*PreFilterResult, *Status)
	// PreFilterExtensions returns nil when the plugin keeps no per-pod state.
	PreFilterExtensions() PreFilterExtensions
}

// FilterPlugin decides whether a pod can run on one node. It is called concurrently for
// many nodes and must not write to the CycleState.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, state *CycleState, pod *v1.Pod, nodeInfo *NodeInfo) *Status
}

// NominatingMode says what to do with the pod's status.nominatedNodeName after PostFilter.
type NominatingMode int

const (
	// ModeNoop leaves the nominated node alone.
	ModeNoop NominatingMode = iota
	// ModeOverride replaces it with NominatedNodeName ("" clears it).
	ModeOverride
)

// NominatingInfo is a PostFilter plugin's request about the nominated node.
type NominatingInfo struct {
	NominatedNodeName string
	NominatingMode    NominatingMode
}

// PostFilterResult carries the nomination a PostFilter plugin made.
type PostFilterResult struct {
	*NominatingInfo
}

// PostFilterPlugin runs when no node fits (preemption). A Success status means the
// plugin made room (the pod is nominated and retried); otherwise its message is appended
// to the pod's failure message.
type PostFilterPlugin interface {
	Plugin
	PostFilter(ctx context.Context, state *CycleState, pod *v1.Pod, statuses *NodeToStatus) (*PostFilterResult, *Status)
}

// PreScorePlugin runs once with the feasible nodes before scoring. Skip skips its Score.
type PreScorePlugin interface {
	Plugin
	PreScore(ctx context.Context, state *CycleState, pod *v1.Pod, nodes []*NodeInfo) *Status
}

// NodeScore is one node's score from one plugin.
type NodeScore struct {
	Name  string
	Score int64
}

// NodeScoreList is one plugin's scores for every feasible node, in node order.
type NodeScoreList []NodeScore

// ScoreExtensions normalize a plugin's raw scores into [MinNodeScore, MaxNodeScore].
type ScoreExtensions interface {
	NormalizeScore(ctx context.Context, state *CycleState, pod *v1.Pod, scores NodeScoreList) *Status
}

// ScorePlugin ranks a feasible node. Called concurrently; must not write CycleState.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, state *CycleState, pod *v1.Pod, nodeInfo *NodeInfo) (int64, *Status)
	// ScoreExtensions returns nil when raw scores are already in range.
	ScoreExtensions() ScoreExtensions
}

// BindPlugin binds a pod to a node. Returning Skip passes the pod to the next binder.
type BindPlugin interface {
	Plugin
	Bind(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string) *Status
}

// EnqueueExtensions is implemented by plugins that can reject pods: it lists the cluster
// events that may make a pod they rejected schedulable again. Pods rejected by a plugin
// without it are retried on any event.
type EnqueueExtensions interface {
	Plugin
	EventsToRegister() []ClusterEvent
}

// NodeInfoLister reads the snapshot's nodes.
type NodeInfoLister interface {
	// List returns all nodes, in the order Filter visits them.
	List() []*NodeInfo
	// HavePodsWithAffinityList returns nodes hosting at least one pod with (anti-)affinity.
	HavePodsWithAffinityList() []*NodeInfo
	// HavePodsWithRequiredAntiAffinityList returns nodes hosting at least one pod with
	// required anti-affinity.
	HavePodsWithRequiredAntiAffinityList() []*NodeInfo
	// Get returns one node.
	Get(nodeName string) (*NodeInfo, error)
}

// SharedLister is the snapshot plugins read during a cycle.
type SharedLister interface {
	NodeInfos() NodeInfoLister
}

// PodNominator tracks pods nominated to nodes by preemption: they are counted on their
// nominated node when pods of lower or equal priority are filtered.
type PodNominator interface {
	AddNominatedPod(pi *PodInfo, nominatingInfo *NominatingInfo)
	DeleteNominatedPodIfExists(pod *v1.Pod)
	UpdateNominatedPod(oldPod *v1.Pod, newPodInfo *PodInfo)
	NominatedPodsForNode(nodeName string) []*PodInfo
}

// PluginsRunner lets plugins (preemption) re-run filters against modified nodes.
type PluginsRunner interface {
	RunFilterPluginsWithNominatedPods(ctx context.Context, state *CycleState, pod *v1.Pod, info *NodeInfo) *Status
	RunPreFilterExtensionAddPod(ctx context.Context, state *CycleState, podToSchedule *v1.Pod, podInfoToAdd *PodInfo, nodeInfo *NodeInfo) *Status
	RunPreFilterExtensionRemovePod(ctx context.Context, state *CycleState, podToSchedule *v1.Pod, podInfoToRemove *PodInfo, nodeInfo *NodeInfo) *Status
}

// Handle is what plugins are built from.
type Handle interface {
	PluginsRunner
	// SnapshotSharedLister is the snapshot of the current cycle.
	SnapshotSharedLister() SharedLister
	// ClientSet talks to the API server (binding, preemption).
	ClientSet() kubernetes.Interface
	// SharedInformerFactory gives listers for namespaces, services, workloads; it may be
	// nil in unit tests, and plugins then degrade to what they can do without.
	SharedInformerFactory() informers.SharedInformerFactory
	// Parallelizer runs per-node work on several goroutines.
	Parallelizer() Parallelizer
	// Nominator may be nil in unit tests.
	Nominator() PodNominator
}

// PluginFactory builds a plugin.
type PluginFactory func(h Handle) (Plugin, error)
