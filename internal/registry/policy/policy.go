// Package policy describes policy/v1 poddisruptionbudgets, with Kubernetes' validation and
// table columns.
package policy

import (
	"strconv"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

var evictionPolicies = []policyv1.UnhealthyPodEvictionPolicyType{policyv1.AlwaysAllow, policyv1.IfHealthyBudget}

// Resources returns the policy/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{{
		Group:        policyv1.GroupName,
		Version:      "v1",
		Resource:     "poddisruptionbudgets",
		Kind:         "PodDisruptionBudget",
		ListKind:     "PodDisruptionBudgetList",
		SingularName: "poddisruptionbudget",
		Namespaced:   true,
		ShortNames:   []string{"pdb"},
		New:          func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
		NewList:      func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
		HasStatus:    true,
		Validate: func(obj runtime.Object) field.ErrorList {
			return validateSpec(&obj.(*policyv1.PodDisruptionBudget).Spec, field.NewPath("spec"))
		},
		ValidateStatusUpdate: func(obj, _ runtime.Object) field.ErrorList {
			s := &obj.(*policyv1.PodDisruptionBudget).Status
			p := field.NewPath("status")
			errs := metavalidation.ValidateConditions(s.Conditions, p.Child("conditions"))
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.DisruptionsAllowed), p.Child("disruptionsAllowed"))...)
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.CurrentHealthy), p.Child("currentHealthy"))...)
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.DesiredHealthy), p.Child("desiredHealthy"))...)
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.ExpectedPods), p.Child("expectedPods"))...)
			return errs
		},
		Columns: []metav1.TableColumnDefinition{
			registry.NameCol,
			registry.Col("Min Available", "string", "The minimum number of pods that must be available.", 0),
			registry.Col("Max Unavailable", "string", "The maximum number of pods that may be unavailable.", 0),
			registry.Col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time.", 0),
			registry.AgeCol,
		},
		Row: func(obj runtime.Object, now time.Time) []interface{} {
			pdb := obj.(*policyv1.PodDisruptionBudget)
			minAvailable, maxUnavailable := "N/A", "N/A"
			if pdb.Spec.MinAvailable != nil {
				minAvailable = pdb.Spec.MinAvailable.String()
			}
			if pdb.Spec.MaxUnavailable != nil {
				maxUnavailable = pdb.Spec.MaxUnavailable.String()
			}
			return []interface{}{pdb.Name, minAvailable, maxUnavailable, int64(pdb.Status.DisruptionsAllowed), registry.Age(pdb.CreationTimestamp, now)}
		},
	}}
}

func validateSpec(spec *policyv1.PodDisruptionBudgetSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.MinAvailable != nil && spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(fldPath, spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	if spec.MinAvailable != nil {
		errs = append(errs, validateIntOrPercent(*spec.MinAvailable, fldPath.Child("minAvailable"))...)
	}
	if spec.MaxUnavailable != nil {
		errs = append(errs, validateIntOrPercent(*spec.MaxUnavailable, fldPath.Child("maxUnavailable"))...)
	}
	errs = append(errs, metavalidation.ValidateLabelSelector(spec.Selector, metavalidation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
	if p := spec.UnhealthyPodEvictionPolicy; p != nil && *p != policyv1.AlwaysAllow && *p != policyv1.IfHealthyBudget {
		errs = append(errs, field.NotSupported(fldPath.Child("unhealthyPodEvictionPolicy"), *p, evictionPolicies))
	}
	return errs
}

// validateIntOrPercent accepts a non-negative count or a percentage of at most 100%.
func validateIntOrPercent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch v.Type {
	case intstr.String:
		msgs := utilvalidation.IsValidPercent(v.StrVal)
		for _, msg := range msgs {
			errs = append(errs, field.Invalid(fldPath, v, msg))
		}
		if len(msgs) == 0 {
			if n, _ := strconv.Atoi(v.StrVal[:len(v.StrVal)-1]); n > 100 {
				errs = append(errs, field.Invalid(fldPath, v, "must not be greater than 100%"))
			}
		}
	case intstr.Int:
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(v.IntValue()), fldPath)...)
	default:
		errs = append(errs, field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%%')"))
	}
	return errs
}
