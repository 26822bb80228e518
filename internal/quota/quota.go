// Package quota computes what objects count against ResourceQuotas, shared by the API
// server's quota admission and the resource quota controller: object counts (pods, services,
// configmaps, secrets, persistentvolumeclaims, replicationcontrollers, resourcequotas and their
// count/<resource> forms), compute requests and limits of pods that are not finished, storage
// requests of claims, node ports and load balancers of services.
package quota

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
)

// Tracked lists the core resources whose objects quotas count, by resource name.
var Tracked = []string{"pods", "services", "configmaps", "secrets", "persistentvolumeclaims", "replicationcontrollers", "resourcequotas"}

// Usage returns what one object of a tracked core resource uses.
func Usage(obj runtime.Object) corev1.ResourceList {
	one := resource.MustParse("1")
	count := func(name string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceName(name): one.DeepCopy(), corev1.ResourceName("count/" + name): one.DeepCopy()}
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		if !Counts(o) {
			return corev1.ResourceList{}
		}
		out := count("pods")
		req, lim := PodTotals(o)
		for name, q := range req {
			out[corev1.ResourceName("requests."+string(name))] = q.DeepCopy()
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage {
				out[name] = q.DeepCopy() // "cpu" and "memory" stand for requests
			}
		}
		for name, q := range lim {
			out[corev1.ResourceName("limits."+string(name))] = q.DeepCopy()
		}
		return out
	case *corev1.Service:
		out := count("services")
		switch o.Spec.Type {
		case corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
			out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(len(o.Spec.Ports)), resource.DecimalSI)
		}
		if o.Spec.Type == corev1.ServiceTypeLoadBalancer {
			out[corev1.ResourceServicesLoadBalancers] = one.DeepCopy()
		}
		return out
	case *corev1.PersistentVolumeClaim:
		out := count("persistentvolumeclaims")
		if q, ok := o.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			out[corev1.ResourceRequestsStorage] = q.DeepCopy()
		}
		return out
	case *corev1.ConfigMap:
		return count("configmaps")
	case *corev1.Secret:
		return count("secrets")
	case *corev1.ReplicationController:
		return count("replicationcontrollers")
	case *corev1.ResourceQuota:
		return count("resourcequotas")
	}
	return corev1.ResourceList{}
}

// Counts reports whether a pod uses quota: one that has finished, or whose grace period is
// over, does not.
func Counts(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// PodTotals sums the containers' requests and limits; an init container counts when it alone
// needs more than all regular containers together, since they run one at a time before them.
func PodTotals(pod *corev1.Pod) (corev1.ResourceList, corev1.ResourceList) {
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	for _, c := range pod.Spec.Containers {
		Add(req, c.Resources.Requests)
		Add(lim, c.Resources.Limits)
	}
	atLeast := func(into corev1.ResourceList, l corev1.ResourceList) {
		for name, v := range l {
			if q, ok := into[name]; !ok || v.Cmp(q) > 0 {
				into[name] = v.DeepCopy()
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		atLeast(req, c.Resources.Requests)
		atLeast(lim, c.Resources.Limits)
	}
	return req, lim
}

// Add adds l into into.
func Add(into, l corev1.ResourceList) {
	for name, v := range l {
		q := into[name]
		q.Add(v)
		into[name] = q
	}
}

// Mask keeps the resources of l that hard limits.
func Mask(l, hard corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name := range hard {
		if q, ok := l[name]; ok {
			out[name] = q.DeepCopy()
		} else {
			out[name] = resource.MustParse("0")
		}
	}
	return out
}

// MissingPodResources names, for each requests.X or limits.X that hard limits, the containers
// of pod that do not set it, in Kubernetes' form ("limits.cpu for: web; requests.cpu for: web").
func MissingPodResources(pod *corev1.Pod, hard corev1.ResourceList) string {
	var parts []string
	names := make([]string, 0, len(hard))
	for name := range hard {
		names = append(names, string(name))
	}
	sort.Strings(names)
	for _, name := range names {
		kind, res, ok := strings.Cut(name, ".")
		if !ok && (name == "cpu" || name == "memory") {
			kind, res = "requests", name
		} else if !ok || (kind != "requests" && kind != "limits") || strings.Contains(res, ".") && !strings.HasPrefix(res, "hugepages-") {
			continue
		}
		if res != "cpu" && res != "memory" {
			continue
		}
		var missing []string
		for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
			l := c.Resources.Requests
			if kind == "limits" {
				l = c.Resources.Limits
			}
			if _, set := l[corev1.ResourceName(res)]; !set {
				missing = append(missing, c.Name)
			}
		}
		if len(missing) > 0 {
			parts = append(parts, name+" for: "+strings.Join(missing, ","))
		}
	}
	return strings.Join(parts, "; ")
}
