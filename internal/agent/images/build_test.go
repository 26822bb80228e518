package images

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestFileName(t *testing.T) {
	for ref, want := range map[string]string{
		Pause:                   "pause-3.10.tar",
		WebV1:                   "web-v1.tar",
		WebV2:                   "web-v2.tar",
		Busybox:                 "busybox.tar",
		"localhost:5000/a/b:c":  "b-c.tar",
		"localhost:5000/a/b":    "b.tar",
		"skiff.local/x:latest":  "x.tar",
		"skiff.local/y:1.2.3-a": "y-1.2.3-a.tar",
	} {
		if got := FileName(ref); got != want {
			t.Errorf("FileName(%q) = %q, want %q", ref, got, want)
		}
	}
}

// layerFiles reads the single layer of img as path -> header.
func layerFiles(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
		b, _ := io.ReadAll(tr)
		data[h.Name] = b
	}
	return hdrs, data
}

func TestAssembleAndLoad(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "prog")
	if err := os.WriteFile(src, []byte("#!binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Files: []File{
			{Path: "/usr/local/bin/prog", Source: src, Mode: 0o755},
			{Path: "/etc/motd", Data: []byte("hi\n"), Mode: 0o644},
			{Path: "/bin/sh", Link: "prog"},
			{Path: "/tmp", Dir: true, Mode: 0o1777},
		},
		Entrypoint:   []string{"/usr/local/bin/prog"},
		Cmd:          []string{"serve"},
		Env:          []string{"A=b"},
		ExposedPorts: []string{"80/tcp"},
		WorkingDir:   "/",
	}
	img, err := Assemble(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.tar")
	res, err := WriteTarball(path, "skiff.local/test:v9", img)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size == 0 || !strings.HasPrefix(res.Digest, "sha256:") {
		t.Errorf("result = %+v", res)
	}

	tag, _ := name.NewTag("skiff.local/test:v9")
	loaded, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("loading the tarball: %v", err)
	}
	if d, _ := loaded.Digest(); d.String() != res.Digest {
		t.Errorf("loaded digest %s, written %s", d, res.Digest)
	}
	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	c := cf.Config
	if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/prog" || strings.Join(c.Cmd, " ") != "serve" || c.WorkingDir != "/" {
		t.Errorf("config = %+v", c)
	}
	if len(c.Env) != 2 || c.Env[0] != DefaultPath || c.Env[1] != "A=b" {
		t.Errorf("env = %v", c.Env)
	}
	if _, ok := c.ExposedPorts["80/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("exposed ports = %v", c.ExposedPorts)
	}
	if len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("diff IDs = %v", cf.RootFS.DiffIDs)
	}
	hdrs, data := layerFiles(t, loaded)
	for _, d := range []string{"usr/", "usr/local/", "usr/local/bin/", "etc/", "bin/", "tmp/"} {
		if h, ok := hdrs[d]; !ok || h.Typeflag != tar.TypeDir {
			t.Errorf("directory %s missing", d)
		}
	}
	if h := hdrs["usr/local/bin/prog"]; h == nil || h.Mode != 0o755 || string(data["usr/local/bin/prog"]) != "#!binary" {
		t.Errorf("prog = %+v", h)
	}
	if h := hdrs["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp mode = %+v", h)
	}
	if h := hdrs["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "prog" {
		t.Errorf("bin/sh = %+v", h)
	}
	if h := hdrs["etc/motd"]; h == nil || !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 {
		t.Errorf("etc/motd = %+v", h)
	}

	// Reproducible: the same spec gives the same image.
	img2, err := Assemble(spec)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Errorf("assembling twice gave %s and %s", d1, d2)
	}
}

// TestBuild builds the real images (compiling pause and web), checks the tarballs, and
// runs the compiled binaries on loopback.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the image binaries; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	refs := []string{Pause, WebV1, WebV2}
	if _, err := os.Stat(BusyboxBinary); err == nil {
		refs = append(refs, Busybox)
	} else {
		t.Logf("%s missing: not building %s (hack/setup.sh installs busybox-static)", BusyboxBinary, Busybox)
	}
	out := t.TempDir()
	cache := t.TempDir()
	var log strings.Builder
	start := time.Now()
	results, err := Build(ctx, Options{OutDir: out, Images: refs, CacheDir: cache, Log: &log})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	t.Logf("built in %s:\n%s", time.Since(start).Round(time.Millisecond), log.String())
	if len(results) != len(refs) {
		t.Fatalf("results = %v", results)
	}

	// A second build uses the cached binaries and writes identical tarballs.
	log.Reset()
	results2, err := Build(ctx, Options{OutDir: out, Images: refs, CacheDir: cache, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "compiled") {
		t.Errorf("second build compiled again:\n%s", log.String())
	}
	for i := range results {
		if results[i].Digest != results2[i].Digest {
			t.Errorf("%s: digest changed between builds: %s, %s", results[i].Ref, results[i].Digest, results2[i].Digest)
		}
	}

	images := map[string]v1.Image{}
	for _, r := range results {
		tag, _ := name.NewTag(r.Ref)
		img, err := tarball.ImageFromPath(filepath.Join(out, FileName(r.Ref)), &tag)
		if err != nil {
			t.Fatalf("%s: %v", r.Ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Architecture != "amd64" || len(cf.Config.Env) == 0 || cf.Config.Env[0] != DefaultPath {
			t.Errorf("%s: config %+v", r.Ref, cf)
		}
		images[r.Ref] = img
	}
	if cf, _ := images[Pause].ConfigFile(); strings.Join(cf.Config.Entrypoint, " ") != "/pause" {
		t.Errorf("pause entrypoint %v", cf.Config.Entrypoint)
	}
	for ref, version := range map[string]string{WebV1: "v1", WebV2: "v2"} {
		cf, _ := images[ref].ConfigFile()
		if strings.Join(cf.Config.Entrypoint, " ") != "/bin/web" || !contains(cf.Config.Env, "WEB_VERSION="+version) {
			t.Errorf("%s config %+v", ref, cf.Config)
		}
		if _, ok := cf.Config.ExposedPorts["80/tcp"]; !ok {
			t.Errorf("%s exposes %v", ref, cf.Config.ExposedPorts)
		}
	}
	// v1 and v2 share their layer and differ in config.
	l1, _ := images[WebV1].Layers()
	l2, _ := images[WebV2].Layers()
	d1, _ := l1[0].Digest()
	d2, _ := l2[0].Digest()
	if d1 != d2 {
		t.Errorf("web layers differ: %s %s", d1, d2)
	}
	if img, ok := images[Busybox]; ok {
		hdrs, _ := layerFiles(t, img)
		for _, applet := range []string{"sh", "ls", "cat", "sleep", "nslookup"} {
			if h := hdrs["bin/"+applet]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
				t.Errorf("busybox applet %s = %+v", applet, h)
			}
		}
		if h := hdrs["bin/busybox"]; h == nil || h.Size < 100000 {
			t.Errorf("bin/busybox = %+v", h)
		}
		cf, _ := img.ConfigFile()
		if strings.Join(cf.Config.Cmd, " ") != "sh" {
			t.Errorf("busybox cmd %v", cf.Config.Cmd)
		}
	}

	b := &builder{opts: Options{CacheDir: cache}}
	pauseBin, err := b.binary(ctx, "pause")
	if err != nil {
		t.Fatal(err)
	}
	webBin, err := b.binary(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("pause", func(t *testing.T) { testPause(t, pauseBin) })
	t.Run("web", func(t *testing.T) { testWeb(t, webBin) })
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func testPause(t *testing.T, bin string) {
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pause exited with %v, want 0", err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("pause did not exit on SIGTERM")
	}
}

func testWeb(t *testing.T, bin string) {
	cmd := exec.Command(bin, "serve", "-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "WEB_VERSION=v7")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	defer func() {
		_ = cmd.Process.Kill()
	}()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatal("web printed nothing")
	}
	line := sc.Text() // skiff web v7 listening on 127.0.0.1:NNNN (hostname ...)
	go func() {
		for sc.Scan() {
		}
		done <- cmd.Wait()
	}()
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[2] != "v7" {
		t.Fatalf("first line %q", line)
	}
	base := "http://" + fields[5]
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	host, _ := os.Hostname()
	if code, body := get("/"); code != 200 || body != "skiff web v7 hostname="+host+"\n" {
		t.Errorf("GET / = %d %q", code, body)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("GET /nope = %d", code)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz = %d %q", code, body)
	}
	get("/fail")
	if code, _ := get("/healthz"); code != 503 {
		t.Errorf("healthz after /fail = %d", code)
	}
	get("/recover")
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz after /recover = %d", code)
	}
	get("/unready")
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("readyz after /unready = %d", code)
	}
	get("/ready")
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("readyz after /ready = %d", code)
	}
	if code, body := get("/alloc?mb=3"); code != 200 || !strings.Contains(body, "holding 3 MiB") {
		t.Errorf("alloc = %d %q", code, body)
	}
	if code, body := get("/burn?seconds=1&cores=1"); code != 200 || !strings.Contains(body, "burning 1 cores") {
		t.Errorf("burn = %d %q", code, body)
	}
	if code, _ := get("/burn?cores=x"); code != 400 {
		t.Errorf("bad burn = %d", code)
	}
	if code, body := get("/env"); code != 200 || !strings.Contains(body, "WEB_VERSION=v7\n") {
		t.Errorf("env = %d", code)
	}
	if code, body := get("/file?path=/proc/self/cmdline"); code != 200 || !strings.Contains(body, "serve") {
		t.Errorf("file = %d %q", code, body)
	}
	if code, _ := get("/file?path=/does/not/exist"); code != 404 {
		t.Errorf("missing file = %d", code)
	}
	if code, body := get("/version"); code != 200 || body != "v7\n" {
		t.Errorf("version = %d %q", code, body)
	}

	// Client mode against the server.
	run := func(args ...string) (int, string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := run("get", base+"/version"); code != 0 || out != "v7\n" {
		t.Errorf("web get = %d %q", code, out)
	}
	if code, _ := run("get", "-t", "2s", base+"/nope"); code != 1 {
		t.Errorf("web get 404 = %d", code)
	}
	if code, out := run("tcp", fields[5]); code != 0 || !strings.Contains(out, "connected") {
		t.Errorf("web tcp = %d %q", code, out)
	}
	if code, out := run("resolve", "localhost"); code != 0 || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("web resolve = %d %q", code, out)
	}
	if code, out := run("version"); code != 0 || out != "skiff web v1\n" {
		t.Errorf("web version = %d %q", code, out)
	}
	if code, _ := run("bogus"); code != 2 {
		t.Errorf("web bogus = %d", code)
	}

	// SIGTERM: graceful exit 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("web exited with %v on SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("web did not exit on SIGTERM")
	}
}
