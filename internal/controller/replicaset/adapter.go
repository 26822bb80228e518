package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
)

// kind lets one controller manage ReplicaSets and ReplicationControllers: a
// ReplicationController is handled as the ReplicaSet it is equivalent to (its map selector as
// matchLabels), and written back as itself.
type kind interface {
	gvk() schema.GroupVersionKind
	informer() cache.SharedIndexInformer
	// get and list return ReplicaSet views that callers may modify.
	get(namespace, name string) (*appsv1.ReplicaSet, error)
	list(namespace string) ([]*appsv1.ReplicaSet, error)
	// view converts an informer object.
	view(obj interface{}) (*appsv1.ReplicaSet, bool)
	// fresh reads the object from the API server.
	fresh(ctx context.Context, namespace, name string) (metav1.Object, error)
	updateStatus(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error)
	// object is what events are recorded on.
	object(rs *appsv1.ReplicaSet) runtime.Object
}

type rsKind struct {
	client kubernetes.Interface
	inf    cache.SharedIndexInformer
}

func newRSKind(ctx *controller.Context) *rsKind {
	return &rsKind{client: ctx.Client, inf: ctx.Informers.Apps().V1().ReplicaSets().Informer()}
}

func (k *rsKind) gvk() schema.GroupVersionKind {
	return appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
}
func (k *rsKind) informer() cache.SharedIndexInformer { return k.inf }

func (k *rsKind) get(namespace, name string) (*appsv1.ReplicaSet, error) {
	obj, exists, err := k.inf.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, notFound(appsv1.Resource("replicasets"), name)
	}
	return obj.(*appsv1.ReplicaSet).DeepCopy(), nil
}

func (k *rsKind) list(namespace string) ([]*appsv1.ReplicaSet, error) {
	objs, err := k.inf.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
	if err != nil {
		return nil, err
	}
	out := make([]*appsv1.ReplicaSet, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*appsv1.ReplicaSet))
	}
	return out, nil
}

func (k *rsKind) view(obj interface{}) (*appsv1.ReplicaSet, bool) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	return rs, ok
}

func (k *rsKind) fresh(ctx context.Context, namespace, name string) (metav1.Object, error) {
	return k.client.AppsV1().ReplicaSets(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (k *rsKind) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	return k.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
}

func (k *rsKind) object(rs *appsv1.ReplicaSet) runtime.Object { return rs }

type rcKind struct {
	client kubernetes.Interface
	inf    cache.SharedIndexInformer
}

func newRCKind(ctx *controller.Context) *rcKind {
	return &rcKind{client: ctx.Client, inf: ctx.Informers.Core().V1().ReplicationControllers().Informer()}
}

func (k *rcKind) gvk() schema.GroupVersionKind {
	return corev1.SchemeGroupVersion.WithKind("ReplicationController")
}
func (k *rcKind) informer() cache.SharedIndexInformer { return k.inf }

func (k *rcKind) get(namespace, name string) (*appsv1.ReplicaSet, error) {
	obj, exists, err := k.inf.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, notFound(corev1.Resource("replicationcontrollers"), name)
	}
	return rcToRS(obj.(*corev1.ReplicationController)), nil
}

func (k *rcKind) list(namespace string) ([]*appsv1.ReplicaSet, error) {
	objs, err := k.inf.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
	if err != nil {
		return nil, err
	}
	out := make([]*appsv1.ReplicaSet, 0, len(objs))
	for _, o := range objs {
		out = append(out, rcToRS(o.(*corev1.ReplicationController)))
	}
	return out, nil
}

func (k *rcKind) view(obj interface{}) (*appsv1.ReplicaSet, bool) {
	rc, ok := obj.(*corev1.ReplicationController)
	if !ok {
		return nil, false
	}
	return rcToRS(rc), true
}

func (k *rcKind) fresh(ctx context.Context, namespace, name string) (metav1.Object, error) {
	return k.client.CoreV1().ReplicationControllers(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (k *rcKind) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	rc := &corev1.ReplicationController{ObjectMeta: *rs.ObjectMeta.DeepCopy()}
	rc.Spec.Replicas = rs.Spec.Replicas
	rc.Spec.MinReadySeconds = rs.Spec.MinReadySeconds
	rc.Spec.Selector = rs.Spec.Selector.MatchLabels
	tmpl := rs.Spec.Template
	rc.Spec.Template = &tmpl
	rc.Status = corev1.ReplicationControllerStatus{
		Replicas:             rs.Status.Replicas,
		FullyLabeledReplicas: rs.Status.FullyLabeledReplicas,
		ReadyReplicas:        rs.Status.ReadyReplicas,
		AvailableReplicas:    rs.Status.AvailableReplicas,
		ObservedGeneration:   rs.Status.ObservedGeneration,
	}
	for _, c := range rs.Status.Conditions {
		rc.Status.Conditions = append(rc.Status.Conditions, corev1.ReplicationControllerCondition{
			Type: corev1.ReplicationControllerConditionType(c.Type), Status: c.Status,
			LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	out, err := k.client.CoreV1().ReplicationControllers(rs.Namespace).UpdateStatus(ctx, rc, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return rcToRS(out), nil
}

func (k *rcKind) object(rs *appsv1.ReplicaSet) runtime.Object {
	return &corev1.ReplicationController{ObjectMeta: rs.ObjectMeta}
}

// rcToRS is the ReplicaSet a ReplicationController amounts to (a deep copy).
func rcToRS(rc *corev1.ReplicationController) *appsv1.ReplicaSet {
	rc = rc.DeepCopy()
	rs := &appsv1.ReplicaSet{ObjectMeta: rc.ObjectMeta}
	rs.Spec.Replicas = rc.Spec.Replicas
	if rs.Spec.Replicas == nil {
		one := int32(1)
		rs.Spec.Replicas = &one
	}
	rs.Spec.MinReadySeconds = rc.Spec.MinReadySeconds
	rs.Spec.Selector = &metav1.LabelSelector{MatchLabels: rc.Spec.Selector}
	if rc.Spec.Template != nil {
		rs.Spec.Template = *rc.Spec.Template
	}
	rs.Status = appsv1.ReplicaSetStatus{
		Replicas:             rc.Status.Replicas,
		FullyLabeledReplicas: rc.Status.FullyLabeledReplicas,
		ReadyReplicas:        rc.Status.ReadyReplicas,
		AvailableReplicas:    rc.Status.AvailableReplicas,
		ObservedGeneration:   rc.Status.ObservedGeneration,
	}
	for _, c := range rc.Status.Conditions {
		rs.Status.Conditions = append(rs.Status.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetConditionType(c.Type), Status: c.Status,
			LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	return rs
}

// selectorOf is the label selector of a ReplicaSet view; an empty or invalid selector selects
// nothing (a ReplicaSet must never take every pod in its namespace).
func selectorOf(rs *appsv1.ReplicaSet) labels.Selector {
	if rs.Spec.Selector == nil {
		return labels.Nothing()
	}
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || sel.Empty() {
		return labels.Nothing()
	}
	return sel
}
