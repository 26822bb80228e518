package openapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/cli-runtime/pkg/resource"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/openapi"
	"k8s.io/client-go/openapi/openapitest"
	"k8s.io/client-go/openapi3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
	explainv2 "k8s.io/kubectl/pkg/explain/v2"
	kubectlopenapi "k8s.io/kubectl/pkg/util/openapi"
)

// testResources is a small slice of what the server serves: a namespaced
// kind with status, one with scale and status, and a cluster-scoped one.
var testResources = []Resource{
	{Version: "v1", Kind: "Pod", Resource: "pods", Namespaced: true,
		Subresources: []string{"status", "binding", "eviction", "log", "exec"}},
	{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespaced: true,
		Subresources: []string{"status", "scale"}},
	{Version: "v1", Kind: "Node", Resource: "nodes", Subresources: []string{"status"}},
}

var (
	gvkPod        = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	gvkNode       = schema.GroupVersionKind{Version: "v1", Kind: "Node"}
	gvkDeployment = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	gvkScale      = schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
)

func buildV2(t *testing.T) []byte {
	t.Helper()
	b, err := BuildV2(testResources)
	if err != nil {
		t.Fatalf("BuildV2: %v", err)
	}
	return b
}

func buildV3(t *testing.T) map[string][]byte {
	t.Helper()
	docs, err := BuildV3(testResources)
	if err != nil {
		t.Fatalf("BuildV3: %v", err)
	}
	return docs
}

// fakeV2Getter hands a parsed v2 document to kubectl's v2 consumers.
type fakeV2Getter struct{ doc *openapiv2.Document }

func (f fakeV2Getter) OpenAPISchema() (*openapiv2.Document, error) { return f.doc, nil }

func parseV2(t *testing.T, b []byte) *openapiv2.Document {
	t.Helper()
	doc, err := openapiv2.ParseDocument(b)
	if err != nil {
		t.Fatalf("gnostic cannot parse the v2 document: %v", err)
	}
	return doc
}

func fakeV3Client(docs map[string][]byte) openapi.Client {
	c := openapitest.NewFakeClient()
	for gv, b := range docs {
		c.PathsMap[gv] = openapitest.FakeGroupVersion{GVSpec: b}
	}
	return c
}

func TestBuildV2Definitions(t *testing.T) {
	var doc struct {
		Swagger     string                     `json:"swagger"`
		Paths       map[string]json.RawMessage `json:"paths"`
		Definitions map[string]spec.Schema     `json:"definitions"`
	}
	if err := json.Unmarshal(buildV2(t), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q", doc.Swagger)
	}
	pod, ok := doc.Definitions["io.k8s.api.core.v1.Pod"]
	if !ok {
		t.Fatal("no definition io.k8s.api.core.v1.Pod")
	}
	var kinds []map[string]string
	if err := pod.Extensions.GetObject(extGVK, &kinds); err != nil || len(kinds) != 1 ||
		kinds[0]["group"] != "" || kinds[0]["version"] != "v1" || kinds[0]["kind"] != "Pod" {
		t.Errorf("Pod %s = %v (%v), want [{'' v1 Pod}]", extGVK, kinds, err)
	}
	metadata := pod.Properties["metadata"]
	if ref := metadata.Ref.String(); ref != "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("Pod metadata $ref = %q", ref)
	}
	// Swagger 2.0 has no oneOf: IntOrString must use its v2 form.
	if ios := doc.Definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]; ios.Format != "int-or-string" || len(ios.OneOf) != 0 {
		t.Errorf("IntOrString v2 schema = %+v", ios.SchemaProps)
	}
	for _, p := range []string{
		"/api/v1/namespaces/{namespace}/pods",
		"/api/v1/namespaces/{namespace}/pods/{name}",
		"/api/v1/namespaces/{namespace}/pods/{name}/status",
		"/api/v1/namespaces/{namespace}/pods/{name}/binding",
		"/api/v1/namespaces/{namespace}/pods/{name}/eviction",
		"/api/v1/namespaces/{namespace}/pods/{name}/log",
		"/api/v1/pods",
		"/api/v1/watch/namespaces/{namespace}/pods",
		"/api/v1/nodes",
		"/api/v1/nodes/{name}",
		"/api/v1/nodes/{name}/status",
		"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
		"/apis/apps/v1/deployments",
	} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("missing path %s", p)
		}
	}
	for _, p := range []string{"/api/v1/namespaces/{namespace}/pods/{name}/exec", "/api/v1/namespaces/{namespace}/nodes"} {
		if _, ok := doc.Paths[p]; ok {
			t.Errorf("unexpected path %s", p)
		}
	}
}

// TestV2ParsesWithKubectl feeds the document to the parser behind kubectl's
// client-side validation and explain fallback, which rejects a document
// with any dangling $ref or unknown type, then looks kinds up the way
// kubectl does.
func TestV2ParsesWithKubectl(t *testing.T) {
	resources, err := kubectlopenapi.NewOpenAPIData(parseV2(t, buildV2(t)))
	if err != nil {
		t.Fatalf("kubectl cannot use the v2 document: %v", err)
	}
	for _, gvk := range []schema.GroupVersionKind{gvkPod, gvkNode, gvkDeployment, gvkScale} {
		if resources.LookupResource(gvk) == nil {
			t.Errorf("kubectl finds no schema for %s", gvk)
		}
	}
	if c := resources.GetConsumes(gvkDeployment, "PATCH"); !containsString(c, "application/strategic-merge-patch+json") {
		t.Errorf("Deployment PATCH consumes %v, want strategic merge patch", c)
	}
}

// TestFieldValidationSupport runs kubectl's own check for server-side field
// validation against both documents.
func TestFieldValidationSupport(t *testing.T) {
	// The verifiers consult CRDs only for kinds the documents lack; the
	// fake answers that there are none.
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{crds: "CustomResourceDefinitionList"})
	verifiers := map[string]resource.Verifier{
		"v2": resource.NewQueryParamVerifier(dyn, fakeV2Getter{parseV2(t, buildV2(t))}, resource.QueryParamFieldValidation),
		"v3": resource.NewQueryParamVerifierV3(dyn, fakeV3Client(buildV3(t)), resource.QueryParamFieldValidation),
	}
	for name, v := range verifiers {
		t.Run(name, func(t *testing.T) {
			for _, gvk := range []schema.GroupVersionKind{gvkPod, gvkNode, gvkDeployment} {
				if err := v.HasSupport(gvk); err != nil {
					t.Errorf("HasSupport(%s): %v", gvk, err)
				}
			}
			// A kind we do not serve must not be reported as supported,
			// or the positive results above would mean nothing.
			job := schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
			if err := v.HasSupport(job); err == nil {
				t.Errorf("HasSupport(%s) = nil for a kind not served", job)
			}
		})
	}
}

func TestBuildV3(t *testing.T) {
	docs := buildV3(t)
	if len(docs) != 2 || docs["api/v1"] == nil || docs["apis/apps/v1"] == nil {
		t.Fatalf("BuildV3 keys = %v, want api/v1 and apis/apps/v1", keys(docs))
	}
	root := openapi3.NewRoot(fakeV3Client(docs))
	apps, err := root.GVSpec(schema.GroupVersion{Group: "apps", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if apps.Version != "3.0.0" {
		t.Errorf("openapi = %q", apps.Version)
	}
	for p := range apps.Paths.Paths {
		if !strings.HasPrefix(p, "/apis/apps/v1/") {
			t.Errorf("apps/v1 document has foreign path %s", p)
		}
	}
	dep := apps.Components.Schemas["io.k8s.api.apps.v1.Deployment"]
	if dep == nil {
		t.Fatal("no io.k8s.api.apps.v1.Deployment in apps/v1 components")
	}
	// OpenAPI 3 ignores siblings of $ref, so refs with a description or
	// default are wrapped in allOf, as Kubernetes does.
	if spec := dep.Properties["spec"]; len(spec.AllOf) != 1 || spec.AllOf[0].Ref.String() != "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec" {
		t.Errorf("Deployment.spec = %+v", spec.SchemaProps)
	}
	if _, ok := apps.Components.Schemas["io.k8s.api.core.v1.Node"]; ok {
		t.Error("apps/v1 document carries core/v1 Node, which none of its paths reach")
	}

	patch := apps.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"].Patch
	if patch == nil || patch.RequestBody == nil || patch.RequestBody.Content["application/strategic-merge-patch+json"] == nil {
		t.Fatalf("Deployment PATCH request body = %+v", patch)
	}
	want := map[string]bool{"dryRun": true, "fieldManager": true, "fieldValidation": true, "force": true}
	for _, p := range patch.Parameters {
		if p.In == "query" {
			delete(want, p.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("Deployment PATCH lacks query parameters %v", keys(want))
	}
	for _, doc := range docs {
		checkRefs(t, doc)
	}
}

// checkRefs asserts every "$ref" in a v3 document names one of its schemas.
func checkRefs(t *testing.T, doc []byte) {
	t.Helper()
	var parsed struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &parsed); err != nil {
		t.Fatal(err)
	}
	var all any
	_ = json.Unmarshal(doc, &all)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && k == "$ref" {
					name, ok := strings.CutPrefix(s, v3RefPrefix)
					if _, found := parsed.Components.Schemas[name]; !ok || !found {
						t.Errorf("dangling $ref %s", s)
					}
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(all)
}

// TestExplain renders `kubectl explain` output with kubectl's own code.
func TestExplain(t *testing.T) {
	client := fakeV3Client(buildV3(t))
	cases := []struct {
		gvr    schema.GroupVersionResource
		fields []string
		want   []string
	}{
		{schema.GroupVersionResource{Version: "v1", Resource: "pods"}, []string{"spec", "containers"},
			[]string{"KIND:       Pod", "VERSION:    v1", "FIELD: containers <[]Container>", "image\t<string>"}},
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, []string{"spec", "replicas"},
			[]string{"GROUP:      apps", "KIND:       Deployment", "FIELD: replicas <integer>"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "nodes"}, nil,
			[]string{"KIND:       Node", "DESCRIPTION:", "FIELDS:", "spec\t<NodeSpec>"}},
	}
	for _, tc := range cases {
		t.Run(tc.gvr.Resource, func(t *testing.T) {
			var out bytes.Buffer
			if err := explainv2.PrintModelDescription(tc.fields, &out, client, tc.gvr, false, 0, "plaintext"); err != nil {
				t.Fatalf("explain: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("explain output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestStrategicMergeFromV3 computes an apply patch the way kubectl apply
// does from the v3 schema: containers must merge by name (patch merge key),
// which only works if the extensions survived generation and conversion.
func TestStrategicMergeFromV3(t *testing.T) {
	root := openapi3.NewRoot(fakeV3Client(buildV3(t)))
	core, err := root.GVSpec(schema.GroupVersion{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	var podSchema *spec.Schema
	for _, s := range core.Components.Schemas {
		var kinds []map[string]string
		if s.Extensions.GetObject(extGVK, &kinds) == nil && len(kinds) == 1 && kinds[0]["kind"] == "Pod" {
			podSchema = s
		}
	}
	if podSchema == nil {
		t.Fatal("no schema carries the Pod kind")
	}
	original := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x"},{"name":"b","image":"y"}]}}`)
	modified := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"z"},{"name":"b","image":"y"}]}}`)
	meta := strategicpatch.PatchMetaFromOpenAPIV3{Schema: podSchema, SchemaList: core.Components.Schemas}
	patch, err := strategicpatch.CreateThreeWayMergePatch(original, modified, original, meta, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(patch, []byte(`"$setElementOrder/containers"`)) {
		t.Errorf("patch %s does not merge containers by name", patch)
	}
}

func TestBuildErrors(t *testing.T) {
	cases := map[string][]Resource{
		"unknown kind":    {{Version: "v1", Kind: "Gizmo", Resource: "gizmos"}},
		"missing version": {{Kind: "Pod", Resource: "pods"}},
		"duplicate":       {testResources[0], testResources[0]},
	}
	for name, rs := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := BuildV2(rs); err == nil {
				t.Error("BuildV2 succeeded")
			}
			if _, err := BuildV3(rs); err == nil {
				t.Error("BuildV3 succeeded")
			}
			if _, err := NewHandler(rs); err == nil {
				t.Error("NewHandler succeeded")
			}
		})
	}
}

func TestVerbsLimitOperations(t *testing.T) {
	rs := []Resource{{Group: "authorization.k8s.io", Version: "v1", Kind: "SelfSubjectAccessReview",
		Resource: "selfsubjectaccessreviews", Verbs: []string{"create"}}}
	docs, err := BuildV3(rs)
	if err != nil {
		t.Fatal(err)
	}
	var doc spec3.OpenAPI
	if err := json.Unmarshal(docs["apis/authorization.k8s.io/v1"], &doc); err != nil {
		t.Fatal(err)
	}
	p := doc.Paths.Paths["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]
	if p == nil || p.Post == nil || p.Get != nil || p.Delete != nil {
		t.Fatalf("collection path = %+v, want POST only", p)
	}
	if p.Post.OperationId != "createAuthorizationV1SelfSubjectAccessReview" {
		t.Errorf("operationId = %s", p.Post.OperationId)
	}
	if _, ok := doc.Paths.Paths["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/{name}"]; ok {
		t.Error("item path declared without any item verb")
	}
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
