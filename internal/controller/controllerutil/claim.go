package controllerutil

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
)

// ControllerRef is the ownerReference a controller puts on what it controls.
func ControllerRef(owner metav1.Object, gvk schema.GroupVersionKind) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{
		APIVersion:         gvk.GroupVersion().String(),
		Kind:               gvk.Kind,
		Name:               owner.GetName(),
		UID:                owner.GetUID(),
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}

// Claimer decides which of the candidate dependents a controller owns: those with its
// controllerRef whose labels still match (the rest are released), and orphans whose labels
// match (adopted, after checking once against the API server that the controller still
// exists and is not being deleted).
type Claimer struct {
	Client     kubernetes.Interface
	Controller metav1.Object
	Kind       schema.GroupVersionKind
	Selector   labels.Selector
	// Recheck reads the controller fresh from the API server (not the cache).
	Recheck func(ctx context.Context) (metav1.Object, error)

	once       sync.Once
	canAdoptEr error
}

func (c *Claimer) canAdopt(ctx context.Context) error {
	c.once.Do(func() {
		if c.Recheck == nil {
			return
		}
		fresh, err := c.Recheck(ctx)
		if err != nil {
			c.canAdoptEr = err
			return
		}
		if fresh.GetUID() != c.Controller.GetUID() {
			c.canAdoptEr = fmt.Errorf("original %s %s/%s is gone: got uid %v, wanted %v", c.Kind.Kind,
				c.Controller.GetNamespace(), c.Controller.GetName(), fresh.GetUID(), c.Controller.GetUID())
			return
		}
		if fresh.GetDeletionTimestamp() != nil {
			c.canAdoptEr = fmt.Errorf("%s %s/%s has just been deleted at %v", c.Kind.Kind,
				c.Controller.GetNamespace(), c.Controller.GetName(), fresh.GetDeletionTimestamp())
		}
	})
	return c.canAdoptEr
}

type patcher func(ctx context.Context, namespace, name string, patch []byte) error

// claim decides about one object; it reports whether the controller owns it afterwards.
func (c *Claimer) claim(ctx context.Context, obj metav1.Object, match func() bool, patch patcher) (bool, error) {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		if ref.UID != c.Controller.GetUID() {
			return false, nil // someone else's
		}
		if match() {
			return true, nil
		}
		// Ours but no longer selected: let it go, unless we are going away ourselves (the
		// garbage collector will take care of it then).
		if c.Controller.GetDeletionTimestamp() != nil {
			return false, nil
		}
		if err := c.release(ctx, obj, patch); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
				return false, nil
			}
			return false, err
		}
		return false, nil
	}
	// An orphan.
	if c.Controller.GetDeletionTimestamp() != nil || !match() || obj.GetDeletionTimestamp() != nil {
		return false, nil
	}
	if obj.GetNamespace() != c.Controller.GetNamespace() {
		return false, nil
	}
	if err := c.canAdopt(ctx); err != nil {
		return false, err
	}
	if err := c.adopt(ctx, obj, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (c *Claimer) adopt(ctx context.Context, obj metav1.Object, patch patcher) error {
	ref := ControllerRef(c.Controller, c.Kind)
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []any{ref},
		"uid":             obj.GetUID(),
	}})
	if err != nil {
		return err
	}
	return patch(ctx, obj.GetNamespace(), obj.GetName(), body)
}

func (c *Claimer) release(ctx context.Context, obj metav1.Object, patch patcher) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []any{map[string]any{"$patch": "delete", "uid": c.Controller.GetUID()}},
		"uid":             obj.GetUID(),
	}})
	if err != nil {
		return err
	}
	return patch(ctx, obj.GetNamespace(), obj.GetName(), body)
}

// ClaimPods returns the pods the controller owns after adopting and releasing; filters
// further restrict which pods it may own (besides the selector).
func (c *Claimer) ClaimPods(ctx context.Context, pods []*corev1.Pod, filters ...func(*corev1.Pod) bool) ([]*corev1.Pod, error) {
	patch := func(ctx context.Context, ns, name string, body []byte) error {
		_, err := c.Client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
		return err
	}
	var claimed []*corev1.Pod
	var errs []error
	for _, p := range pods {
		match := func() bool {
			if !c.Selector.Matches(labels.Set(p.Labels)) {
				return false
			}
			for _, f := range filters {
				if !f(p) {
					return false
				}
			}
			return true
		}
		ok, err := c.claim(ctx, p, match, patch)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			claimed = append(claimed, p)
		}
	}
	return claimed, utilerrors.NewAggregate(errs)
}

// ClaimReplicaSets returns the ReplicaSets the controller owns after adopting and releasing.
func (c *Claimer) ClaimReplicaSets(ctx context.Context, sets []*appsv1.ReplicaSet) ([]*appsv1.ReplicaSet, error) {
	patch := func(ctx context.Context, ns, name string, body []byte) error {
		_, err := c.Client.AppsV1().ReplicaSets(ns).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
		return err
	}
	var claimed []*appsv1.ReplicaSet
	var errs []error
	for _, rs := range sets {
		match := func() bool { return c.Selector.Matches(labels.Set(rs.Labels)) }
		ok, err := c.claim(ctx, rs, match, patch)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			claimed = append(claimed, rs)
		}
	}
	return claimed, utilerrors.NewAggregate(errs)
}
