package agent

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// apiObjects reads ConfigMaps and Secrets straight from the API (fresh at each container
// start and volume refresh) and services from the informer.
type apiObjects struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
}

func (o *apiObjects) ConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return o.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}

func (o *apiObjects) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return o.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (o *apiObjects) Services(ns string) ([]*corev1.Service, error) {
	return o.services.Services(ns).List(labels.Everything())
}
