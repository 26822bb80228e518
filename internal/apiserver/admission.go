package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/storage"
)

// immortalNamespaces cannot be deleted, as in Kubernetes.
var immortalNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true}

// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds are how long pods
// tolerate a not-ready or unreachable node unless they say otherwise (Kubernetes'
// DefaultTolerationSeconds admission; kube-apiserver's --default-*-toleration-seconds).
var (
	DefaultNotReadyTolerationSeconds    int64 = 300
	DefaultUnreachableTolerationSeconds int64 = 300
)

// admitCreate applies the admission Kubernetes runs on create: namespace lifecycle; for pods the
// service account, default tolerations, priority and LimitRanges; default classes for Ingresses
// and claims (and LimitRanges for claims).
func (s *Server) admitCreate(ctx context.Context, ep *endpoint, obj runtime.Object) error {
	if ep.res.Namespaced {
		if err := s.namespaceAcceptsContent(ctx, ep, obj); err != nil {
			return err
		}
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		if pod.Spec.ServiceAccountName == "" {
			pod.Spec.ServiceAccountName = "default"
		}
		// The deprecated alias mirrors it, as Kubernetes keeps them in step.
		pod.Spec.DeprecatedServiceAccount = pod.Spec.ServiceAccountName
		addDefaultTolerations(pod)
		if err := s.admitPriority(ctx, pod); err != nil {
			return err
		}
		if err := s.admitPodLimits(ctx, pod); err != nil {
			return err
		}
	}
	if pc, ok := obj.(*schedulingv1.PriorityClass); ok && pc.GlobalDefault {
		if err := s.onlyOneDefaultPriorityClass(ctx, pc); err != nil {
			return err
		}
	}
	if ing, ok := obj.(*networkingv1.Ingress); ok {
		s.defaultIngressClass(ctx, ing)
	}
	if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok {
		// Who asked is recorded by the server, never taken from the request.
		csr.Spec.Username, csr.Spec.UID, csr.Spec.Groups, csr.Spec.Extra = "", "", nil, nil
		if u, ok := auth.UserFrom(ctx); ok {
			csr.Spec.Username, csr.Spec.UID, csr.Spec.Groups = u.Name, u.UID, slices.Clone(u.Groups)
		}
	}
	if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
		s.defaultStorageClass(ctx, pvc)
		if err := s.admitClaimLimits(ctx, pvc); err != nil {
			return err
		}
	}
	return nil
}

// defaultStorageClass gives a claim that names no class (nil, not "") the default
// StorageClass (Kubernetes' DefaultStorageClass admission). The beta storage-class
// annotation counts as a class.
func (s *Server) defaultStorageClass(ctx context.Context, pvc *corev1.PersistentVolumeClaim) {
	if pvc.Spec.StorageClassName != nil || pvc.Annotations["volume.beta.kubernetes.io/storage-class"] != "" {
		return
	}
	var list storagev1.StorageClassList
	if name, ok := s.defaultClass(ctx, "storage.k8s.io", "storageclasses", &list,
		"storageclass.kubernetes.io/is-default-class"); ok {
		pvc.Spec.StorageClassName = &name
	}
}

// defaultIngressClass gives an Ingress without a class the default IngressClass
// (Kubernetes' DefaultIngressClass admission). The legacy kubernetes.io/ingress.class
// annotation counts as a class.
func (s *Server) defaultIngressClass(ctx context.Context, ing *networkingv1.Ingress) {
	if ing.Spec.IngressClassName != nil || ing.Annotations["kubernetes.io/ingress.class"] != "" {
		return
	}
	var list networkingv1.IngressClassList
	if name, ok := s.defaultClass(ctx, "networking.k8s.io", "ingressclasses", &list,
		networkingv1.AnnotationIsDefaultIngressClass); ok {
		ing.Spec.IngressClassName = &name
	}
}

// defaultClass lists a class resource (v1 of group) from the watch cache into list and names
// the class annotated as the default, the newest when several are (ties by name), as
// Kubernetes' default-class admission plugins choose.
func (s *Server) defaultClass(ctx context.Context, group, resource string, list runtime.Object, annotation string) (string, bool) {
	if err := s.listCached(ctx, group, resource, "", list, true); err != nil {
		return "", false
	}
	var chosen metav1.Object
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		c, err := meta.Accessor(o)
		if err != nil || c.GetAnnotations()[annotation] != "true" {
			return nil
		}
		ct, cc := c.GetCreationTimestamp(), metav1.Time{}
		if chosen != nil {
			cc = chosen.GetCreationTimestamp()
		}
		if chosen == nil || ct.After(cc.Time) || (ct.Equal(&cc) && c.GetName() < chosen.GetName()) {
			chosen = c
		}
		return nil
	})
	if chosen == nil {
		return "", false
	}
	return chosen.GetName(), true
}

// listCached lists every object of a v1 resource of group (in namespace ns, or all of them for
// "") from the watch cache into list; a resource that is not served lists nothing.
func (s *Server) listCached(ctx context.Context, group, resource, ns string, list runtime.Object, consistent bool) error {
	ep := s.endpoints[gvrKey(group, "v1", resource)]
	if ep == nil {
		return nil
	}
	return listEndpoint(ctx, ep, ns, list, consistent)
}

// listEndpoint lists every object of ep (in namespace ns, or all for "") into list. A
// consistent list includes every write acknowledged before it (the cache first catches up
// with etcd's revision, one etcd round trip); otherwise the watch cache may be a few
// milliseconds behind, like an informer.
func listEndpoint(ctx context.Context, ep *endpoint, ns string, list runtime.Object, consistent bool) error {
	rv := "0"
	if consistent {
		rv = ""
	}
	return ep.store.GetList(ctx, ep.listPrefix(ns), storage.ListOptions{ResourceVersion: rv, Recursive: true,
		Predicate: storage.SelectionPredicate{Label: labels.Everything(), Field: fields.Everything()}}, list)
}

// priorityClasses lists the PriorityClasses from the watch cache.
func (s *Server) priorityClasses(ctx context.Context, consistent bool) ([]schedulingv1.PriorityClass, error) {
	var list schedulingv1.PriorityClassList
	err := s.listCached(ctx, schedulingv1.GroupName, "priorityclasses", "", &list, consistent)
	return list.Items, err
}

// admitPriority is Kubernetes' Priority admission: a pod's priorityClassName (or the global
// default class) gives its priority and preemption policy; an unknown class, or a priority
// the pod sets itself that differs, is refused.
func (s *Server) admitPriority(ctx context.Context, pod *corev1.Pod) error {
	// Most pods name no class or one that exists for long: the cache answers. A class the
	// cache does not know yet may have just been created, so a miss is read again consistently.
	classes, err := s.priorityClasses(ctx, false)
	if err != nil {
		return err
	}
	if name := pod.Spec.PriorityClassName; name != "" && !slices.ContainsFunc(classes, func(c schedulingv1.PriorityClass) bool { return c.Name == name }) {
		if classes, err = s.priorityClasses(ctx, true); err != nil {
			return err
		}
	}
	forbidden := func(msg string) error {
		return apierrors.NewForbidden(corev1.Resource("pods"), pod.Name, errors.New(msg))
	}
	var class *schedulingv1.PriorityClass
	if name := pod.Spec.PriorityClassName; name != "" {
		for i := range classes {
			if classes[i].Name == name {
				class = &classes[i]
			}
		}
		if class == nil {
			return forbidden(fmt.Sprintf("no PriorityClass with name %v was found", name))
		}
	} else {
		for i := range classes {
			c := &classes[i]
			// The default with the lowest value wins if several claim it, as in Kubernetes.
			if c.GlobalDefault && (class == nil || c.Value < class.Value) {
				class = c
			}
		}
	}
	priority, policy := int32(0), corev1.PreemptLowerPriority
	if class != nil {
		priority = class.Value
		if class.PreemptionPolicy != nil {
			policy = *class.PreemptionPolicy
		}
		pod.Spec.PriorityClassName = class.Name
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != priority {
		return forbidden(fmt.Sprintf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name",
			*pod.Spec.Priority, priority))
	}
	pod.Spec.Priority = &priority
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy != policy {
		return forbidden(fmt.Sprintf("the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name",
			*pod.Spec.PreemptionPolicy, policy))
	}
	pod.Spec.PreemptionPolicy = &policy
	return nil
}

// onlyOneDefaultPriorityClass refuses a second global default PriorityClass.
func (s *Server) onlyOneDefaultPriorityClass(ctx context.Context, pc *schedulingv1.PriorityClass) error {
	classes, err := s.priorityClasses(ctx, true)
	if err != nil {
		return err
	}
	for _, c := range classes {
		if c.GlobalDefault && c.Name != pc.Name {
			return apierrors.NewForbidden(schedulingv1.Resource("priorityclasses"), pc.Name,
				fmt.Errorf("PriorityClass %v is already marked as default. Only one default can exist", c.Name))
		}
	}
	return nil
}

func (s *Server) namespaceAcceptsContent(ctx context.Context, ep *endpoint, obj runtime.Object) error {
	m, _ := metaOf(obj)
	nsName := m.GetNamespace()
	nsEP := s.endpoints[gvrKey("", "v1", "namespaces")]
	if nsEP == nil {
		return nil
	}
	// The watch cache answers almost always; only a namespace it has not seen yet (just
	// created) costs an etcd read.
	ns, ok := s.cachedNamespace(nsName)
	// Right after a namespace's deletion the cache may not show it yet: read it live then,
	// as Kubernetes' namespace lifecycle admission does.
	if ok && s.recentlyDeleted(nsName) {
		ok = false
	}
	if !ok {
		ns = &corev1.Namespace{}
		if err := nsEP.store.Get(ctx, nsEP.key("", nsName), ns); err != nil {
			if storage.IsNotFound(err) {
				return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, nsName)
			}
			return err
		}
	}
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		err := apierrors.NewForbidden(ep.res.GroupResource(), m.GetName(),
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", nsName))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: corev1.NamespaceTerminatingCause, Message: fmt.Sprintf("namespace %s is being terminated", nsName), Field: "metadata.namespace"})
		return err
	}
	return nil
}

func addDefaultTolerations(pod *corev1.Pod) {
	has := func(key string) bool {
		for _, t := range pod.Spec.Tolerations {
			if (t.Key == key || (t.Key == "" && t.Operator == corev1.TolerationOpExists)) && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
				return true
			}
		}
		return false
	}
	for _, d := range []struct {
		key  string
		secs int64
	}{{corev1.TaintNodeNotReady, DefaultNotReadyTolerationSeconds}, {corev1.TaintNodeUnreachable, DefaultUnreachableTolerationSeconds}} {
		if key := d.key; !has(key) {
			s := d.secs
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
				Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &s})
		}
	}
}

func (s *Server) admitUpdate(ctx context.Context, ep *endpoint, obj, old runtime.Object) error {
	if svc, ok := obj.(*corev1.Service); ok {
		// A type change may need node ports (or a cluster IP, from ExternalName); what the
		// service kept is re-claimed under the same owner, which is a no-op.
		oldSvc := old.(*corev1.Service)
		if oldSvc.Spec.Type != svc.Spec.Type {
			if svc.Spec.Type == corev1.ServiceTypeClusterIP || svc.Spec.Type == corev1.ServiceTypeExternalName {
				for i := range svc.Spec.Ports {
					svc.Spec.Ports[i].NodePort = 0
				}
			}
			if svc.Spec.Type == corev1.ServiceTypeExternalName {
				svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
			}
		}
		return s.svcAlloc.allocate(ctx, svc)
	}
	return nil
}

func (s *Server) admitDelete(ctx context.Context, ep *endpoint, ns, name string) error {
	if ep.res.Group == "" && ep.res.Resource == "namespaces" && immortalNamespaces[name] {
		return apierrors.NewForbidden(ep.res.GroupResource(), name, fmt.Errorf("this namespace may not be deleted"))
	}
	return nil
}

// cachedNamespace looks a namespace up in the watch cache.
func (s *Server) cachedNamespace(name string) (*corev1.Namespace, bool) {
	ep := s.endpoints[gvrKey("", "v1", "namespaces")]
	if ep == nil {
		return nil, false
	}
	c, ok := ep.cacher.(peeker)
	if !ok {
		return nil, false
	}
	obj, ok := c.Peek(ep.key("", name))
	if !ok {
		return nil, false
	}
	ns, ok := obj.(*corev1.Namespace)
	return ns, ok
}

// peeker reads the watch cache without copying.
type peeker interface {
	Peek(key string) (runtime.Object, bool)
}

// noteNamespaceDeleted remembers a namespace deletion for a while (see namespaceAcceptsContent).
func (s *Server) noteNamespaceDeleted(name string) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if s.deletedNS == nil {
		s.deletedNS = map[string]time.Time{}
	}
	now := s.now()
	for n, t := range s.deletedNS {
		if now.Sub(t) > 30*time.Second {
			delete(s.deletedNS, n)
		}
	}
	s.deletedNS[name] = now
}

func (s *Server) recentlyDeleted(name string) bool {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	t, ok := s.deletedNS[name]
	return ok && s.now().Sub(t) < 30*time.Second
}
