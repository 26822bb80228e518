// Package batch describes the batch/v1 resources, jobs and cronjobs, with Kubernetes'
// defaults, validation, table columns and selectable fields. It also holds the cron schedule
// parser that cronjob validation uses.
package batch

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// DefaultPodTemplate applies core/v1's defaults to a job's pod template. It stands in for
// core.DefaultPodTemplateSpec, which the lead assigns here once internal/registry/core exists.
// Until then it only fills restartPolicy with core's default, Always (which a Job rejects, as
// in Kubernetes: jobs must say OnFailure or Never).
var DefaultPodTemplate = func(t *corev1.PodTemplateSpec) {
	if t.Spec.RestartPolicy == "" {
		t.Spec.RestartPolicy = corev1.RestartPolicyAlways
	}
}

// ValidatePodTemplate validates a pod template the way core/v1 does, reporting errors under
// path. It stands in for core.ValidatePodTemplateSpec, which the lead assigns here once
// internal/registry/core exists; until then it accepts everything.
var ValidatePodTemplate = func(t *corev1.PodTemplateSpec, path *field.Path) field.ErrorList { return nil }

// Resources returns the batch/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{jobs(), cronJobs()}
}

const (
	containersDesc = "Names of each container in the template."
	imagesDesc     = "Images referenced by each container in the template."
)

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func containerCells(containers []corev1.Container) (string, string) {
	names := make([]string, len(containers))
	images := make([]string, len(containers))
	for i, c := range containers {
		names[i] = c.Name
		images[i] = c.Image
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

func nonNegative(v int64, fldPath *field.Path) field.ErrorList {
	return apivalidation.ValidateNonnegativeField(v, fldPath)
}

func immutable(newVal, oldVal interface{}, fldPath *field.Path) field.ErrorList {
	if apiequality.Semantic.DeepEqual(newVal, oldVal) {
		return nil
	}
	return field.ErrorList{field.Invalid(fldPath, newVal, "field is immutable")}
}
