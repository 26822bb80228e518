package customresource

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func props(t *testing.T, js string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	p := &apiextensionsv1.JSONSchemaProps{}
	if err := json.Unmarshal([]byte(js), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func obj(t *testing.T, js string) map[string]interface{} {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPruneAndDefault(t *testing.T) {
	s := props(t, `{"type":"object","properties":{
		"spec":{"type":"object","properties":{
			"n":{"type":"integer","default":3},
			"items":{"type":"array","items":{"type":"object","properties":{"a":{"type":"string","default":"x"}}}},
			"free":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"k":{"type":"object","properties":{}}}},
			"m":{"type":"object","additionalProperties":{"type":"object","properties":{"v":{"type":"string"}}}},
			"tmpl":{"type":"object","x-kubernetes-embedded-resource":true,"properties":{}},
			"port":{"x-kubernetes-int-or-string":true}}}}}`)
	o := obj(t, `{"apiVersion":"g/v1","kind":"K","metadata":{"name":"a","anything":1},"junk":1,
		"spec":{"items":[{"b":1},{"a":"y"}],"free":{"z":1,"k":{"drop":1}},"m":{"one":{"v":"1","w":2}},
		"tmpl":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{}},"port":"http"}}`)
	var pruned []string
	pruneObject(o, s, "", true, &pruned)
	if got := strings.Join(pruned, " "); got != "junk spec.free.k.drop spec.items[0].b spec.m.one.w spec.tmpl.spec" {
		t.Fatalf("pruned %q", got)
	}
	applyDefaults(o, s)
	data, _ := json.Marshal(o)
	want := `{"apiVersion":"g/v1","kind":"K","metadata":{"anything":1,"name":"a"},"spec":{"free":{"k":{},"z":1},"items":[{"a":"x"},{"a":"y"}],"m":{"one":{"v":"1"}},"n":3,"port":"http","tmpl":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}}}`
	if string(data) != want {
		t.Fatalf("got  %s\nwant %s", data, want)
	}
}

func TestResourcesFromDefinition(t *testing.T) {
	crd := &apiextensionsv1.CustomResourceDefinition{Spec: apiextensionsv1.CustomResourceDefinitionSpec{
		Group: "g.io", Scope: apiextensionsv1.ClusterScoped,
		Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "things", Singular: "thing", Kind: "Thing", ListKind: "ThingList"},
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
			{Name: "v2", Served: true, Storage: true, Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: props(t,
				`{"type":"object","properties":{"spec":{"type":"object","properties":{"n":{"type":"integer","maximum":5}}}}}`)},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
					{Name: "N", Type: "integer", JSONPath: ".spec.n"},
					{Name: "Missing", Type: "string", JSONPath: ".spec.none"},
					{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"}}},
			{Name: "v1", Served: false, Storage: false},
			{Name: "v1beta1", Served: true, Storage: false},
		}}}
	rs, err := Resources(crd)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Version != "v2" || rs[0].Stored != nil || rs[1].Version != "v1beta1" || rs[1].Stored == nil || rs[0].Namespaced {
		t.Fatalf("resources %+v", rs)
	}
	v2 := rs[0]
	u := v2.New().(*unstructured.Unstructured)
	u.Object = obj(t, `{"apiVersion":"g.io/v2","kind":"Thing","metadata":{"name":"a","creationTimestamp":"2026-01-01T00:00:00Z"},"spec":{"n":7}}`)
	if errs := v2.Validate(u); len(errs) != 1 || errs[0].Error() != "spec.n: Invalid value: 7: spec.n in body should be less than or equal to 5" {
		t.Fatalf("validate: %v", errs)
	}
	now, _ := time.Parse(time.RFC3339, "2026-01-01T00:05:00Z")
	if cells := fmt.Sprint(v2.Row(u, now)); cells != "[a 7 <nil> 5m]" {
		t.Fatalf("row %s", cells)
	}
	viewed := rs[1].Stored.FromStorage(u).(*unstructured.Unstructured)
	if viewed.GetAPIVersion() != "g.io/v1beta1" || u.GetAPIVersion() != "g.io/v2" {
		t.Fatalf("view %s, stored %s", viewed.GetAPIVersion(), u.GetAPIVersion())
	}
}
