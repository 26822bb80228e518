package core

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// podTemplates: stored pod templates, with the pod template defaults and validation the
// workload controllers' templates get, and Kubernetes' table.
func podTemplates() *registry.Resource {
	r := newResource("podtemplates", "PodTemplate", "podtemplate", true,
		func() runtime.Object { return &corev1.PodTemplate{} },
		func() runtime.Object { return &corev1.PodTemplateList{} })
	r.Default = func(obj runtime.Object) { DefaultPodTemplateSpec(&obj.(*corev1.PodTemplate).Template) }
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return ValidatePodTemplateSpec(&obj.(*corev1.PodTemplate).Template, field.NewPath("template"))
	}
	r.Columns = []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: metaDoc["name"]},
		col("Containers", "string", "Names of each container in the template.", 0),
		col("Images", "string", "Images referenced by each container in the template.", 0),
		col("Pod Labels", "string", "The labels for the pod template.", 0),
	}
	r.Row = func(obj runtime.Object, _ time.Time) []interface{} {
		t := obj.(*corev1.PodTemplate)
		var names, images []string
		for _, c := range t.Template.Spec.Containers {
			names = append(names, c.Name)
			images = append(images, c.Image)
		}
		return []interface{}{t.Name, strings.Join(names, ","), strings.Join(images, ","), labels.FormatLabels(t.Template.Labels)}
	}
	return r
}
