package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/quota"
)

// ResourceQuota admission, as Kubernetes does it: a new object is refused when it would take
// its namespace past a quota ("exceeded quota: ..."), or when it is a pod that leaves unset a
// compute resource a quota limits ("failed quota: ..."); otherwise the quotas' status.used is
// raised in the same compare-and-swap that checked it, so concurrent creates cannot both take
// the last unit. The resource quota controller recomputes usage as objects go.

// admitQuota charges a new object of ep's resource to the quotas of its namespace.
func (s *Server) admitQuota(ctx context.Context, ep *endpoint, obj runtime.Object) error {
	if ep.res.Group != "" || !ep.res.Namespaced || !slices.Contains(quota.Tracked, ep.res.Resource) {
		return nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	qep := s.endpoints[gvrKey("", "v1", "resourcequotas")]
	if qep == nil {
		return nil
	}
	var list corev1.ResourceQuotaList
	if err := listEndpoint(ctx, qep, m.GetNamespace(), &list, false); err != nil || len(list.Items) == 0 {
		return err
	}
	usage := quota.Usage(obj)
	forbidden := func(msg string) error {
		return apierrors.NewForbidden(ep.res.GroupResource(), m.GetName(), errors.New(msg))
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		for _, q := range list.Items {
			if missing := quota.MissingPodResources(pod, q.Spec.Hard); missing != "" {
				return forbidden(fmt.Sprintf("failed quota: %s: must specify %s", q.Name, missing))
			}
		}
	}
	for _, q := range list.Items {
		if !limitsAny(q.Spec.Hard, usage) {
			continue
		}
		out := &corev1.ResourceQuota{}
		err := qep.store.GuaranteedUpdate(ctx, qep.key(q.Namespace, q.Name), out, nil, func(cur runtime.Object) (runtime.Object, error) {
			rq := cur.(*corev1.ResourceQuota).DeepCopy()
			used := rq.Status.Used
			if !sameKeys(rq.Status.Hard, rq.Spec.Hard) || used == nil {
				// The controller has not counted this quota yet: count now.
				var err error
				if used, err = s.namespaceUsage(ctx, rq.Namespace); err != nil {
					return nil, err
				}
				used = quota.Mask(used, rq.Spec.Hard)
			}
			var exceeded []corev1.ResourceName
			next := corev1.ResourceList{}
			for name, hard := range rq.Spec.Hard {
				u := used[name].DeepCopy()
				if d, ok := usage[name]; ok {
					u.Add(d)
					if u.Cmp(hard) > 0 {
						exceeded = append(exceeded, name)
					}
				}
				next[name] = u
			}
			if len(exceeded) > 0 {
				sort.Slice(exceeded, func(i, j int) bool { return exceeded[i] < exceeded[j] })
				var req, usedS, lim []string
				for _, name := range exceeded {
					d, u, h := usage[name], used[name], rq.Spec.Hard[name]
					req = append(req, fmt.Sprintf("%s=%s", name, d.String()))
					usedS = append(usedS, fmt.Sprintf("%s=%s", name, u.String()))
					lim = append(lim, fmt.Sprintf("%s=%s", name, h.String()))
				}
				return nil, forbidden(fmt.Sprintf("exceeded quota: %s, requested: %s, used: %s, limited: %s",
					rq.Name, strings.Join(req, ","), strings.Join(usedS, ","), strings.Join(lim, ",")))
			}
			rq.Status.Hard = rq.Spec.Hard.DeepCopy()
			rq.Status.Used = next
			return rq, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func limitsAny(hard, usage corev1.ResourceList) bool {
	for name := range usage {
		if _, ok := hard[name]; ok {
			return true
		}
	}
	return false
}

func sameKeys(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// namespaceUsage adds up what the tracked objects of a namespace use, from the watch caches.
func (s *Server) namespaceUsage(ctx context.Context, ns string) (corev1.ResourceList, error) {
	total := corev1.ResourceList{}
	for _, r := range quota.Tracked {
		ep := s.endpoints[gvrKey("", "v1", r)]
		if ep == nil {
			continue
		}
		list := ep.res.NewList()
		if err := listEndpoint(ctx, ep, ns, list, false); err != nil {
			return nil, err
		}
		if err := meta.EachListItem(list, func(o runtime.Object) error {
			quota.Add(total, quota.Usage(o))
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return total, nil
}
