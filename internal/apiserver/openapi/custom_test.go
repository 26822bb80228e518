package openapi

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/kube-openapi/pkg/validation/spec"
)

// A custom resource's version gets its own document: the kind and list named as Kubernetes
// names them, marked with their kinds, ObjectMeta reachable, and PATCH without strategic merge.
func TestCustomResourceDocument(t *testing.T) {
	schema := &spec.Schema{}
	if err := json.Unmarshal([]byte(`{"type":"object","properties":{"spec":{"type":"object","properties":{"n":{"type":"integer"}}}}}`), schema); err != nil {
		t.Fatal(err)
	}
	docs, err := BuildV3([]Resource{{Group: "stable.example.com", Version: "v1", Kind: "CronTab", Resource: "crontabs",
		Namespaced: true, Subresources: []string{"status", "scale"}, Schema: schema}})
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := docs["apis/stable.example.com/v1"]
	if !ok {
		t.Fatalf("documents: %v", keys(docs))
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	kind := doc.Components.Schemas["com.example.stable.v1.CronTab"]
	if kind == nil || doc.Components.Schemas["com.example.stable.v1.CronTabList"] == nil || doc.Components.Schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] == nil {
		t.Fatalf("schemas: %v", keys(doc.Components.Schemas))
	}
	gvk, _ := json.Marshal(kind["x-kubernetes-group-version-kind"])
	if string(gvk) != `[{"group":"stable.example.com","kind":"CronTab","version":"v1"}]` {
		t.Fatalf("kind extension %s", gvk)
	}
	props, _ := json.Marshal(kind["properties"])
	for _, want := range []string{`"apiVersion"`, `"kind"`, `"metadata"`, `"spec"`} {
		if !strings.Contains(string(props), want) {
			t.Fatalf("properties lack %s: %s", want, props)
		}
	}
	patch := string(doc.Paths["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"])
	if !strings.Contains(patch, "application/merge-patch+json") || strings.Contains(patch, "strategic-merge-patch") {
		t.Fatalf("patch operation: %s", patch)
	}
}
