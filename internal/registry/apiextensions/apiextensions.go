// Package apiextensions describes apiextensions.k8s.io/v1 CustomResourceDefinitions: their
// defaults, validation and table. The API server serves the custom resources a definition
// declares once it is accepted (internal/apiserver/crd.go), and the customresource package
// gives each served version its registry.Resource.
package apiextensions

import (
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-sh/skiff/internal/registry"
)

func init() {
	// The API server's codecs, protobuf included, work from client-go's scheme.
	if err := apiextensionsv1.AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}

// CleanupFinalizer holds a definition until its custom resources are deleted.
const CleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"

// Resources returns the apiextensions.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{{
		Group: apiextensionsv1.GroupName, Version: "v1", Resource: "customresourcedefinitions",
		Kind: "CustomResourceDefinition", ListKind: "CustomResourceDefinitionList",
		SingularName: "customresourcedefinition", ShortNames: []string{"crd", "crds"},
		Categories: []string{"api-extensions"}, HasStatus: true,
		New:     func() runtime.Object { return &apiextensionsv1.CustomResourceDefinition{} },
		NewList: func() runtime.Object { return &apiextensionsv1.CustomResourceDefinitionList{} },
		PrepareForCreate: func(obj runtime.Object) {
			crd := obj.(*apiextensionsv1.CustomResourceDefinition)
			crd.Finalizers = addFinalizer(crd.Finalizers)
		},
		Default: func(obj runtime.Object) { Default(obj.(*apiextensionsv1.CustomResourceDefinition)) },
		Validate: func(obj runtime.Object) field.ErrorList {
			return Validate(obj.(*apiextensionsv1.CustomResourceDefinition))
		},
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			crd, prev := obj.(*apiextensionsv1.CustomResourceDefinition), old.(*apiextensionsv1.CustomResourceDefinition)
			var errs field.ErrorList
			if crd.Spec.Group != prev.Spec.Group {
				errs = append(errs, field.Invalid(field.NewPath("spec", "group"), crd.Spec.Group, "field is immutable"))
			}
			if crd.Spec.Scope != prev.Spec.Scope {
				errs = append(errs, field.Invalid(field.NewPath("spec", "scope"), crd.Spec.Scope, "field is immutable"))
			}
			// A stored version may leave spec.versions only once no object is stored in it.
			served := sets.New[string]()
			for _, v := range crd.Spec.Versions {
				served.Insert(v.Name)
			}
			for i, v := range crd.Status.StoredVersions {
				if !served.Has(v) {
					errs = append(errs, field.Invalid(field.NewPath("status", "storedVersions").Index(i), v, "must appear in spec.versions"))
				}
			}
			return errs
		},
		Columns: []metav1.TableColumnDefinition{
			registry.NameCol,
			{Name: "Created At", Type: "date", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."},
		},
		Row: func(obj runtime.Object, _ time.Time) []interface{} {
			crd := obj.(*apiextensionsv1.CustomResourceDefinition)
			return []interface{}{crd.Name, crd.CreationTimestamp.UTC().Format(time.RFC3339)}
		},
	}}
}

func addFinalizer(fs []string) []string {
	for _, f := range fs {
		if f == CleanupFinalizer {
			return fs
		}
	}
	return append(fs, CleanupFinalizer)
}

// Default applies the API's defaults: a None conversion, singular and list kind from the kind.
func Default(crd *apiextensionsv1.CustomResourceDefinition) {
	if crd.Spec.Conversion == nil {
		crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
	}
	n := &crd.Spec.Names
	if n.Singular == "" {
		n.Singular = strings.ToLower(n.Kind)
	}
	if n.ListKind == "" && n.Kind != "" {
		n.ListKind = n.Kind + "List"
	}
}

// Validate checks a definition as Kubernetes does for what skiff serves.
func Validate(crd *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	s := crd.Spec
	if want := s.Names.Plural + "." + s.Group; crd.Name != want {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), crd.Name, `must be spec.names.plural+"."+spec.group`))
	}
	if s.Group == "" {
		errs = append(errs, field.Required(spec.Child("group"), ""))
	} else {
		for _, m := range validation.IsDNS1123Subdomain(s.Group) {
			errs = append(errs, field.Invalid(spec.Child("group"), s.Group, m))
		}
		if len(strings.Split(s.Group, ".")) < 2 {
			errs = append(errs, field.Invalid(spec.Child("group"), s.Group, "should be a domain with at least one dot"))
		}
	}
	switch s.Scope {
	case apiextensionsv1.NamespaceScoped, apiextensionsv1.ClusterScoped:
	case "":
		errs = append(errs, field.Required(spec.Child("scope"), ""))
	default:
		errs = append(errs, field.NotSupported(spec.Child("scope"), s.Scope, []string{"Cluster", "Namespaced"}))
	}
	errs = append(errs, validateNames(&s.Names, spec.Child("names"))...)

	if len(s.Versions) == 0 {
		errs = append(errs, field.Invalid(spec.Child("versions"), s.Versions, "must have exactly one version marked as storage version"))
	}
	storage, served := 0, 0
	seen := sets.New[string]()
	for i, v := range s.Versions {
		p := spec.Child("versions").Index(i)
		if v.Storage {
			storage++
		}
		if v.Served {
			served++
		}
		if seen.Has(v.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), v.Name, "must be unique"))
		}
		seen.Insert(v.Name)
		for _, m := range validation.IsDNS1035Label(v.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), v.Name, m))
		}
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			errs = append(errs, field.Required(p.Child("schema", "openAPIV3Schema"), "schemas are required"))
		} else if t := v.Schema.OpenAPIV3Schema.Type; t != "object" {
			errs = append(errs, field.Invalid(p.Child("schema", "openAPIV3Schema", "type"), t, "must be object at the root"))
		}
		if sub := v.Subresources; sub != nil && sub.Scale != nil {
			sp := p.Child("subresources", "scale")
			if !strings.HasPrefix(sub.Scale.SpecReplicasPath, ".spec.") {
				errs = append(errs, field.Invalid(sp.Child("specReplicasPath"), sub.Scale.SpecReplicasPath, "should be a json path under .spec"))
			}
			if !strings.HasPrefix(sub.Scale.StatusReplicasPath, ".status.") {
				errs = append(errs, field.Invalid(sp.Child("statusReplicasPath"), sub.Scale.StatusReplicasPath, "should be a json path under .status"))
			}
		}
		for j, c := range v.AdditionalPrinterColumns {
			cp := p.Child("additionalPrinterColumns").Index(j)
			if c.Name == "" {
				errs = append(errs, field.Required(cp.Child("name"), ""))
			}
			switch c.Type {
			case "integer", "number", "string", "boolean", "date":
			default:
				errs = append(errs, field.NotSupported(cp.Child("type"), c.Type, []string{"boolean", "date", "integer", "number", "string"}))
			}
			if c.JSONPath == "" {
				errs = append(errs, field.Required(cp.Child("jsonPath"), ""))
			}
		}
	}
	if len(s.Versions) > 0 && storage != 1 {
		errs = append(errs, field.Invalid(spec.Child("versions"), s.Versions, "must have exactly one version marked as storage version"))
	}
	if len(s.Versions) > 0 && served == 0 {
		errs = append(errs, field.Invalid(spec.Child("versions"), s.Versions, "must have at least one served version"))
	}
	if c := s.Conversion; c != nil && c.Strategy != apiextensionsv1.NoneConverter {
		errs = append(errs, field.NotSupported(spec.Child("conversion", "strategy"), c.Strategy, []string{string(apiextensionsv1.NoneConverter)}))
	}
	return errs
}

func validateNames(n *apiextensionsv1.CustomResourceDefinitionNames, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	label := func(name, v string) {
		for _, m := range validation.IsDNS1035Label(v) {
			errs = append(errs, field.Invalid(p.Child(name), v, m))
		}
	}
	if n.Plural == "" {
		errs = append(errs, field.Required(p.Child("plural"), ""))
	} else {
		label("plural", n.Plural)
	}
	if n.Singular != "" {
		label("singular", n.Singular)
	}
	if n.Kind == "" {
		errs = append(errs, field.Required(p.Child("kind"), ""))
	} else if strings.ContainsAny(n.Kind, " /.") {
		errs = append(errs, field.Invalid(p.Child("kind"), n.Kind, "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"))
	}
	if n.ListKind != "" && n.ListKind == n.Kind {
		errs = append(errs, field.Invalid(p.Child("listKind"), n.ListKind, "kind and listKind may not be the same"))
	}
	for i, s := range n.ShortNames {
		for _, m := range validation.IsDNS1035Label(s) {
			errs = append(errs, field.Invalid(p.Child("shortNames").Index(i), s, m))
		}
	}
	for i, c := range n.Categories {
		for _, m := range validation.IsDNS1035Label(c) {
			errs = append(errs, field.Invalid(p.Child("categories").Index(i), c, m))
		}
	}
	return errs
}
