package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// K8sNamespace is the containerd namespace the CRI plugin uses.
const K8sNamespace = "k8s.io"

// containerd metadata keys and labels (containerd's documented conventions).
const (
	mdNamespace        = "containerd-namespace"
	mdLease            = "containerd-lease"
	labelGCExpire      = "containerd.io/gc.expire"
	labelGCRefContent  = "containerd.io/gc.ref.content."
	labelGCRefSnapshot = "containerd.io/gc.ref.snapshot."
	labelUncompressed  = "containerd.io/uncompressed"
	labelCRIManaged    = "io.cri-containerd.image"
)

// ImportedImage is one image reference created by an import.
type ImportedImage struct {
	Ref    string // normalized reference, e.g. skiff.local/web:v1
	Digest string // manifest digest
	ID     string // image ID (config digest), as CRI reports it
	Source string // tarball it came from
}

// ImportDir imports every docker-archive tarball (*.tar) in dir into containerd's k8s.io
// namespace (see ImportTarball) and waits until the CRI service lists them. A missing dir
// imports nothing. It goes on after a failed tarball and returns the errors joined.
func (c *Client) ImportDir(ctx context.Context, dir string) ([]ImportedImage, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".tar") {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(paths)
	var all []ImportedImage
	var errs []error
	for _, p := range paths {
		imgs, err := c.ImportTarball(ctx, p)
		all = append(all, imgs...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
	}
	return all, errors.Join(errs...)
}

// ImportTarball imports the images of one docker-archive tarball (docker save,
// go-containerregistry tarball.Write) under every tag it names: blobs go into containerd's
// content store, layers are unpacked for the snapshotter, and image records are created or
// moved to the new manifest. It then waits (up to 10 s) until CRI lists the images, since
// CRI learns of them from containerd's events.
func (c *Client) ImportTarball(ctx context.Context, path string) ([]ImportedImage, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	manifest, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("reading docker-archive manifest: %w", err)
	}
	var out []ImportedImage
	for _, desc := range manifest {
		if len(desc.RepoTags) == 0 {
			continue // nothing to name it by
		}
		tag, err := name.NewTag(desc.RepoTags[0], name.WeakValidation)
		if err != nil {
			return out, fmt.Errorf("tag %q: %w", desc.RepoTags[0], err)
		}
		img, err := tarball.Image(opener, &tag)
		if err != nil {
			return out, err
		}
		var refs []string
		for _, t := range desc.RepoTags {
			refs = append(refs, NormalizeRef(t))
		}
		imgs, err := c.importImage(ctx, img, refs)
		for i := range imgs {
			imgs[i].Source = path
		}
		out = append(out, imgs...)
		if err != nil {
			return out, err
		}
	}
	var refs []string
	for _, i := range out {
		refs = append(refs, i.Ref)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return out, c.waitCRIImages(wctx, refs)
}

// waitCRIImages polls ImageStatus until every ref is known to CRI.
func (c *Client) waitCRIImages(ctx context.Context, refs []string) error {
	for _, ref := range refs {
		for {
			img, err := c.ImageStatus(ctx, ref)
			if err == nil && img != nil {
				break
			}
			select {
			case <-ctx.Done():
				if err == nil {
					err = errors.New("not listed")
				}
				return fmt.Errorf("image %s imported but not visible through CRI: %w", ref, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// NormalizeRef returns ref fully qualified the way containerd's CRI names images:
// busybox -> docker.io/library/busybox:latest, skiff.local/web:v1 unchanged.
func NormalizeRef(ref string) string {
	domain, rest := "", ref
	if i := strings.IndexByte(ref, '/'); i >= 0 {
		first := ref[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			domain, rest = first, ref[i+1:]
		}
	}
	if domain == "" {
		domain = "docker.io"
		if !strings.Contains(rest, "/") {
			rest = "library/" + rest
		}
	}
	lastPart := rest[strings.LastIndexByte(rest, '/')+1:]
	if !strings.Contains(lastPart, ":") && !strings.Contains(lastPart, "@") {
		rest += ":latest"
	}
	return domain + "/" + rest
}

func (c *Client) importImage(ctx context.Context, img v1.Image, refs []string) ([]ImportedImage, error) {
	snapshotter := c.Snapshotter
	if snapshotter == "" {
		if sn, err := c.CRISnapshotter(ctx); err == nil && sn != "" {
			snapshotter = sn
		} else {
			snapshotter = "overlayfs"
		}
		c.Snapshotter = snapshotter
	}
	ctx = metadata.AppendToOutgoingContext(ctx, mdNamespace, K8sNamespace)

	// A lease keeps what this import writes from the garbage collector until the image
	// record references it. It expires by itself should the agent die halfway.
	leases := leasesapi.NewLeasesClient(c.conn)
	leaseID := "skiff-import-" + randomHex(8)
	if _, err := leases.Create(ctx, &leasesapi.CreateRequest{ID: leaseID, Labels: map[string]string{
		labelGCExpire: time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	}}); err != nil {
		return nil, fmt.Errorf("creating lease: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = leases.Delete(dctx, &leasesapi.DeleteRequest{ID: leaseID})
	}()
	ctx = metadata.AppendToOutgoingContext(ctx, mdLease, leaseID)

	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	manifestType, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return nil, fmt.Errorf("%d layers but %d diff IDs in the config", len(layers), len(cf.RootFS.DiffIDs))
	}
	chain := chainIDs(cf.RootFS.DiffIDs)

	cs := contentapi.NewContentClient(c.conn)
	// Layers first, then the config, then the manifest that references them.
	manifestLabels := map[string]string{labelGCRefContent + "config": m.Config.Digest.String()}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		labels := map[string]string{labelUncompressed: cf.RootFS.DiffIDs[i].String()}
		if err := writeBlob(ctx, cs, d.String(), size, labels, l.Compressed); err != nil {
			return nil, fmt.Errorf("layer %s: %w", d, err)
		}
		manifestLabels[fmt.Sprintf("%sl.%d", labelGCRefContent, i)] = d.String()
	}
	configLabels := map[string]string{}
	if len(chain) > 0 {
		configLabels[labelGCRefSnapshot+snapshotter] = chain[len(chain)-1]
	}
	if err := writeBlob(ctx, cs, m.Config.Digest.String(), int64(len(rawConfig)), configLabels, bytesOpener(rawConfig)); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := writeBlob(ctx, cs, manifestDigest.String(), int64(len(rawManifest)), manifestLabels, bytesOpener(rawManifest)); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}

	if err := c.unpack(ctx, snapshotter, layers, cf.RootFS.DiffIDs, chain); err != nil {
		return nil, fmt.Errorf("unpacking: %w", err)
	}

	is := imagesapi.NewImagesClient(c.conn)
	target := &types.Descriptor{MediaType: string(manifestType), Digest: manifestDigest.String(), Size: int64(len(rawManifest))}
	var out []ImportedImage
	for _, ref := range refs {
		rec := &imagesapi.Image{Name: ref, Target: target, Labels: map[string]string{labelCRIManaged: "managed"}}
		_, err := is.Create(ctx, &imagesapi.CreateImageRequest{Image: rec})
		if status.Code(err) == codes.AlreadyExists {
			_, err = is.Update(ctx, &imagesapi.UpdateImageRequest{Image: rec,
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target", "labels"}}})
		}
		if err != nil {
			return out, fmt.Errorf("image record %s: %w", ref, err)
		}
		out = append(out, ImportedImage{Ref: ref, Digest: manifestDigest.String(), ID: m.Config.Digest.String()})
	}
	return out, nil
}

// unpack applies the layers as a snapshot chain named by chain IDs, skipping what exists.
func (c *Client) unpack(ctx context.Context, snapshotter string, layers []v1.Layer, diffIDs []v1.Hash, chain []string) error {
	ss := snapshotsapi.NewSnapshotsClient(c.conn)
	ds := diffapi.NewDiffClient(c.conn)
	for i, l := range layers {
		if _, err := ss.Stat(ctx, &snapshotsapi.StatSnapshotRequest{Snapshotter: snapshotter, Key: chain[i]}); err == nil {
			continue
		} else if status.Code(err) != codes.NotFound {
			return err
		}
		parent := ""
		if i > 0 {
			parent = chain[i-1]
		}
		key := fmt.Sprintf("extract-skiff-%s %s", randomHex(6), chain[i])
		prep, err := ss.Prepare(ctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: snapshotter, Key: key, Parent: parent})
		if err != nil {
			return fmt.Errorf("prepare snapshot: %w", err)
		}
		remove := func() {
			_, _ = ss.Remove(context.WithoutCancel(ctx), &snapshotsapi.RemoveSnapshotRequest{Snapshotter: snapshotter, Key: key})
		}
		d, err := l.Digest()
		if err != nil {
			remove()
			return err
		}
		size, err := l.Size()
		if err != nil {
			remove()
			return err
		}
		mt, err := l.MediaType()
		if err != nil {
			remove()
			return err
		}
		applied, err := ds.Apply(ctx, &diffapi.ApplyRequest{
			Diff:   &types.Descriptor{MediaType: string(mt), Digest: d.String(), Size: size},
			Mounts: prep.Mounts,
		})
		if err != nil {
			remove()
			return fmt.Errorf("apply layer %s: %w", d, err)
		}
		if applied.Applied == nil || applied.Applied.Digest != diffIDs[i].String() {
			remove()
			return fmt.Errorf("layer %s applied as %v, want diff ID %s", d, applied.Applied, diffIDs[i])
		}
		_, err = ss.Commit(ctx, &snapshotsapi.CommitSnapshotRequest{Snapshotter: snapshotter, Name: chain[i], Key: key})
		if status.Code(err) == codes.AlreadyExists {
			remove()
			err = nil
		}
		if err != nil {
			return fmt.Errorf("commit snapshot: %w", err)
		}
	}
	return nil
}

// chainIDs returns the OCI chain IDs of a layer stack: chain(0) = diff(0),
// chain(n) = sha256(chain(n-1) + " " + diff(n)).
func chainIDs(diffIDs []v1.Hash) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d.String()
			continue
		}
		h, _, _ := v1.SHA256(strings.NewReader(out[i-1] + " " + d.String()))
		out[i] = h.String()
	}
	return out
}

// writeBlob stores one blob in the content store unless it is there, and makes sure it
// carries labels.
func writeBlob(ctx context.Context, cs contentapi.ContentClient, dgst string, size int64, labels map[string]string, open func() (io.ReadCloser, error)) error {
	info, err := cs.Info(ctx, &contentapi.InfoRequest{Digest: dgst})
	if err == nil {
		return ensureLabels(ctx, cs, info.Info, labels)
	}
	if status.Code(err) != codes.NotFound {
		return err
	}
	err = streamBlob(ctx, cs, dgst, size, labels, open)
	if status.Code(err) == codes.AlreadyExists { // written concurrently
		info, err := cs.Info(ctx, &contentapi.InfoRequest{Digest: dgst})
		if err != nil {
			return err
		}
		return ensureLabels(ctx, cs, info.Info, labels)
	}
	return err
}

func ensureLabels(ctx context.Context, cs contentapi.ContentClient, info *contentapi.Info, labels map[string]string) error {
	var paths []string
	for k, v := range labels {
		if info.Labels[k] != v {
			paths = append(paths, "labels."+k)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	_, err := cs.Update(ctx, &contentapi.UpdateRequest{
		Info:       &contentapi.Info{Digest: info.Digest, Labels: labels},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
	})
	return err
}

// streamBlob writes a blob through the content service's Write stream: every request is
// answered, data goes in WRITE requests and a final COMMIT checks size and digest.
func streamBlob(ctx context.Context, cs contentapi.ContentClient, dgst string, size int64, labels map[string]string, open func() (io.ReadCloser, error)) (err error) {
	ref := "skiff-import-" + strings.TrimPrefix(dgst, "sha256:")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cs.Write(wctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = cs.Abort(context.WithoutCancel(ctx), &contentapi.AbortRequest{Ref: ref})
		}
	}()
	call := func(req *contentapi.WriteContentRequest) (*contentapi.WriteContentResponse, error) {
		if err := stream.Send(req); err != nil {
			if err == io.EOF { // the real error comes with Recv
				_, err = stream.Recv()
			}
			return nil, err
		}
		return stream.Recv()
	}
	if _, err := call(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT, Ref: ref, Total: size, Expected: dgst}); err != nil {
		return err
	}
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, 1<<20)
	var offset int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := call(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Ref: ref,
				Offset: offset, Data: buf[:n], Total: size, Expected: dgst}); err != nil {
				return err
			}
			offset += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if offset != size {
		return fmt.Errorf("blob %s: read %d bytes, want %d", dgst, offset, size)
	}
	resp, err := call(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_COMMIT, Ref: ref,
		Offset: offset, Total: size, Expected: dgst, Labels: labels})
	if err != nil {
		return err
	}
	if resp.Digest != "" && resp.Digest != dgst {
		return fmt.Errorf("blob committed as %s, want %s", resp.Digest, dgst)
	}
	return stream.CloseSend()
}

func bytesOpener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(b))), nil }
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
