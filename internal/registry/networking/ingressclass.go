package networking

import (
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

const maxControllerLength = 250

var parameterScopes = []string{networkingv1.IngressClassParametersReferenceScopeCluster, networkingv1.IngressClassParametersReferenceScopeNamespace}

func ingressClasses() *registry.Resource {
	return &registry.Resource{
		Group:        networkingv1.GroupName,
		Version:      "v1",
		Resource:     "ingressclasses",
		Kind:         "IngressClass",
		ListKind:     "IngressClassList",
		SingularName: "ingressclass",
		New:          func() runtime.Object { return &networkingv1.IngressClass{} },
		NewList:      func() runtime.Object { return &networkingv1.IngressClassList{} },
		// Parameters without a scope are cluster-scoped.
		Default: func(obj runtime.Object) {
			if p := obj.(*networkingv1.IngressClass).Spec.Parameters; p != nil && p.Scope == nil {
				p.Scope = new(networkingv1.IngressClassParametersReferenceScopeCluster)
			}
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			return validateIngressClassSpec(&obj.(*networkingv1.IngressClass).Spec, field.NewPath("spec"))
		},
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			n, o := obj.(*networkingv1.IngressClass), old.(*networkingv1.IngressClass)
			if n.Spec.Controller == o.Spec.Controller {
				return nil
			}
			return field.ErrorList{field.Invalid(field.NewPath("spec", "controller"), n.Spec.Controller, "field is immutable")}
		},
		Columns: []metav1.TableColumnDefinition{
			registry.NameCol,
			registry.Col("Controller", "string", "Controller that is responsible for handling this class", 0),
			registry.Col("Parameters", "string", "A reference to a resource with additional parameters", 0),
			registry.AgeCol,
		},
		Row: func(obj runtime.Object, now time.Time) []interface{} {
			c := obj.(*networkingv1.IngressClass)
			params := "<none>"
			if p := c.Spec.Parameters; p != nil {
				params = p.Kind
				if p.APIGroup != nil {
					params += "." + *p.APIGroup
				}
				params += "/" + p.Name
			}
			return []interface{}{c.Name, c.Spec.Controller, params, registry.Age(c.CreationTimestamp, now)}
		},
	}
}

func validateIngressClassSpec(spec *networkingv1.IngressClassSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	cp := fldPath.Child("controller")
	if len(spec.Controller) > maxControllerLength {
		errs = append(errs, field.TooLong(cp, "", maxControllerLength))
	}
	errs = append(errs, utilvalidation.IsDomainPrefixedPath(cp, spec.Controller)...)
	p := spec.Parameters
	if p == nil {
		return errs
	}
	pp := fldPath.Child("parameters")
	errs = append(errs, validateLocalReference(p.APIGroup, p.Kind, p.Name, pp)...)
	if p.Scope == nil {
		return append(errs, field.Required(pp.Child("scope"), ""))
	}
	switch *p.Scope {
	case networkingv1.IngressClassParametersReferenceScopeNamespace:
		if p.Namespace == nil {
			errs = append(errs, field.Required(pp.Child("namespace"), "`parameters.scope` is set to 'Namespace'"))
		} else {
			errs = append(errs, invalidEach(pp.Child("namespace"), *p.Namespace, apivalidation.ValidateNamespaceName(*p.Namespace, false))...)
		}
	case networkingv1.IngressClassParametersReferenceScopeCluster:
		if p.Namespace != nil {
			errs = append(errs, field.Forbidden(pp.Child("namespace"), "`parameters.scope` is set to 'Cluster'"))
		}
	default:
		errs = append(errs, field.NotSupported(pp.Child("scope"), *p.Scope, parameterScopes))
	}
	return errs
}
