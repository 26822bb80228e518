// Package core describes the core/v1 resources (pods, services, nodes, ...) with Kubernetes'
// defaulting, validation, status handling, field selectors and table printing.
package core

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns the core/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		namespaces(),
		pods(),
		nodes(),
		services(),
		endpoints(),
		configMaps(),
		secrets(),
		serviceAccounts(),
		events(),
		persistentVolumes(),
		persistentVolumeClaims(),
		replicationControllers(),
		limitRanges(),
		resourceQuotas(),
		podTemplates(),
	}
}

// newResource fills the fields every core/v1 resource shares.
func newResource(plural, kind, singular string, namespaced bool, newObj, newList func() runtime.Object) *registry.Resource {
	return &registry.Resource{
		Group:        "",
		Version:      "v1",
		Resource:     plural,
		Kind:         kind,
		ListKind:     kind + "List",
		SingularName: singular,
		Namespaced:   namespaced,
		New:          newObj,
		NewList:      newList,
	}
}

// Column descriptions come from the API types' documentation, as Kubernetes' printers do.
var (
	metaDoc = metav1.ObjectMeta{}.SwaggerDoc()
)

// col is a table column; wide columns (priority 1) only show with -o wide.
func col(name, typ, desc string, priority int32) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: desc, Priority: priority}
}

// createdAtColumns are the columns of a resource Kubernetes has no printer for.
var createdAtColumns = []metav1.TableColumnDefinition{
	registry.NameCol,
	{Name: "Created At", Type: "date", Description: metaDoc["creationTimestamp"]},
}

// createdAtCell prints a creation timestamp the way the default table does.
func createdAtCell(t metav1.Time) string {
	return t.Time.UTC().Format(time.RFC3339)
}

// since prints the time elapsed since t ("<unknown>" for a zero time).
func since(t metav1.Time, now time.Time) string { return registry.HumanDuration(t, now) }

// sinceMicro is since for a MicroTime.
func sinceMicro(t metav1.MicroTime, now time.Time) string {
	return registry.HumanDuration(metav1.Time{Time: t.Time}, now)
}

// filesystemMode returns a pointer to the Filesystem volume mode.
func filesystemMode() *corev1.PersistentVolumeMode {
	m := corev1.PersistentVolumeFilesystem
	return &m
}

func int32Ptr(v int32) *int32 { return &v }
func int64Ptr(v int64) *int64 { return &v }
func boolPtr(v bool) *bool    { return &v }
func strPtr(v string) *string { return &v }
