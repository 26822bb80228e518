package apiserver

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/auth"
)

// review answers the create-only reviews of authentication.k8s.io and authorization.k8s.io.
//
// The server has no authorizer yet: every authenticated user may do everything, as with
// Kubernetes' --authorization-mode=AlwaysAllow, and the access reviews say exactly that
// (allowed, every verb on every resource). `kubectl auth can-i` and `kubectl auth whoami`
// then tell users the truth about this cluster.
func (s *Server) review(ctx context.Context, ep *endpoint, info *requestInfo, obj runtime.Object) (runtime.Object, error) {
	gk := ep.res.GroupVersionKind().GroupKind()
	invalid := func(errs field.ErrorList) error { return apierrors.NewInvalid(gk, "", errs) }
	switch o := obj.(type) {
	case *authenticationv1.SelfSubjectReview:
		u, _ := auth.UserFrom(ctx)
		o.Status.UserInfo = userInfo(u)
	case *authenticationv1.TokenReview:
		if o.Spec.Token == "" {
			return nil, invalid(field.ErrorList{field.Required(field.NewPath("spec", "token"), "")})
		}
		o.Status = authenticationv1.TokenReviewStatus{}
		if s.cfg.AuthenticateToken != nil {
			if u, ok := s.cfg.AuthenticateToken(o.Spec.Token); ok {
				o.Status.Authenticated = true
				o.Status.User = userInfo(u)
				o.Status.Audiences = o.Spec.Audiences
			}
		}
		if !o.Status.Authenticated {
			o.Status.Error = "invalid bearer token"
		}
		o.Spec.Token = "" // never echoed back
	case *authorizationv1.SelfSubjectAccessReview:
		if errs := validateAccessAttributes(o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes); len(errs) > 0 {
			return nil, invalid(errs)
		}
		o.Status = allowed()
	case *authorizationv1.SubjectAccessReview:
		if errs := validateSubjectAccessReview(&o.Spec); len(errs) > 0 {
			return nil, invalid(errs)
		}
		o.Status = allowed()
	case *authorizationv1.LocalSubjectAccessReview:
		errs := validateSubjectAccessReview(&o.Spec)
		if o.Spec.ResourceAttributes != nil && o.Spec.ResourceAttributes.Namespace != info.Namespace {
			errs = append(errs, field.Invalid(field.NewPath("spec", "resourceAttributes", "namespace"),
				o.Spec.ResourceAttributes.Namespace, "must match metadata.namespace"))
		}
		if o.Spec.NonResourceAttributes != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "nonResourceAttributes"), o.Spec.NonResourceAttributes, "disallowed on this kind of request"))
		}
		if len(errs) > 0 {
			return nil, invalid(errs)
		}
		o.Namespace = info.Namespace
		o.Status = allowed()
	case *authorizationv1.SelfSubjectRulesReview:
		if o.Spec.Namespace == "" {
			return nil, invalid(field.ErrorList{field.Required(field.NewPath("spec", "namespace"), "")})
		}
		o.Status = authorizationv1.SubjectRulesReviewStatus{
			ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
			NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
		}
	default:
		return nil, apierrors.NewInternalError(fmt.Errorf("no review for %T", obj))
	}
	return obj, nil
}

func allowed() authorizationv1.SubjectAccessReviewStatus {
	return authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "this cluster authorizes every authenticated request (no RBAC)"}
}

func userInfo(u *auth.User) authenticationv1.UserInfo {
	if u == nil {
		return authenticationv1.UserInfo{}
	}
	return authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: append([]string(nil), u.Groups...)}
}

// validateAccessAttributes: exactly one of the two, as Kubernetes requires.
func validateAccessAttributes(r *authorizationv1.ResourceAttributes, nr *authorizationv1.NonResourceAttributes) field.ErrorList {
	if (r == nil) == (nr == nil) {
		return field.ErrorList{field.Invalid(field.NewPath("spec", "resourceAttributes"), r,
			"exactly one of nonResourceAttributes or resourceAttributes must be specified")}
	}
	return nil
}

func validateSubjectAccessReview(spec *authorizationv1.SubjectAccessReviewSpec) field.ErrorList {
	errs := validateAccessAttributes(spec.ResourceAttributes, spec.NonResourceAttributes)
	if spec.User == "" && len(spec.Groups) == 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "user"), spec.User, "at least one of user or group must be specified"))
	}
	return errs
}
