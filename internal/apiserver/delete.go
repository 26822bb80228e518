package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/storage"
)

// parseDeleteOptions reads DeleteOptions from the body (if any) and the query.
func parseDeleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		if err := decodeLoose(r, body, opts, metav1.SchemeGroupVersion.WithKind("DeleteOptions")); err != nil {
			return nil, err
		}
	}
	q := r.URL.Query()
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid gracePeriodSeconds %q", v))
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q.Get("orphanDependents"); v != "" {
		b := v == "true"
		opts.OrphanDependents = &b
	}
	if vals := q["dryRun"]; len(vals) > 0 {
		opts.DryRun = vals
	}
	for _, v := range opts.DryRun {
		if v != metav1.DryRunAll {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("Invalid dry run value: %s, valid values: [All]", v))
		}
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy: Unsupported value: %q: supported values: \"Foreground\", \"Background\", \"Orphan\"", *opts.PropagationPolicy))
		}
		if opts.OrphanDependents != nil {
			return nil, apierrors.NewBadRequest("orphanDependents and propagationPolicy cannot both be set")
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		z := int64(0)
		opts.GracePeriodSeconds = &z
	}
	return opts, nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	opts, err := parseDeleteOptions(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	out, immediate, err := s.delete(r.Context(), ep, info.Namespace, info.Name, opts)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	if immediate {
		m, _ := meta.Accessor(out)
		st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess,
			Details: &metav1.StatusDetails{Name: info.Name, Group: ep.res.Group, Kind: ep.res.Resource, UID: m.GetUID()}}
		// Kubernetes answers pods and namespaces with the object, most others with a Status.
		if ep.res.Resource != "pods" && ep.res.Resource != "namespaces" {
			writeJSON(w, http.StatusOK, &st)
			return
		}
	}
	s.writeObject(w, r, ep, http.StatusOK, out)
}

// delete deletes one object. Objects that must finish first — pods on a node within their
// grace period, objects with finalizers, namespaces — get a deletionTimestamp instead; the
// second result reports whether the object is gone.
func (s *Server) delete(ctx context.Context, ep *endpoint, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	res := ep.res
	key := ep.key(ns, name)
	if err := s.admitDelete(ctx, ep, ns, name); err != nil {
		return nil, false, err
	}
	if ep.res.Group == "" && ep.res.Resource == "namespaces" && len(opts.DryRun) == 0 {
		s.noteNamespaceDeleted(name)
	}
	var pre *storage.Preconditions
	if opts.Preconditions != nil {
		pre = &storage.Preconditions{UID: opts.Preconditions.UID, ResourceVersion: opts.Preconditions.ResourceVersion}
	}
	dryRun := len(opts.DryRun) > 0
	out := res.New()
	var last runtime.Object
	err := ep.store.GuaranteedUpdate(ctx, key, out, pre, func(cur runtime.Object) (runtime.Object, error) {
		obj := cur.DeepCopyObject()
		m, _ := meta.Accessor(obj)
		grace := s.gracePeriod(ep, obj, opts)
		finalizers := m.GetFinalizers()
		policy := deletionPolicy(ep, opts)
		if policy == metav1.DeletePropagationOrphan {
			finalizers = addString(removeString(finalizers, metav1.FinalizerDeleteDependents), metav1.FinalizerOrphanDependents)
		} else if policy == metav1.DeletePropagationForeground {
			finalizers = addString(removeString(finalizers, metav1.FinalizerOrphanDependents), metav1.FinalizerDeleteDependents)
		} else if opts.PropagationPolicy != nil {
			finalizers = removeString(removeString(finalizers, metav1.FinalizerOrphanDependents), metav1.FinalizerDeleteDependents)
		}
		nsPending := res.Resource == "namespaces" && len(obj.(*corev1.Namespace).Spec.Finalizers) > 0
		if grace == 0 && len(finalizers) == 0 && !nsPending {
			last = obj
			return nil, errImmediate
		}
		m.SetFinalizers(finalizers)
		if m.GetDeletionTimestamp() == nil {
			now := metav1.NewTime(s.now().Add(time.Duration(grace) * time.Second).Truncate(time.Second))
			m.SetDeletionTimestamp(&now)
			m.SetDeletionGracePeriodSeconds(&grace)
		} else if cg := m.GetDeletionGracePeriodSeconds(); cg != nil && grace < *cg {
			// A shorter grace period shortens an ongoing graceful deletion.
			now := metav1.NewTime(s.now().Add(time.Duration(grace) * time.Second).Truncate(time.Second))
			m.SetDeletionTimestamp(&now)
			m.SetDeletionGracePeriodSeconds(&grace)
		}
		if ns, ok := obj.(*corev1.Namespace); ok {
			ns.Status.Phase = corev1.NamespaceTerminating
		}
		if dryRun {
			last = obj
			return nil, errDryRun
		}
		return obj, nil
	})
	switch {
	case errors.Is(err, errDryRun):
		return last, false, nil
	case errors.Is(err, errImmediate):
		if dryRun {
			return last, true, nil
		}
		m, _ := meta.Accessor(last)
		rv := m.GetResourceVersion()
		uid := m.GetUID()
		gone := res.New()
		if err := ep.store.Delete(ctx, key, gone, &storage.Preconditions{ResourceVersion: &rv, UID: &uid}, nil); err != nil {
			if storage.IsCode(err, storage.ErrCodeInvalidObj) {
				// Changed in between: decide again on the new state.
				return s.delete(ctx, ep, ns, name, opts)
			}
			return nil, false, err
		}
		if svc, ok := gone.(*corev1.Service); ok {
			s.svcAlloc.release(ctx, svc)
		}
		return gone, true, nil
	case err != nil:
		return nil, false, err
	}
	return out, false, nil
}

var errImmediate = errors.New("delete immediately")

// gracePeriod is the grace period a deletion gets. Only pods have one: their spec's (or the
// request's), and none when they never reached a node or already finished.
func (s *Server) gracePeriod(ep *endpoint, obj runtime.Object, opts *metav1.DeleteOptions) int64 {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return 0
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if opts.GracePeriodSeconds != nil {
		return *opts.GracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

// deletionPolicy is the propagation policy in force, honouring the deprecated orphanDependents.
func deletionPolicy(ep *endpoint, opts *metav1.DeleteOptions) metav1.DeletionPropagation {
	if opts.PropagationPolicy != nil {
		return *opts.PropagationPolicy
	}
	if opts.OrphanDependents != nil {
		if *opts.OrphanDependents {
			return metav1.DeletePropagationOrphan
		}
		return metav1.DeletePropagationBackground
	}
	return ""
}

func addString(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func removeString(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// blocksDeletion reports objects that stay after losing their last metadata finalizer:
// namespaces still waiting for their spec finalizers.
func (s *Server) blocksDeletion(ep *endpoint, obj runtime.Object) bool {
	if ns, ok := obj.(*corev1.Namespace); ok {
		return len(ns.Spec.Finalizers) > 0
	}
	return false
}

// finalizeNamespace applies a /finalize request: only spec.finalizers change.
func (s *Server) finalizeNamespace(cur, obj runtime.Object) (runtime.Object, error) {
	c, ok1 := cur.(*corev1.Namespace)
	n, ok2 := obj.(*corev1.Namespace)
	if !ok1 || !ok2 {
		return nil, apierrors.NewBadRequest("finalize applies to namespaces only")
	}
	out := c.DeepCopy()
	out.Spec.Finalizers = n.Spec.Finalizers
	return out, nil
}

func (s *Server) handleDeleteCollection(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	opts, err := parseDeleteOptions(r)
	if err != nil {
		writeError(w, r, err, gr, "")
		return
	}
	lopts, err := s.listOptions(r, ep)
	if err != nil {
		writeError(w, r, err, gr, "")
		return
	}
	lopts.ResourceVersion = ""
	lopts.Predicate.Limit = 0
	lopts.Predicate.Continue = ""
	list := ep.res.NewList()
	if err := ep.store.GetList(r.Context(), ep.listPrefix(info.Namespace), lopts, list); err != nil {
		writeError(w, r, err, gr, "")
		return
	}
	items, _ := meta.ExtractList(list)
	deleted := make([]runtime.Object, 0, len(items))
	for _, it := range items {
		m, _ := meta.Accessor(it)
		out, _, err := s.delete(r.Context(), ep, m.GetNamespace(), m.GetName(), opts)
		if err != nil {
			if apierrors.IsNotFound(toAPIError(err, gr, m.GetName())) {
				continue
			}
			writeError(w, r, err, gr, m.GetName())
			return
		}
		deleted = append(deleted, out)
	}
	_ = meta.SetList(list, deleted)
	list.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersion().WithKind(ep.res.ListKind))
	s.writeObject(w, r, ep, http.StatusOK, list)
}

var _ types.UID
