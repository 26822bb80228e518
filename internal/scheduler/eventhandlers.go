package scheduler

import (
	"reflect"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/defaultpreemption"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/helper"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/noderesourcesfit"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/podtopologyspread"
)

func asPod(obj any) (*v1.Pod, bool) {
	switch t := obj.(type) {
	case *v1.Pod:
		return t, true
	case toolscache.DeletedFinalStateUnknown:
		p, ok := t.Obj.(*v1.Pod)
		return p, ok
	}
	return nil, false
}

func asNode(obj any) (*v1.Node, bool) {
	switch t := obj.(type) {
	case *v1.Node:
		return t, true
	case toolscache.DeletedFinalStateUnknown:
		n, ok := t.Obj.(*v1.Node)
		return n, ok
	}
	return nil, false
}

func terminal(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

// responsible reports whether this scheduler serves the pod.
func (s *Scheduler) responsible(p *v1.Pod) bool {
	return p.Spec.SchedulerName == s.name || (p.Spec.SchedulerName == "" && s.name == DefaultSchedulerName)
}

// addEventHandlers feeds the cache with bound pods and nodes, the queue with pending
// pods, and tells the queue about changes that may help unschedulable pods. Finished
// pods leave the cache: their resources are free.
func (s *Scheduler) addEventHandlers(ctx *controller.Context) error {
	f := ctx.Informers
	pods := f.Core().V1().Pods()
	nodes := f.Core().V1().Nodes()
	namespaces := f.Core().V1().Namespaces()
	s.podLister = pods.Lister()

	if _, err := pods.Informer().AddEventHandler(toolscache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			p, ok := asPod(obj)
			return ok && p.Spec.NodeName != "" && !terminal(p)
		},
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				p, _ := asPod(obj)
				if err := s.cache.AddPod(p); err != nil {
					s.log.Error("add pod to cache", "pod", framework.PodKey(p), "err", err)
				}
				s.queue.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodAdd, nil)
			},
			UpdateFunc: func(oldObj, newObj any) {
				o, _ := asPod(oldObj)
				p, _ := asPod(newObj)
				if err := s.cache.UpdatePod(o, p); err != nil {
					s.log.Error("update pod in cache", "pod", framework.PodKey(p), "err", err)
				}
				if !reflect.DeepEqual(o.Labels, p.Labels) {
					s.queue.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodUpdate, nil)
				}
			},
			DeleteFunc: func(obj any) {
				p, ok := asPod(obj)
				if !ok {
					return
				}
				if err := s.cache.RemovePod(p); err != nil {
					s.log.Error("remove pod from cache", "pod", framework.PodKey(p), "err", err)
				}
				s.queue.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodDelete, nil)
			},
		},
	}); err != nil {
		return err
	}

	if _, err := pods.Informer().AddEventHandler(toolscache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			p, ok := asPod(obj)
			// A pod being deleted leaves the queue (the update setting its deletion
			// timestamp arrives as a delete here).
			return ok && p.Spec.NodeName == "" && !terminal(p) && p.DeletionTimestamp == nil && s.responsible(p)
		},
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				p, _ := asPod(obj)
				s.queue.Add(p)
			},
			UpdateFunc: func(oldObj, newObj any) {
				o, _ := asPod(oldObj)
				p, _ := asPod(newObj)
				s.queue.Update(o, p)
			},
			DeleteFunc: func(obj any) {
				if p, ok := asPod(obj); ok {
					s.queue.Delete(p)
				}
			},
		},
	}); err != nil {
		return err
	}

	if _, err := nodes.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			n, _ := asNode(obj)
			s.cache.AddNode(n)
			s.queue.MoveAllToActiveOrBackoffQueue(framework.EventNodeAdd, preCheckForNode(n))
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, _ := asNode(oldObj)
			n, _ := asNode(newObj)
			// Heartbeats change nothing scheduling looks at; skipping them keeps the
			// nodes' generations, so snapshots and count memos stay warm.
			a := nodeChanges(o, n)
			if a == 0 {
				return
			}
			s.cache.UpdateNode(o, n)
			s.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{Resource: framework.Node, ActionType: a, Label: "NodeUpdate"}, preCheckForNode(n))
		},
		DeleteFunc: func(obj any) {
			if n, ok := asNode(obj); ok {
				s.cache.RemoveNode(n)
				s.queue.MoveAllToActiveOrBackoffQueue(framework.EventNodeDelete, nil)
			}
		},
	}); err != nil {
		return err
	}

	if _, err := namespaces.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.queue.MoveAllToActiveOrBackoffQueue(framework.EventNamespaceChange, nil) },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*v1.Namespace)
			n, ok2 := newObj.(*v1.Namespace)
			if ok1 && ok2 && !reflect.DeepEqual(o.Labels, n.Labels) {
				s.queue.MoveAllToActiveOrBackoffQueue(framework.EventNamespaceChange, nil)
			}
		},
	}); err != nil {
		return err
	}

	s.synced = []toolscache.InformerSynced{pods.Informer().HasSynced, nodes.Informer().HasSynced}
	s.optional = []toolscache.InformerSynced{namespaces.Informer().HasSynced}
	if s.fwk.Plugin(podtopologyspread.Name) != nil {
		s.optional = append(s.optional, f.Core().V1().Services().Informer().HasSynced,
			f.Core().V1().ReplicationControllers().Informer().HasSynced,
			f.Apps().V1().ReplicaSets().Informer().HasSynced, f.Apps().V1().StatefulSets().Informer().HasSynced)
	}
	if s.fwk.Plugin(defaultpreemption.Name) != nil {
		s.optional = append(s.optional, f.Policy().V1().PodDisruptionBudgets().Informer().HasSynced)
	}
	return nil
}

func conditionStatuses(n *v1.Node) map[v1.NodeConditionType]v1.ConditionStatus {
	m := make(map[v1.NodeConditionType]v1.ConditionStatus, len(n.Status.Conditions))
	for _, c := range n.Status.Conditions {
		m[c.Type] = c.Status
	}
	return m
}

// nodeChanges classifies a node update by what scheduling looks at; heartbeats and
// other status churn yield 0.
func nodeChanges(o, n *v1.Node) framework.ActionType {
	var a framework.ActionType
	if !equality.Semantic.DeepEqual(o.Status.Allocatable, n.Status.Allocatable) {
		a |= framework.UpdateNodeAllocatable
	}
	if !reflect.DeepEqual(o.Labels, n.Labels) {
		a |= framework.UpdateNodeLabel
	}
	if !reflect.DeepEqual(o.Spec.Taints, n.Spec.Taints) || o.Spec.Unschedulable != n.Spec.Unschedulable {
		a |= framework.UpdateNodeTaint
	}
	if !reflect.DeepEqual(conditionStatuses(o), conditionStatuses(n)) {
		a |= framework.UpdateNodeCondition
	}
	if !reflect.DeepEqual(o.Annotations, n.Annotations) {
		a |= framework.UpdateNodeAnnotation
	}
	return a
}

// preCheckForNode moves a pod on a node event only if it could run on that node at all
// (resources, node affinity, node name, NoSchedule taints), as Kubernetes does, so
// adding one node does not wake every pending pod.
func preCheckForNode(node *v1.Node) func(*v1.Pod) bool {
	ni := framework.NewNodeInfo()
	ni.SetNode(node)
	return func(pod *v1.Pod) bool {
		if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
			return false
		}
		if len(noderesourcesfit.InsufficientResources(framework.PodRequests(pod, false), ni)) > 0 {
			return false
		}
		req := helper.GetRequiredNodeAffinity(pod)
		if !req.Match(node) {
			return false
		}
		_, bad := helper.FindMatchingUntoleratedTaint(node.Spec.Taints, pod.Spec.Tolerations, func(t *v1.Taint) bool {
			return t.Effect == v1.TaintEffectNoSchedule
		})
		return !bad
	}
}
