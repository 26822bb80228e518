package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"encoding/json"

	"github.com/skiff-sh/skiff/internal/storage"
)

// updateFunc turns the current object into the requested one (from a PUT body or a patch).
type updateFunc func(cur runtime.Object) (runtime.Object, []string, error)

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	fv, err := parseFieldValidation(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	dryRun, err := isDryRun(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	obj := ep.res.New()
	warnings, err := decodeRequest(r, body, obj, ep.res, fv)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	m, _ := meta.Accessor(obj)
	if m.GetName() != info.Name {
		badRequest(w, fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.Name))
		return
	}
	if ep.res.Namespaced && m.GetNamespace() != "" && m.GetNamespace() != info.Namespace {
		badRequest(w, "the namespace of the provided object does not match the namespace sent on the request")
		return
	}
	addWarnings(w, warnings)
	out, _, err := s.update(r.Context(), ep, info, dryRun, func(cur runtime.Object) (runtime.Object, []string, error) {
		return obj.DeepCopyObject(), nil, nil
	})
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	s.writeObject(w, r, ep, http.StatusOK, out)
}

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	fv, err := parseFieldValidation(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	dryRun, err := isDryRun(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	patch, err := readBody(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	pt := types.PatchType(mediaType(r.Header.Get("Content-Type")))
	if pt == types.StrategicMergePatchType && isCustom(ep.res) {
		// Custom resources have no patch strategies (kubectl then uses a merge patch).
		writeStatus(w, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, info.Name,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s",
				types.JSONPatchType, types.MergePatchType, types.ApplyYAMLPatchType), 0, false))
		return
	}
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	case types.ApplyYAMLPatchType:
		s.handleApply(w, r, ep, info, patch, dryRun)
		return
	case types.ApplyCBORPatchType:
		writeStatus(w, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, info.Name,
			"server-side apply in CBOR is not supported by this server; send application/apply-patch+yaml", 0, false))
		return
	default:
		writeStatus(w, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, info.Name,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s",
				types.JSONPatchType, types.MergePatchType, types.ApplyYAMLPatchType, types.StrategicMergePatchType), 0, false))
		return
	}
	out, warnings, err := s.update(r.Context(), ep, info, dryRun, func(cur runtime.Object) (runtime.Object, []string, error) {
		return applyPatch(ep, cur, pt, patch, fv)
	})
	addWarnings(w, warnings)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	s.writeObject(w, r, ep, http.StatusOK, out)
}

// applyPatch applies a JSON, merge or strategic merge patch to cur.
func applyPatch(ep *endpoint, cur runtime.Object, pt types.PatchType, patch []byte, fv fieldValidation) (runtime.Object, []string, error) {
	curJSON, err := json.Marshal(cur)
	if err != nil {
		return nil, nil, err
	}
	var patched []byte
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
		patched, err = p.Apply(curJSON)
		if err != nil {
			return nil, nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", ep.res.GroupResource(), "", err.Error(), 0, false)
		}
	case types.MergePatchType:
		patched, err = jsonpatch.MergePatch(curJSON, patch)
		if err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
	case types.StrategicMergePatchType:
		var pm map[string]interface{}
		if err := json.Unmarshal(patch, &pm); err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
		patched, err = strategicpatch.StrategicMergePatch(curJSON, patch, ep.res.New())
		if err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
	}
	obj := ep.res.New()
	warnings, err := decodeInto(patched, obj, ep.res, fv)
	if err != nil {
		return nil, nil, err
	}
	return obj, warnings, nil
}

// errDeleteAfterUpdate signals that an update removed the last finalizer of an object being
// deleted: the object is then removed.
var errDeleteAfterUpdate = errors.New("delete after update")

// update runs an update or patch through GuaranteedUpdate: the request's object is computed
// from the current one on every attempt, so that a concurrent write retries instead of losing
// either write.
func (s *Server) update(ctx context.Context, ep *endpoint, info *requestInfo, dryRun bool, mk updateFunc) (runtime.Object, []string, error) {
	res := ep.res
	key := ep.key(info.Namespace, info.Name)
	out := res.New()
	var result runtime.Object
	var warnings []string
	err := ep.store.GuaranteedUpdate(ctx, key, out, nil, func(cur runtime.Object) (runtime.Object, error) {
		obj, w, err := mk(cur)
		warnings = w
		if err != nil {
			return nil, err
		}
		newObj, err := s.prepareUpdate(ctx, ep, info, cur, obj)
		if err != nil {
			return nil, err
		}
		result = newObj
		if dryRun {
			return nil, errDryRun
		}
		return newObj, nil
	})
	if errors.Is(err, errDryRun) {
		return result, warnings, nil
	}
	if err != nil {
		return nil, warnings, err
	}
	// An object being deleted whose last finalizer went away is removed now.
	m, _ := meta.Accessor(out)
	if m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 && (m.GetDeletionGracePeriodSeconds() == nil || *m.GetDeletionGracePeriodSeconds() == 0) && !s.blocksDeletion(ep, out) {
		rv := m.GetResourceVersion()
		last := res.New()
		if err := ep.store.Delete(ctx, key, last, &storage.Preconditions{ResourceVersion: &rv}, nil); err == nil {
			return last, warnings, nil
		}
	}
	return out, warnings, nil
}

var errDryRun = errors.New("dry run")

// prepareUpdate validates and completes the requested object against the current one.
func (s *Server) prepareUpdate(ctx context.Context, ep *endpoint, info *requestInfo, cur, obj runtime.Object) (runtime.Object, error) {
	res := ep.res
	gk := res.GroupVersionKind().GroupKind()
	curMeta, _ := meta.Accessor(cur)
	newMeta, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if uid := newMeta.GetUID(); uid != "" && uid != curMeta.GetUID() {
		return nil, apierrors.NewConflict(res.GroupResource(), info.Name,
			fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, curMeta.GetUID()))
	}
	if rv := newMeta.GetResourceVersion(); rv != "" && rv != curMeta.GetResourceVersion() {
		return nil, apierrors.NewConflict(res.GroupResource(), info.Name, errors.New(registryConflictMsg))
	}
	if newMeta.GetName() != info.Name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", newMeta.GetName(), info.Name))
	}
	if res.Namespaced && newMeta.GetNamespace() == "" {
		newMeta.SetNamespace(info.Namespace)
	}
	switch info.Subresource {
	case "status":
		// /status changes status only: everything else stays as it is.
		updated := cur.DeepCopyObject()
		copyStatus(updated, obj)
		if res.ValidateStatusUpdate != nil {
			if errs := res.ValidateStatusUpdate(updated, cur); len(errs) > 0 {
				return nil, apierrors.NewInvalid(gk, info.Name, errs)
			}
		}
		return updated, nil
	case "finalize":
		return s.finalizeNamespace(cur, obj)
	case "approval":
		updated, errs := res.Approval(cur, obj)
		if len(errs) > 0 {
			return nil, apierrors.NewInvalid(gk, info.Name, errs)
		}
		return updated, nil
	}
	// Fields the server owns keep their current values.
	newMeta.SetUID(curMeta.GetUID())
	newMeta.SetCreationTimestamp(curMeta.GetCreationTimestamp())
	newMeta.SetDeletionTimestamp(curMeta.GetDeletionTimestamp())
	newMeta.SetDeletionGracePeriodSeconds(curMeta.GetDeletionGracePeriodSeconds())
	newMeta.SetGeneration(curMeta.GetGeneration())
	newMeta.SetResourceVersion(curMeta.GetResourceVersion())
	newMeta.SetSelfLink("")
	// Server-side apply computed managedFields itself; an update of an object that has
	// them records its manager below; otherwise objects keep none.
	if !info.applying {
		newMeta.SetManagedFields(curMeta.GetManagedFields())
	}
	if res.HasStatus {
		if res.PrepareForUpdate == nil {
			copyStatus(obj, cur)
		}
	}
	if res.PrepareForUpdate != nil {
		res.PrepareForUpdate(obj, cur)
	}
	if res.Default != nil {
		res.Default(obj)
	}
	if curMeta.GetDeletionTimestamp() != nil {
		// An object being deleted may lose finalizers but not gain new ones.
		have := map[string]bool{}
		for _, f := range curMeta.GetFinalizers() {
			have[f] = true
		}
		for _, f := range newMeta.GetFinalizers() {
			if !have[f] {
				return nil, apierrors.NewForbidden(res.GroupResource(), info.Name,
					fmt.Errorf("no new finalizers can be added if the object is being deleted, found new finalizers %q", f))
			}
		}
	}
	errs := apivalidation.ValidateObjectMetaAccessorUpdate(newMeta, curMeta, field.NewPath("metadata"))
	nameFn := apivalidation.NameIsDNSSubdomain
	if res.ValidateName != nil {
		nameFn = apivalidation.ValidateNameFunc(res.ValidateName)
	}
	errs = append(errs, apivalidation.ValidateObjectMetaAccessor(newMeta, res.Namespaced, nameFn, field.NewPath("metadata"))...)
	if res.Validate != nil {
		errs = append(errs, res.Validate(obj)...)
	}
	if res.ValidateUpdate != nil {
		errs = append(errs, res.ValidateUpdate(obj, cur)...)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(gk, info.Name, errs)
	}
	if !info.applying && len(curMeta.GetManagedFields()) > 0 {
		fm, err := s.applyManagers.forResource(res)
		if err != nil {
			return nil, err
		}
		if fm != nil {
			if obj, err = fm.Update(cur, obj, fieldManagerName(info.req)); err != nil {
				return nil, err
			}
			if newMeta, err = meta.Accessor(obj); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
		}
	}
	if !res.NoGeneration && !specEqual(obj, cur) {
		newMeta.SetGeneration(curMeta.GetGeneration() + 1)
	}
	if err := s.admitUpdate(ctx, ep, obj, cur); err != nil {
		return nil, err
	}
	return obj, nil
}

func mediaType(ct string) string {
	for i := 0; i < len(ct); i++ {
		if ct[i] == ';' {
			return trimSpace(ct[:i])
		}
	}
	return trimSpace(ct)
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

var _ = metav1.Now
