package openapi

import (
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// friendlyName turns a Go type name as openapi-gen may emit it
// ("k8s.io/api/core/v1.Pod") into the name Kubernetes publishes definitions
// under ("io.k8s.api.core.v1.Pod"): the module host reversed, then the
// package path with dots. Names that are already in that form (the
// generator uses OpenAPIModelName() for packages tagged with
// +k8s:openapi-model-package, which covers every k8s.io/api and
// apimachinery package we generate today) are returned unchanged, so the
// conversion only matters for types from untagged packages.
func friendlyName(name string) string {
	slash := strings.LastIndex(name, "/")
	if slash < 0 {
		return name
	}
	dot := strings.Index(name[slash:], ".")
	if dot < 0 {
		return name
	}
	pkg, typ := name[:slash+dot], name[slash+dot+1:]
	segments := strings.Split(pkg, "/")
	host := strings.Split(segments[0], ".")
	for i, j := 0, len(host)-1; i < j; i, j = i+1, j-1 {
		host[i], host[j] = host[j], host[i]
	}
	segments[0] = strings.Join(host, ".")
	return strings.Join(segments, ".") + "." + typ
}

// modelNamer is implemented by k8s.io/api types (zz_generated.model_name.go).
type modelNamer interface{ OpenAPIModelName() string }

// modelNameForGVK returns the definition name of the Go type client-go's
// scheme registers for gvk. Going through the scheme (rather than guessing
// a package from the group name) is what keeps e.g.
// rbac.authorization.k8s.io/v1 Role mapped to io.k8s.api.rbac.v1.Role.
func modelNameForGVK(gvk schema.GroupVersionKind) (string, error) {
	obj, err := scheme.Scheme.New(gvk)
	if err != nil {
		return "", fmt.Errorf("no Go type for %s: %w", gvk, err)
	}
	if n, ok := obj.(modelNamer); ok {
		return n.OpenAPIModelName(), nil
	}
	t := reflect.TypeOf(obj)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return friendlyName(t.PkgPath() + "." + t.Name()), nil
}

// gvPath is the key of a group/version in the /openapi/v3 index and the
// URL prefix of its resources without the leading slash: "api/v1" for the
// core group, "apis/<group>/<version>" otherwise.
func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// opPrefix is the group/version part of Kubernetes operation IDs:
// "CoreV1", "AppsV1", "RbacAuthorizationV1", "AutoscalingV2".
func opPrefix(gv schema.GroupVersion) string {
	group := gv.Group
	if group == "" {
		group = "core"
	}
	group = strings.TrimSuffix(group, ".k8s.io")
	var b strings.Builder
	for _, part := range strings.FieldsFunc(group, func(r rune) bool { return r == '.' || r == '-' }) {
		b.WriteString(upperFirst(part))
	}
	b.WriteString(upperFirst(gv.Version))
	return b.String()
}

// opTag is the tag Kubernetes puts on every operation of a group/version:
// "core_v1", "apps_v1", "rbacAuthorization_v1".
func opTag(gv schema.GroupVersion) string {
	p := opPrefix(gv)
	p = strings.TrimSuffix(p, upperFirst(gv.Version))
	return lowerFirst(p) + "_" + gv.Version
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
