package apiserver

import (
	"bytes"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// outputKind is what the client's Accept header asks for.
type outputKind int

const (
	outputObject outputKind = iota
	outputTable
	outputPartialMetadata
	outputPartialMetadataProtobuf
	outputProtobuf
)

func (k outputKind) partial() bool {
	return k == outputPartialMetadata || k == outputPartialMetadataProtobuf
}

// negotiate reads Accept: `application/json;as=Table;v=v1;g=meta.k8s.io` asks for a server-side
// table (as kubectl get does), `as=PartialObjectMetadata[List]` for metadata only.
func negotiate(r *http.Request) (outputKind, string) {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		params := map[string]string{}
		fields := strings.Split(part, ";")
		for _, f := range fields[1:] {
			kv := strings.SplitN(strings.TrimSpace(f), "=", 2)
			if len(kv) == 2 {
				params[kv[0]] = kv[1]
			}
		}
		switch {
		case params["as"] == "Table" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1"):
			return outputTable, params["v"]
		case strings.HasPrefix(params["as"], "PartialObjectMetadata") && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1"):
			// The metadata client (garbage collector, namespace controller) asks for protobuf
			// first, as for built-in types.
			if strings.TrimSpace(fields[0]) == protobufType {
				return outputPartialMetadataProtobuf, params["v"]
			}
			return outputPartialMetadata, params["v"]
		case strings.TrimSpace(fields[0]) == protobufType && len(params) == 0:
			return outputProtobuf, ""
		case strings.TrimSpace(fields[0]) == "application/json" || strings.TrimSpace(fields[0]) == "*/*" || strings.TrimSpace(fields[0]) == "application/*":
			return outputObject, ""
		}
	}
	return outputObject, ""
}

// writeObject writes obj (or a list) in the representation the client negotiated.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, ep *endpoint, code int, obj runtime.Object) {
	kind, version := negotiate(r)
	switch kind {
	case outputTable:
		if code == http.StatusOK || code == http.StatusCreated {
			t := s.toTable(r, ep, obj, version, true)
			writeJSON(w, code, t)
			return
		}
	case outputPartialMetadata:
		writeJSON(w, code, toPartial(obj, version))
		return
	case outputPartialMetadataProtobuf:
		obj = toPartial(obj, version)
	}
	if obj.GetObjectKind().GroupVersionKind().Empty() {
		obj.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
	}
	if kind == outputProtobuf || kind == outputPartialMetadataProtobuf {
		// client-go asks for protobuf first: cheaper to encode here and to decode there.
		var buf bytes.Buffer
		if err := protoCodec.Encode(obj, &buf); err == nil {
			writeRaw(w, code, protobufType, buf.Bytes())
			return
		}
	}
	writeJSON(w, code, obj)
}

func includeObject(r *http.Request) string {
	switch v := r.URL.Query().Get("includeObject"); v {
	case "None", "Object":
		return v
	}
	return "Metadata"
}

// toTable renders obj (one object or a list) as a metav1.Table with the resource's columns.
func (s *Server) toTable(r *http.Request, ep *endpoint, obj runtime.Object, version string, headers bool) *metav1.Table {
	res := ep.res
	if version == "" {
		version = "v1"
	}
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/" + version}}
	cols, row := tableFuncs(res)
	if headers && r.URL.Query().Get("noHeaders") != "true" {
		t.ColumnDefinitions = cols
	}
	var items []runtime.Object
	if meta.IsListType(obj) {
		items, _ = meta.ExtractList(obj)
		if lm, err := meta.ListAccessor(obj); err == nil {
			t.ResourceVersion = lm.GetResourceVersion()
			t.Continue = lm.GetContinue()
			t.RemainingItemCount = lm.GetRemainingItemCount()
		}
	} else {
		items = []runtime.Object{obj}
		if m, err := meta.Accessor(obj); err == nil {
			t.ResourceVersion = m.GetResourceVersion()
		}
	}
	now := s.now()
	inc := includeObject(r)
	t.Rows = make([]metav1.TableRow, 0, len(items))
	for _, it := range items {
		tr := metav1.TableRow{Cells: row(it, now)}
		switch inc {
		case "Object":
			if it.GetObjectKind().GroupVersionKind().Empty() {
				it.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
			}
			tr.Object = runtime.RawExtension{Object: it}
		case "Metadata":
			tr.Object = runtime.RawExtension{Object: partialObject(it, version)}
		}
		t.Rows = append(t.Rows, tr)
	}
	return t
}

// tableFuncs returns the resource's column definitions and row function, always starting with
// the Name column; resources without their own columns get NAME and AGE.
func tableFuncs(res *registry.Resource) ([]metav1.TableColumnDefinition, func(runtime.Object, time.Time) []interface{}) {
	nameOf := func(o runtime.Object) string {
		m, err := meta.Accessor(o)
		if err != nil {
			return ""
		}
		return m.GetName()
	}
	if res.Columns == nil || res.Row == nil {
		return []metav1.TableColumnDefinition{registry.NameCol, registry.AgeCol}, func(o runtime.Object, now time.Time) []interface{} {
			m, _ := meta.Accessor(o)
			return []interface{}{m.GetName(), registry.Age(m.GetCreationTimestamp(), now)}
		}
	}
	for _, c := range res.Columns {
		// Some tables (events) place Name elsewhere, marked by its "name" format.
		if c.Format == "name" || c.Name == "Name" {
			return res.Columns, res.Row
		}
	}
	cols := append([]metav1.TableColumnDefinition{registry.NameCol}, res.Columns...)
	return cols, func(o runtime.Object, now time.Time) []interface{} {
		return append([]interface{}{nameOf(o)}, res.Row(o, now)...)
	}
}

func partialObject(obj runtime.Object, version string) *metav1.PartialObjectMetadata {
	if version == "" {
		version = "v1"
	}
	m, err := meta.Accessor(obj)
	p := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/" + version}}
	if err == nil {
		p.ObjectMeta = metav1.ObjectMeta{
			Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(),
			Generation: m.GetGeneration(), CreationTimestamp: m.GetCreationTimestamp(), DeletionTimestamp: m.GetDeletionTimestamp(),
			DeletionGracePeriodSeconds: m.GetDeletionGracePeriodSeconds(), Labels: m.GetLabels(), Annotations: m.GetAnnotations(),
			OwnerReferences: m.GetOwnerReferences(), Finalizers: m.GetFinalizers(), GenerateName: m.GetGenerateName(),
		}
	}
	return p
}

func toPartial(obj runtime.Object, version string) runtime.Object {
	if !meta.IsListType(obj) {
		return partialObject(obj, version)
	}
	items, _ := meta.ExtractList(obj)
	l := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadataList", APIVersion: "meta.k8s.io/" + version}}
	if lm, err := meta.ListAccessor(obj); err == nil {
		l.ResourceVersion = lm.GetResourceVersion()
		l.Continue = lm.GetContinue()
		l.RemainingItemCount = lm.GetRemainingItemCount()
	}
	for _, it := range items {
		l.Items = append(l.Items, *partialObject(it, version))
	}
	return l
}
