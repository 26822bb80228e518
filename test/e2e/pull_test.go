package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// startRegistry runs Debian's docker-registry on a free loopback port with its storage in a
// temp dir, and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry not installed (hack/setup.sh installs it)")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "config.yml")
	writeFile(t, cfg, fmt.Sprintf(`version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http: {addr: "%s"}
`, filepath.Join(dir, "data"), addr))
	cmd := exec.Command(bin, "serve", cfg)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, 10*time.Second, func() error {
		code, _, err := httpGet("http://" + addr + "/v2/")
		if err != nil || code != 200 {
			return fmt.Errorf("registry not up: %d %v\n%s", code, err, log.String())
		}
		return nil
	})
	return addr
}

// pushImage uploads an image tarball to registry as repo:tag with the registry HTTP API
// (monolithic blob uploads, then the manifest).
func pushImage(t *testing.T, registry, tarPath, repo, tag string) {
	t.Helper()
	img, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + registry + "/v2/" + repo
	upload := func(digest string, body []byte) {
		resp, err := http.Post(base+"/blobs/uploads/", "application/octet-stream", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %s", resp.Status)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		loc = resp.Request.URL.ResolveReference(loc)
		q := loc.Query()
		q.Set("digest", digest)
		loc.RawQuery = q.Encode()
		req, _ := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload %s: %s", digest, resp.Status)
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		upload(d.String(), b)
	}
	cfgName, _ := img.ConfigName()
	cfg, _ := img.RawConfigFile()
	upload(cfgName.String(), cfg)
	manifest, _ := img.RawManifest()
	mt, _ := img.MediaType()
	req, _ := http.NewRequest(http.MethodPut, base+"/manifests/"+tag, bytes.NewReader(manifest))
	req.Header.Set("Content-Type", string(mt))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest: %s", resp.Status)
	}
}

// Image pulls through CRI from a real registry on loopback, with every pull policy, and the
// waiting reasons Kubernetes shows when a pull fails or is not allowed.
func TestNodeImagePulls(t *testing.T) {
	requireRuntime(t)
	reg := startRegistry(t)
	tar := filepath.Join(imageDir(), "web-v2.tar")
	if _, err := os.Stat(tar); err != nil {
		t.Skipf("%s missing: run `make test-images`", tar)
	}
	pushImage(t, reg, tar, "demo/web", "v2")

	s := startNodeServer(t)
	k := s.kubectls()[0]
	image := reg + "/demo/web:v2"
	k.stdin(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: pulled}
spec:
  containers:
  - {name: web, image: %[1]s, imagePullPolicy: IfNotPresent}
---
apiVersion: v1
kind: Pod
metadata: {name: always}
spec:
  containers:
  - {name: web, image: %[1]s, imagePullPolicy: Always}
---
apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  containers:
  - {name: web, image: %[2]s/demo/nothing:v1}
---
apiVersion: v1
kind: Pod
metadata: {name: never}
spec:
  containers:
  - {name: web, image: %[2]s/demo/other:v1, imagePullPolicy: Never}
`, image, reg), "apply", "-f", "-")

	k.run("wait", "--for=condition=Ready", "pod/pulled", "pod/always", "--timeout=60s")
	ip := strings.TrimSpace(k.run("get", "pod", "pulled", "-o", "jsonpath={.status.podIP}"))
	if code, body, err := httpGet("http://" + ip + "/version"); err != nil || code != 200 || strings.TrimSpace(body) != "v2" {
		t.Fatalf("pulled pod answers %d %q %v", code, body, err)
	}
	mustContain(t, k.run("get", "pod", "pulled", "-o", "jsonpath={.status.containerStatuses[0].image} {.status.containerStatuses[0].imageID}"),
		image, reg+"/demo/web@sha256:")
	events := k.run("get", "events", "--field-selector", "involvedObject.name=always")
	mustContain(t, events, `Pulling image "`+image+`"`, `Successfully pulled image "`+image+`"`)

	// A missing image: ErrImagePull, then ImagePullBackOff; a Never pod without the image:
	// ErrImageNeverPull.
	eventually(t, 60*time.Second, func() error {
		out := k.run("get", "pod", "missing", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}")
		if out != "ImagePullBackOff" && out != "ErrImagePull" {
			return fmt.Errorf("missing image pod waiting reason %q", out)
		}
		return nil
	})
	eventually(t, 60*time.Second, func() error {
		if out := squash(k.run("get", "pod", "missing", "--no-headers")); !strings.Contains(out, "0/1 ImagePullBackOff 0") {
			return fmt.Errorf("missing image pod: %q", out)
		}
		return nil
	})
	mustContain(t, k.run("describe", "pod", "missing"), "Failed to pull image", "Back-off pulling image")
	eventually(t, 30*time.Second, func() error {
		if out := squash(k.run("get", "pod", "never", "--no-headers")); !strings.Contains(out, "0/1 ErrImageNeverPull 0") {
			return fmt.Errorf("never-pull pod: %q", out)
		}
		return nil
	})
	mustContain(t, k.run("describe", "pod", "never"), `Container image "`+reg+`/demo/other:v1" is not present with pull policy of Never`)
}
