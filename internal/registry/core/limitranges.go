package core

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func limitRanges() *registry.Resource {
	r := newResource("limitranges", "LimitRange", "limitrange", true,
		func() runtime.Object { return &corev1.LimitRange{} },
		func() runtime.Object { return &corev1.LimitRangeList{} })
	r.ShortNames = []string{"limits"}
	r.NoGeneration = true
	r.Default = func(obj runtime.Object) {
		lr := obj.(*corev1.LimitRange)
		for i := range lr.Spec.Limits {
			defaultLimitRangeItem(&lr.Spec.Limits[i])
		}
	}
	r.Validate = func(obj runtime.Object) field.ErrorList { return validateLimitRange(obj.(*corev1.LimitRange)) }
	// Kubernetes has no printer for limit ranges: the default NAME, CREATED AT table applies.
	r.Columns = createdAtColumns
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		lr := obj.(*corev1.LimitRange)
		return []interface{}{lr.Name, createdAtCell(lr.CreationTimestamp)}
	}
	return r
}

// defaultLimitRangeItem fills container defaults: the default limit from max, the default
// request from the default limit, else from min.
func defaultLimitRangeItem(it *corev1.LimitRangeItem) {
	if it.Type != corev1.LimitTypeContainer {
		return
	}
	if it.Default == nil {
		it.Default = corev1.ResourceList{}
	}
	if it.DefaultRequest == nil {
		it.DefaultRequest = corev1.ResourceList{}
	}
	for k, v := range it.Max {
		if _, ok := it.Default[k]; !ok {
			it.Default[k] = v.DeepCopy()
		}
	}
	for k, v := range it.Default {
		if _, ok := it.DefaultRequest[k]; !ok {
			it.DefaultRequest[k] = v.DeepCopy()
		}
	}
	for k, v := range it.Min {
		if _, ok := it.DefaultRequest[k]; !ok {
			it.DefaultRequest[k] = v.DeepCopy()
		}
	}
}

var standardLimitTypes = sets.New(string(corev1.LimitTypePod), string(corev1.LimitTypeContainer), string(corev1.LimitTypePersistentVolumeClaim))

func validateLimitRange(lr *corev1.LimitRange) field.ErrorList {
	var errs field.ErrorList
	seenTypes := map[corev1.LimitType]bool{}
	p := field.NewPath("spec", "limits")
	for i := range lr.Spec.Limits {
		ip := p.Index(i)
		it := &lr.Spec.Limits[i]

		tp := ip.Child("type")
		if msgs := validation.IsQualifiedName(string(it.Type)); len(msgs) != 0 {
			errs = append(errs, msgsToInvalid(tp, string(it.Type), msgs)...)
		} else if !strings.Contains(string(it.Type), "/") && !standardLimitTypes.Has(string(it.Type)) {
			errs = append(errs, field.Invalid(tp, string(it.Type), "must be a standard limit type or fully qualified"))
		}
		if seenTypes[it.Type] {
			errs = append(errs, field.Duplicate(tp, it.Type))
		}
		seenTypes[it.Type] = true

		resName := func(n corev1.ResourceName, rp *field.Path) field.ErrorList {
			if it.Type == corev1.LimitTypePod || it.Type == corev1.LimitTypeContainer {
				return validateContainerResourceName(n, rp)
			}
			return validateResourceName(n, rp)
		}
		keys := sets.New[string]()
		collect := func(list corev1.ResourceList, name string) map[string]resource.Quantity {
			out := map[string]resource.Quantity{}
			for k, q := range list {
				errs = append(errs, resName(k, ip.Child(name).Key(string(k)))...)
				keys.Insert(string(k))
				out[string(k)] = q
			}
			return out
		}
		max := collect(it.Max, "max")
		min := collect(it.Min, "min")
		defaults := map[string]resource.Quantity{}
		defaultRequests := map[string]resource.Quantity{}
		if it.Type == corev1.LimitTypePod {
			if len(it.Default) > 0 {
				errs = append(errs, field.Forbidden(ip.Child("default"), "may not be specified when `type` is 'Pod'"))
			}
			if len(it.DefaultRequest) > 0 {
				errs = append(errs, field.Forbidden(ip.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
			}
		} else {
			defaults = collect(it.Default, "default")
			defaultRequests = collect(it.DefaultRequest, "defaultRequest")
		}
		if it.Type == corev1.LimitTypePersistentVolumeClaim {
			_, hasMin := it.Min[corev1.ResourceStorage]
			_, hasMax := it.Max[corev1.ResourceStorage]
			if !hasMin && !hasMax {
				errs = append(errs, field.Required(ip.Child("limits"), "either minimum or maximum storage value is required, but neither was provided"))
			}
		}
		ratios := collect(it.MaxLimitRequestRatio, "maxLimitRequestRatio")

		for _, k := range sets.List(keys) {
			minQ, hasMin := min[k]
			maxQ, hasMax := max[k]
			defQ, hasDef := defaults[k]
			defReqQ, hasDefReq := defaultRequests[k]
			ratio, hasRatio := ratios[k]
			if hasMin && hasMax && minQ.Cmp(maxQ) > 0 {
				errs = append(errs, field.Invalid(ip.Child("min").Key(k), minQ, fmt.Sprintf("min value %s is greater than max value %s", minQ.String(), maxQ.String())))
			}
			if hasDefReq && hasMin && minQ.Cmp(defReqQ) > 0 {
				errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(k), defReqQ, fmt.Sprintf("min value %s is greater than default request value %s", minQ.String(), defReqQ.String())))
			}
			if hasDefReq && hasMax && defReqQ.Cmp(maxQ) > 0 {
				errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(k), defReqQ, fmt.Sprintf("default request value %s is greater than max value %s", defReqQ.String(), maxQ.String())))
			}
			if hasDefReq && hasDef && defReqQ.Cmp(defQ) > 0 {
				errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(k), defReqQ, fmt.Sprintf("default request value %s is greater than default limit value %s", defReqQ.String(), defQ.String())))
			}
			if hasDef && hasMin && minQ.Cmp(defQ) > 0 {
				errs = append(errs, field.Invalid(ip.Child("default").Key(k), minQ, fmt.Sprintf("min value %s is greater than default value %s", minQ.String(), defQ.String())))
			}
			if hasDef && hasMax && defQ.Cmp(maxQ) > 0 {
				errs = append(errs, field.Invalid(ip.Child("default").Key(k), maxQ, fmt.Sprintf("default value %s is greater than max value %s", defQ.String(), maxQ.String())))
			}
			if hasRatio && ratio.Cmp(*resource.NewQuantity(1, resource.DecimalSI)) < 0 {
				errs = append(errs, field.Invalid(ip.Child("maxLimitRequestRatio").Key(k), ratio, fmt.Sprintf("ratio %s is less than 1", ratio.String())))
			}
			if hasRatio && hasMin && hasMax {
				ratioV := float64(ratio.Value())
				minV, maxV := minQ.Value(), maxQ.Value()
				if ratio.Value() < resource.MaxMilliValue && minV < resource.MaxMilliValue && maxV < resource.MaxMilliValue {
					ratioV = float64(ratio.MilliValue()) / 1000
					minV, maxV = minQ.MilliValue(), maxQ.MilliValue()
				}
				limit := float64(maxV) / float64(minV)
				if ratioV > limit {
					errs = append(errs, field.Invalid(ip.Child("maxLimitRequestRatio").Key(k), ratio, fmt.Sprintf("ratio %s is greater than max/min = %f", ratio.String(), limit)))
				}
			}
			if !isOvercommitAllowed(corev1.ResourceName(k)) && hasDef && hasDefReq && defQ.Cmp(defReqQ) != 0 {
				errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(k), defReqQ, fmt.Sprintf("default value %s must equal to defaultRequest value %s in %s", defQ.String(), defReqQ.String(), k)))
			}
		}
	}
	return errs
}
