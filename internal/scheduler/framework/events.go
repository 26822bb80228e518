package framework

// EventResource is the kind of object a cluster event is about.
type EventResource string

const (
	// Pod events are about pods already bound (or assumed) to a node.
	Pod       EventResource = "Pod"
	Node      EventResource = "Node"
	Namespace EventResource = "Namespace"
	Service   EventResource = "Service"
	// WildCard matches every registration (periodic flushes, forced retries).
	WildCard EventResource = "*"
)

// ActionType is a bit set of what happened.
type ActionType int64

const (
	Add ActionType = 1 << iota
	Delete
	UpdateNodeAllocatable
	UpdateNodeLabel
	UpdateNodeTaint
	UpdateNodeCondition
	UpdateNodeAnnotation
	UpdatePodLabel
	UpdatePodScaleDown
	UpdatePodTolerations

	// Update is any update.
	Update = UpdateNodeAllocatable | UpdateNodeLabel | UpdateNodeTaint | UpdateNodeCondition |
		UpdateNodeAnnotation | UpdatePodLabel | UpdatePodScaleDown | UpdatePodTolerations
	// All is any action.
	All = Add | Delete | Update
)

// ClusterEvent is a change in the cluster, or a plugin's interest in such changes.
type ClusterEvent struct {
	Resource   EventResource
	ActionType ActionType
	// Label names the event in metrics and logs.
	Label string
}

// Match reports whether the registration r covers the event ev.
func (r ClusterEvent) Match(ev ClusterEvent) bool {
	if ev.Resource == WildCard || r.Resource == WildCard {
		return true
	}
	return r.Resource == ev.Resource && r.ActionType&ev.ActionType != 0
}

// Events the scheduler emits to its queue.
var (
	EventAssignedPodAdd       = ClusterEvent{Resource: Pod, ActionType: Add, Label: "AssignedPodAdd"}
	EventAssignedPodUpdate    = ClusterEvent{Resource: Pod, ActionType: UpdatePodLabel, Label: "AssignedPodUpdate"}
	EventAssignedPodDelete    = ClusterEvent{Resource: Pod, ActionType: Delete, Label: "AssignedPodDelete"}
	EventNodeAdd              = ClusterEvent{Resource: Node, ActionType: Add, Label: "NodeAdd"}
	EventNodeDelete           = ClusterEvent{Resource: Node, ActionType: Delete, Label: "NodeDelete"}
	EventNamespaceChange      = ClusterEvent{Resource: Namespace, ActionType: Add | UpdateNodeLabel, Label: "NamespaceChange"}
	EventServiceChange        = ClusterEvent{Resource: Service, ActionType: All, Label: "ServiceChange"}
	EventUnschedulableTimeout = ClusterEvent{Resource: WildCard, ActionType: All, Label: "UnschedulableTimeout"}
	EventForceActivate        = ClusterEvent{Resource: WildCard, ActionType: All, Label: "ForceActivate"}
)
