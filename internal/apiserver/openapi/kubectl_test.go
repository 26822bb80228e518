package openapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// These tests run the real kubectl binary (skipped when there is none)
// against the OpenAPI handler behind a minimal fake of discovery: the
// vendored kubectl packages used in builder_test.go are newer than the
// kubectl users run, and it is the binary's behaviour that counts.

// fakeAPIServer serves discovery for testResources, the given OpenAPI
// handler, and records pod creations.
type fakeAPIServer struct {
	openapi http.Handler
	mu      sync.Mutex
	creates []string // request URIs of POSTs to pods
	patches []string // bodies of PATCHes to pods
	v2Gets  int      // requests for /openapi/v2
}

// existingPod is what GET returns for pod "existing", as last applied with
// two containers.
const existingPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"existing","namespace":"default",` +
	`"annotations":{"kubectl.kubernetes.io/last-applied-configuration":` +
	`"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"existing\",\"namespace\":\"default\"},` +
	`\"spec\":{\"containers\":[{\"image\":\"x\",\"name\":\"a\"},{\"image\":\"y\",\"name\":\"b\"}]}}\n"}},` +
	`"spec":{"containers":[{"name":"a","image":"x"},{"name":"b","image":"y"}]}}`

var discoveryDocs = map[string]string{
	"/version": `{"major":"1","minor":"32","gitVersion":"v1.32.0"}`,
	"/api":     `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`,
	"/apis": `{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"apps",` +
		`"versions":[{"groupVersion":"apps/v1","version":"v1"}],"preferredVersion":{"groupVersion":"apps/v1","version":"v1"}}]}`,
	"/api/v1": `{"kind":"APIResourceList","groupVersion":"v1","resources":[` +
		`{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["po"]},` +
		`{"name":"pods/status","singularName":"","namespaced":true,"kind":"Pod","verbs":["get","patch","update"]},` +
		`{"name":"nodes","singularName":"node","namespaced":false,"kind":"Node","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["no"]}]}`,
	"/apis/apps/v1": `{"kind":"APIResourceList","groupVersion":"apps/v1","resources":[` +
		`{"name":"deployments","singularName":"deployment","namespaced":true,"kind":"Deployment","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["deploy"]},` +
		`{"name":"deployments/scale","singularName":"","namespaced":true,"group":"autoscaling","version":"v1","kind":"Scale","verbs":["get","patch","update"]}]}`,
}

func (s *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/openapi/") {
		if r.URL.Path == "/openapi/v2" {
			s.mu.Lock()
			s.v2Gets++
			s.mu.Unlock()
		}
		s.openapi.ServeHTTP(w, r)
		return
	}
	if doc, ok := discoveryDocs[r.URL.Path]; ok {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, doc)
		return
	}
	if r.Method == http.MethodPost && r.URL.Path == "/api/v1/namespaces/default/pods" {
		s.mu.Lock()
		s.creates = append(s.creates, r.URL.RequestURI())
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.Copy(w, r.Body)
		return
	}
	if r.URL.Path == "/api/v1/namespaces/default/pods/existing" {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPatch {
			body, _ := io.ReadAll(r.Body)
			s.mu.Lock()
			s.patches = append(s.patches, string(body))
			s.mu.Unlock()
		}
		io.WriteString(w, existingPod)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
}

// kubectl runs the binary against srv with a private cache directory.
func kubectl(t *testing.T, kubectlPath, server string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + server +
		"\ncontexts:\n- name: c\n  context:\n    cluster: c\n    namespace: default\ncurrent-context: c\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubectlPath, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func findKubectl(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the kubectl binary")
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl binary")
	}
	return p
}

func TestRealKubectlExplain(t *testing.T) {
	bin := findKubectl(t)
	h, err := NewHandler(testResources)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&fakeAPIServer{openapi: h})
	defer srv.Close()

	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"explain", "pods.spec.containers"}, []string{"KIND:       Pod", "FIELD: containers <[]Container>", "image\t<string>"}},
		{[]string{"explain", "deployments.spec.replicas"}, []string{"GROUP:      apps", "FIELD: replicas <integer>"}},
		{[]string{"explain", "nodes"}, []string{"KIND:       Node", "spec\t<NodeSpec>"}},
		// The v2 document, as older kubectl explain read it.
		{[]string{"explain", "pods.spec.containers", "--output=plaintext-openapiv2"}, []string{"KIND:     Pod", "RESOURCE: containers <[]Object>", "image\t<string>"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := kubectl(t, bin, srv.URL, tc.args...)
			if err != nil {
				t.Fatalf("kubectl: %v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

const podWithUnknownField = `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: c
    image: busybox
    imagePullPolicyy: Always
`

// TestRealKubectlValidation checks both halves of kubectl's --validate=strict:
// with our documents it trusts the server (sends the object with
// fieldValidation=Strict); with documents lacking the parameter it falls back
// to validating against our schemas itself and rejects the unknown field
// without sending anything.
func TestRealKubectlValidation(t *testing.T) {
	bin := findKubectl(t)
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(manifest, []byte(podWithUnknownField), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"create", "--dry-run=server", "--validate=strict", "-f", manifest}

	t.Run("server-side", func(t *testing.T) {
		h, err := NewHandler(testResources)
		if err != nil {
			t.Fatal(err)
		}
		api := &fakeAPIServer{openapi: h}
		srv := httptest.NewServer(api)
		defer srv.Close()
		out, err := kubectl(t, bin, srv.URL, args...)
		if err != nil {
			t.Fatalf("kubectl: %v\n%s", err, out)
		}
		if len(api.creates) != 1 || !strings.Contains(api.creates[0], "fieldValidation=Strict") {
			t.Errorf("creates = %v, want one with fieldValidation=Strict\n%s", api.creates, out)
		}
		// The v3 check sufficed; v2 is only the verifier's fallback.
		if api.v2Gets != 0 {
			t.Errorf("kubectl fell back to /openapi/v2 (%d requests)", api.v2Gets)
		}
	})

	t.Run("client-side fallback", func(t *testing.T) {
		api := &fakeAPIServer{openapi: withoutFieldValidation(t)}
		srv := httptest.NewServer(api)
		defer srv.Close()
		out, err := kubectl(t, bin, srv.URL, args...)
		t.Logf("kubectl: %s", out)
		if err == nil || !strings.Contains(out, "imagePullPolicyy") {
			t.Errorf("kubectl did not reject the unknown field client-side (err %v):\n%s", err, out)
		}
		if len(api.creates) != 0 {
			t.Errorf("object reached the server: %v", api.creates)
		}
	})
}

// withoutFieldValidation serves our documents with the fieldValidation
// parameter renamed, as a server predating it would.
func withoutFieldValidation(t *testing.T) http.Handler {
	t.Helper()
	strip := func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(`"fieldValidation"`), []byte(`"fieldValidationUnsupported"`))
	}
	v2JSON := strip(buildV2(t))
	v2PB, err := v2Proto(v2JSON)
	if err != nil {
		t.Fatal(err)
	}
	v3 := buildV3(t)
	index := map[string]map[string]map[string]string{"paths": {}}
	for gv, b := range v3 {
		v3[gv] = strip(b)
		index["paths"][gv] = map[string]string{"serverRelativeURL": "/openapi/v3/" + gv}
	}
	indexJSON, _ := json.Marshal(index)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/openapi/v2" && strings.Contains(r.Header.Get("Accept"), "protobuf"):
			w.Write(v2PB)
		case p == "/openapi/v2":
			w.Write(v2JSON)
		case p == "/openapi/v3":
			w.Write(indexJSON)
		case v3[strings.TrimPrefix(p, "/openapi/v3/")] != nil:
			w.Write(v3[strings.TrimPrefix(p, "/openapi/v3/")])
		default:
			http.NotFound(w, r)
		}
	})
}

// TestRealKubectlApply checks that client-side apply computes its strategic
// merge patch from our v3 schema: containers merge by name, which needs the
// patch-merge-key extensions and the PATCH operation's content types.
func TestRealKubectlApply(t *testing.T) {
	bin := findKubectl(t)
	h, err := NewHandler(testResources)
	if err != nil {
		t.Fatal(err)
	}
	api := &fakeAPIServer{openapi: h}
	srv := httptest.NewServer(api)
	defer srv.Close()
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	const modified = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: existing\n  namespace: default\n" +
		"spec:\n  containers:\n  - name: a\n    image: z\n  - name: b\n    image: y\n"
	if err := os.WriteFile(manifest, []byte(modified), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl(t, bin, srv.URL, "apply", "-f", manifest)
	if err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if strings.Contains(out, "warning") {
		t.Errorf("kubectl warned:\n%s", out)
	}
	if len(api.patches) != 1 || !strings.Contains(api.patches[0], `"$setElementOrder/containers"`) {
		t.Errorf("patches = %v, want a strategic merge patch keyed by container name", api.patches)
	}
	// kubectl reaches for /openapi/v2 only if the v3 route failed.
	if api.v2Gets != 0 {
		t.Errorf("kubectl fell back to /openapi/v2 (%d requests)", api.v2Gets)
	}
}
