package openapi

import (
	"fmt"
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
	name, err := modelNameForGVK(gvk)
	if err != nil {
		return "", err
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
