// Package rbac describes the rbac.authorization.k8s.io/v1 resources: roles, rolebindings,
// clusterroles and clusterrolebindings, with Kubernetes' defaults, validation and table
// columns.
package rbac

import (
	"fmt"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// validateName is the name rule of every RBAC object: anything that can be a path segment.
var validateName registry.NameValidator = path.ValidatePathSegmentName

// Resources returns the rbac.authorization.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{roles(), roleBindings(), clusterRoles(), clusterRoleBindings()}
}

func newResource(resource, kind string, namespaced bool, newObj, newList func() runtime.Object) *registry.Resource {
	return &registry.Resource{
		Group:        rbacv1.GroupName,
		Version:      "v1",
		Resource:     resource,
		Kind:         kind,
		ListKind:     kind + "List",
		SingularName: strings.ToLower(kind),
		Namespaced:   namespaced,
		New:          newObj,
		NewList:      newList,
		NoGeneration: true,
		ValidateName: validateName,
	}
}

var roleColumns = []metav1.TableColumnDefinition{
	registry.NameCol,
	registry.Col("Created At", "date", metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"], 0),
}

func createdAt(m *metav1.ObjectMeta) string {
	return m.CreationTimestamp.UTC().Format(time.RFC3339)
}

func roles() *registry.Resource {
	r := newResource("roles", "Role", true,
		func() runtime.Object { return &rbacv1.Role{} },
		func() runtime.Object { return &rbacv1.RoleList{} })
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateRules(obj.(*rbacv1.Role).Rules, true)
	}
	r.Columns = roleColumns
	r.Row = func(obj runtime.Object, _ time.Time) []interface{} {
		role := obj.(*rbacv1.Role)
		return []interface{}{role.Name, createdAt(&role.ObjectMeta)}
	}
	return r
}

func clusterRoles() *registry.Resource {
	r := newResource("clusterroles", "ClusterRole", false,
		func() runtime.Object { return &rbacv1.ClusterRole{} },
		func() runtime.Object { return &rbacv1.ClusterRoleList{} })
	r.Validate = func(obj runtime.Object) field.ErrorList {
		role := obj.(*rbacv1.ClusterRole)
		errs := validateRules(role.Rules, false)
		if a := role.AggregationRule; a != nil {
			p := field.NewPath("aggregationRule", "clusterRoleSelectors")
			if len(a.ClusterRoleSelectors) == 0 {
				errs = append(errs, field.Required(p, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
			}
			for i := range a.ClusterRoleSelectors {
				s := &a.ClusterRoleSelectors[i]
				errs = append(errs, metavalidation.ValidateLabelSelector(s, metavalidation.LabelSelectorValidationOptions{}, p.Index(i))...)
				if _, err := metav1.LabelSelectorAsSelector(s); err != nil {
					errs = append(errs, field.Invalid(p.Index(i), s, "invalid label selector."))
				}
			}
		}
		return errs
	}
	r.Columns = roleColumns
	r.Row = func(obj runtime.Object, _ time.Time) []interface{} {
		role := obj.(*rbacv1.ClusterRole)
		return []interface{}{role.Name, createdAt(&role.ObjectMeta)}
	}
	return r
}

// validateRules checks policy rules: verbs always, and either resources (with API groups)
// or, in cluster roles only, non-resource URLs.
func validateRules(rules []rbacv1.PolicyRule, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	for i, rule := range rules {
		p := field.NewPath("rules").Index(i)
		if len(rule.Verbs) == 0 {
			errs = append(errs, field.Required(p.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(rule.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), rule.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(rule.APIGroups) > 0 || len(rule.Resources) > 0 || len(rule.ResourceNames) > 0 {
				errs = append(errs, field.Invalid(p.Child("nonResourceURLs"), rule.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(rule.APIGroups) == 0 {
			errs = append(errs, field.Required(p.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(rule.Resources) == 0 {
			errs = append(errs, field.Required(p.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

var bindingColumns = func(what string) []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		registry.NameCol,
		registry.Col("Role", "string", rbacv1.RoleBinding{}.SwaggerDoc()["roleRef"], 0),
		registry.AgeCol,
		registry.Col("Users", "string", "Users in the "+what, 1),
		registry.Col("Groups", "string", "Groups in the "+what, 1),
		registry.Col("ServiceAccounts", "string", "ServiceAccounts in the "+what, 1),
	}
}

func roleBindings() *registry.Resource {
	r := newResource("rolebindings", "RoleBinding", true,
		func() runtime.Object { return &rbacv1.RoleBinding{} },
		func() runtime.Object { return &rbacv1.RoleBindingList{} })
	r.Default = func(obj runtime.Object) {
		b := obj.(*rbacv1.RoleBinding)
		defaultBinding(&b.RoleRef, b.Subjects)
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		b := obj.(*rbacv1.RoleBinding)
		return validateBinding(b.RoleRef, b.Subjects, []string{"Role", "ClusterRole"}, true)
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validateRoleRefUpdate(obj.(*rbacv1.RoleBinding).RoleRef, old.(*rbacv1.RoleBinding).RoleRef)
	}
	r.Columns = bindingColumns("roleBinding")
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		b := obj.(*rbacv1.RoleBinding)
		return bindingRow(&b.ObjectMeta, b.RoleRef, b.Subjects, now)
	}
	return r
}

func clusterRoleBindings() *registry.Resource {
	r := newResource("clusterrolebindings", "ClusterRoleBinding", false,
		func() runtime.Object { return &rbacv1.ClusterRoleBinding{} },
		func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} })
	r.Default = func(obj runtime.Object) {
		b := obj.(*rbacv1.ClusterRoleBinding)
		defaultBinding(&b.RoleRef, b.Subjects)
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		b := obj.(*rbacv1.ClusterRoleBinding)
		return validateBinding(b.RoleRef, b.Subjects, []string{"ClusterRole"}, false)
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validateRoleRefUpdate(obj.(*rbacv1.ClusterRoleBinding).RoleRef, old.(*rbacv1.ClusterRoleBinding).RoleRef)
	}
	r.Columns = bindingColumns("clusterRoleBinding")
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		b := obj.(*rbacv1.ClusterRoleBinding)
		return bindingRow(&b.ObjectMeta, b.RoleRef, b.Subjects, now)
	}
	return r
}

// defaultBinding fills the API group of the role reference and of user and group subjects.
func defaultBinding(ref *rbacv1.RoleRef, subjects []rbacv1.Subject) {
	if ref.APIGroup == "" {
		ref.APIGroup = rbacv1.GroupName
	}
	for i := range subjects {
		s := &subjects[i]
		if s.APIGroup == "" && (s.Kind == rbacv1.UserKind || s.Kind == rbacv1.GroupKind) {
			s.APIGroup = rbacv1.GroupName
		}
	}
}

func validateBinding(ref rbacv1.RoleRef, subjects []rbacv1.Subject, kinds []string, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	rp := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(rp.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	known := false
	for _, k := range kinds {
		known = known || ref.Kind == k
	}
	if !known {
		errs = append(errs, field.NotSupported(rp.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(rp.Child("name"), ""))
	} else {
		for _, msg := range validateName(ref.Name, false) {
			errs = append(errs, field.Invalid(rp.Child("name"), ref.Name, msg))
		}
	}
	for i, s := range subjects {
		errs = append(errs, validateSubject(s, namespaced, field.NewPath("subjects").Index(i))...)
	}
	return errs
}

func validateSubject(s rbacv1.Subject, namespaced bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	}
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		if s.Name != "" {
			for _, msg := range apivalidation.NameIsDNSSubdomain(s.Name, false) {
				errs = append(errs, field.Invalid(fldPath.Child("name"), s.Name, msg))
			}
		}
		if s.APIGroup != "" {
			errs = append(errs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{""}))
		}
		if !namespaced && s.Namespace == "" {
			errs = append(errs, field.Required(fldPath.Child("namespace"), ""))
		}
	case rbacv1.UserKind, rbacv1.GroupKind:
		if s.APIGroup != rbacv1.GroupName {
			errs = append(errs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
		}
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
	}
	return errs
}

func validateRoleRefUpdate(ref, old rbacv1.RoleRef) field.ErrorList {
	if ref == old {
		return nil
	}
	return field.ErrorList{field.Invalid(field.NewPath("roleRef"), ref, "cannot change roleRef")}
}

func bindingRow(m *metav1.ObjectMeta, ref rbacv1.RoleRef, subjects []rbacv1.Subject, now time.Time) []interface{} {
	var users, groups, sas []string
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.Namespace != "" {
				sas = append(sas, s.Namespace+":"+s.Name)
			} else {
				sas = append(sas, s.Name)
			}
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		}
	}
	return []interface{}{
		m.Name, fmt.Sprintf("%s/%s", ref.Kind, ref.Name), registry.Age(m.CreationTimestamp, now),
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", "),
	}
}
