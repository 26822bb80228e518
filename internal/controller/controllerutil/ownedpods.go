package controllerutil

import (
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// OwnedPods turns pod events into syncs of the owners that manage the pods, as Kubernetes'
// workload controllers do (ReplicaSet, ReplicationController, DaemonSet, StatefulSet):
//   - a pod with a controller reference wakes that owner, and counts as an observed creation
//     or deletion against the owner's expectations;
//   - an orphan wakes every owner whose selector matches it, which may then adopt it; so does a
//     pod whose labels or controller reference change;
//   - a pod that turns ready wakes its owner again once minReadySeconds have passed, when it
//     becomes available;
//   - a pod that starts terminating counts as deleted at once, not after its grace period.
type OwnedPods[T metav1.Object] struct {
	// GVK is the owners' kind: a controller reference to another kind (or group) is ignored.
	GVK schema.GroupVersionKind
	// Get returns the owner of that name (from a lister); List the owners of a namespace.
	Get  func(namespace, name string) (T, error)
	List func(namespace string) ([]T, error)
	// Selects reports whether owner's selector matches pod (an empty selector matches none).
	Selects func(owner T, pod *corev1.Pod) bool
	// MinReadySeconds of an owner (nil: none).
	MinReadySeconds func(owner T) int32
	Queue           workqueue.TypedRateLimitingInterface[string]
	// Expectations, when the controller keeps them.
	Expectations *Expectations
}

// Handlers are the pod informer's event handlers.
func (o *OwnedPods[T]) Handlers() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{AddFunc: o.add, UpdateFunc: o.update, DeleteFunc: o.delete}
}

// Resolve returns the owner ref points at, if it is of this kind and still the same object
// (same UID).
func (o *OwnedPods[T]) Resolve(namespace string, ref *metav1.OwnerReference) (T, bool) {
	var zero T
	if ref.Kind != o.GVK.Kind {
		return zero, false
	}
	if gv, err := schema.ParseGroupVersion(ref.APIVersion); err != nil || gv.Group != o.GVK.Group {
		return zero, false
	}
	owner, err := o.Get(namespace, ref.Name)
	if err != nil || owner.GetUID() != ref.UID {
		return zero, false
	}
	return owner, true
}

// Selecting returns the owners whose selector matches pod.
func (o *OwnedPods[T]) Selecting(pod *corev1.Pod) []T {
	all, err := o.List(pod.Namespace)
	if err != nil {
		return nil
	}
	var out []T
	for _, owner := range all {
		if o.Selects(owner, pod) {
			out = append(out, owner)
		}
	}
	return out
}

func ownerKey(owner metav1.Object) string { return owner.GetNamespace() + "/" + owner.GetName() }

func (o *OwnedPods[T]) add(obj interface{}) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		// Seen for the first time already terminating (e.g. after a restart): count it gone.
		o.delete(pod)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		if owner, ok := o.Resolve(pod.Namespace, ref); ok {
			if o.Expectations != nil {
				o.Expectations.CreationObserved(ownerKey(owner))
			}
			o.Queue.Add(ownerKey(owner))
		}
		return
	}
	for _, owner := range o.Selecting(pod) {
		o.Queue.Add(ownerKey(owner))
	}
}

func (o *OwnedPods[T]) update(old, cur interface{}) {
	oldPod, curPod := old.(*corev1.Pod), cur.(*corev1.Pod)
	if oldPod.ResourceVersion == curPod.ResourceVersion {
		return // a resync
	}
	labelsChanged := !reflect.DeepEqual(oldPod.Labels, curPod.Labels)
	if curPod.DeletionTimestamp != nil {
		// Graceful deletion started: the pod no longer counts; lower expectations now rather
		// than after the grace period. With new labels, its old owner may be another one.
		o.delete(curPod)
		if labelsChanged {
			o.delete(oldPod)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOf(curPod), metav1.GetControllerOf(oldPod)
	if oldRef != nil && !reflect.DeepEqual(curRef, oldRef) {
		if owner, ok := o.Resolve(oldPod.Namespace, oldRef); ok {
			o.Queue.Add(ownerKey(owner))
		}
	}
	if curRef != nil {
		owner, ok := o.Resolve(curPod.Namespace, curRef)
		if !ok {
			return
		}
		o.Queue.Add(ownerKey(owner))
		if o.MinReadySeconds != nil && !IsPodReady(oldPod) && IsPodReady(curPod) {
			if s := o.MinReadySeconds(owner); s > 0 {
				o.Queue.AddAfter(ownerKey(owner), time.Duration(s)*time.Second+time.Second)
			}
		}
		return
	}
	if labelsChanged || oldRef != nil {
		for _, owner := range o.Selecting(curPod) {
			o.Queue.Add(ownerKey(owner))
		}
	}
}

func (o *OwnedPods[T]) delete(obj interface{}) {
	pod, ok := DeletedPod(obj)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return
	}
	owner, ok := o.Resolve(pod.Namespace, ref)
	if !ok {
		return
	}
	if o.Expectations != nil {
		o.Expectations.DeletionObserved(ownerKey(owner), pod.Namespace+"/"+pod.Name)
	}
	o.Queue.Add(ownerKey(owner))
}

// DeletedPod is the pod of a delete event: the pod itself, or the last state an informer
// knew when it missed the deletion (cache.DeletedFinalStateUnknown).
func DeletedPod(obj interface{}) (*corev1.Pod, bool) {
	if pod, ok := obj.(*corev1.Pod); ok {
		return pod, true
	}
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		pod, ok := t.Obj.(*corev1.Pod)
		return pod, ok
	}
	return nil, false
}

// SelectsPod reports whether a workload's label selector matches pod; an empty or invalid
// selector matches nothing.
func SelectsPod(selector *metav1.LabelSelector, pod *corev1.Pod) bool {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	return err == nil && !sel.Empty() && sel.Matches(labels.Set(pod.Labels))
}
