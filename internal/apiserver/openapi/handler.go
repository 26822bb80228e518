package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	openapiv3 "github.com/google/gnostic-models/openapiv3"
	"google.golang.org/protobuf/proto"
)

const (
	pathV2 = "/openapi/v2"
	pathV3 = "/openapi/v3"

	mediaJSON = "application/json"
	// client-go's DiscoveryClient.OpenAPISchema asks for exactly the
	// "@v1.0" spelling and proto-unmarshals whatever comes back, so /openapi/v2
	// must speak protobuf; JSON alone would break kubectl's v2 fallback.
	// Kubernetes answers with the ".v1.0" spelling, accepting both.
	mediaProtoV2          = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	mediaProtoV2Deprecate = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
	mediaProtoV3          = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
	mediaProtoV3Deprecate = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"

	// gzipMin is the smallest body worth compressing; the documents are
	// hundreds of KB of JSON and shrink about tenfold.
	gzipMin = 64 << 10
)

// NewHandler serves the OpenAPI documents describing resources:
//
//	GET /openapi/v2                Swagger 2.0, as JSON or (for client-go) protobuf
//	GET /openapi/v3                index of group/versions: {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}}}
//	GET /openapi/v3/{gv path}      OpenAPI 3.0 for one group/version, as JSON or protobuf
//
// The resource list is checked now, so a kind without a generated schema
// fails server start-up; the documents themselves are built on first use
// (a few hundred milliseconds that server start-up should not pay) and
// then cached, each representation encoded once.
func NewHandler(resources []Resource) (http.Handler, error) {
	return NewHandlerWithCustom(resources, nil)
}

// CustomSource returns the custom resources served now and a generation that changes with them.
type CustomSource func() (generation uint64, resources []Resource)

// NewHandlerWithCustom also serves, in /openapi/v3, the group/versions of custom resources
// (CustomResourceDefinitions): their documents are rebuilt when the generation moves.
func NewHandlerWithCustom(resources []Resource, custom CustomSource) (http.Handler, error) {
	if err := validate(resources); err != nil {
		return nil, err
	}
	return &handler{resources: slices.Clone(resources), custom: custom}, nil
}

// validate runs the cheap part of building: every kind resolves to a
// definition and every definition they reach exists.
func validate(resources []Resource) error {
	pb, err := buildPaths(resources)
	if err != nil {
		return err
	}
	var roots []string
	for _, d := range pb.docs {
		for r := range d.roots {
			roots = append(roots, r)
		}
	}
	_, err = loadDefinitions(false).closure(roots, v2RefPrefix)
	return err
}

type handler struct {
	resources []Resource
	custom    CustomSource

	customMu  sync.Mutex
	customGen uint64
	customV3  map[string]*document
	customIdx *variant // the index with the custom group/versions, nil when there are none

	once sync.Once
	err  error
	v2   *document
	v3   map[string]*document // by group/version path, "apis/apps/v1"
	idx  *variant             // the /openapi/v3 index
}

// customDocuments returns the custom group/versions' documents and the index listing them
// beside the built-in ones, rebuilt when the custom resources changed.
func (h *handler) customDocuments() (map[string]*document, *variant) {
	if h.custom == nil {
		return nil, nil
	}
	gen, resources := h.custom()
	h.customMu.Lock()
	defer h.customMu.Unlock()
	if gen == h.customGen && (h.customV3 != nil || len(resources) == 0) {
		return h.customV3, h.customIdx
	}
	h.customGen, h.customV3, h.customIdx = gen, nil, nil
	if len(resources) == 0 {
		return nil, nil
	}
	v3, err := BuildV3(resources)
	if err != nil {
		slog.Error("build OpenAPI documents of custom resources", "err", err)
		return nil, nil
	}
	docs := make(map[string]*document, len(v3))
	for gv, body := range v3 {
		if _, builtin := h.v3[gv]; !builtin {
			docs[gv] = newDocument(body, mediaProtoV3, v3Proto)
		}
	}
	idx, err := h.index(docs)
	if err != nil {
		slog.Error("build OpenAPI index", "err", err)
		return nil, nil
	}
	h.customV3, h.customIdx = docs, idx
	return docs, idx
}

// index lists the built-in group/versions and extra ones.
func (h *handler) index(extra map[string]*document) (*variant, error) {
	type entry struct {
		URL string `json:"serverRelativeURL"`
	}
	index := struct {
		Paths map[string]entry `json:"paths"`
	}{Paths: make(map[string]entry, len(h.v3)+len(extra))}
	for _, docs := range []map[string]*document{h.v3, extra} {
		for gv, d := range docs {
			// The hash lets clients cache a group/version's document for good and notice a
			// change from the index alone.
			index.Paths[gv] = entry{URL: pathV3 + "/" + gv + "?hash=" + d.hash}
		}
	}
	b, err := json.Marshal(index)
	if err != nil {
		return nil, fmt.Errorf("openapi: marshal v3 index: %w", err)
	}
	return newVariant(mediaJSON, b, contentHash(b)), nil
}

func (h *handler) build() {
	v2, err := BuildV2(h.resources)
	if err != nil {
		h.err = err
		return
	}
	h.v2 = newDocument(v2, mediaProtoV2, v2Proto)

	v3, err := BuildV3(h.resources)
	if err != nil {
		h.err = err
		return
	}
	h.v3 = make(map[string]*document, len(v3))
	for gv, body := range v3 {
		h.v3[gv] = newDocument(body, mediaProtoV3, v3Proto)
	}
	h.idx, h.err = h.index(nil)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p != pathV2 && p != pathV3 && !strings.HasPrefix(p, pathV3+"/") {
		http.NotFound(w, r)
		return
	}
	h.once.Do(h.build)
	if h.err != nil {
		slog.Error("build OpenAPI documents", "err", h.err)
		http.Error(w, "OpenAPI documents unavailable", http.StatusInternalServerError)
		return
	}

	customDocs, customIdx := h.customDocuments()
	switch {
	case p == pathV2:
		h.serveDocument(w, r, h.v2, mediaProtoV2, mediaProtoV2Deprecate)
	case p == pathV3:
		if customIdx != nil {
			serveVariant(w, r, customIdx)
			return
		}
		serveVariant(w, r, h.idx)
	default:
		gv := strings.TrimPrefix(p, pathV3+"/")
		d, ok := h.v3[gv]
		if !ok {
			d, ok = customDocs[gv]
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		if hash := r.URL.Query().Get("hash"); hash != "" {
			if hash != d.hash {
				// A client holding an old index asks for an old hash: send
				// it to the current document instead of serving new content
				// under a URL it may cache forever.
				http.Redirect(w, r, pathV3+"/"+gv+"?hash="+url.QueryEscape(d.hash), http.StatusMovedPermanently)
				return
			}
			// The URL names this exact content, so it never goes stale.
			w.Header().Set("Cache-Control", "public, immutable")
			w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
		}
		h.serveDocument(w, r, d, mediaProtoV3, mediaProtoV3Deprecate)
	}
}

// serveDocument picks the representation the Accept header asks for.
func (h *handler) serveDocument(w http.ResponseWriter, r *http.Request, d *document, protoTypes ...string) {
	w.Header().Add("Vary", "Accept")
	offers := append([]string{mediaJSON}, protoTypes...)
	switch negotiate(r.Header.Get("Accept"), offers) {
	case mediaJSON:
		serveVariant(w, r, d.json)
	case "":
		http.Error(w, "only "+strings.Join(offers, ", ")+" are available", http.StatusNotAcceptable)
	default:
		v, err := d.protobuf()
		if err != nil {
			slog.Error("encode OpenAPI document as protobuf", "path", r.URL.Path, "err", err)
			http.Error(w, "OpenAPI protobuf encoding failed", http.StatusInternalServerError)
			return
		}
		serveVariant(w, r, v)
	}
}

// serveVariant writes one representation with ETag revalidation and,
// when the client accepts it, gzip.
func serveVariant(w http.ResponseWriter, r *http.Request, v *variant) {
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	body, etag := v.body, v.etag
	compressed := len(body) >= gzipMin && acceptsGzip(r.Header.Get("Accept-Encoding"))
	if compressed {
		// A compressed body is a different representation, so it gets
		// its own entity tag.
		body, etag = v.gzipped(), v.etag[:len(v.etag)-1]+`-gzip"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Type", v.contentType)
	h.Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// document is one OpenAPI document with its representations.
type document struct {
	hash string // of the JSON; names the content in /openapi/v3 URLs
	json *variant

	protoType string
	toProto   func([]byte) ([]byte, error)
	protoOnce sync.Once
	proto     *variant
	protoErr  error
}

func newDocument(body []byte, protoType string, toProto func([]byte) ([]byte, error)) *document {
	hash := contentHash(body)
	return &document{hash: hash, json: newVariant(mediaJSON, body, hash), protoType: protoType, toProto: toProto}
}

// protobuf encodes the document on first request: parsing the JSON into
// gnostic's model is the slow part of serving and kubectl only needs it for
// the v2 fallback.
func (d *document) protobuf() (*variant, error) {
	d.protoOnce.Do(func() {
		b, err := d.toProto(d.json.body)
		if err != nil {
			d.protoErr = err
			return
		}
		d.proto = newVariant(d.protoType, b, d.hash+"-pb")
	})
	return d.proto, d.protoErr
}

func v2Proto(j []byte) ([]byte, error) {
	doc, err := openapiv2.ParseDocument(j)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(doc)
}

func v3Proto(j []byte) ([]byte, error) {
	doc, err := openapiv3.ParseDocument(j)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(doc)
}

// variant is one encoded representation of a document.
type variant struct {
	contentType string
	body        []byte
	etag        string // quoted

	gzipOnce sync.Once
	gz       []byte
}

func newVariant(contentType string, body []byte, tag string) *variant {
	return &variant{contentType: contentType, body: body, etag: strconv.Quote(tag)}
}

func (v *variant) gzipped() []byte {
	v.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		_, _ = zw.Write(v.body) // writes to a bytes.Buffer do not fail
		_ = zw.Close()
		v.gz = buf.Bytes()
	})
	return v.gz
}

func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
