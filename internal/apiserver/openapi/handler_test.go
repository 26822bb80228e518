package openapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	openapiv3 "github.com/google/gnostic-models/openapiv3"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/openapi"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/spec3"
	kubectlopenapi "k8s.io/kubectl/pkg/util/openapi"
)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	h, err := NewHandler(testResources)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// TestClientGo fetches both documents through client-go's discovery client,
// exactly as kubectl does.
func TestClientGo(t *testing.T) {
	srv := newTestServer(t)
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}

	// v2: client-go asks for protobuf and proto-unmarshals the body.
	doc, err := dc.OpenAPISchema()
	if err != nil {
		t.Fatalf("OpenAPISchema: %v", err)
	}
	resources, err := kubectlopenapi.NewOpenAPIData(doc)
	if err != nil {
		t.Fatalf("kubectl cannot use the served v2 document: %v", err)
	}
	if resources.LookupResource(gvkPod) == nil {
		t.Error("no Pod schema in served v2 document")
	}

	// v3: the index, then each group/version in JSON and protobuf.
	paths, err := dc.OpenAPIV3().Paths()
	if err != nil {
		t.Fatalf("OpenAPIV3().Paths: %v", err)
	}
	if len(paths) != 2 || paths["api/v1"] == nil || paths["apis/apps/v1"] == nil {
		t.Fatalf("v3 paths = %v", keys(paths))
	}
	for gv, p := range paths {
		if !strings.HasPrefix(p.ServerRelativeURL(), "/openapi/v3/"+gv+"?hash=") {
			t.Errorf("%s URL = %s", gv, p.ServerRelativeURL())
		}
		b, err := p.Schema(runtime.ContentTypeJSON)
		if err != nil {
			t.Fatalf("%s JSON: %v", gv, err)
		}
		var parsed spec3.OpenAPI
		if err := json.Unmarshal(b, &parsed); err != nil || parsed.Paths == nil || len(parsed.Components.Schemas) == 0 {
			t.Errorf("%s JSON does not parse as OpenAPI 3: %v", gv, err)
		}
		pb, err := p.Schema(openapi.ContentTypeOpenAPIV3PB)
		if err != nil {
			t.Fatalf("%s protobuf: %v", gv, err)
		}
		var pdoc openapiv3.Document
		if err := proto.Unmarshal(pb, &pdoc); err != nil || pdoc.GetOpenapi() != "3.0.0" {
			t.Errorf("%s protobuf does not parse: %v (openapi %q)", gv, err, pdoc.GetOpenapi())
		}
	}

	// And kubectl's field validation check, over the wire this time.
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{crds: "CustomResourceDefinitionList"})
	v := resource.NewFallbackQueryParamVerifier(
		resource.NewQueryParamVerifierV3(dyn, dc.OpenAPIV3(), resource.QueryParamFieldValidation),
		resource.NewQueryParamVerifier(dyn, dc, resource.QueryParamFieldValidation))
	for _, gvk := range []schema.GroupVersionKind{gvkPod, gvkDeployment, gvkNode} {
		if err := v.HasSupport(gvk); err != nil {
			t.Errorf("HasSupport(%s): %v", gvk, err)
		}
	}
}

func get(t *testing.T, url string, header map[string]string) *http.Response {
	t.Helper()
	req := newRequest(t, url, header)
	// No automatic redirects or decompression: the tests look at both.
	client := &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestHandlerHTTP(t *testing.T) {
	srv := newTestServer(t)

	var index struct {
		Paths map[string]struct {
			URL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	resp := get(t, srv.URL+"/openapi/v3", nil)
	if err := json.NewDecoder(resp.Body).Decode(&index); err != nil {
		t.Fatal(err)
	}
	appsURL := index.Paths["apis/apps/v1"].URL

	cases := []struct {
		name        string
		path        string
		header      map[string]string
		status      int
		contentType string
	}{
		{"v2 default", "/openapi/v2", nil, 200, "application/json"},
		{"v2 json", "/openapi/v2", map[string]string{"Accept": "application/json"}, 200, "application/json"},
		{"v2 protobuf", "/openapi/v2", map[string]string{"Accept": mediaProtoV2Deprecate}, 200, mediaProtoV2},
		{"v2 protobuf preferred", "/openapi/v2", map[string]string{"Accept": "application/json;q=0.5, " + mediaProtoV2}, 200, mediaProtoV2},
		{"v2 not acceptable", "/openapi/v2", map[string]string{"Accept": "text/html"}, 406, ""},
		{"v3 index", "/openapi/v3", nil, 200, "application/json"},
		{"v3 gv", "/openapi/v3/apis/apps/v1", nil, 200, "application/json"},
		{"v3 gv hashed", appsURL, nil, 200, "application/json"},
		{"v3 gv protobuf", appsURL, map[string]string{"Accept": mediaProtoV3Deprecate}, 200, mediaProtoV3},
		{"v3 stale hash", "/openapi/v3/apis/apps/v1?hash=0000", nil, 301, ""},
		{"v3 unknown gv", "/openapi/v3/apis/batch/v1", nil, 404, ""},
		{"elsewhere", "/openapi/v4", nil, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, srv.URL+tc.path, tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", resp.Header.Get("Content-Type"), tc.contentType)
			}
			if tc.status == 200 && resp.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
		})
	}

	t.Run("hashed URL is immutable", func(t *testing.T) {
		resp := get(t, srv.URL+appsURL, nil)
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("Cache-Control = %q", cc)
		}
	})
	t.Run("stale hash redirects to current", func(t *testing.T) {
		resp := get(t, srv.URL+"/openapi/v3/apis/apps/v1?hash=0000", nil)
		if loc := resp.Header.Get("Location"); loc != appsURL {
			t.Errorf("Location = %q, want %q", loc, appsURL)
		}
	})
	t.Run("etag revalidation", func(t *testing.T) {
		first := get(t, srv.URL+"/openapi/v2", nil)
		resp := get(t, srv.URL+"/openapi/v2", map[string]string{"If-None-Match": first.Header.Get("ETag")})
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("status = %d, want 304", resp.StatusCode)
		}
		proto := get(t, srv.URL+"/openapi/v2", map[string]string{"Accept": mediaProtoV2})
		if proto.Header.Get("ETag") == first.Header.Get("ETag") {
			t.Error("JSON and protobuf share an ETag")
		}
	})
	t.Run("gzip", func(t *testing.T) {
		plain := get(t, srv.URL+"/openapi/v2", nil)
		want, _ := io.ReadAll(plain.Body)
		resp := get(t, srv.URL+"/openapi/v2", map[string]string{"Accept-Encoding": "gzip"})
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding = %q", resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("gunzipped body differs (err %v)", err)
		}
		if resp.Header.Get("ETag") == plain.Header.Get("ETag") {
			t.Error("gzip and identity share an ETag")
		}
	})
	t.Run("method not allowed", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/openapi/v2", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status = %d", resp.StatusCode)
		}
	})
	t.Run("head", func(t *testing.T) {
		resp, err := http.Head(srv.URL + "/openapi/v2")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength <= 0 {
			t.Errorf("HEAD: status %d, body %d bytes, length %d", resp.StatusCode, len(body), resp.ContentLength)
		}
	})
}

// TestHandlerConcurrentFirstUse has many clients hit a fresh handler at
// once: the documents and their encodings must be built exactly once.
func TestHandlerConcurrentFirstUse(t *testing.T) {
	srv := newTestServer(t)
	var wg sync.WaitGroup
	etags := make([]string, 8)
	for i := range etags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			header := map[string]string{"Accept": mediaProtoV2Deprecate, "Accept-Encoding": "gzip"}
			if i%2 == 0 {
				header = nil
			}
			resp, err := http.DefaultClient.Do(newRequest(t, srv.URL+"/openapi/v2", header))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			etags[i] = resp.Header.Get("ETag")
		}()
	}
	wg.Wait()
	for i := 2; i < len(etags); i++ {
		if etags[i] != etags[i%2] {
			t.Errorf("request %d got ETag %s, request %d %s", i, etags[i], i%2, etags[i%2])
		}
	}
}

func newRequest(t *testing.T, url string, header map[string]string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}
