package runtime

import (
	"context"
	"fmt"
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// PluginSpec names a plugin, how to build it and its score weight (ignored for plugins
// that do not score; 0 means 1).
type PluginSpec struct {
	Name    string
	Factory framework.PluginFactory
	Weight  int64
}

// Options are what plugins may need from the outside world; every field may be nil in
// unit tests.
type Options struct {
	Snapshot  framework.SharedLister
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Nominator framework.PodNominator
	// Parallelism is the number of goroutines per-node work uses (GOMAXPROCS when 0).
	Parallelism int
	// PercentageOfNodesToScore: 0 is Kubernetes' adaptive default.
	PercentageOfNodesToScore int32
}

// Framework runs one profile's plugins.
type Framework struct {
	opts       Options
	par        framework.Parallelizer
	plugins    []framework.Plugin
	preEnqueue []framework.PreEnqueuePlugin
	preFilter  []framework.PreFilterPlugin
	filter     []framework.FilterPlugin
	postFilter []framework.PostFilterPlugin
	preScore   []framework.PreScorePlugin
	score      []framework.ScorePlugin
	bind       []framework.BindPlugin
	weights    map[string]int64
	events     map[string][]framework.ClusterEvent
}

var _ framework.Handle = (*Framework)(nil)

// New builds the plugins in order. Each plugin takes part in every extension point it
// implements, in the order given.
func New(specs []PluginSpec, opts Options) (*Framework, error) {
	f := &Framework{opts: opts, par: framework.NewParallelizer(opts.Parallelism),
		weights: map[string]int64{}, events: map[string][]framework.ClusterEvent{}}
	seen := sets.New[string]()
	for _, s := range specs {
		if seen.Has(s.Name) {
			return nil, fmt.Errorf("plugin %q listed twice", s.Name)
		}
		seen.Insert(s.Name)
		p, err := s.Factory(f)
		if err != nil {
			return nil, fmt.Errorf("build plugin %q: %w", s.Name, err)
		}
		if p.Name() != s.Name {
			return nil, fmt.Errorf("plugin %q calls itself %q", s.Name, p.Name())
		}
		f.plugins = append(f.plugins, p)
		if x, ok := p.(framework.PreEnqueuePlugin); ok {
			f.preEnqueue = append(f.preEnqueue, x)
		}
		if x, ok := p.(framework.PreFilterPlugin); ok {
			f.preFilter = append(f.preFilter, x)
		}
		if x, ok := p.(framework.FilterPlugin); ok {
			f.filter = append(f.filter, x)
		}
		if x, ok := p.(framework.PostFilterPlugin); ok {
			f.postFilter = append(f.postFilter, x)
		}
		if x, ok := p.(framework.PreScorePlugin); ok {
			f.preScore = append(f.preScore, x)
		}
		if x, ok := p.(framework.ScorePlugin); ok {
			f.score = append(f.score, x)
			w := s.Weight
			if w == 0 {
				w = 1
			}
			f.weights[s.Name] = w
		}
		if x, ok := p.(framework.BindPlugin); ok {
			f.bind = append(f.bind, x)
		}
		if x, ok := p.(framework.EnqueueExtensions); ok {
			f.events[s.Name] = x.EventsToRegister()
		}
	}
	return f, nil
}

// SetSnapshot points plugins at a new snapshot (tests; the scheduler updates one
// snapshot in place).
func (f *Framework) SetSnapshot(s framework.SharedLister) { f.opts.Snapshot = s }

// SetNominator sets the nominator after construction (the queue needs the framework's
// event registrations, the framework needs the queue's nominator).
func (f *Framework) SetNominator(n framework.PodNominator) { f.opts.Nominator = n }

// SnapshotSharedLister implements framework.Handle.
func (f *Framework) SnapshotSharedLister() framework.SharedLister { return f.opts.Snapshot }

// ClientSet implements framework.Handle.
func (f *Framework) ClientSet() kubernetes.Interface { return f.opts.Client }

// SharedInformerFactory implements framework.Handle.
func (f *Framework) SharedInformerFactory() informers.SharedInformerFactory { return f.opts.Informers }

// Parallelizer implements framework.Handle.
func (f *Framework) Parallelizer() framework.Parallelizer { return f.par }

// Nominator implements framework.Handle.
func (f *Framework) Nominator() framework.PodNominator { return f.opts.Nominator }

// PercentageOfNodesToScore returns the configured percentage (0: adaptive).
func (f *Framework) PercentageOfNodesToScore() int32 { return f.opts.PercentageOfNodesToScore }

// EventsToRegister maps each plugin that can reject pods to the events that may help.
func (f *Framework) EventsToRegister() map[string][]framework.ClusterEvent { return f.events }

// HasFilterPlugins reports whether any Filter plugin is configured.
func (f *Framework) HasFilterPlugins() bool { return len(f.filter) > 0 }

// HasNominatedPods reports whether any pod is nominated to any node right now; when none
// is, a cycle filters with RunFilterPlugins instead of asking the nominator about every node.
func (f *Framework) HasNominatedPods() bool {
	if f.opts.Nominator == nil {
		return false
	}
	if c, ok := f.opts.Nominator.(interface{ NumNominatedPods() int }); ok {
		return c.NumNominatedPods() > 0
	}
	return true
}

// HasPostFilterPlugins reports whether any PostFilter plugin is configured.
func (f *Framework) HasPostFilterPlugins() bool { return len(f.postFilter) > 0 }

// HasScorePlugins reports whether any Score plugin is configured.
func (f *Framework) HasScorePlugins() bool { return len(f.score) > 0 }

// Plugin returns a plugin by name.
func (f *Framework) Plugin(name string) framework.Plugin {
	for _, p := range f.plugins {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// RunPreEnqueuePlugins returns the first non-success status.
func (f *Framework) RunPreEnqueuePlugins(ctx context.Context, pod *v1.Pod) *framework.Status {
	for _, p := range f.preEnqueue {
		if s := p.PreEnqueue(ctx, pod); !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunPreFilterPlugins runs PreFilter plugins in order. A rejection stops the cycle for
// every node; Skip records the plugin so its Filter is not run. The returned result is
// the intersection of the plugins' node sets, and plugins lists the ones that narrowed it.
func (f *Framework) RunPreFilterPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod) (*framework.PreFilterResult, []string, *framework.Status) {
	var result *framework.PreFilterResult
	var narrowing []string
	skip := sets.New[string]()
	for _, p := range f.preFilter {
		r, s := p.PreFilter(ctx, state, pod)
		if s.IsSkip() {
			skip.Insert(p.Name())
			continue
		}
		if !s.IsSuccess() {
			s.WithPlugin(p.Name())
			if s.IsRejected() {
				return nil, nil, s
			}
			return nil, nil, framework.AsStatus(fmt.Errorf("running PreFilter plugin %q: %w", p.Name(), s.AsError())).WithPlugin(p.Name())
		}
		if !r.AllNodes() {
			narrowing = append(narrowing, p.Name())
		}
		result = result.Merge(r)
		if !result.AllNodes() && result.NodeNames.Len() == 0 {
			msg := fmt.Sprintf("node(s) didn't satisfy plugin(s) %v simultaneously", narrowing)
			if len(narrowing) == 1 {
				msg = fmt.Sprintf("node(s) didn't satisfy plugin %v", narrowing[0])
			}
			return nil, narrowing, framework.NewStatus(framework.UnschedulableAndUnresolvable, msg).WithPlugin(p.Name())
		}
	}
	state.SkipFilterPlugins = skip
	active := make([]framework.FilterPlugin, 0, len(f.filter))
	for _, p := range f.filter {
		if !skip.Has(p.Name()) {
			active = append(active, p)
		}
	}
	state.FilterPlugins = active
	return result, narrowing, nil
}

// RunPreFilterExtensionAddPod tells PreFilter plugins a pod was added to nodeInfo.
func (f *Framework) RunPreFilterExtensionAddPod(ctx context.Context, state *framework.CycleState, podToSchedule *v1.Pod, podInfoToAdd *framework.PodInfo, nodeInfo *framework.NodeInfo) *framework.Status {
	for _, p := range f.preFilter {
		if state.SkipFilterPlugins.Has(p.Name()) {
			continue
		}
		if ext := p.PreFilterExtensions(); ext != nil {
			if s := ext.AddPod(ctx, state, podToSchedule, podInfoToAdd, nodeInfo); !s.IsSuccess() {
				return framework.AsStatus(fmt.Errorf("running AddPod on PreFilter plugin %q: %w", p.Name(), s.AsError()))
			}
		}
	}
	return nil
}

// RunPreFilterExtensionRemovePod tells PreFilter plugins a pod was removed from nodeInfo.
func (f *Framework) RunPreFilterExtensionRemovePod(ctx context.Context, state *framework.CycleState, podToSchedule *v1.Pod, podInfoToRemove *framework.PodInfo, nodeInfo *framework.NodeInfo) *framework.Status {
	for _, p := range f.preFilter {
		if state.SkipFilterPlugins.Has(p.Name()) {
			continue
		}
		if ext := p.PreFilterExtensions(); ext != nil {
			if s := ext.RemovePod(ctx, state, podToSchedule, podInfoToRemove, nodeInfo); !s.IsSuccess() {
				return framework.AsStatus(fmt.Errorf("running RemovePod on PreFilter plugin %q: %w", p.Name(), s.AsError()))
			}
		}
	}
	return nil
}

// RunFilterPlugins runs Filter plugins in order and stops at the first that rejects the
// pod, so a node is reported with one plugin's reasons (the order decides which).
func (f *Framework) RunFilterPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeInfo *framework.NodeInfo) *framework.Status {
	plugins := state.FilterPlugins
	if plugins == nil {
		// PreFilter has not run on this state.
		plugins = make([]framework.FilterPlugin, 0, len(f.filter))
		for _, p := range f.filter {
			if !state.SkipFilterPlugins.Has(p.Name()) {
				plugins = append(plugins, p)
			}
		}
	}
	for _, p := range plugins {
		if s := p.Filter(ctx, state, pod, nodeInfo); !s.IsSuccess() {
			if !s.IsRejected() {
				return framework.AsStatus(fmt.Errorf("running %q filter plugin: %w", p.Name(), s.AsError())).WithPlugin(p.Name())
			}
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunFilterPluginsWithNominatedPods filters a node as if the pods nominated to it with
// priority at least the pod's were already there, so preemption's room is not taken by
// lower-priority pods. Like Kubernetes it filters twice when such pods exist — with them
// and without them — because pod affinity may only be met thanks to a nominated pod that
// might never arrive.
func (f *Framework) RunFilterPluginsWithNominatedPods(ctx context.Context, state *framework.CycleState, pod *v1.Pod, info *framework.NodeInfo) *framework.Status {
	added, stateWith, infoWith, err := f.addNominatedPods(ctx, pod, state, info)
	if err != nil {
		return framework.AsStatus(err)
	}
	s := f.RunFilterPlugins(ctx, stateWith, pod, infoWith)
	if !added || !s.IsSuccess() {
		return s
	}
	return f.RunFilterPlugins(ctx, state, pod, info)
}

func (f *Framework) addNominatedPods(ctx context.Context, pod *v1.Pod, state *framework.CycleState, info *framework.NodeInfo) (bool, *framework.CycleState, *framework.NodeInfo, error) {
	if f.opts.Nominator == nil || info.Node() == nil {
		return false, state, info, nil
	}
	nominated := f.opts.Nominator.NominatedPodsForNode(info.Node().Name)
	if len(nominated) == 0 {
		return false, state, info, nil
	}
	var infoOut *framework.NodeInfo
	var stateOut *framework.CycleState
	prio := framework.PodPriority(pod)
	for _, pi := range nominated {
		if framework.PodPriority(pi.Pod) < prio || pi.Pod.UID == pod.UID {
			continue
		}
		if infoOut == nil {
			infoOut, stateOut = info.Snapshot(), state.Clone()
		}
		infoOut.AddPodInfo(pi)
		if s := f.RunPreFilterExtensionAddPod(ctx, stateOut, pod, pi, infoOut); !s.IsSuccess() {
			return false, state, info, s.AsError()
		}
	}
	if infoOut == nil {
		return false, state, info, nil
	}
	return true, stateOut, infoOut, nil
}

// RunPostFilterPlugins runs PostFilter plugins until one succeeds; the failures' messages
// are joined.
func (f *Framework) RunPostFilterPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, statuses *framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	var reasons []string
	var result *framework.PostFilterResult
	code := framework.Unschedulable
	for _, p := range f.postFilter {
		r, s := p.PostFilter(ctx, state, pod, statuses)
		if s.IsSuccess() {
			return r, s
		}
		if s.Code() == framework.UnschedulableAndUnresolvable {
			return r, s.WithPlugin(p.Name())
		}
		if !s.IsRejected() {
			return nil, s.WithPlugin(p.Name())
		}
		if r != nil && r.NominatingInfo != nil {
			result = r
		}
		reasons = append(reasons, s.Reasons()...)
	}
	return result, framework.NewStatus(code, reasons...)
}

// RunPreScorePlugins runs PreScore plugins; Skip records the plugin so its Score is not run.
func (f *Framework) RunPreScorePlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) *framework.Status {
	skip := sets.New[string]()
	for _, p := range f.preScore {
		s := p.PreScore(ctx, state, pod, nodes)
		if s.IsSkip() {
			skip.Insert(p.Name())
			continue
		}
		if !s.IsSuccess() {
			return framework.AsStatus(fmt.Errorf("running PreScore plugin %q: %w", p.Name(), s.AsError())).WithPlugin(p.Name())
		}
	}
	state.SkipScorePlugins = skip
	return nil
}

// NodePluginScores is a node's total weighted score.
type NodePluginScores struct {
	Name       string
	TotalScore int64
}

// rawScores recycles the per-plugin score lists of RunScorePlugins: a cycle scores hundreds
// of nodes with every plugin, and allocating them afresh each time made scoring the largest
// source of garbage in the whole control plane.
var rawScores = sync.Pool{New: func() any { return new([]framework.NodeScore) }}

// RunScorePlugins scores every node with every plugin (in parallel over nodes), lets each
// plugin normalize its scores, checks they are in range and applies the weights.
func (f *Framework) RunScorePlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) ([]NodePluginScores, *framework.Status) {
	plugins := make([]framework.ScorePlugin, 0, len(f.score))
	for _, p := range f.score {
		if !state.SkipScorePlugins.Has(p.Name()) {
			plugins = append(plugins, p)
		}
	}
	out := make([]NodePluginScores, len(nodes))
	for i, n := range nodes {
		out[i].Name = n.Node().Name
	}
	if len(plugins) == 0 {
		return out, nil
	}
	buf := rawScores.Get().(*[]framework.NodeScore)
	defer rawScores.Put(buf)
	if need := len(nodes) * len(plugins); cap(*buf) < need {
		*buf = make([]framework.NodeScore, need)
	}
	rawAll := (*buf)[:len(nodes)*len(plugins)]
	raw := make([]framework.NodeScoreList, len(plugins))
	for j := range plugins {
		raw[j] = rawAll[j*len(nodes) : (j+1)*len(nodes) : (j+1)*len(nodes)]
	}
	errs := make(chan *framework.Status, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.par.Until(ctx, len(nodes), func(i int) {
		for j, p := range plugins {
			s, st := p.Score(ctx, state, pod, nodes[i])
			if !st.IsSuccess() {
				select {
				case errs <- framework.AsStatus(fmt.Errorf("plugin %q failed with: %w", p.Name(), st.AsError())).WithPlugin(p.Name()):
				default:
				}
				cancel()
				return
			}
			raw[j][i] = framework.NodeScore{Name: out[i].Name, Score: s}
		}
	})
	select {
	case st := <-errs:
		return nil, st
	default:
	}
	for j, p := range plugins {
		if ext := p.ScoreExtensions(); ext != nil {
			if st := ext.NormalizeScore(ctx, state, pod, raw[j]); !st.IsSuccess() {
				return nil, framework.AsStatus(fmt.Errorf("plugin %q failed with: %w", p.Name(), st.AsError())).WithPlugin(p.Name())
			}
		}
		w := f.weights[p.Name()]
		for i := range nodes {
			s := raw[j][i].Score
			if s < framework.MinNodeScore || s > framework.MaxNodeScore {
				return nil, framework.AsStatus(fmt.Errorf("plugin %q returns an invalid score %v, it should in the range of [%v, %v] after normalizing", p.Name(), s, framework.MinNodeScore, framework.MaxNodeScore))
			}
			out[i].TotalScore += s * w
		}
	}
	return out, nil
}

// RunBindPlugins lets binders bind in order until one does not Skip.
func (f *Framework) RunBindPlugins(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodeName string) *framework.Status {
	if len(f.bind) == 0 {
		return framework.AsStatus(fmt.Errorf("no bind plugin configured"))
	}
	var s *framework.Status
	for _, p := range f.bind {
		s = p.Bind(ctx, state, pod, nodeName)
		if s.IsSkip() {
			continue
		}
		if !s.IsSuccess() {
			if s.IsRejected() {
				return s.WithPlugin(p.Name())
			}
			return framework.AsStatus(fmt.Errorf("running Bind plugin %q: %w", p.Name(), s.AsError())).WithPlugin(p.Name())
		}
		return s
	}
	return s
}

// ScorePluginNames lists the scoring plugins with their weights (for tests and logs).
func (f *Framework) ScorePluginNames() []string {
	out := make([]string, 0, len(f.score))
	for _, p := range f.score {
		out = append(out, p.Name())
	}
	return slices.Clip(out)
}
