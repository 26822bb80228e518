// Package authorization describes authorization.k8s.io/v1 access reviews: may a user (or I,
// `kubectl auth can-i`) do this, and what may I do (`kubectl auth can-i --list`)? They are
// create-only and never stored; the API server answers them (internal/apiserver/reviews.go).
package authorization

import (
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns the authorization.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	review := func(resource, kind string, namespaced bool, newObj func() runtime.Object) *registry.Resource {
		return &registry.Resource{
			Group: authorizationv1.GroupName, Version: "v1", Resource: resource, Kind: kind,
			SingularName: strings.ToLower(kind), Namespaced: namespaced, Verbs: []string{"create"}, NotStored: true, New: newObj,
		}
	}
	return []*registry.Resource{
		review("subjectaccessreviews", "SubjectAccessReview", false, func() runtime.Object { return &authorizationv1.SubjectAccessReview{} }),
		review("selfsubjectaccessreviews", "SelfSubjectAccessReview", false, func() runtime.Object { return &authorizationv1.SelfSubjectAccessReview{} }),
		review("selfsubjectrulesreviews", "SelfSubjectRulesReview", false, func() runtime.Object { return &authorizationv1.SelfSubjectRulesReview{} }),
		review("localsubjectaccessreviews", "LocalSubjectAccessReview", true, func() runtime.Object { return &authorizationv1.LocalSubjectAccessReview{} }),
	}
}
