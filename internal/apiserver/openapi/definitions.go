package openapi

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	builderutil "k8s.io/kube-openapi/pkg/builder3/util"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/schemamutation"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

const (
	v2RefPrefix = "#/definitions/"
	v3RefPrefix = "#/components/schemas/"

	// extGVK marks a definition (as a list of {group, version, kind}) or an
	// operation (as one such object) with the kinds it stands for. kubectl
	// looks schemas up by it: the shapes differ on purpose, and kubectl's
	// parsers expect exactly these (a list on definitions, a single object on
	// operations).
	extGVK = "x-kubernetes-group-version-kind"
	// extAction is the kind of API request an operation is
	// (get, list, watch, ...), as Kubernetes labels it.
	extAction = "x-kubernetes-action"
)

// definitions holds the generated schemas keyed by their published
// (friendly) name, with $refs already pointing at one document format.
type definitions map[string]spec.Schema

// loadDefinitions instantiates the generated definitions for one document
// format. The generated code calls back for every reference, so the v2 and
// v3 variants differ only in the prefix their $refs carry plus the
// per-format adjustments Kubernetes makes:
//
//   - v2: types with a v3-only schema (IntOrString and Quantity use oneOf)
//     carry their Swagger 2.0 schema in the x-kubernetes-v2-schema
//     extension, which replaces the main schema; defaults are pruned,
//     because Swagger 2.0 forbids siblings of $ref and Kubernetes' own v2
//     document carries none.
//   - v3: the v2 extension is dropped and every $ref with siblings
//     (description, default) is wrapped in allOf, as OpenAPI 3.0 ignores
//     siblings of $ref; kubectl explain and its schema walkers understand
//     that shape.
func loadDefinitions(v3 bool) definitions {
	prefix := v2RefPrefix
	if v3 {
		prefix = v3RefPrefix
	}
	ref := func(name string) spec.Ref {
		return spec.MustCreateRef(prefix + common.EscapeJsonPointer(friendlyName(name)))
	}
	generated := GetOpenAPIDefinitions(ref)
	defs := make(definitions, len(generated))
	for name, def := range generated {
		s := def.Schema
		if v3 {
			if _, ok := s.Extensions[common.ExtensionV2Schema]; ok {
				s.Extensions = maps.Clone(s.Extensions)
				delete(s.Extensions, common.ExtensionV2Schema)
				if len(s.Extensions) == 0 {
					s.Extensions = nil
				}
			}
			s = *builderutil.WrapRefs(&s)
		} else {
			if embedded, ok := s.Extensions[common.ExtensionV2Schema].(spec.Schema); ok {
				s = embedded
			}
			s = *pruneDefaults(&s)
		}
		defs[friendlyName(name)] = s
	}
	return defs
}

// pruneDefaults returns schema without any "default", copying only what it
// changes.
func pruneDefaults(s *spec.Schema) *spec.Schema {
	w := schemamutation.Walker{
		SchemaCallback: func(s *spec.Schema) *spec.Schema {
			if s.Default == nil {
				return s
			}
			c := *s
			c.Default = nil
			return &c
		},
		RefCallback: schemamutation.RefCallbackNoop,
	}
	return w.WalkSchema(s)
}

// closure returns the names of roots and of every definition they reach
// through $refs, failing on a reference to a definition that does not
// exist: kubectl's v2 parser rejects a whole document over one dangling
// reference.
func (d definitions) closure(roots []string, refPrefix string) (map[string]bool, error) {
	seen := make(map[string]bool)
	var missing []string
	var visit func(name string)
	w := schemamutation.Walker{
		SchemaCallback: schemamutation.SchemaCallBackNoop,
		RefCallback: func(r *spec.Ref) *spec.Ref {
			if s := r.String(); s != "" {
				visit(unescapeJSONPointer(strings.TrimPrefix(s, refPrefix)))
			}
			return r
		},
	}
	visit = func(name string) {
		if seen[name] {
			return
		}
		s, ok := d[name]
		if !ok {
			missing = append(missing, name)
			return
		}
		seen[name] = true
		w.WalkSchema(&s)
	}
	for _, r := range roots {
		visit(r)
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("no OpenAPI definitions for %s; add their packages to hack/update-openapi.sh",
			strings.Join(slices.Compact(missing), ", "))
	}
	return seen, nil
}

// subset returns the definitions named in names, with the
// x-kubernetes-group-version-kind extension set from gvks.
func (d definitions) subset(names map[string]bool, gvks map[string][]schema.GroupVersionKind) spec.Definitions {
	out := make(spec.Definitions, len(names))
	for name := range names {
		s := d[name]
		if kinds := gvks[name]; len(kinds) > 0 {
			s.Extensions = maps.Clone(s.Extensions)
			if s.Extensions == nil {
				s.Extensions = spec.Extensions{}
			}
			s.Extensions[extGVK] = gvkList(kinds)
		}
		out[name] = s
	}
	return out
}

// gvkList renders kinds in the list form definitions carry, sorted so the
// documents (and so their hashes and ETags) are stable.
func gvkList(kinds []schema.GroupVersionKind) []any {
	kinds = slices.Clone(kinds)
	slices.SortFunc(kinds, func(a, b schema.GroupVersionKind) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Kind, b.Kind))
	})
	kinds = slices.Compact(kinds)
	out := make([]any, len(kinds))
	for i, k := range kinds {
		out[i] = gvkObject(k)
	}
	return out
}

func gvkObject(k schema.GroupVersionKind) map[string]any {
	return map[string]any{"group": k.Group, "version": k.Version, "kind": k.Kind}
}

// unescapeJSONPointer reverses common.EscapeJsonPointer.
func unescapeJSONPointer(p string) string {
	p = strings.ReplaceAll(p, "~1", "/")
	return strings.ReplaceAll(p, "~0", "~")
}
