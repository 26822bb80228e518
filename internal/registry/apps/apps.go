// Package apps describes the apps/v1 resources: deployments, replicasets, statefulsets,
// daemonsets and controllerrevisions, with Kubernetes' defaults, validation, table columns and
// selectable fields.
package apps

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// DefaultPodTemplate applies core/v1's defaults to a workload's pod template (container
// imagePullPolicy, dnsPolicy, restartPolicy and so on). It stands in for
// core.DefaultPodTemplateSpec, which the lead assigns here once internal/registry/core exists.
// Until then it only fills restartPolicy, which the workload validation below depends on.
var DefaultPodTemplate = func(t *corev1.PodTemplateSpec) {
	if t.Spec.RestartPolicy == "" {
		t.Spec.RestartPolicy = corev1.RestartPolicyAlways
	}
}

// ValidatePodTemplate validates a pod template the way core/v1 does (containers, volumes,
// labels...), reporting errors under path. It stands in for core.ValidatePodTemplateSpec, which
// the lead assigns here once internal/registry/core exists; until then it accepts everything.
var ValidatePodTemplate = func(t *corev1.PodTemplateSpec, path *field.Path) field.ErrorList { return nil }

// DefaultPersistentVolumeClaim applies core/v1's PersistentVolumeClaim defaults to a
// StatefulSet volume claim template. The built-in version sets spec.volumeMode to Filesystem
// and status.phase to Pending, as Kubernetes does; the lead may point it at core's defaulter.
var DefaultPersistentVolumeClaim = func(pvc *corev1.PersistentVolumeClaim) {
	if pvc.Spec.VolumeMode == nil {
		pvc.Spec.VolumeMode = new(corev1.PersistentVolumeFilesystem)
	}
	if pvc.Status.Phase == "" {
		pvc.Status.Phase = corev1.ClaimPending
	}
}

// Resources returns the apps/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		deployments(),
		replicaSets(),
		statefulSets(),
		daemonSets(),
		controllerRevisions(),
	}
}

func newResource(resource, kind, singular string, short []string, newObj, newList func() runtime.Object) *registry.Resource {
	return &registry.Resource{
		Group:        appsv1.GroupName,
		Version:      "v1",
		Resource:     resource,
		Kind:         kind,
		ListKind:     kind + "List",
		SingularName: singular,
		Namespaced:   true,
		ShortNames:   short,
		New:          newObj,
		NewList:      newList,
	}
}
