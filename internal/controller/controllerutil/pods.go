package controllerutil

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Event reasons the pod-owning controllers record, as Kubernetes names them.
const (
	SuccessfulCreate = "SuccessfulCreate"
	FailedCreate     = "FailedCreate"
	SuccessfulDelete = "SuccessfulDelete"
	FailedDelete     = "FailedDelete"
)

// IsPodActive reports whether a pod still counts toward its controller: not finished and not
// being deleted.
func IsPodActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// FilterActivePods keeps the active pods.
func FilterActivePods(pods []*corev1.Pod) []*corev1.Pod {
	out := make([]*corev1.Pod, 0, len(pods))
	for _, p := range pods {
		if IsPodActive(p) {
			out = append(out, p)
		}
	}
	return out
}

// PodReadyCondition returns the pod's Ready condition, or nil.
func PodReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// IsPodReady reports whether the pod's Ready condition is True.
func IsPodReady(p *corev1.Pod) bool {
	c := PodReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsPodAvailable reports whether the pod has been ready for at least minReadySeconds at now.
func IsPodAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := PodReadyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds <= 0 {
		return true
	}
	if c.LastTransitionTime.IsZero() {
		return false
	}
	return c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second).Before(now)
}

// Key is the namespace/name key of an object (or tombstone).
func Key(obj interface{}) string {
	k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return ""
	}
	return k
}

// PodPrefix is the generateName of pods a controller named name creates.
func PodPrefix(name string) string {
	prefix := name + "-"
	if len(validation.NameIsDNSSubdomain(prefix, true)) != 0 {
		return name
	}
	return prefix
}

// PodFromTemplate builds the pod a controller creates from its template: the template's
// labels, annotations, finalizers and spec, a generated name after the controller's, and
// the controller's ownerReference.
func PodFromTemplate(template *corev1.PodTemplateSpec, namespace, controllerName string, ref *metav1.OwnerReference) (*corev1.Pod, error) {
	labels := make(map[string]string, len(template.Labels))
	for k, v := range template.Labels {
		labels[k] = v
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("unable to create pods, no labels")
	}
	var annotations map[string]string
	if len(template.Annotations) > 0 {
		annotations = make(map[string]string, len(template.Annotations))
		for k, v := range template.Annotations {
			annotations[k] = v
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: PodPrefix(controllerName),
			Namespace:    namespace,
			Labels:       labels,
			Annotations:  annotations,
			Finalizers:   append([]string(nil), template.Finalizers...),
		},
		Spec: *template.Spec.DeepCopy(),
	}
	if ref != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return pod, nil
}

// PodControl creates and deletes pods for a controller, recording the events Kubernetes
// records on the controller object.
type PodControl struct {
	Client   kubernetes.Interface
	Recorder record.EventRecorder
}

// Create creates a pod from template for the controller object (whose events get the outcome).
func (pc PodControl) Create(ctx context.Context, namespace string, template *corev1.PodTemplateSpec, object runtime.Object, controllerName string, ref *metav1.OwnerReference) (*corev1.Pod, error) {
	pod, err := PodFromTemplate(template, namespace, controllerName, ref)
	if err != nil {
		return nil, err
	}
	created, err := pc.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		// A terminating namespace refuses new pods; that is not worth a warning.
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			pc.Recorder.Eventf(object, corev1.EventTypeWarning, FailedCreate, "Error creating: %v", err)
		}
		return nil, err
	}
	pc.Recorder.Eventf(object, corev1.EventTypeNormal, SuccessfulCreate, "Created pod: %v", created.Name)
	return created, nil
}

// Delete deletes a pod of the controller object. NotFound is returned as is, without an event.
func (pc PodControl) Delete(ctx context.Context, namespace, name string, object runtime.Object) error {
	err := pc.Client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) {
			pc.Recorder.Eventf(object, corev1.EventTypeWarning, FailedDelete, "Error deleting: %v", err)
		}
		return err
	}
	pc.Recorder.Eventf(object, corev1.EventTypeNormal, SuccessfulDelete, "Deleted pod: %v", name)
	return nil
}

// SlowStartBatch calls fn count times in batches that double after each fully successful
// batch (initial, 2*initial, 4*initial, ...), calls within a batch running in parallel. It
// stops after the first batch with an error, returning how many calls succeeded and that
// error, so a failing quota or admission costs one call, not hundreds.
func SlowStartBatch(count, initial int, fn func() error) (int, error) {
	remaining := count
	successes := 0
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		errCh := make(chan error, batch)
		var wg sync.WaitGroup
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go func() {
				defer wg.Done()
				if err := fn(); err != nil {
					errCh <- err
				}
			}()
		}
		wg.Wait()
		successes += batch - len(errCh)
		if len(errCh) > 0 {
			return successes, <-errCh
		}
		remaining -= batch
	}
	return successes, nil
}
