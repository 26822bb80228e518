package framework

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// ErrNoNodesAvailable is the failure when the cluster has no nodes at all.
var ErrNoNodesAvailable = errors.New("no nodes available to schedule pods")

// NodeToStatus maps node names to why the pod does not fit there. Nodes not in the map
// share AbsentStatus (nodes a PreFilter result excluded, or every node when PreFilter
// rejected the pod).
type NodeToStatus struct {
	statuses     map[string]*Status
	absentStatus *Status
}

// NewNodeToStatus returns an empty map whose absent nodes are UnschedulableAndUnresolvable.
func NewNodeToStatus() *NodeToStatus {
	return &NodeToStatus{statuses: map[string]*Status{}, absentStatus: NewStatus(UnschedulableAndUnresolvable)}
}

// Get returns the status of a node.
func (m *NodeToStatus) Get(name string) *Status {
	if s, ok := m.statuses[name]; ok {
		return s
	}
	return m.absentStatus
}

// Set records a node's status.
func (m *NodeToStatus) Set(name string, s *Status) { m.statuses[name] = s }

// Len counts nodes with an explicit status.
func (m *NodeToStatus) Len() int { return len(m.statuses) }

// AbsentNodesStatus is the status of nodes without an explicit one.
func (m *NodeToStatus) AbsentNodesStatus() *Status { return m.absentStatus }

// SetAbsentNodesStatus sets the status of nodes without an explicit one.
func (m *NodeToStatus) SetAbsentNodesStatus(s *Status) { m.absentStatus = s }

// ForEachExplicitNode calls fn for each node with an explicit status.
func (m *NodeToStatus) ForEachExplicitNode(fn func(name string, s *Status)) {
	for n, s := range m.statuses {
		fn(n, s)
	}
}

// NodesForStatusCode returns the nodes (from all) whose status has the given code.
func (m *NodeToStatus) NodesForStatusCode(all []*NodeInfo, code Code) []*NodeInfo {
	var out []*NodeInfo
	for _, ni := range all {
		if m.Get(ni.Node().Name).Code() == code {
			out = append(out, ni)
		}
	}
	return out
}

// Diagnosis explains a failed cycle.
type Diagnosis struct {
	NodeToStatus *NodeToStatus
	// UnschedulablePlugins rejected the pod somewhere; the queue retries it on the
	// cluster events they registered for.
	UnschedulablePlugins sets.Set[string]
	// PreFilterMsg is set when PreFilter rejected the pod outright.
	PreFilterMsg string
	// PostFilterMsg is what preemption had to say.
	PostFilterMsg string
}

// AddPluginStatus records the plugin of a rejecting status.
func (d *Diagnosis) AddPluginStatus(s *Status) {
	if s.Plugin() == "" || !s.IsRejected() {
		return
	}
	if d.UnschedulablePlugins == nil {
		d.UnschedulablePlugins = sets.New[string]()
	}
	d.UnschedulablePlugins.Insert(s.Plugin())
}

// FitError is returned when no node fits.
type FitError struct {
	Pod         *v1.Pod
	NumAllNodes int
	Diagnosis   Diagnosis
}

// Error renders Kubernetes' message: "0/N nodes are available: <count> <reason>, ...."
// with reasons counted per node and sorted as strings, then PreFilter's message instead
// when PreFilter rejected the pod, then PostFilter's (preemption's) message.
func (f *FitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes are available:", f.NumAllNodes)
	if f.Diagnosis.PreFilterMsg != "" {
		fmt.Fprintf(&b, " %s.", f.Diagnosis.PreFilterMsg)
	} else if h := f.histogram(); len(h) > 0 {
		fmt.Fprintf(&b, " %s.", strings.Join(h, ", "))
	}
	if f.Diagnosis.PostFilterMsg != "" {
		fmt.Fprintf(&b, " %s", f.Diagnosis.PostFilterMsg)
	}
	return b.String()
}

func (f *FitError) histogram() []string {
	counts := map[string]int{}
	m := f.Diagnosis.NodeToStatus
	if m == nil {
		return nil
	}
	m.ForEachExplicitNode(func(_ string, s *Status) {
		for _, r := range s.Reasons() {
			counts[r]++
		}
	})
	if absent := f.NumAllNodes - m.Len(); absent > 0 {
		for _, r := range m.AbsentNodesStatus().Reasons() {
			counts[r] += absent
		}
	}
	out := make([]string, 0, len(counts))
	for r, n := range counts {
		out = append(out, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(out)
	return out
}
