package namespace

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// deletable is one namespaced resource the controller empties.
type deletable struct {
	gvr              schema.GroupVersionResource
	list             bool
	deleteCollection bool
}

// contentResult is what one resource still holds after a deletion pass.
type contentResult struct {
	// estimate is how long to wait before looking again; 0 says nothing about remaining content.
	estimate   int64
	remaining  int
	finalizers map[string]int
}

// deleteAllContent deletes everything in the namespace and reports an estimate (seconds) of
// how long what remains takes to go. Pods go first: other resources are deleted only once no
// pod is left, as Kubernetes' ordered namespace deletion does. The namespace's conditions
// describe the outcome.
func (c *Controller) deleteAllContent(ctx context.Context, ns *corev1.Namespace) (int64, error) {
	var errs []error
	conds := &conditions{}
	lists, err := c.discover()
	if err != nil {
		// Partial discovery is not fatal: empty what is known, report the rest.
		errs = append(errs, err)
		conds.discoveryFailed(err)
	}
	resources, perrs := deletableResources(lists)
	if len(perrs) > 0 {
		err := errors.Join(perrs...)
		errs = append(errs, err)
		conds.groupVersionParsingFailed(err)
	}
	sort.SliceStable(resources, func(i, j int) bool {
		return resources[i].gvr == podsGVR && resources[j].gvr != podsGVR
	})
	deletedAt := ns.DeletionTimestamp.Time
	var estimate int64
	remaining := map[schema.GroupVersionResource]int{}
	finalizers := map[string]int{}
	for _, r := range resources {
		res, err := c.deleteAllOf(ctx, r, ns.Name, deletedAt)
		if err != nil {
			errs = append(errs, err)
			conds.contentFailed(err)
		}
		if res.estimate > estimate {
			estimate = res.estimate
		}
		if res.remaining > 0 {
			remaining[r.gvr] = res.remaining
			for f, n := range res.finalizers {
				finalizers[f] += n
			}
		}
		if r.gvr == podsGVR && (err != nil || res.remaining > 0) {
			// Everything else waits until the pods are gone.
			break
		}
	}
	conds.contentTotals(remaining, finalizers)
	if updated, changed := conds.apply(ns, c.now()); changed {
		if _, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			c.log.Warn("cannot update namespace conditions", "namespace", ns.Name, "err", err)
		}
	}
	return estimate, errors.Join(errs...)
}

// deletableResources lists the resources that support delete, with the operations each serves,
// and the group versions that did not parse.
func deletableResources(lists []*metav1.APIResourceList) ([]deletable, []error) {
	var out []deletable
	var errs []error
	seen := map[schema.GroupVersionResource]bool{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !r.Namespaced {
				continue
			}
			verbs := map[string]bool{}
			for _, v := range r.Verbs {
				verbs[v] = true
			}
			if !verbs["delete"] {
				continue
			}
			g, v := gv.Group, gv.Version
			if r.Group != "" || r.Version != "" {
				g, v = r.Group, r.Version
			}
			gvr := schema.GroupVersionResource{Group: g, Version: v, Resource: r.Name}
			if seen[gvr] {
				continue
			}
			seen[gvr] = true
			out = append(out, deletable{gvr: gvr, list: verbs["list"], deleteCollection: verbs["deletecollection"]})
		}
	}
	return out, errs
}

func (c *Controller) supports(op string, gvr schema.GroupVersionResource) bool {
	_, no := c.unsupported.Load(opKey{op: op, gvr: gvr})
	return !no
}

func (c *Controller) notSupported(op string, gvr schema.GroupVersionResource) {
	c.unsupported.Store(opKey{op: op, gvr: gvr}, true)
}

// deleteAllOf deletes every object of one resource in the namespace and reports what remains.
func (c *Controller) deleteAllOf(ctx context.Context, r deletable, ns string, deletedAt time.Time) (contentResult, error) {
	var estimate int64
	if r.gvr == podsGVR {
		e, err := c.estimatePods(ctx, ns, deletedAt)
		if err != nil {
			return contentResult{}, err
		}
		estimate = e
	}
	client := c.metadata.Resource(r.gvr).Namespace(ns)
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	collected := false
	if r.deleteCollection && c.supports("deletecollection", r.gvr) {
		err := client.DeleteCollection(ctx, opts, metav1.ListOptions{})
		switch {
		case err == nil:
			collected = true
		case apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err):
			c.notSupported("deletecollection", r.gvr)
		default:
			return contentResult{estimate: estimate}, err
		}
	}
	canList := r.list && c.supports("list", r.gvr)
	list := func() (*metav1.PartialObjectMetadataList, bool, error) {
		if !canList {
			return nil, false, nil
		}
		l, err := client.List(ctx, metav1.ListOptions{})
		if apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err) {
			c.notSupported("list", r.gvr)
			canList = false
			return nil, false, nil
		}
		return l, err == nil, err
	}
	if !collected {
		items, ok, err := list()
		if err != nil {
			return contentResult{estimate: estimate}, err
		}
		if ok {
			for _, it := range items.Items {
				err := client.Delete(ctx, it.Name, opts)
				if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
					return contentResult{estimate: estimate}, err
				}
			}
		}
	}
	// What is left?
	items, ok, err := list()
	if err != nil {
		return contentResult{estimate: estimate}, err
	}
	if !ok {
		return contentResult{estimate: estimate}, nil
	}
	if len(items.Items) == 0 {
		return contentResult{}, nil
	}
	finalizers := map[string]int{}
	for _, it := range items.Items {
		for _, f := range it.Finalizers {
			finalizers[f]++
		}
	}
	res := contentResult{estimate: estimate, remaining: len(items.Items), finalizers: finalizers}
	switch {
	case estimate > 0:
		return res, nil
	case len(finalizers) > 0:
		// Finalizers are a normal reason to wait (the garbage collector, for instance).
		res.estimate = finalizerEstimateSeconds
		return res, nil
	}
	res.finalizers = nil
	return res, fmt.Errorf("unexpected items still remain in namespace: %s for gvr: %v", ns, r.gvr)
}

// estimatePods is the longest termination grace period of the namespace's running pods, or
// 0 once the namespace has been deleting for longer than that.
func (c *Controller) estimatePods(ctx context.Context, ns string, deletedAt time.Time) (int64, error) {
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	var estimate int64
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if g := p.Spec.TerminationGracePeriodSeconds; g != nil && *g > estimate {
			estimate = *g
		}
	}
	if c.now().Sub(deletedAt) >= time.Duration(estimate)*time.Second {
		return 0, nil
	}
	return estimate, nil
}

// conditionTypes are the namespace conditions the controller owns, in Kubernetes' order.
var conditionTypes = []corev1.NamespaceConditionType{
	corev1.NamespaceDeletionDiscoveryFailure,
	corev1.NamespaceDeletionGVParsingFailure,
	corev1.NamespaceDeletionContentFailure,
	corev1.NamespaceContentRemaining,
	corev1.NamespaceFinalizersRemaining,
}

// okConditions are the reasons and messages of conditions that report no problem.
var okConditions = map[corev1.NamespaceConditionType][2]string{
	corev1.NamespaceDeletionDiscoveryFailure: {"ResourcesDiscovered", "All resources successfully discovered"},
	corev1.NamespaceDeletionGVParsingFailure: {"ParsedGroupVersions", "All legacy kube types successfully parsed"},
	corev1.NamespaceDeletionContentFailure:   {"ContentDeleted", "All content successfully deleted, may be waiting on finalization"},
	corev1.NamespaceContentRemaining:         {"ContentRemoved", "All content successfully removed"},
	corev1.NamespaceFinalizersRemaining:      {"ContentHasNoFinalizers", "All content-preserving finalizers finished"},
}

// conditions collects the failing conditions of one deletion pass.
type conditions struct {
	failing       map[corev1.NamespaceConditionType]corev1.NamespaceCondition
	contentErrors []string
}

func (c *conditions) set(t corev1.NamespaceConditionType, reason, msg string) {
	if c.failing == nil {
		c.failing = map[corev1.NamespaceConditionType]corev1.NamespaceCondition{}
	}
	c.failing[t] = corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg}
}

func (c *conditions) discoveryFailed(err error) {
	msg := err.Error()
	var gerr *discovery.ErrGroupDiscoveryFailed
	if errors.As(err, &gerr) {
		msg = fmt.Sprintf("Discovery failed for some groups, %d failing: %v", len(gerr.Groups), err)
	}
	c.set(corev1.NamespaceDeletionDiscoveryFailure, "DiscoveryFailed", msg)
}

func (c *conditions) groupVersionParsingFailed(err error) {
	c.set(corev1.NamespaceDeletionGVParsingFailure, "GroupVersionParsingFailed", err.Error())
}

func (c *conditions) contentFailed(err error) {
	c.contentErrors = append(c.contentErrors, err.Error())
}

func (c *conditions) contentTotals(remaining map[schema.GroupVersionResource]int, finalizers map[string]int) {
	if len(remaining) > 0 {
		var parts []string
		for gvr, n := range remaining {
			parts = append(parts, fmt.Sprintf("%s.%s has %d resource instances", gvr.Resource, gvr.Group, n))
		}
		sort.Strings(parts)
		c.set(corev1.NamespaceContentRemaining, "SomeResourcesRemain", "Some resources are remaining: "+strings.Join(parts, ", "))
	}
	if len(finalizers) > 0 {
		var parts []string
		for f, n := range finalizers {
			parts = append(parts, fmt.Sprintf("%s in %d resource instances", f, n))
		}
		sort.Strings(parts)
		c.set(corev1.NamespaceFinalizersRemaining, "SomeFinalizersRemain",
			"Some content in the namespace has finalizers remaining: "+strings.Join(parts, ", "))
	}
}

// apply writes the conditions into a copy of ns; changed reports whether any differs from
// what ns has. A condition's transition time moves only when its status does.
func (c *conditions) apply(ns *corev1.Namespace, now time.Time) (*corev1.Namespace, bool) {
	if len(c.contentErrors) > 0 {
		msgs := append([]string(nil), c.contentErrors...)
		sort.Strings(msgs)
		c.set(corev1.NamespaceDeletionContentFailure, "ContentDeletionFailed",
			fmt.Sprintf("Failed to delete all resource types, %d remaining: %v", len(msgs), strings.Join(msgs, ", ")))
	}
	out := ns.DeepCopy()
	changed := false
	for _, t := range conditionTypes {
		want, ok := c.failing[t]
		if !ok {
			ok := okConditions[t]
			want = corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: ok[0], Message: ok[1]}
		}
		want.LastTransitionTime = metav1.NewTime(now)
		i := conditionIndex(out.Status.Conditions, t)
		if i < 0 {
			out.Status.Conditions = append(out.Status.Conditions, want)
			changed = true
			continue
		}
		cur := &out.Status.Conditions[i]
		if cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message {
			continue
		}
		if cur.Status != want.Status {
			cur.LastTransitionTime = want.LastTransitionTime
		}
		cur.Status, cur.Reason, cur.Message = want.Status, want.Reason, want.Message
		changed = true
	}
	return out, changed
}

func conditionIndex(conds []corev1.NamespaceCondition, t corev1.NamespaceConditionType) int {
	for i := range conds {
		if conds[i].Type == t {
			return i
		}
	}
	return -1
}
