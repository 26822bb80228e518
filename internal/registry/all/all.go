// Package all lists every resource the API server serves.
package all

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns every served resource.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{Group: "", Version: "v1", Resource: "namespaces", Kind: "Namespace", ListKind: "NamespaceList", SingularName: "namespace", ShortNames: []string{"ns"}, HasStatus: true,
			New: func() runtime.Object { return &corev1.Namespace{} }, NewList: func() runtime.Object { return &corev1.NamespaceList{} },
			PrepareForCreate: func(o runtime.Object) {
				ns := o.(*corev1.Namespace)
				ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
				ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
			}},
		{Group: "", Version: "v1", Resource: "configmaps", Kind: "ConfigMap", ListKind: "ConfigMapList", SingularName: "configmap", Namespaced: true, ShortNames: []string{"cm"}, NoGeneration: true,
			New: func() runtime.Object { return &corev1.ConfigMap{} }, NewList: func() runtime.Object { return &corev1.ConfigMapList{} }},
		{Group: "", Version: "v1", Resource: "pods", Kind: "Pod", ListKind: "PodList", SingularName: "pod", Namespaced: true, ShortNames: []string{"po"}, Categories: []string{"all"}, HasStatus: true,
			New: func() runtime.Object { return &corev1.Pod{} }, NewList: func() runtime.Object { return &corev1.PodList{} }},
		{Group: "apps", Version: "v1", Resource: "deployments", Kind: "Deployment", ListKind: "DeploymentList", SingularName: "deployment", Namespaced: true, ShortNames: []string{"deploy"}, Categories: []string{"all"}, HasStatus: true,
			New: func() runtime.Object { return &appsv1.Deployment{} }, NewList: func() runtime.Object { return &appsv1.DeploymentList{} },
			Scale: &registry.ScaleAccess{
				SpecReplicas:    func(o runtime.Object) int32 { return registry.Int32Ptr(o.(*appsv1.Deployment).Spec.Replicas) },
				SetSpecReplicas: func(o runtime.Object, n int32) { o.(*appsv1.Deployment).Spec.Replicas = &n },
				StatusReplicas:  func(o runtime.Object) int32 { return o.(*appsv1.Deployment).Status.Replicas },
				Selector:        func(o runtime.Object) string { return "" },
			}},
	}
}
