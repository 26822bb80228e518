package openapi

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Definitions every group/version refers to. Their names come from the
// generated model-name accessors, never spelled out by hand.
var (
	modelDeleteOptions   = metav1.DeleteOptions{}.OpenAPIModelName()
	modelStatus          = metav1.Status{}.OpenAPIModelName()
	modelWatchEvent      = metav1.WatchEvent{}.OpenAPIModelName()
	modelPatch           = metav1.Patch{}.OpenAPIModelName()
	modelAPIResourceList = metav1.APIResourceList{}.OpenAPIModelName()
)

// modelString stands for a plain-text response (pods/log) rather than a
// definition.
const modelString = "string"

// gvDoc is what one group/version contributes: its paths (v2 form; v3 is
// converted from it) and the definitions its operations reference.
type gvDoc struct {
	gv    schema.GroupVersion
	paths map[string]spec.PathItem
	roots map[string]bool
}

// pathBuilder turns a resource list into per-group/version paths and
// records which kinds each definition stands for.
type pathBuilder struct {
	docs map[schema.GroupVersion]*gvDoc
	gvks map[string][]schema.GroupVersionKind // definition name → kinds
	ids  map[string]string                    // operationId → path, to catch duplicates
	err  error                                // first duplicate found
	// customNames and custom are the definitions of custom resources (v3 form).
	customNames map[schema.GroupVersionKind]string
	custom      definitions
}

func buildPaths(resources []Resource) (*pathBuilder, error) {
	b := &pathBuilder{
		docs: make(map[schema.GroupVersion]*gvDoc),
		gvks: make(map[string][]schema.GroupVersionKind),
		ids:  make(map[string]string),
	}
	// Status is the core group's kind, whatever group returns it.
	b.gvks[modelStatus] = []schema.GroupVersionKind{{Version: "v1", Kind: "Status"}}
	for _, r := range resources {
		if r.Schema != nil {
			b.addCustom(r)
		}
	}
	for _, r := range resources {
		err := b.addResource(r)
		if err == nil {
			err = b.err
		}
		if err != nil {
			return nil, fmt.Errorf("openapi: %s/%s %s: %w", r.Group, r.Version, r.Resource, err)
		}
	}
	return b, nil
}

// sortedDocs returns the group/versions in a stable order.
func (b *pathBuilder) sortedDocs() []*gvDoc {
	docs := make([]*gvDoc, 0, len(b.docs))
	for _, d := range b.docs {
		docs = append(docs, d)
	}
	slices.SortFunc(docs, func(a, c *gvDoc) int { return strings.Compare(gvPath(a.gv), gvPath(c.gv)) })
	return docs
}

// doc returns the group/version's document, creating it with the
// group/version root (the API resource list) and registering the meta
// kinds Kubernetes registers in every group/version.
func (b *pathBuilder) doc(gv schema.GroupVersion) *gvDoc {
	if d, ok := b.docs[gv]; ok {
		return d
	}
	d := &gvDoc{gv: gv, paths: make(map[string]spec.PathItem), roots: make(map[string]bool)}
	b.docs[gv] = d
	b.gvks[modelDeleteOptions] = append(b.gvks[modelDeleteOptions], gv.WithKind("DeleteOptions"))
	b.gvks[modelWatchEvent] = append(b.gvks[modelWatchEvent], gv.WithKind("WatchEvent"))

	root := "/" + gvPath(gv) + "/"
	b.addPath(d, root, spec.PathItem{PathItemProps: spec.PathItemProps{
		Get: b.operation(d, root, op{
			id:        "get" + opPrefix(gv) + "APIResources",
			desc:      "get available resources",
			produces:  mediaObjects,
			consumes:  mediaObjects,
			responses: map[int]string{200: modelAPIResourceList},
		}),
	}})
	return d
}

// model returns the definition name for gvk and records that the
// definition stands for that kind.
func (b *pathBuilder) model(gvk schema.GroupVersionKind) (string, error) {
	name, ok := b.customNames[gvk]
	if !ok {
		var err error
		if name, err = modelNameForGVK(gvk); err != nil {
			return "", err
		}
	}
	if !slices.Contains(b.gvks[name], gvk) {
		b.gvks[name] = append(b.gvks[name], gvk)
	}
	return name, nil
}

// op describes one operation before it is rendered.
type op struct {
	id, desc, action string
	gvk              *schema.GroupVersionKind
	params           []spec.Parameter
	body             string // definition of the request body, "" for none
	bodyRequired     bool
	consumes         []string
	produces         []string
	responses        map[int]string // status code → definition ("" for no body)
	deprecated       bool
}

var statusText = map[int]string{200: "OK", 201: "Created", 202: "Accepted", 401: "Unauthorized"}

func (b *pathBuilder) operation(d *gvDoc, path string, o op) *spec.Operation {
	if prev, dup := b.ids[o.id]; dup && b.err == nil {
		// Swagger requires unique operation IDs; a clash means two resources
		// of one kind and scope in the same group/version.
		b.err = fmt.Errorf("operationId %s used by both %s and %s", o.id, prev, path)
	}
	b.ids[o.id] = path

	out := &spec.Operation{}
	out.ID = o.id
	out.Description = o.desc
	out.Tags = []string{opTag(d.gv)}
	out.Schemes = []string{"https"}
	out.Consumes = o.consumes
	out.Produces = o.produces
	out.Deprecated = o.deprecated
	out.Parameters = slices.Clone(o.params)
	if o.body != "" {
		out.Parameters = append([]spec.Parameter{bodyParam(o.body, o.bodyRequired)}, out.Parameters...)
		d.roots[o.body] = true
	}
	responses := map[int]spec.Response{401: {ResponseProps: spec.ResponseProps{Description: statusText[401]}}}
	for code, model := range o.responses {
		r := spec.Response{ResponseProps: spec.ResponseProps{Description: statusText[code]}}
		switch model {
		case "":
		case modelString:
			r.Schema = &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"}}}
		default:
			r.Schema = spec.RefSchema(v2RefPrefix + model)
			d.roots[model] = true
		}
		responses[code] = r
	}
	out.Responses = &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: responses}}

	if o.action != "" || o.gvk != nil {
		out.Extensions = spec.Extensions{}
		if o.action != "" {
			out.Extensions[extAction] = o.action
		}
		if o.gvk != nil {
			out.Extensions[extGVK] = gvkObject(*o.gvk)
		}
	}
	return out
}

func (b *pathBuilder) addPath(d *gvDoc, path string, item spec.PathItem) {
	p := item.PathItemProps
	if p.Get == nil && p.Put == nil && p.Post == nil && p.Patch == nil && p.Delete == nil {
		return
	}
	if _, dup := d.paths[path]; dup && b.err == nil {
		b.err = fmt.Errorf("path %s declared twice", path)
	}
	d.paths[path] = item
}

// addCustom defines a custom resource's kind and list from its schema, with apiVersion, kind
// and metadata as every object has them.
func (b *pathBuilder) addCustom(r Resource) {
	if b.customNames == nil {
		b.customNames = map[schema.GroupVersionKind]string{}
		b.custom = definitions{}
	}
	gv := schema.GroupVersion{Group: r.Group, Version: r.Version}
	name := customModelName(gv, r.Kind)
	b.customNames[gv.WithKind(r.Kind)] = name
	b.customNames[gv.WithKind(r.Kind+"List")] = name + "List"

	str := func(desc string) spec.Schema {
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"}, Description: desc}}
	}
	ref := func(model string) spec.Schema {
		return spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(v3RefPrefix + model)}}
	}
	obj := *r.Schema
	obj.Properties = maps.Clone(obj.Properties)
	if obj.Properties == nil {
		obj.Properties = map[string]spec.Schema{}
	}
	obj.Properties["apiVersion"] = str(apiVersionDoc)
	obj.Properties["kind"] = str(kindDoc)
	obj.Properties["metadata"] = ref(metav1.ObjectMeta{}.OpenAPIModelName())
	b.custom[name] = obj
	b.custom[name+"List"] = spec.Schema{SchemaProps: spec.SchemaProps{
		Description: r.Kind + "List is a list of " + r.Kind,
		Type:        spec.StringOrArray{"object"}, Required: []string{"items"},
		Properties: map[string]spec.Schema{
			"apiVersion": str(apiVersionDoc), "kind": str(kindDoc),
			"metadata": ref(metav1.ListMeta{}.OpenAPIModelName()),
			"items": {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"array"},
				Items: &spec.SchemaOrArray{Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(v3RefPrefix + name)}}}}},
		},
	}}
}

const (
	apiVersionDoc = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
	kindDoc       = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)

// customModelName is Kubernetes' definition name for a custom kind: the group reversed, then
// version and kind ("stable.example.com", "v1", "CronTab" → "com.example.stable.v1.CronTab").
func customModelName(gv schema.GroupVersion, kind string) string {
	parts := strings.Split(gv.Group, ".")
	slices.Reverse(parts)
	return strings.Join(parts, ".") + "." + gv.Version + "." + kind
}
