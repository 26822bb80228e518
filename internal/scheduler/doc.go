// Package scheduler is skiff's kube-scheduler: it watches pods and nodes, keeps a cache of
// what runs where, and for each pending pod asks the plugins (framework, one package per
// plugin under plugins/) where it fits best, assumes it there and binds it through the
// API on a pool of goroutines. Pods that fit nowhere get PodScheduled=False/Unschedulable
// with Kubernetes' "0/N nodes are available: ..." message and a FailedScheduling event,
// and wait in the queue for a cluster change that may help.
//
//	informers ─► cache ─► snapshot ─► core.Schedule(framework, pod) ─► assume ─► bind (async)
//	     └─────► queue ─► pop ───────────┘                          └─► failure: status, event, requeue
//
// Wire it with New as a controlplane.ComponentFactory.
package scheduler
