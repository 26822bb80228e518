// Package defaultpreemption implements preemption as a PostFilter plugin: when no node
// fits, it looks for a node where evicting lower-priority pods would make room, picks
// the node whose eviction hurts least, deletes those pods and nominates the node for the
// preemptor, which is retried once the victims are gone.
package defaultpreemption

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	policylisters "k8s.io/client-go/listers/policy/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "DefaultPreemption"

// Kubernetes' messages and defaults.
const (
	ReasonNotHelpful   = "Preemption is not helpful for scheduling"
	ReasonNoVictims    = "No preemption victims found for incoming pod"
	reasonPolicyNever  = "not eligible due to preemptionPolicy=Never."
	reasonTerminating  = "not eligible due to a terminating pod on the nominated node."
	minCandidatesPct   = 10
	minCandidatesAbs   = 100
	preemptionCondMsg  = "%s: preempting to accommodate a higher priority pod"
	defaultSchedulerNm = "default-scheduler"
)

// DefaultPreemption is the plugin.
type DefaultPreemption struct {
	h          framework.Handle
	pdbLister  policylisters.PodDisruptionBudgetLister
	randOffset func(n int) int
	// Preempted is called for each victim deleted (events).
	Preempted func(victim, preemptor *v1.Pod, node string)
}

var _ framework.PostFilterPlugin = (*DefaultPreemption)(nil)

// New builds the plugin; with an informer factory it honours PodDisruptionBudgets.
func New(h framework.Handle) (framework.Plugin, error) {
	p := &DefaultPreemption{h: h, randOffset: rand.IntN}
	if f := h.SharedInformerFactory(); f != nil {
		p.pdbLister = f.Policy().V1().PodDisruptionBudgets().Lister()
	}
	return p, nil
}

// Name implements framework.Plugin.
func (*DefaultPreemption) Name() string { return Name }

type candidate struct {
	node          string
	victims       []*v1.Pod
	pdbViolations int
}

// PostFilter implements framework.PostFilterPlugin. Its message is prefixed with
// "preemption: " and appended to the pod's failure message.
func (p *DefaultPreemption) PostFilter(ctx context.Context, state *framework.CycleState, pod *v1.Pod, m *framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	res, st := p.preempt(ctx, state, pod, m)
	if msg := st.Message(); msg != "" && !st.IsSuccess() {
		return res, framework.NewStatus(st.Code(), "preemption: "+msg)
	}
	return res, st
}

func (p *DefaultPreemption) preempt(ctx context.Context, state *framework.CycleState, pod *v1.Pod, m *framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	if ok, msg := p.eligible(pod, m); !ok {
		return nil, framework.NewStatus(framework.Unschedulable, msg)
	}
	all := p.h.SnapshotSharedLister().NodeInfos().List()
	if len(all) == 0 {
		return nil, framework.AsStatus(fmt.Errorf("no nodes available"))
	}
	clear := &framework.PostFilterResult{NominatingInfo: &framework.NominatingInfo{NominatingMode: framework.ModeOverride}}
	potential := m.NodesForStatusCode(all, framework.Unschedulable)
	statuses := framework.NewNodeToStatus()
	var candidates []candidate
	if len(potential) > 0 {
		var err error
		candidates, statuses, err = p.dryRun(ctx, state, pod, potential)
		if err != nil && len(candidates) == 0 {
			return nil, framework.AsStatus(err)
		}
	}
	if len(candidates) == 0 {
		statuses.SetAbsentNodesStatus(framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonNotHelpful))
		fe := &framework.FitError{Pod: pod, NumAllNodes: len(all), Diagnosis: framework.Diagnosis{NodeToStatus: statuses}}
		return clear, framework.NewStatus(framework.Unschedulable, fe.Error())
	}
	best := pickOne(candidates)
	if st := p.prepare(ctx, best, pod); !st.IsSuccess() {
		return nil, st
	}
	return &framework.PostFilterResult{NominatingInfo: &framework.NominatingInfo{NominatedNodeName: best.node, NominatingMode: framework.ModeOverride}}, nil
}

// eligible: a pod may preempt unless its policy says Never, or it already preempted
// pods on its nominated node that are still terminating.
func (p *DefaultPreemption) eligible(pod *v1.Pod, m *framework.NodeToStatus) (bool, string) {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return false, reasonPolicyNever
	}
	nom := pod.Status.NominatedNodeName
	if nom == "" || m.Get(nom).Code() == framework.UnschedulableAndUnresolvable {
		return true, ""
	}
	ni, err := p.h.SnapshotSharedLister().NodeInfos().Get(nom)
	if err != nil {
		return true, ""
	}
	prio := framework.PodPriority(pod)
	for _, pi := range ni.Pods {
		if framework.PodPriority(pi.Pod) < prio && terminatingByPreemption(pi.Pod) {
			return false, reasonTerminating
		}
	}
	return true, ""
}

func terminatingByPreemption(p *v1.Pod) bool {
	if p.DeletionTimestamp == nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.DisruptionTarget {
			return c.Status == v1.ConditionTrue && c.Reason == v1.PodReasonPreemptionByScheduler
		}
	}
	return false
}

func numCandidates(n int) int {
	c := max(n*minCandidatesPct/100, minCandidatesAbs)
	return min(c, n)
}

// dryRun evaluates nodes from a random offset, on copies, until it has enough
// candidates: some that violate no PodDisruptionBudget, or enough in total.
func (p *DefaultPreemption) dryRun(ctx context.Context, state *framework.CycleState, pod *v1.Pod, potential []*framework.NodeInfo) ([]candidate, *framework.NodeToStatus, error) {
	var pdbs []*policyv1.PodDisruptionBudget
	if p.pdbLister != nil {
		pdbs, _ = p.pdbLister.List(labels.Everything())
	}
	n := len(potential)
	offset, want := p.randOffset(n), numCandidates(n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var nonViolating, violating []candidate
	statuses := framework.NewNodeToStatus()
	var firstErr error
	p.h.Parallelizer().Until(ctx, n, func(i int) {
		ni := potential[(offset+i)%n].Snapshot()
		victims, violations, st := p.selectVictims(ctx, state.Clone(), pod, ni, pdbs)
		name := ni.Node().Name
		if st.IsSuccess() && len(victims) == 0 {
			st = framework.AsStatus(fmt.Errorf("expected at least one victim pod on node %q", name))
		}
		mu.Lock()
		defer mu.Unlock()
		if st.IsSuccess() {
			c := candidate{node: name, victims: victims, pdbViolations: violations}
			if violations == 0 {
				nonViolating = append(nonViolating, c)
			} else {
				violating = append(violating, c)
			}
			if len(nonViolating) > 0 && len(nonViolating)+len(violating) >= want {
				cancel()
			}
			return
		}
		if st.Code() == framework.Error && firstErr == nil {
			firstErr = st.AsError()
		}
		statuses.Set(name, st)
	})
	return append(nonViolating, violating...), statuses, firstErr
}

// moreImportant orders pods by priority, then by start time (longer running first).
func moreImportant(a, b *v1.Pod) bool {
	pa, pb := framework.PodPriority(a), framework.PodPriority(b)
	if pa != pb {
		return pa > pb
	}
	return startTime(a).Before(startTime(b))
}

func startTime(p *v1.Pod) time.Time {
	if p.Status.StartTime != nil {
		return p.Status.StartTime.Time
	}
	return time.Now()
}

// selectVictims removes every lower-priority pod from a copy of the node, checks the pod
// then fits, and puts back as many as possible — most important first, pods whose
// eviction would violate a budget before the others — leaving the minimal set to evict.
func (p *DefaultPreemption) selectVictims(ctx context.Context, state *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo, pdbs []*policyv1.PodDisruptionBudget) ([]*v1.Pod, int, *framework.Status) {
	prio := framework.PodPriority(pod)
	var potential []*framework.PodInfo
	for _, pi := range append([]*framework.PodInfo(nil), ni.Pods...) {
		if framework.PodPriority(pi.Pod) >= prio {
			continue
		}
		potential = append(potential, pi)
		if err := ni.RemovePod(pi.Pod); err != nil {
			return nil, 0, framework.AsStatus(err)
		}
		if st := p.h.RunPreFilterExtensionRemovePod(ctx, state, pod, pi, ni); !st.IsSuccess() {
			return nil, 0, st
		}
	}
	if len(potential) == 0 {
		return nil, 0, framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonNoVictims)
	}
	if st := p.h.RunFilterPluginsWithNominatedPods(ctx, state, pod, ni); !st.IsSuccess() {
		return nil, 0, st
	}
	sort.SliceStable(potential, func(i, j int) bool { return moreImportant(potential[i].Pod, potential[j].Pod) })
	violatingPods, others := splitByPDB(potential, pdbs)
	var victims []*v1.Pod
	violations := 0
	reprieve := func(pi *framework.PodInfo) (bool, *framework.Status) {
		ni.AddPodInfo(pi)
		if st := p.h.RunPreFilterExtensionAddPod(ctx, state, pod, pi, ni); !st.IsSuccess() {
			return false, st
		}
		if p.h.RunFilterPluginsWithNominatedPods(ctx, state, pod, ni).IsSuccess() {
			return true, nil
		}
		if err := ni.RemovePod(pi.Pod); err != nil {
			return false, framework.AsStatus(err)
		}
		if st := p.h.RunPreFilterExtensionRemovePod(ctx, state, pod, pi, ni); !st.IsSuccess() {
			return false, st
		}
		victims = append(victims, pi.Pod)
		return false, nil
	}
	for _, pi := range violatingPods {
		fits, st := reprieve(pi)
		if st != nil {
			return nil, 0, st
		}
		if !fits {
			violations++
		}
	}
	for _, pi := range others {
		if _, st := reprieve(pi); st != nil {
			return nil, 0, st
		}
	}
	if len(violatingPods) > 0 && len(others) > 0 {
		sort.SliceStable(victims, func(i, j int) bool { return moreImportant(victims[i], victims[j]) })
	}
	return victims, violations, nil
}

// splitByPDB separates pods whose eviction would exceed a matching budget's allowed
// disruptions, counting down the budgets as pods are assigned to them.
func splitByPDB(pods []*framework.PodInfo, pdbs []*policyv1.PodDisruptionBudget) (violating, others []*framework.PodInfo) {
	allowed := make([]int32, len(pdbs))
	for i, b := range pdbs {
		allowed[i] = b.Status.DisruptionsAllowed
	}
	for _, pi := range pods {
		pod := pi.Pod
		bad := false
		if len(pod.Labels) > 0 {
			for i, b := range pdbs {
				if b.Namespace != pod.Namespace {
					continue
				}
				sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
				if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
					continue
				}
				if _, done := b.Status.DisruptedPods[pod.Name]; done {
					continue
				}
				allowed[i]--
				if allowed[i] < 0 {
					bad = true
				}
			}
		}
		if bad {
			violating = append(violating, pi)
		} else {
			others = append(others, pi)
		}
	}
	return violating, others
}

// pickOne chooses the candidate node as Kubernetes does: fewest budget violations, then
// the lowest highest-priority victim, the lowest sum of victim priorities, the fewest
// victims, the latest start among the highest-priority victims, and finally the first.
func pickOne(cs []candidate) candidate {
	best := []candidate{}
	bestPDB := math.MaxInt
	for _, c := range cs {
		switch {
		case c.pdbViolations < bestPDB:
			bestPDB, best = c.pdbViolations, []candidate{c}
		case c.pdbViolations == bestPDB:
			best = append(best, c)
		}
	}
	narrow := func(score func(c candidate) int64) {
		if len(best) <= 1 {
			return
		}
		var out []candidate
		bestScore := int64(math.MaxInt64)
		for _, c := range best {
			s := score(c)
			switch {
			case s < bestScore:
				bestScore, out = s, []candidate{c}
			case s == bestScore:
				out = append(out, c)
			}
		}
		best = out
	}
	narrow(func(c candidate) int64 { return int64(framework.PodPriority(c.victims[0])) })
	narrow(func(c candidate) int64 {
		var sum int64
		for _, v := range c.victims {
			// Shift so negative priorities still add up to a positive, comparable sum.
			sum += int64(framework.PodPriority(v)) + int64(math.MaxInt32) + 1
		}
		return sum
	})
	narrow(func(c candidate) int64 { return int64(len(c.victims)) })
	narrow(func(c candidate) int64 {
		top := framework.PodPriority(c.victims[0])
		earliest := startTime(c.victims[0])
		for _, v := range c.victims {
			if framework.PodPriority(v) == top && startTime(v).Before(earliest) {
				earliest = startTime(v)
			}
		}
		return -earliest.UnixNano() // later is better
	})
	return best[0]
}

// prepare evicts the victims (marking them DisruptionTarget first, as Kubernetes does)
// and withdraws the nominations of lower-priority pods to the node, which may no longer
// fit there.
func (p *DefaultPreemption) prepare(ctx context.Context, c candidate, pod *v1.Pod) *framework.Status {
	cs := p.h.ClientSet()
	if cs == nil {
		return framework.AsStatus(fmt.Errorf("no client to evict victims"))
	}
	scheduler := pod.Spec.SchedulerName
	if scheduler == "" {
		scheduler = defaultSchedulerNm
	}
	errs := make(chan error, len(c.victims))
	var wg sync.WaitGroup
	for _, v := range c.victims {
		wg.Add(1)
		go func(v *v1.Pod) {
			defer wg.Done()
			vv := v.DeepCopy()
			setCondition(&vv.Status, v1.PodCondition{Type: v1.DisruptionTarget, Status: v1.ConditionTrue,
				Reason: v1.PodReasonPreemptionByScheduler, Message: fmt.Sprintf(preemptionCondMsg, scheduler)})
			if _, err := cs.CoreV1().Pods(v.Namespace).UpdateStatus(ctx, vv, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs <- fmt.Errorf("mark victim %s: %w", framework.PodKey(v), err)
				return
			}
			if err := cs.CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs <- fmt.Errorf("delete victim %s: %w", framework.PodKey(v), err)
				return
			}
			if p.Preempted != nil {
				p.Preempted(v, pod, c.node)
			}
		}(v)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return framework.AsStatus(err)
	}
	if nom := p.h.Nominator(); nom != nil {
		prio := framework.PodPriority(pod)
		for _, pi := range nom.NominatedPodsForNode(c.node) {
			if framework.PodPriority(pi.Pod) >= prio || pi.Pod.UID == pod.UID {
				continue
			}
			nom.DeleteNominatedPodIfExists(pi.Pod)
			cp := pi.Pod.DeepCopy()
			cp.Status.NominatedNodeName = ""
			_, _ = cs.CoreV1().Pods(cp.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		}
	}
	return nil
}

func setCondition(st *v1.PodStatus, c v1.PodCondition) {
	c.LastTransitionTime = metav1.Now()
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}
