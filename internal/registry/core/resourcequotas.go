package core

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func resourceQuotas() *registry.Resource {
	r := newResource("resourcequotas", "ResourceQuota", "resourcequota", true,
		func() runtime.Object { return &corev1.ResourceQuota{} },
		func() runtime.Object { return &corev1.ResourceQuotaList{} })
	r.ShortNames = []string{"quota"}
	r.HasStatus = true
	r.NoGeneration = true
	r.Validate = func(obj runtime.Object) field.ErrorList { return validateResourceQuota(obj.(*corev1.ResourceQuota)) }
	r.ValidateStatusUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validateResourceQuotaStatus(&obj.(*corev1.ResourceQuota).Status)
	}
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		registry.AgeCol,
		col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume.", 0),
		col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.", 0),
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		q := obj.(*corev1.ResourceQuota)
		req, lim := quotaCells(q)
		return []interface{}{q.Name, registry.Age(q.CreationTimestamp, now), req, lim}
	}
	return r
}

// quotaCells prints "resource: used/hard" pairs, limits.* ones in the Limit column.
func quotaCells(q *corev1.ResourceQuota) (request, limit string) {
	names := make([]string, 0, len(q.Status.Hard))
	for n := range q.Status.Hard {
		names = append(names, string(n))
	}
	sort.Strings(names)
	var req, lim []string
	for _, n := range names {
		used := q.Status.Used[corev1.ResourceName(n)]
		hard := q.Status.Hard[corev1.ResourceName(n)]
		cell := fmt.Sprintf("%s: %s/%s", n, used.String(), hard.String())
		if pieces := strings.Split(n, "."); len(pieces) > 1 && pieces[0] == "limits" {
			lim = append(lim, cell)
		} else {
			req = append(req, cell)
		}
	}
	return strings.Join(req, ", "), strings.Join(lim, ", ")
}

var standardQuotaScopes = sets.New(corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating,
	corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopePriorityClass,
	corev1.ResourceQuotaScopeCrossNamespacePodAffinity, corev1.ResourceQuotaScopeVolumeAttributesClass)

var podObjectCountQuotaResources = sets.New(corev1.ResourcePods, corev1.ResourceName("count/pods"))

var podComputeQuotaResources = sets.New(corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceLimitsCPU,
	corev1.ResourceLimitsMemory, corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory)

// quotaScopeValidFor reports whether a scope can apply to a standard resource.
func quotaScopeValidFor(scope corev1.ResourceQuotaScope, n corev1.ResourceName) bool {
	switch scope {
	case corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating,
		corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopePriorityClass,
		corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return podObjectCountQuotaResources.Has(n) || podComputeQuotaResources.Has(n)
	case corev1.ResourceQuotaScopeBestEffort:
		return podObjectCountQuotaResources.Has(n)
	case corev1.ResourceQuotaScopeVolumeAttributesClass:
		return n == corev1.ResourcePersistentVolumeClaims || n == corev1.ResourceRequestsStorage ||
			n == corev1.ResourceName("count/persistentvolumeclaims")
	}
	return false
}

func validateQuotaResourceName(n corev1.ResourceName, p *field.Path) field.ErrorList {
	errs := validateResourceName(n, p)
	if !strings.Contains(string(n), "/") && !isStandardQuotaResourceName(n) {
		errs = append(errs, field.Invalid(p, n, isInvalidQuotaResource))
	}
	return errs
}

func validateResourceQuota(q *corev1.ResourceQuota) field.ErrorList {
	p := field.NewPath("spec")
	var errs field.ErrorList
	for n, v := range q.Spec.Hard {
		kp := p.Child("hard").Key(string(n))
		errs = append(errs, validateQuotaResourceName(n, kp)...)
		errs = append(errs, validateResourceQuantityValue(n, v, kp)...)
	}
	sp := p.Child("scopes")
	scopes := sets.New[corev1.ResourceQuotaScope]()
	for _, s := range q.Spec.Scopes {
		if !standardQuotaScopes.Has(s) {
			errs = append(errs, field.Invalid(sp, q.Spec.Scopes, "unsupported scope"))
		}
		for n := range q.Spec.Hard {
			if isStandardQuotaResourceName(n) && !quotaScopeValidFor(s, n) {
				errs = append(errs, field.Invalid(sp, q.Spec.Scopes, "unsupported scope applied to resource"))
			}
		}
		scopes.Insert(s)
	}
	if scopes.HasAll(corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort) ||
		scopes.HasAll(corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating) {
		errs = append(errs, field.Invalid(sp, q.Spec.Scopes, "conflicting scopes"))
	}
	if sel := q.Spec.ScopeSelector; sel != nil {
		selPath := p.Child("scopeSelector", "matchExpressions")
		for i, req := range sel.MatchExpressions {
			rp := selPath.Index(i)
			if !standardQuotaScopes.Has(req.ScopeName) {
				errs = append(errs, field.Invalid(rp.Child("scopeName"), req.ScopeName, "unsupported scope"))
			}
			switch req.Operator {
			case corev1.ScopeSelectorOpIn, corev1.ScopeSelectorOpNotIn:
				if len(req.Values) == 0 {
					errs = append(errs, field.Required(rp.Child("values"), "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
				}
			case corev1.ScopeSelectorOpExists, corev1.ScopeSelectorOpDoesNotExist:
				if len(req.Values) != 0 {
					errs = append(errs, field.Invalid(rp.Child("values"), req.Values, "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
				}
			default:
				errs = append(errs, field.Invalid(rp.Child("operator"), req.Operator, "not a valid selector operator"))
			}
		}
	}
	return append(errs, validateResourceQuotaStatus(&q.Status)...)
}

func validateResourceQuotaStatus(st *corev1.ResourceQuotaStatus) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("status")
	for n, v := range st.Hard {
		kp := p.Child("hard").Key(string(n))
		errs = append(errs, validateQuotaResourceName(n, kp)...)
		errs = append(errs, validateResourceQuantityValue(n, v, kp)...)
	}
	for n, v := range st.Used {
		kp := p.Child("used").Key(string(n))
		errs = append(errs, validateQuotaResourceName(n, kp)...)
		errs = append(errs, validateResourceQuantityValue(n, v, kp)...)
	}
	return errs
}
