// Package images builds skiff's local demo and test images without a registry: static Go
// binaries compiled from the sources in the repository's images/ directory (embedded in
// github.com/skiff-sh/skiff/images) plus Debian's busybox-static, packed with
// go-containerregistry into docker-archive tarballs that the node agent imports into
// containerd at start (see internal/agent/runtime ImportDir).
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	imagesrc "github.com/skiff-sh/skiff/images"
)

// Image references built by this package.
const (
	Pause = "skiff.local/pause:3.10"
	WebV1 = "skiff.local/web:v1"
	WebV2 = "skiff.local/web:v2"
	// WebV3 is a third version for walkthroughs that roll out more than twice.
	WebV3   = "skiff.local/web:v3"
	Busybox = "skiff.local/busybox:latest"
)

// DefaultPath is the PATH set in every image's environment.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BusyboxBinary is where Debian's busybox-static package installs its binary.
const BusyboxBinary = "/bin/busybox"

// All lists every image reference this package builds, in build order.
var All = []string{Pause, WebV1, WebV2, WebV3, Busybox}

// FileName returns the tarball name written for ref inside the output directory
// (skiff.local/web:v1 -> web-v1.tar; the tag "latest" is left out).
func FileName(ref string) string {
	repo, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	base := repo[strings.LastIndex(repo, "/")+1:]
	if tag == "" || tag == "latest" {
		return base + ".tar"
	}
	return base + "-" + tag + ".tar"
}

// Options tune Build. Only OutDir is required.
type Options struct {
	// OutDir receives one docker-archive tarball per image (see FileName).
	OutDir string
	// Images limits the build to these references (default All).
	Images []string
	// CacheDir caches compiled binaries by source hash (default <user cache dir>/skiff/image-bin).
	CacheDir string
	// GoBinary is the go command (default: $GO, go on PATH, then /usr/local/go/bin/go).
	GoBinary string
	// BusyboxPath is the static busybox binary to pack (default /bin/busybox). When it is
	// missing and it is the default, Build installs Debian's busybox-static with apt-get.
	BusyboxPath string
	// Log receives progress lines (default: discarded).
	Log io.Writer
}

// Result describes one written image.
type Result struct {
	Ref    string
	Path   string
	Digest string // manifest digest, sha256:...
	Size   int64  // tarball size in bytes
}

// BuildAll builds every image into outDir (created if needed).
func BuildAll(ctx context.Context, outDir string) error {
	_, err := Build(ctx, Options{OutDir: outDir})
	return err
}

// Build compiles what is needed and writes the requested images. Unchanged images are
// rewritten byte for byte identically (builds are reproducible).
func Build(ctx context.Context, o Options) ([]Result, error) {
	if o.OutDir == "" {
		return nil, errors.New("images: OutDir is required")
	}
	refs := o.Images
	if len(refs) == 0 {
		refs = All
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	b := &builder{opts: o}
	var results []Result
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		start := time.Now()
		img, err := b.image(ctx, ref)
		if err != nil {
			return results, fmt.Errorf("image %s: %w", ref, err)
		}
		res, err := WriteTarball(filepath.Join(o.OutDir, FileName(ref)), ref, img)
		if err != nil {
			return results, fmt.Errorf("image %s: %w", ref, err)
		}
		b.logf("built %s -> %s (%s, %d bytes, %s)", ref, res.Path, res.Digest, res.Size, time.Since(start).Round(time.Millisecond))
		results = append(results, res)
	}
	return results, nil
}

// WriteTarball writes img tagged ref as a docker-archive tarball at path (atomically).
func WriteTarball(path, ref string, img v1.Image) (Result, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return Result{}, err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return Result{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return Result{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return Result{}, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return Result{}, err
	}
	return Result{Ref: ref, Path: path, Digest: d.String(), Size: st.Size()}, nil
}

type builder struct {
	opts      Options
	goVersion string
	bins      map[string]string
	webLayer  v1.Layer // shared by web:v1 and web:v2
	mu        sync.Mutex
}

func (b *builder) logf(format string, args ...any) {
	if b.opts.Log != nil {
		fmt.Fprintf(b.opts.Log, format+"\n", args...)
	}
}

// image assembles the image for ref.
func (b *builder) image(ctx context.Context, ref string) (v1.Image, error) {
	switch ref {
	case Pause:
		bin, err := b.binary(ctx, "pause")
		if err != nil {
			return nil, err
		}
		return Assemble(Spec{
			Files:      []File{{Path: "/pause", Source: bin, Mode: 0o755}},
			Entrypoint: []string{"/pause"},
		})
	case WebV1, WebV2, WebV3:
		bin, err := b.binary(ctx, "web")
		if err != nil {
			return nil, err
		}
		if b.webLayer == nil {
			if b.webLayer, err = Layer(append(baseFiles(), File{Path: "/bin/web", Source: bin, Mode: 0o755})); err != nil {
				return nil, err
			}
		}
		version := ref[strings.LastIndex(ref, ":")+1:]
		return Assemble(Spec{
			Layer:        b.webLayer,
			Entrypoint:   []string{"/bin/web"},
			Env:          []string{"WEB_VERSION=" + version},
			ExposedPorts: []string{"80/tcp"},
		})
	case Busybox:
		bb, err := b.busybox(ctx)
		if err != nil {
			return nil, err
		}
		applets, err := busyboxApplets(ctx, bb)
		if err != nil {
			return nil, err
		}
		files := append(baseFiles(), File{Path: "/bin/busybox", Source: bb, Mode: 0o755})
		for _, a := range applets {
			if a == "busybox" || strings.Contains(a, "/") {
				continue
			}
			files = append(files, File{Path: "/bin/" + a, Link: "busybox"})
		}
		return Assemble(Spec{Files: files, Cmd: []string{"sh"}})
	}
	return nil, fmt.Errorf("unknown image %q (known: %s)", ref, strings.Join(All, ", "))
}

// baseFiles is a minimal root filesystem skeleton for images with a shell or tools.
func baseFiles() []File {
	return []File{
		{Path: "/bin", Dir: true, Mode: 0o755},
		{Path: "/etc", Dir: true, Mode: 0o755},
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), Mode: 0o644},
		{Path: "/etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\n"), Mode: 0o644},
		{Path: "/root", Dir: true, Mode: 0o700},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
		{Path: "/usr/bin", Dir: true, Mode: 0o755},
		{Path: "/var", Dir: true, Mode: 0o755},
	}
}

// File is one entry of an image's single layer.
type File struct {
	Path   string // absolute path inside the image
	Mode   int64  // permission bits, including setuid/setgid/sticky (0o1777)
	Dir    bool
	Link   string // symlink target, when set
	Data   []byte // file contents, or
	Source string // a host file to copy
}

// Spec describes a single-layer linux/amd64 image.
type Spec struct {
	Files []File
	Layer v1.Layer // instead of Files: a layer made by Layer

	Entrypoint   []string
	Cmd          []string
	Env          []string // PATH is added when missing
	ExposedPorts []string // "80/tcp"
	WorkingDir   string
	Labels       map[string]string
}

// epoch is the modification time of every layer entry, so that layers are reproducible.
var epoch = time.Unix(0, 0).UTC()

// Layer makes a gzip-compressed layer of files (and their parent directories), with fixed
// timestamps and root ownership.
func Layer(files []File) (v1.Layer, error) {
	layerTar, err := layerTar(files)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressedCaching)
}

// Assemble builds the image: one layer (s.Layer, or one made of s.Files) appended to an
// empty image, with a linux/amd64 config.
func Assemble(s Spec) (v1.Image, error) {
	layer := s.Layer
	if layer == nil {
		var err error
		if layer, err = Layer(s.Files); err != nil {
			return nil, err
		}
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = "amd64"
	env := append([]string(nil), s.Env...)
	hasPath := false
	for _, e := range env {
		hasPath = hasPath || strings.HasPrefix(e, "PATH=")
	}
	if !hasPath {
		env = append([]string{DefaultPath}, env...)
	}
	cf.Config = v1.Config{
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        env,
		WorkingDir: s.WorkingDir,
		Labels:     s.Labels,
	}
	if len(s.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// layerTar writes files (and their missing parent directories) as an uncompressed tar in
// path order.
func layerTar(files []File) ([]byte, error) {
	entries := map[string]File{}
	for _, f := range files {
		p := strings.Trim(filepath.Clean("/"+f.Path), "/")
		if p == "" {
			continue
		}
		f.Path = p
		entries[p] = f
		for d := filepath.Dir(p); d != "." && d != "/"; d = filepath.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = File{Path: d, Dir: true, Mode: 0o755}
			}
		}
	}
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := entries[p]
		hdr := &tar.Header{Name: p, Mode: f.Mode & 0o7777, ModTime: epoch}
		var data []byte
		switch {
		case f.Dir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
		case f.Link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			data = f.Data
			if f.Source != "" {
				var err error
				if data, err = os.ReadFile(f.Source); err != nil {
					return nil, err
				}
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (b *builder) goBinary() string {
	if b.opts.GoBinary != "" {
		return b.opts.GoBinary
	}
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func (b *builder) cacheDir() (string, error) {
	if b.opts.CacheDir != "" {
		return b.opts.CacheDir, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "skiff", "image-bin"), nil
}

// binary compiles images/<name> as a static linux/amd64 binary, cached by a hash of the
// sources and the Go version.
func (b *builder) binary(ctx context.Context, name string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.bins[name]; ok {
		return p, nil
	}
	goBin := b.goBinary()
	if b.goVersion == "" {
		out, err := exec.CommandContext(ctx, goBin, "env", "GOVERSION").Output()
		if err != nil {
			return "", fmt.Errorf("%s env GOVERSION: %w (is Go installed?)", goBin, err)
		}
		b.goVersion = strings.TrimSpace(string(out))
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", b.goVersion, name, ldflags)
	files, err := fs.Glob(imagesrc.Sources, name+"/*.go")
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no sources for %s", name)
	}
	sort.Strings(files)
	srcs := map[string][]byte{}
	for _, f := range files {
		data, err := imagesrc.Sources.ReadFile(f)
		if err != nil {
			return "", err
		}
		srcs[f] = data
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	cache, err := b.cacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, name+"-"+hex.EncodeToString(h.Sum(nil))[:20])
	if _, err := os.Stat(out); err == nil {
		b.logf("%s: cached %s", name, out)
		b.remember(name, out)
		return out, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp("", "skiff-image-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte("module skiff.local/images\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	for f, data := range srcs {
		p := filepath.Join(work, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return "", err
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid()) // concurrent builders share the cache
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, "./"+name)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod",
		"GOWORK=off", "GOTOOLCHAIN=local", "GOPROXY=off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s: %w\n%s", name, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	b.logf("%s: compiled in %s", name, time.Since(start).Round(time.Millisecond))
	b.remember(name, out)
	return out, nil
}

// ldflags strip symbols and the build ID so that binaries (and so images) are reproducible.
const ldflags = "-s -w -buildid="

func (b *builder) remember(name, path string) {
	if b.bins == nil {
		b.bins = map[string]string{}
	}
	b.bins[name] = path
}

// busybox returns the static busybox binary, installing busybox-static when the default
// path is missing.
func (b *builder) busybox(ctx context.Context) (string, error) {
	p := b.opts.BusyboxPath
	if p == "" {
		p = BusyboxBinary
	}
	if _, err := os.Stat(p); err == nil {
		return p, nil
	} else if b.opts.BusyboxPath != "" {
		return "", err
	}
	b.logf("%s missing: installing busybox-static", p)
	if err := aptInstall(ctx, "busybox-static"); err != nil {
		return "", fmt.Errorf("%s missing and busybox-static could not be installed: %w", p, err)
	}
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

func aptInstall(ctx context.Context, pkg string) error {
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install %s: %w\n%s", pkg, err, out)
		}
		return nil
	}
	if install() == nil {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %w\n%s", err, out)
	}
	return install()
}

// busyboxApplets lists the applet names compiled into the busybox binary.
func busyboxApplets(ctx context.Context, bb string) ([]string, error) {
	out, err := exec.CommandContext(ctx, bb, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bb, err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s --list printed no applets", bb)
	}
	return names, nil
}
