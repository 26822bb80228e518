// Package authentication describes authentication.k8s.io/v1: TokenReview (is this token
// valid, and whose is it?) and SelfSubjectReview (who am I? — `kubectl auth whoami`). Both
// are create-only and never stored; the API server answers them (internal/apiserver/reviews.go).
package authentication

import (
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns the authentication.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{
			Group: authenticationv1.GroupName, Version: "v1", Resource: "tokenreviews",
			Kind: "TokenReview", SingularName: "tokenreview", Verbs: []string{"create"}, NotStored: true,
			New: func() runtime.Object { return &authenticationv1.TokenReview{} },
		},
		{
			Group: authenticationv1.GroupName, Version: "v1", Resource: "selfsubjectreviews",
			Kind: "SelfSubjectReview", SingularName: "selfsubjectreview", Verbs: []string{"create"}, NotStored: true,
			New: func() runtime.Object { return &authenticationv1.SelfSubjectReview{} },
		},
	}
}
