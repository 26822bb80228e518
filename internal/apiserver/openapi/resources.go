package openapi

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// allVerbs is what a nil Resource.Verbs stands for.
var allVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

// addResource declares the paths Kubernetes serves for r:
//
//	{prefix}[/namespaces/{namespace}]/{resource}          list, create, deletecollection
//	{prefix}[/namespaces/{namespace}]/{resource}/{name}   read, replace, patch, delete
//	{prefix}/{resource}                                   list across namespaces (namespaced only)
//	{prefix}/watch/...                                    the deprecated watch paths
//	{prefix}[/namespaces/{namespace}]/{resource}/{name}/{subresource}
//
// Operation IDs follow Kubernetes' scheme (listCoreV1NamespacedPod,
// readAppsV1NamespacedDeploymentScale, ...), which generated clients and
// documentation tools key on.
func (b *pathBuilder) addResource(r Resource) error {
	if r.Version == "" || r.Kind == "" || r.Resource == "" {
		return errors.New("version, kind and resource are required")
	}
	gv := schema.GroupVersion{Group: r.Group, Version: r.Version}
	gvk := gv.WithKind(r.Kind)
	model, err := b.model(gvk)
	if err != nil {
		return err
	}
	verbs := r.Verbs
	if verbs == nil {
		verbs = allVerbs
	}
	can := func(v string) bool { return slices.Contains(verbs, v) }
	// Create-only kinds (SelfSubjectAccessReview, TokenReview) have no
	// list type at all.
	var listModel string
	if can("list") {
		if listModel, err = b.model(gv.WithKind(r.Kind + "List")); err != nil {
			return err
		}
	}

	d := b.doc(gv)
	s := newScope(gv, r)

	collection := spec.PathItem{}
	collection.Parameters = s.params(false)
	if can("list") {
		collection.Get = b.operation(d, s.collection, op{
			id: "list" + s.id(""), desc: "list or watch objects of kind " + r.Kind, action: "list", gvk: &gvk,
			params: listParams, consumes: mediaAny, produces: mediaLists,
			responses: map[int]string{200: listModel},
		})
	}
	if can("create") {
		collection.Post = b.operation(d, s.collection, op{
			id: "create" + s.id(""), desc: "create " + article(r.Kind), action: "post", gvk: &gvk,
			params: writeParams, body: model, bodyRequired: true, consumes: mediaAny, produces: mediaObjects,
			responses: map[int]string{200: model, 201: model, 202: model},
		})
	}
	if can("deletecollection") {
		collection.Delete = b.operation(d, s.collection, op{
			id: "delete" + s.opPrefix + "Collection" + s.ns + r.Kind, desc: "delete collection of " + r.Kind,
			action: "deletecollection", gvk: &gvk,
			params: deleteCollectionParams, body: modelDeleteOptions, consumes: mediaAny, produces: mediaObjects,
			responses: map[int]string{200: modelStatus},
		})
	}
	b.addPath(d, s.collection, collection)

	item := spec.PathItem{}
	item.Parameters = s.params(true)
	if can("get") {
		item.Get = b.operation(d, s.item, op{
			id: "read" + s.id(""), desc: "read the specified " + r.Kind, action: "get", gvk: &gvk,
			consumes: mediaAny, produces: mediaObjects, responses: map[int]string{200: model},
		})
	}
	if can("update") {
		item.Put = b.operation(d, s.item, op{
			id: "replace" + s.id(""), desc: "replace the specified " + r.Kind, action: "put", gvk: &gvk,
			params: writeParams, body: model, bodyRequired: true, consumes: mediaAny, produces: mediaObjects,
			responses: map[int]string{200: model, 201: model},
		})
	}
	if can("patch") {
		item.Patch = b.operation(d, s.item, op{
			id: "patch" + s.id(""), desc: "partially update the specified " + r.Kind, action: "patch", gvk: &gvk,
			params: patchParams, body: modelPatch, bodyRequired: true, consumes: patchMedia(r), produces: mediaObjects,
			responses: map[int]string{200: model, 201: model},
		})
	}
	if can("delete") {
		item.Delete = b.operation(d, s.item, op{
			id: "delete" + s.id(""), desc: "delete " + article(r.Kind), action: "delete", gvk: &gvk,
			params: deleteParams, body: modelDeleteOptions, consumes: mediaAny, produces: mediaObjects,
			responses: map[int]string{200: modelStatus, 202: modelStatus},
		})
	}
	b.addPath(d, s.item, item)

	if r.Namespaced && can("list") {
		all := s.prefix + "/" + r.Resource
		b.addPath(d, all, spec.PathItem{
			PathItemProps: spec.PathItemProps{Get: b.operation(d, all, op{
				id:   "list" + s.opPrefix + r.Kind + "ForAllNamespaces",
				desc: "list or watch objects of kind " + r.Kind, action: "list", gvk: &gvk,
				params: listParams, consumes: mediaAny, produces: mediaLists,
				responses: map[int]string{200: listModel},
			}), Parameters: []spec.Parameter{paramPretty}},
		})
	}

	if can("watch") {
		b.addWatchPaths(d, s, r, &gvk)
	}

	for _, sub := range r.Subresources {
		if err := b.addSubresource(d, s, r, sub, can); err != nil {
			return err
		}
	}
	return nil
}

// addWatchPaths declares the /watch/ paths. Kubernetes deprecated them in
// favour of ?watch=true on the list paths but still serves and documents
// them.
func (b *pathBuilder) addWatchPaths(d *gvDoc, s scope, r Resource, gvk *schema.GroupVersionKind) {
	watch := func(path, id, desc, action string, params []spec.Parameter) {
		b.addPath(d, path, spec.PathItem{
			PathItemProps: spec.PathItemProps{Get: b.operation(d, path, op{
				id: id, desc: desc, action: action, gvk: gvk, deprecated: true,
				params: listParams, consumes: mediaAny, produces: mediaWatch,
				responses: map[int]string{200: modelWatchEvent},
			}), Parameters: params},
		})
	}
	base := s.prefix + "/watch" + s.nsPath + "/" + r.Resource
	watch(base, "watch"+s.id("List"),
		"watch individual changes to a list of "+r.Kind+". deprecated: use the 'watch' parameter with a list operation instead.",
		"watchlist", s.params(false))
	watch(base+"/{name}", "watch"+s.id(""),
		"watch changes to an object of kind "+r.Kind+". deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.",
		"watch", s.params(true))
	if r.Namespaced {
		watch(s.prefix+"/watch/"+r.Resource, "watch"+s.opPrefix+r.Kind+"ListForAllNamespaces",
			"watch individual changes to a list of "+r.Kind+". deprecated: use the 'watch' parameter with a list operation instead.",
			"watchlist", []spec.Parameter{paramPretty})
	}
}

// subresource kinds other than the parent's own.
var subresourceKinds = map[string]schema.GroupVersionKind{
	"scale":    {Group: "autoscaling", Version: "v1", Kind: "Scale"},
	"binding":  {Version: "v1", Kind: "Binding"},
	"eviction": {Group: "policy", Version: "v1", Kind: "Eviction"},
	"token":    {Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"},
}

// addSubresource declares {item}/{sub}. Subresources whose API this package
// does not know (exec, attach, portforward, proxy: streaming "connect"
// endpoints that no client discovers through OpenAPI) are left out.
func (b *pathBuilder) addSubresource(d *gvDoc, s scope, r Resource, sub string, can func(string) bool) error {
	path := s.item + "/" + sub
	suffix := upperFirst(sub)
	parentGVK := s.gv.WithKind(r.Kind)
	item := spec.PathItem{}
	item.Parameters = s.params(true)

	switch sub {
	case "finalize":
		// namespaces/finalize only replaces spec.finalizers.
		parent := can
		can = func(v string) bool { return v == "update" && parent(v) }
		fallthrough
	case "status", "scale", "ephemeralcontainers", "resize":
		// Read/replace/patch of a slice of the object (or, for scale, of
		// an autoscaling/v1 Scale view of it), following the parent's verbs.
		gvk := parentGVK
		if k, ok := subresourceKinds[sub]; ok {
			gvk = k
		}
		model, err := b.model(gvk)
		if err != nil {
			return err
		}
		what := sub + " of the specified " + r.Kind
		if can("get") {
			item.Get = b.operation(d, path, op{
				id: "read" + s.id(suffix), desc: "read " + what, action: "get", gvk: &gvk,
				consumes: mediaAny, produces: mediaObjects, responses: map[int]string{200: model},
			})
		}
		if can("update") {
			item.Put = b.operation(d, path, op{
				id: "replace" + s.id(suffix), desc: "replace " + what, action: "put", gvk: &gvk,
				params: writeParams, body: model, bodyRequired: true, consumes: mediaAny, produces: mediaObjects,
				responses: map[int]string{200: model, 201: model},
			})
		}
		if can("patch") {
			item.Patch = b.operation(d, path, op{
				id: "patch" + s.id(suffix), desc: "partially update " + what, action: "patch", gvk: &gvk,
				params: patchParams, body: modelPatch, bodyRequired: true, consumes: patchMedia(r), produces: mediaObjects,
				responses: map[int]string{200: model, 201: model},
			})
		}
	case "binding", "eviction", "token":
		// Create-only subresources taking their own kind.
		gvk := subresourceKinds[sub]
		model, err := b.model(gvk)
		if err != nil {
			return err
		}
		item.Post = b.operation(d, path, op{
			id: "create" + s.id(suffix), desc: "create " + gvk.Kind + " for the specified " + r.Kind, action: "post", gvk: &gvk,
			params: writeParams, body: model, bodyRequired: true, consumes: mediaAny, produces: mediaObjects,
			responses: map[int]string{200: model, 201: model, 202: model},
		})
	case "log":
		item.Get = b.operation(d, path, op{
			id: "read" + s.id(suffix), desc: "read log of the specified " + r.Kind, action: "get", gvk: &parentGVK,
			params: logParams, consumes: mediaAny, produces: mediaText,
			responses: map[int]string{200: modelString},
		})
	default:
		return nil
	}
	b.addPath(d, path, item)
	return nil
}

// scope holds the URL and naming pieces shared by a resource's paths.
type scope struct {
	gv         schema.GroupVersion
	namespaced bool
	kind       string
	prefix     string // "/api/v1", "/apis/apps/v1"
	nsPath     string // "/namespaces/{namespace}" or ""
	ns         string // "Namespaced" or "", as it appears in operation IDs
	opPrefix   string // "CoreV1"
	collection string
	item       string
}

func newScope(gv schema.GroupVersion, r Resource) scope {
	s := scope{gv: gv, namespaced: r.Namespaced, kind: r.Kind, prefix: "/" + gvPath(gv), opPrefix: opPrefix(gv)}
	if r.Namespaced {
		s.nsPath, s.ns = "/namespaces/{namespace}", "Namespaced"
	}
	s.collection = s.prefix + s.nsPath + "/" + r.Resource
	s.item = s.collection + "/{name}"
	return s
}

// id is the operation ID after its verb: "CoreV1NamespacedPod" + suffix.
func (s scope) id(suffix string) string {
	return s.opPrefix + s.ns + s.kind + suffix
}

// params are the path-level parameters: {name} and {namespace} as the path
// has them, and pretty, which every Kubernetes endpoint accepts.
func (s scope) params(named bool) []spec.Parameter {
	var ps []spec.Parameter
	if named {
		ps = append(ps, pathParam("name", fmt.Sprintf("name of the %s", s.kind)))
	}
	if s.namespaced {
		ps = append(ps, paramNamespace)
	}
	return append(ps, paramPretty)
}

// article prefixes a kind with "a" or "an", as the descriptions read.
func article(kind string) string {
	if kind != "" && slices.Contains([]byte("AEIOU"), kind[0]) {
		return "an " + kind
	}
	return "a " + kind
}

// patchMedia is what a resource's PATCH accepts.
func patchMedia(r Resource) []string {
	if r.Schema != nil {
		return mediaPatchCustom
	}
	return mediaPatch
}
