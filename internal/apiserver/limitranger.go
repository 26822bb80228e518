package apiserver

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/skiff-sh/skiff/internal/quota"
)

// LimitRanger admission, as Kubernetes does it: a new pod's containers get the default
// requests and limits of the namespace's LimitRanges (noted in the kubernetes.io/limit-ranger
// annotation), then the pod is refused if a container, or the pod as a whole, falls outside
// a range's min, max or max limit/request ratio; a new claim is held to the storage min and max.

const limitRangerAnnotation = "kubernetes.io/limit-ranger"

// limitRanges lists the LimitRanges of a namespace from the watch cache.
func (s *Server) limitRanges(ctx context.Context, ns string) ([]corev1.LimitRange, error) {
	var list corev1.LimitRangeList
	err := s.listCached(ctx, "", "limitranges", ns, &list, false)
	return list.Items, err
}

// admitPodLimits defaults and checks a new pod against its namespace's LimitRanges.
func (s *Server) admitPodLimits(ctx context.Context, pod *corev1.Pod) error {
	ranges, err := s.limitRanges(ctx, pod.Namespace)
	if err != nil || len(ranges) == 0 {
		return err
	}
	var errs []error
	for _, lr := range ranges {
		for _, it := range lr.Spec.Limits {
			switch it.Type {
			case corev1.LimitTypeContainer:
				applyContainerDefaults(pod, it)
				for _, c := range allContainers(pod) {
					errs = append(errs, checkRange(it, corev1.LimitTypeContainer, c.Resources.Requests, c.Resources.Limits)...)
				}
			case corev1.LimitTypePod:
				req, lim := quota.PodTotals(pod)
				errs = append(errs, checkRange(it, corev1.LimitTypePod, req, lim)...)
			}
		}
	}
	if len(errs) > 0 {
		return apierrors.NewForbidden(corev1.Resource("pods"), pod.Name, utilerrors.NewAggregate(errs))
	}
	return nil
}

// admitClaimLimits checks a new claim's storage request against the PersistentVolumeClaim
// ranges of its namespace.
func (s *Server) admitClaimLimits(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	ranges, err := s.limitRanges(ctx, pvc.Namespace)
	if err != nil || len(ranges) == 0 {
		return err
	}
	var errs []error
	for _, lr := range ranges {
		for _, it := range lr.Spec.Limits {
			if it.Type != corev1.LimitTypePersistentVolumeClaim {
				continue
			}
			// A claim has requests only: min and max both hold them.
			req := pvc.Spec.Resources.Requests
			errs = append(errs, checkRange(corev1.LimitRangeItem{Min: it.Min}, it.Type, req, nil)...)
			for _, name := range sortedNames(it.Max) {
				max := it.Max[name]
				if r, ok := req[name]; ok && r.Cmp(max) > 0 {
					errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, it.Type, max.String(), r.String()))
				}
			}
		}
	}
	if len(errs) > 0 {
		return apierrors.NewForbidden(corev1.Resource("persistentvolumeclaims"), pvc.Name, utilerrors.NewAggregate(errs))
	}
	return nil
}

func allContainers(pod *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.Spec.InitContainers {
		out = append(out, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

// applyContainerDefaults sets the range's default requests and limits a container lacks and
// records what was set in the pod's limit-ranger annotation.
func applyContainerDefaults(pod *corev1.Pod, it corev1.LimitRangeItem) {
	var notes []string
	for _, c := range allContainers(pod) {
		var setReq, setLim []string
		for name, v := range it.Default {
			if _, ok := c.Resources.Limits[name]; !ok {
				if c.Resources.Limits == nil {
					c.Resources.Limits = corev1.ResourceList{}
				}
				c.Resources.Limits[name] = v.DeepCopy()
				setLim = append(setLim, string(name))
			}
		}
		for name, v := range it.DefaultRequest {
			if _, ok := c.Resources.Requests[name]; !ok {
				if c.Resources.Requests == nil {
					c.Resources.Requests = corev1.ResourceList{}
				}
				c.Resources.Requests[name] = v.DeepCopy()
				setReq = append(setReq, string(name))
			}
		}
		sort.Strings(setReq)
		sort.Strings(setLim)
		if len(setReq) > 0 {
			notes = append(notes, fmt.Sprintf("%s request for container %s", strings.Join(setReq, ", "), c.Name))
		}
		if len(setLim) > 0 {
			notes = append(notes, fmt.Sprintf("%s limit for container %s", strings.Join(setLim, ", "), c.Name))
		}
	}
	if len(notes) > 0 {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[limitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(notes, "; ")
	}
}

// checkRange holds requests and limits to a range item, with Kubernetes' messages.
func checkRange(it corev1.LimitRangeItem, kind corev1.LimitType, req, lim corev1.ResourceList) []error {
	var errs []error
	for _, name := range sortedNames(it.Min) {
		min := it.Min[name]
		r, hasReq := req[name]
		l, hasLim := lim[name]
		// One message per constraint, the first that fails, as Kubernetes reports them.
		switch {
		case !hasReq:
			errs = append(errs, fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, kind, min.String()))
		case r.Cmp(min) < 0:
			errs = append(errs, fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, kind, min.String(), r.String()))
		case hasLim && l.Cmp(min) < 0:
			errs = append(errs, fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, kind, min.String(), l.String()))
		}
	}
	for _, name := range sortedNames(it.Max) {
		max := it.Max[name]
		r, hasReq := req[name]
		l, hasLim := lim[name]
		switch {
		case !hasLim:
			errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, kind, max.String()))
		case l.Cmp(max) > 0:
			errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, kind, max.String(), l.String()))
		case hasReq && r.Cmp(max) > 0:
			errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, max.String(), r.String()))
		}
	}
	for _, name := range sortedNames(it.MaxLimitRequestRatio) {
		ratio := it.MaxLimitRequestRatio[name]
		r, hasReq := req[name]
		l, hasLim := lim[name]
		switch {
		case !hasLim:
			errs = append(errs, fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified", name, kind, ratio.String()))
		case !hasReq || r.IsZero():
			errs = append(errs, fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, kind, ratio.String()))
		default:
			got := float64(l.MilliValue()) / float64(r.MilliValue())
			if got > float64(ratio.MilliValue())/1000 {
				errs = append(errs, fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, kind, ratio.String(), got))
			}
		}
	}
	return errs
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
