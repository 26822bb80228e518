// Package customresource turns a CustomResourceDefinition into the registry.Resources the API
// server serves for it, one per served version: objects are unstructured, pruned of fields the
// version's schema does not declare, defaulted from the schema and validated against it, with
// the definition's status and scale subresources and printer columns.
package customresource

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/jsonpath"
	openapierrors "k8s.io/kube-openapi/pkg/validation/errors"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"

	"github.com/skiff-sh/skiff/internal/registry"
)

// StorageVersion returns the name of the definition's storage version.
func StorageVersion(crd *apiextensionsv1.CustomResourceDefinition) string {
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			return v.Name
		}
	}
	return ""
}

// Resources returns one Resource per served version of crd. Versions other than the storage
// version are views of it (Stored set): with the None conversion only apiVersion differs.
func Resources(crd *apiextensionsv1.CustomResourceDefinition) ([]*registry.Resource, error) {
	storage := StorageVersion(crd)
	var out []*registry.Resource
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if !v.Served && !v.Storage {
			continue
		}
		r, err := versionResource(crd, v)
		if err != nil {
			return nil, fmt.Errorf("version %s: %w", v.Name, err)
		}
		if v.Name != storage {
			r.Stored = viewOf(crd.Spec.Group, storage, crd.Spec.Names.Kind, crd.Spec.Names.ListKind, v.Name)
		}
		if !v.Served {
			r.Verbs = []string{} // the storage version is kept for the others, not served
		}
		out = append(out, r)
	}
	return out, nil
}

func versionResource(crd *apiextensionsv1.CustomResourceDefinition, v *apiextensionsv1.CustomResourceDefinitionVersion) (*registry.Resource, error) {
	names := crd.Status.AcceptedNames
	if names.Kind == "" {
		names = crd.Spec.Names
	}
	gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: names.Kind}
	listKind := names.ListKind
	if listKind == "" {
		listKind = names.Kind + "List"
	}
	var props *apiextensionsv1.JSONSchemaProps
	var validator *validate.SchemaValidator
	var published *spec.Schema
	if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
		props = v.Schema.OpenAPIV3Schema
		s, err := openAPISchema(props)
		if err != nil {
			return nil, err
		}
		// The validator and the OpenAPI documents only read the schema: one copy serves both.
		validator, published = validate.NewSchemaValidator(s, nil, "", strfmt.Default), s
	}
	r := &registry.Resource{
		Group: crd.Spec.Group, Version: v.Name, Resource: names.Plural,
		Kind: names.Kind, ListKind: listKind, SingularName: names.Singular,
		Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		ShortNames: names.ShortNames, Categories: names.Categories, OpenAPISchema: published,
		New: func() runtime.Object {
			u := &unstructured.Unstructured{Object: map[string]interface{}{}}
			u.SetGroupVersionKind(gvk)
			return u
		},
		NewList: func() runtime.Object {
			l := &unstructured.UnstructuredList{Object: map[string]interface{}{}}
			l.SetGroupVersionKind(gvk.GroupVersion().WithKind(listKind))
			return l
		},
		Prune: func(obj runtime.Object) []string {
			if props == nil {
				return nil
			}
			var pruned []string
			pruneObject(obj.(*unstructured.Unstructured).Object, props, "", true, &pruned)
			return pruned
		},
		Default: func(obj runtime.Object) {
			if props != nil {
				applyDefaults(obj.(*unstructured.Unstructured).Object, props)
			}
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			if validator == nil {
				return nil
			}
			return validateObject(validator, obj.(*unstructured.Unstructured))
		},
	}
	r.ValidateUpdate = func(obj, _ runtime.Object) field.ErrorList { return r.Validate(obj) }
	r.ValidateStatusUpdate = r.ValidateUpdate
	if sub := v.Subresources; sub != nil {
		r.HasStatus = sub.Status != nil
		if sc := sub.Scale; sc != nil {
			r.Scale = scaleAccess(sc)
		}
	}
	if len(v.AdditionalPrinterColumns) > 0 {
		cols, row, err := printerColumns(v.AdditionalPrinterColumns)
		if err != nil {
			return nil, err
		}
		r.Columns, r.Row = cols, row
	}
	return r, nil
}

// viewOf serves version `served` over objects stored as version `storage`.
func viewOf(group, storage, kind, listKind, served string) *registry.StorageConversion {
	if listKind == "" {
		listKind = kind + "List"
	}
	relabel := func(obj runtime.Object, version string) runtime.Object {
		u := obj.(*unstructured.Unstructured).DeepCopy()
		u.SetAPIVersion(schema.GroupVersion{Group: group, Version: version}.String())
		return u
	}
	storedGVK := schema.GroupVersionKind{Group: group, Version: storage, Kind: kind}
	return &registry.StorageConversion{
		Group: group, Version: storage,
		ToStorage:   func(obj, _ runtime.Object) runtime.Object { return relabel(obj, storage) },
		FromStorage: func(stored runtime.Object) runtime.Object { return relabel(stored, served) },
		NewStored: func() runtime.Object {
			u := &unstructured.Unstructured{Object: map[string]interface{}{}}
			u.SetGroupVersionKind(storedGVK)
			return u
		},
		NewList: func() runtime.Object {
			l := &unstructured.UnstructuredList{Object: map[string]interface{}{}}
			l.SetGroupVersionKind(storedGVK.GroupVersion().WithKind(listKind))
			return l
		},
	}
}

// openAPISchema reads the definition's schema as kube-openapi's validator wants it (the two
// share the JSON form).
func openAPISchema(p *apiextensionsv1.JSONSchemaProps) (*spec.Schema, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	s := &spec.Schema{}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, err
	}
	return s, nil
}

// validateObject checks u against its version's schema, outside metadata (which the API server
// validates as for every object).
func validateObject(v *validate.SchemaValidator, u *unstructured.Unstructured) field.ErrorList {
	data := make(map[string]interface{}, len(u.Object))
	for k, val := range u.Object {
		if k != "metadata" {
			data[k] = val
		}
	}
	res := v.Validate(data)
	var errs field.ErrorList
	for _, e := range res.Errors {
		ve, ok := e.(*openapierrors.Validation)
		if !ok {
			errs = append(errs, field.Invalid(field.NewPath("<root>"), nil, e.Error()))
			continue
		}
		p := strings.TrimPrefix(ve.Name, ".")
		var path *field.Path
		if p == "" {
			path = field.NewPath("<root>")
		} else {
			parts := strings.Split(p, ".")
			path = field.NewPath(parts[0], parts[1:]...)
		}
		switch ve.Code() {
		case openapierrors.RequiredFailCode:
			errs = append(errs, field.Required(path, ""))
		case openapierrors.EnumFailCode:
			var vals []string
			for _, x := range ve.Values {
				vals = append(vals, fmt.Sprint(x))
			}
			errs = append(errs, field.NotSupported(path, ve.Value, vals))
		default:
			// As Kubernetes prints them: "spec.replicas: Invalid value: \"string\": spec.replicas
			// in body must be of type integer: \"string\"".
			errs = append(errs, field.Invalid(path, ve.Value, ve.Error()))
		}
	}
	return errs
}

// pruneObject drops fields the schema does not declare, recording their paths. Root and
// embedded resources keep apiVersion, kind and metadata.
func pruneObject(obj map[string]interface{}, s *apiextensionsv1.JSONSchemaProps, path string, root bool, pruned *[]string) {
	if s == nil {
		return
	}
	preserve := s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if (root || s.XEmbeddedResource) && (k == "apiVersion" || k == "kind" || k == "metadata") {
			continue
		}
		child := join(path, k)
		if p, ok := s.Properties[k]; ok {
			pruneValue(obj[k], &p, child, pruned)
			continue
		}
		if ap := s.AdditionalProperties; ap != nil && ap.Schema != nil {
			pruneValue(obj[k], ap.Schema, child, pruned)
			continue
		}
		if preserve || (s.AdditionalProperties != nil && s.AdditionalProperties.Allows) {
			continue
		}
		delete(obj, k)
		*pruned = append(*pruned, child)
	}
}

func pruneValue(v interface{}, s *apiextensionsv1.JSONSchemaProps, path string, pruned *[]string) {
	switch x := v.(type) {
	case map[string]interface{}:
		if len(s.Properties) == 0 && s.AdditionalProperties == nil && !s.XEmbeddedResource {
			if s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields || s.XIntOrString || s.Type == "" {
				return
			}
		}
		pruneObject(x, s, path, false, pruned)
	case []interface{}:
		if s.Items != nil && s.Items.Schema != nil {
			for i, it := range x {
				pruneValue(it, s.Items.Schema, fmt.Sprintf("%s[%d]", path, i), pruned)
			}
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// applyDefaults sets the schema's defaults on missing fields, recursively.
func applyDefaults(obj map[string]interface{}, s *apiextensionsv1.JSONSchemaProps) {
	for k, p := range s.Properties {
		v, ok := obj[k]
		if !ok && p.Default != nil {
			var d interface{}
			if err := json.Unmarshal(p.Default.Raw, &d); err == nil {
				obj[k] = d
				v, ok = d, true
			}
		}
		if ok {
			defaultValue(v, &p)
		}
	}
	if ap := s.AdditionalProperties; ap != nil && ap.Schema != nil {
		for k, v := range obj {
			if _, declared := s.Properties[k]; !declared {
				defaultValue(v, ap.Schema)
			}
		}
	}
}

func defaultValue(v interface{}, s *apiextensionsv1.JSONSchemaProps) {
	switch x := v.(type) {
	case map[string]interface{}:
		applyDefaults(x, s)
	case []interface{}:
		if s.Items != nil && s.Items.Schema != nil {
			for _, it := range x {
				defaultValue(it, s.Items.Schema)
			}
		}
	}
}

// fieldPath splits a scale subresource path such as ".spec.replicas".
func fieldPath(p string) []string { return strings.Split(strings.TrimPrefix(p, "."), ".") }

func scaleAccess(sc *apiextensionsv1.CustomResourceSubresourceScale) *registry.ScaleAccess {
	spec, status := fieldPath(sc.SpecReplicasPath), fieldPath(sc.StatusReplicasPath)
	num := func(obj runtime.Object, p []string) int32 {
		v, _, _ := unstructured.NestedFieldNoCopy(obj.(*unstructured.Unstructured).Object, p...)
		switch n := v.(type) {
		case int64:
			return int32(n)
		case float64:
			return int32(n)
		}
		return 0
	}
	return &registry.ScaleAccess{
		SpecReplicas: func(obj runtime.Object) int32 { return num(obj, spec) },
		SetSpecReplicas: func(obj runtime.Object, n int32) {
			_ = unstructured.SetNestedField(obj.(*unstructured.Unstructured).Object, int64(n), spec...)
		},
		StatusReplicas: func(obj runtime.Object) int32 { return num(obj, status) },
		Selector: func(obj runtime.Object) string {
			if sc.LabelSelectorPath == nil {
				return ""
			}
			s, _, _ := unstructured.NestedString(obj.(*unstructured.Unstructured).Object, fieldPath(*sc.LabelSelectorPath)...)
			return s
		},
	}
}

// printerColumns builds the table of a version with additionalPrinterColumns: Name, then the
// columns, date columns printed as ages.
func printerColumns(cols []apiextensionsv1.CustomResourceColumnDefinition) ([]metav1.TableColumnDefinition, func(runtime.Object, time.Time) []interface{}, error) {
	defs := []metav1.TableColumnDefinition{registry.NameCol}
	paths := make([]*jsonpath.JSONPath, len(cols))
	for i, c := range cols {
		jp := jsonpath.New(c.Name)
		if err := jp.Parse(fmt.Sprintf("{%s}", c.JSONPath)); err != nil {
			return nil, nil, fmt.Errorf("printer column %q: %w", c.Name, err)
		}
		jp.AllowMissingKeys(true)
		paths[i] = jp
		defs = append(defs, metav1.TableColumnDefinition{Name: c.Name, Type: c.Type, Format: c.Format, Description: c.Description, Priority: c.Priority})
	}
	row := func(obj runtime.Object, now time.Time) []interface{} {
		u := obj.(*unstructured.Unstructured)
		cells := []interface{}{u.GetName()}
		for i, c := range cols {
			results, err := paths[i].FindResults(u.Object)
			if err != nil || len(results) == 0 || len(results[0]) == 0 {
				cells = append(cells, nil)
				continue
			}
			v := results[0][0].Interface()
			cells = append(cells, cell(c.Type, v, now))
		}
		return cells
	}
	return defs, row, nil
}

func cell(typ string, v interface{}, now time.Time) interface{} {
	switch typ {
	case "date":
		s, ok := v.(string)
		if !ok {
			return nil
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return "<invalid>"
		}
		return registry.HumanDuration(metav1.NewTime(t), now)
	case "integer":
		switch n := v.(type) {
		case int64:
			return n
		case float64:
			return int64(n)
		}
		return nil
	case "number":
		switch n := v.(type) {
		case int64:
			return float64(n)
		case float64:
			return n
		}
		return nil
	case "boolean":
		b, ok := v.(bool)
		if !ok {
			return nil
		}
		return b
	default:
		switch x := v.(type) {
		case string:
			return x
		case map[string]interface{}, []interface{}:
			data, _ := json.Marshal(x)
			return string(data)
		}
		return fmt.Sprint(v)
	}
}
