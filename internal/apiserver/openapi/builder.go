package openapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"k8s.io/kube-openapi/pkg/openapiconv"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Resource is one served resource as the OpenAPI documents describe it.
type Resource struct {
	Group, Version, Kind, Resource string // Resource is the plural, e.g. "deployments"; Group "" for core
	Namespaced                     bool
	// Verbs is a subset of get list watch create update patch delete
	// deletecollection; nil means all of them. Subresources follow the
	// parent's get/update/patch verbs.
	Verbs []string
	// Subresources such as "status", "scale", "binding", "eviction",
	// "ephemeralcontainers", "resize", "finalize", "token" and "log".
	// Streaming ones (exec, attach, portforward, proxy) are not described
	// and are ignored.
	Subresources []string
	// Schema, for a custom resource, is its version's schema (OpenAPI v3, no $refs); its
	// definitions are named as Kubernetes names them (com.example.stable.v1.CronTab) instead
	// of coming from the generated Go types.
	Schema *spec.Schema
}

// Title and version of the documents' info object. Clients do not read
// them; Kubernetes puts its own version there.
const (
	docTitle   = "skiff"
	docVersion = "unversioned"
)

// securityScheme describes bearer-token authentication, as Kubernetes
// declares it (an API key in the authorization header).
var securityScheme = &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
	Type: "apiKey", Name: "authorization", In: "header",
	Description: "Bearer Token authentication",
}}

// BuildV2 returns the Swagger 2.0 document for resources, as JSON: every
// path of every group/version, and the definitions those paths reach.
func BuildV2(resources []Resource) ([]byte, error) {
	pb, err := buildPaths(resources)
	if err != nil {
		return nil, err
	}
	paths := map[string]spec.PathItem{}
	var roots []string
	for _, d := range pb.sortedDocs() {
		maps.Copy(paths, d.paths)
		roots = append(roots, slices.Sorted(maps.Keys(d.roots))...)
	}
	defs := loadDefinitions(false)
	reached, err := defs.closure(roots, v2RefPrefix)
	if err != nil {
		return nil, err
	}
	swagger := &spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger:             "2.0",
		Info:                &spec.Info{InfoProps: spec.InfoProps{Title: docTitle, Version: docVersion}},
		Paths:               &spec.Paths{Paths: paths},
		Definitions:         defs.subset(reached, pb.gvks),
		SecurityDefinitions: spec.SecurityDefinitions{"BearerToken": securityScheme},
		Security:            []map[string][]string{{"BearerToken": {}}},
	}}
	out, err := json.Marshal(swagger)
	if err != nil {
		return nil, fmt.Errorf("openapi: marshal v2: %w", err)
	}
	return out, nil
}

// BuildV3 returns one OpenAPI 3.0 document per group/version, as JSON,
// keyed by the group/version's path in the /openapi/v3 index ("api/v1",
// "apis/apps/v1"). Each document holds that group/version's paths and only
// the schemas they reach, the way Kubernetes splits them, which keeps the
// document a client downloads for one kind small.
func BuildV3(resources []Resource) (map[string][]byte, error) {
	pb, err := buildPaths(resources)
	if err != nil {
		return nil, err
	}
	defs := loadDefinitions(true)
	maps.Copy(defs, pb.custom)
	out := make(map[string][]byte, len(pb.docs))
	for _, d := range pb.sortedDocs() {
		reached, err := defs.closure(slices.Sorted(maps.Keys(d.roots)), v3RefPrefix)
		if err != nil {
			return nil, err
		}
		schemas := make(map[string]*spec.Schema, len(reached))
		for name, s := range defs.subset(reached, pb.gvks) {
			schemas[name] = &s
		}
		// The operations are written once, in v2 form, and converted with
		// kube-openapi's converter: it turns the body parameter and
		// consumes/produces into requestBody/content, simple parameters
		// into schemas, and #/definitions refs into #/components/schemas.
		doc := &spec3.OpenAPI{
			Version: "3.0.0",
			Info:    &spec.Info{InfoProps: spec.InfoProps{Title: docTitle, Version: docVersion}},
			Paths:   openapiconv.ConvertPaths(&spec.Paths{Paths: d.paths}),
			Components: &spec3.Components{
				Schemas: schemas,
				SecuritySchemes: spec3.SecuritySchemes{"BearerToken": &spec3.SecurityScheme{
					SecuritySchemeProps: spec3.SecuritySchemeProps{
						Type: "apiKey", Name: "authorization", In: "header",
						Description: "Bearer Token authentication",
					},
				}},
			},
		}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("openapi: marshal v3 %s: %w", gvPath(d.gv), err)
		}
		out[gvPath(d.gv)] = b
	}
	return out, nil
}

// Models returns every schema the resources' documents reach, in OpenAPI 3.0 form and marked
// with the kinds they stand for: what server-side apply's type converter
// (k8s.io/apimachinery/pkg/util/managedfields) needs to know each kind's fields, list types
// and map keys.
func Models(resources []Resource) (map[string]*spec.Schema, error) {
	pb, err := buildPaths(resources)
	if err != nil {
		return nil, err
	}
	var roots []string
	for _, d := range pb.sortedDocs() {
		roots = append(roots, slices.Sorted(maps.Keys(d.roots))...)
	}
	defs := loadDefinitions(true)
	reached, err := defs.closure(roots, v3RefPrefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*spec.Schema, len(reached))
	for name, s := range defs.subset(reached, pb.gvks) {
		out[name] = &s
	}
	return out, nil
}
