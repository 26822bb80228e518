package apps

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Column descriptions shared by the workload tables.
const (
	containersDesc = "Names of each container in the template."
	imagesDesc     = "Images referenced by each container in the template."
	readyDesc      = "Number of the pod with ready state"
)

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// containerCells returns the Containers and Images cells of a pod template.
func containerCells(containers []corev1.Container) (string, string) {
	names := make([]string, len(containers))
	images := make([]string, len(containers))
	for i, c := range containers {
		names[i] = c.Name
		images[i] = c.Image
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

// selectorString prints a label selector as the Scale subresource and the deployment table do.
func selectorString(s *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return "<invalid>"
	}
	return sel.String()
}

// strictSelector validates a workload selector: required, well formed and not empty.
func strictSelector(s *metav1.LabelSelector, kind string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s == nil {
		return append(errs, field.Required(fldPath, ""))
	}
	errs = append(errs, metavalidation.ValidateLabelSelector(s, metavalidation.LabelSelectorValidationOptions{}, fldPath)...)
	if len(s.MatchLabels)+len(s.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(fldPath, s, "empty selector is invalid for "+kind))
	}
	return errs
}

// validateReplicatedTemplate checks the pod template of a Deployment or ReplicaSet: it must be
// selected by the selector, be a valid pod template, restart always and have no deadline.
func validateReplicatedTemplate(t *corev1.PodTemplateSpec, selector labels.Selector, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !selector.Empty() && !selector.Matches(labels.Set(t.Labels)) {
		errs = append(errs, field.Invalid(fldPath.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
	}
	errs = append(errs, ValidatePodTemplate(t, fldPath)...)
	errs = append(errs, restartAlways(t, fldPath.Child("spec"), "ReplicaSet")...)
	return errs
}

// restartAlways enforces restartPolicy Always and forbids activeDeadlineSeconds, as every
// long-running workload does.
func restartAlways(t *corev1.PodTemplateSpec, specPath *field.Path, kind string) field.ErrorList {
	var errs field.ErrorList
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(specPath.Child("restartPolicy"), t.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(specPath.Child("activeDeadlineSeconds"), "activeDeadlineSeconds in "+kind+" is not Supported"))
	}
	return errs
}

func nonNegative(v int64, fldPath *field.Path) field.ErrorList {
	return apivalidation.ValidateNonnegativeField(v, fldPath)
}

// validatePositiveIntOrPercent accepts a non-negative integer or a valid percentage.
func validatePositiveIntOrPercent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch v.Type {
	case intstr.String:
		for _, msg := range utilvalidation.IsValidPercent(v.StrVal) {
			errs = append(errs, field.Invalid(fldPath, v, msg))
		}
	case intstr.Int:
		errs = append(errs, nonNegative(int64(v.IntValue()), fldPath)...)
	default:
		errs = append(errs, field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%%')"))
	}
	return errs
}

func percentValue(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(utilvalidation.IsValidPercent(v.StrVal)) != 0 {
		return 0, false
	}
	n, _ := strconv.Atoi(v.StrVal[:len(v.StrVal)-1])
	return n, true
}

func intOrPercentValue(v intstr.IntOrString) int {
	if n, ok := percentValue(v); ok {
		return n
	}
	return v.IntValue()
}

func notMoreThan100Percent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if n, ok := percentValue(v); ok && n > 100 {
		return field.ErrorList{field.Invalid(fldPath, v, "must not be greater than 100%")}
	}
	return nil
}

// immutable reports a change of a field that may not change.
func immutable(newVal, oldVal interface{}, fldPath *field.Path) field.ErrorList {
	if apiequality.Semantic.DeepEqual(newVal, oldVal) {
		return nil
	}
	return field.ErrorList{field.Invalid(fldPath, newVal, "field is immutable")}
}

// decremented reports a collisionCount going down, which status updates may not do.
func decremented(newVal, oldVal *int32, fldPath *field.Path) field.ErrorList {
	if newVal == nil && oldVal != nil || newVal != nil && oldVal != nil && *newVal < *oldVal {
		return field.ErrorList{field.Invalid(fldPath, deref(newVal, 0), "cannot be decremented")}
	}
	return nil
}

// notGreater reports a status count that exceeds the one it is part of.
func notGreater(v, limit int32, fldPath *field.Path, limitName string) field.ErrorList {
	if v > limit {
		return field.ErrorList{field.Invalid(fldPath, v, fmt.Sprintf("cannot be greater than %s", limitName))}
	}
	return nil
}
