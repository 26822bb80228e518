// Package networking describes the networking.k8s.io/v1 resources: ingresses, ingressclasses
// and networkpolicies, with Kubernetes' defaults, validation and table columns.
package networking

import (
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns the networking.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{ingresses(), ingressClasses(), networkPolicies()}
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// invalidEach turns validation messages about value into errors at fldPath.
func invalidEach(fldPath *field.Path, value interface{}, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(fldPath, value, msg))
	}
	return errs
}

// validateLocalReference checks a typed reference to an object of any API group.
func validateLocalReference(apiGroup *string, kind, name string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if apiGroup != nil {
		errs = append(errs, invalidEach(fldPath.Child("apiGroup"), *apiGroup, content.IsDNS1123Subdomain(*apiGroup))...)
	}
	if kind == "" {
		errs = append(errs, field.Required(fldPath.Child("kind"), "kind is required"))
	} else {
		errs = append(errs, invalidEach(fldPath.Child("kind"), kind, content.IsPathSegmentName(kind))...)
	}
	if name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), "name is required"))
	} else {
		errs = append(errs, invalidEach(fldPath.Child("name"), name, content.IsPathSegmentName(name))...)
	}
	return errs
}
