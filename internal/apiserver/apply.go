package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Server-side apply: PATCH with application/apply-patch+yaml goes through apimachinery's field
// manager (k8s.io/apimachinery/pkg/util/managedfields), which merges the applied configuration
// into the live object by the OpenAPI schema's list types and map keys, records ownership in
// metadata.managedFields and reports conflicts with other managers as Kubernetes does.
//
// Ownership is tracked from an object's first apply on: creates and updates of objects that
// were never applied keep no managedFields (they cost nothing, which matters at thousands of
// pods per second); once an object has managedFields, every update records its manager too,
// so that a later apply conflicts with fields others changed. An apply onto an object that was
// never applied treats the fields already there as owned by "before-first-apply", as Kubernetes
// does for objects without managedFields.

// fieldManagers builds the type converter on first use (it parses every schema, which start-up
// should not pay for) and one field manager per kind.
type fieldManagers struct {
	models func() (map[string]*spec.Schema, error)

	once sync.Once
	tc   managedfields.TypeConverter
	err  error

	mu       sync.Mutex
	managers map[schema.GroupVersionKind]*managedfields.FieldManager
	// custom are the managers of custom resources, by the Resource a definition's version
	// gave (a new one when the definition changes).
	custom map[*registry.Resource]*managedfields.FieldManager
}

func (f *fieldManagers) forResource(res *registry.Resource) (*managedfields.FieldManager, error) {
	if f == nil || f.models == nil {
		return nil, nil
	}
	if isCustom(res) {
		return f.forCustom(res)
	}
	f.once.Do(func() {
		models, err := f.models()
		if err != nil {
			f.err = err
			return
		}
		f.tc, f.err = managedfields.NewTypeConverter(models, false)
	})
	if f.err != nil {
		return nil, f.err
	}
	gvk := res.GroupVersionKind()
	f.mu.Lock()
	defer f.mu.Unlock()
	if fm := f.managers[gvk]; fm != nil {
		return fm, nil
	}
	fm, err := managedfields.NewDefaultFieldManager(f.tc, scheme.Scheme, defaulter{res}, scheme.Scheme, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		return nil, err
	}
	if f.managers == nil {
		f.managers = map[schema.GroupVersionKind]*managedfields.FieldManager{}
	}
	f.managers[gvk] = fm
	return fm, nil
}

// forCustom serves custom resources: their structure is deduced from the objects (lists and
// maps are atomic), and versions differ only in apiVersion.
func (f *fieldManagers) forCustom(res *registry.Resource) (*managedfields.FieldManager, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fm := f.custom[res]; fm != nil {
		return fm, nil
	}
	gvk := res.GroupVersionKind()
	fm, err := managedfields.NewDefaultFieldManager(managedfields.NewDeducedTypeConverter(), unstructuredConvertor{},
		defaulter{res}, unstructuredCreater{}, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		return nil, err
	}
	if f.custom == nil {
		f.custom = map[*registry.Resource]*managedfields.FieldManager{}
	}
	f.custom[res] = fm
	return fm, nil
}

// unstructuredConvertor converts custom resources between versions of the None conversion.
type unstructuredConvertor struct{}

func (unstructuredConvertor) Convert(in, out, _ interface{}) error {
	u, ok1 := in.(*unstructured.Unstructured)
	o, ok2 := out.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return fmt.Errorf("cannot convert %T to %T", in, out)
	}
	o.Object = runtime.DeepCopyJSON(u.Object)
	return nil
}

func (unstructuredConvertor) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cannot convert %T", in)
	}
	target, ok := gv.KindForGroupVersionKinds([]schema.GroupVersionKind{u.GroupVersionKind()})
	if !ok {
		return nil, fmt.Errorf("cannot convert %s to %v", u.GroupVersionKind(), gv)
	}
	out := u.DeepCopy()
	out.SetGroupVersionKind(target)
	return out, nil
}

func (unstructuredConvertor) ConvertFieldLabel(_ schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

type unstructuredCreater struct{}

func (unstructuredCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{Object: map[string]interface{}{}}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// defaulter applies a resource's defaults for the field manager.
type defaulter struct{ res *registry.Resource }

func (d defaulter) Default(obj runtime.Object) {
	if d.res.Default != nil {
		d.res.Default(obj)
	}
}

// fieldManagerName is the manager an update or apply is recorded under: the fieldManager
// parameter, else the client's user agent up to its first "/" (as Kubernetes does: "kubectl",
// "kube-controller-manager").
func fieldManagerName(r *http.Request) string {
	if r == nil {
		return ""
	}
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	ua, _, _ := strings.Cut(r.UserAgent(), "/")
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

func (s *Server) handleApply(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo, patch []byte, dryRun bool) {
	gr := ep.res.GroupResource()
	q := r.URL.Query()
	manager := q.Get("fieldManager")
	if manager == "" {
		writeError(w, r, apierrors.NewBadRequest("PatchOptions.fieldManager is required for apply requests"), gr, info.Name)
		return
	}
	force := false
	if v := q.Get("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("invalid force %q", v)), gr, info.Name)
			return
		}
		force = b
	}
	if info.Subresource != "" {
		writeStatus(w, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, info.Name,
			"server-side apply of subresources is not supported by this server", 0, false))
		return
	}
	fm, err := s.applyManagers.forResource(ep.res)
	if err == nil && fm == nil {
		err = apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, info.Name,
			"server-side apply is not enabled on this server", 0, false)
	}
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	applied, err := parseApplied(ep, info, patch)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	apply := func(live runtime.Object) (runtime.Object, []string, error) {
		out, err := fm.Apply(live, applied, manager, force)
		return out, nil, err
	}
	info.applying = true
	ctx := r.Context()
	// Apply onto the live object; one that does not exist yet is created. Either may race with
	// a delete or a create of the same name: then the other path is tried.
	for attempt := 0; ; attempt++ {
		out, _, err := s.update(ctx, ep, info, dryRun, apply)
		code := http.StatusOK
		if err != nil && apierrors.IsNotFound(toAPIError(err, gr, info.Name)) {
			code = http.StatusCreated
			out, err = s.applyCreate(ctx, ep, info, dryRun, apply)
			if apierrors.IsAlreadyExists(err) && attempt < 3 {
				continue
			}
		}
		if err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
		s.writeObject(w, r, ep, code, out)
		return
	}
}

func (s *Server) applyCreate(ctx context.Context, ep *endpoint, info *requestInfo, dryRun bool, apply func(runtime.Object) (runtime.Object, []string, error)) (runtime.Object, error) {
	live := ep.res.New()
	live.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
	m, _ := meta.Accessor(live)
	m.SetName(info.Name)
	m.SetNamespace(info.Namespace)
	obj, _, err := apply(live)
	if err != nil {
		return nil, err
	}
	return s.createObject(ctx, ep, info.Namespace, obj, dryRun, true)
}

// parseApplied decodes an apply configuration and checks that it is about the object the URL
// names.
func parseApplied(ep *endpoint, info *requestInfo, patch []byte) (*unstructured.Unstructured, error) {
	js, err := toJSON(string(types.ApplyYAMLPatchType), patch)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil || m == nil {
		return nil, apierrors.NewBadRequest("error decoding YAML: the apply configuration must be an object")
	}
	u := &unstructured.Unstructured{Object: m}
	gvk := ep.res.GroupVersionKind()
	if u.GetAPIVersion() == "" || u.GetKind() == "" {
		return nil, apierrors.NewBadRequest("apiVersion and kind must be set in the apply configuration")
	}
	if u.GetAPIVersion() != gvk.GroupVersion().String() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", u.GetAPIVersion(), gvk.GroupVersion()))
	}
	if u.GetKind() != gvk.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", u.GetKind(), gvk.Kind))
	}
	if n := u.GetName(); n != "" && n != info.Name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", n, info.Name))
	}
	if ns := u.GetNamespace(); ns != "" && ns != info.Namespace {
		return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return u, nil
}
