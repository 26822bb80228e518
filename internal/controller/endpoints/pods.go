package endpoints

import (
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The pod and service helpers below are shared with the EndpointSlice controller.

// ServiceWantsEndpoints reports whether the controllers compute endpoints for svc: it has a
// selector and is not of type ExternalName. Services without a selector get their endpoints
// from users.
func ServiceWantsEndpoints(svc *corev1.Service) bool {
	return len(svc.Spec.Selector) > 0 && svc.Spec.Type != corev1.ServiceTypeExternalName
}

// IsHeadless reports whether svc has clusterIP None.
func IsHeadless(svc *corev1.Service) bool { return svc.Spec.ClusterIP == corev1.ClusterIPNone }

// IsPodReady reports whether the pod's Ready condition is True.
func IsPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// IsPodTerminal reports whether the pod has finished (Succeeded or Failed).
func IsPodTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// PodIPs returns the pod's IPs (status.podIPs, or status.podIP when that list is empty).
func PodIPs(pod *corev1.Pod) []string {
	if len(pod.Status.PodIPs) > 0 {
		out := make([]string, 0, len(pod.Status.PodIPs))
		for _, ip := range pod.Status.PodIPs {
			out = append(out, ip.IP)
		}
		return out
	}
	if pod.Status.PodIP != "" {
		return []string{pod.Status.PodIP}
	}
	return nil
}

// PodIPOfFamily returns the pod's first IP of the family (IPv6 when v6), or "".
func PodIPOfFamily(pod *corev1.Pod, v6 bool) string {
	for _, s := range PodIPs(pod) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if is4 := a.Is4() || a.Is4In6(); is4 != v6 {
			return s
		}
	}
	return ""
}

// ShouldPodBeInEndpoints reports whether a pod can be an endpoint at all: it has an IP, it
// is not terminal, and (unless includeTerminating) it is not being deleted.
func ShouldPodBeInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if len(PodIPs(pod)) == 0 || IsPodTerminal(pod) {
		return false
	}
	if !includeTerminating && pod.DeletionTimestamp != nil {
		return false
	}
	return true
}

// Hostname is the endpoint hostname of a pod for svc: spec.hostname when the pod's
// subdomain names the service (the DNS records of StatefulSet pods).
func Hostname(pod *corev1.Pod, svc *corev1.Service) string {
	if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace {
		return pod.Spec.Hostname
	}
	return ""
}

// FindPort resolves a service port's targetPort on a pod: a name is looked up among the
// pod's container ports (same protocol), a number is used as is, and an unset targetPort
// means the service port. ok is false when a named port does not exist on the pod.
func FindPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, bool) {
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	switch sp.TargetPort.Type {
	case intstr.String:
		name := sp.TargetPort.StrVal
		if name == "" {
			return sp.Port, true
		}
		for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
			for _, c := range list {
				for _, p := range c.Ports {
					pp := p.Protocol
					if pp == "" {
						pp = corev1.ProtocolTCP
					}
					if p.Name == name && pp == proto {
						return p.ContainerPort, true
					}
				}
			}
		}
		return 0, false
	default:
		if sp.TargetPort.IntVal == 0 {
			return sp.Port, true
		}
		return sp.TargetPort.IntVal, true
	}
}

// PodChanged reports whether an update of a pod can change any endpoint: labels, IPs,
// readiness, terminal phase, deletion, hostname, subdomain, node or ports.
func PodChanged(old, cur *corev1.Pod) bool {
	if old.UID != cur.UID || !labels.Equals(old.Labels, cur.Labels) {
		return true
	}
	if (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) {
		return true
	}
	if IsPodReady(old) != IsPodReady(cur) || IsPodTerminal(old) != IsPodTerminal(cur) {
		return true
	}
	if old.Spec.Hostname != cur.Spec.Hostname || old.Spec.Subdomain != cur.Spec.Subdomain || old.Spec.NodeName != cur.Spec.NodeName {
		return true
	}
	oi, ci := PodIPs(old), PodIPs(cur)
	if len(oi) != len(ci) {
		return true
	}
	for i := range oi {
		if oi[i] != ci[i] {
			return true
		}
	}
	return !containerPortsEqual(old, cur)
}

func containerPortsEqual(a, b *corev1.Pod) bool {
	if len(a.Spec.Containers) != len(b.Spec.Containers) || len(a.Spec.InitContainers) != len(b.Spec.InitContainers) {
		return false
	}
	eq := func(x, y []corev1.Container) bool {
		for i := range x {
			if len(x[i].Ports) != len(y[i].Ports) {
				return false
			}
			for j := range x[i].Ports {
				if x[i].Ports[j] != y[i].Ports[j] {
					return false
				}
			}
		}
		return true
	}
	return eq(a.Spec.Containers, b.Spec.Containers) && eq(a.Spec.InitContainers, b.Spec.InitContainers)
}

// ServiceIndex maps pods to the services selecting them without scanning every service:
// it holds the parsed selectors of the services with selectors, per namespace.
type ServiceIndex struct {
	mu   sync.RWMutex
	byNS map[string]map[string]labels.Selector
}

// NewServiceIndex returns an empty index.
func NewServiceIndex() *ServiceIndex {
	return &ServiceIndex{byNS: map[string]map[string]labels.Selector{}}
}

// Set records (or forgets, when it wants no endpoints) a service's selector.
func (x *ServiceIndex) Set(svc *corev1.Service) {
	if !ServiceWantsEndpoints(svc) {
		x.Delete(svc.Namespace, svc.Name)
		return
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.byNS[svc.Namespace]
	if m == nil {
		m = map[string]labels.Selector{}
		x.byNS[svc.Namespace] = m
	}
	m[svc.Name] = sel
}

// Delete forgets a service.
func (x *ServiceIndex) Delete(namespace, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if m := x.byNS[namespace]; m != nil {
		delete(m, name)
		if len(m) == 0 {
			delete(x.byNS, namespace)
		}
	}
}

// Matching returns the names of the services in namespace whose selector matches the labels.
func (x *ServiceIndex) Matching(namespace string, set map[string]string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	ls := labels.Set(set)
	for name, sel := range x.byNS[namespace] {
		if sel.Matches(ls) {
			out = append(out, name)
		}
	}
	return out
}
