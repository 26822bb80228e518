package apiserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/storage"
)

const maxGenerateNameLength = 58

// generatedSuffix is what generateName appends: 5 characters from Kubernetes' alphabet,
// which leaves out vowels and look-alike characters.
func generatedSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}

func isDryRun(r *http.Request) (bool, error) {
	vals := r.URL.Query()["dryRun"]
	for _, v := range vals {
		if v != "All" {
			return false, apierrors.NewBadRequest(fmt.Sprintf("Invalid dry run value: %s, valid values: [All]", v))
		}
	}
	return len(vals) > 0, nil
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	fv, err := parseFieldValidation(r)
	if err != nil {
		writeError(w, r, err, gr, "")
		return
	}
	dryRun, err := isDryRun(r)
	if err != nil {
		writeError(w, r, err, gr, "")
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err, gr, "")
		return
	}
	obj := ep.res.New()
	warnings, err := decodeRequest(r, body, obj, ep.res, fv)
	if err != nil {
		writeError(w, r, err, gr, "")
		return
	}
	if ep.res.NotStored {
		addWarnings(w, warnings)
		out, err := s.review(r.Context(), ep, info, obj)
		if err != nil {
			writeError(w, r, err, gr, "")
			return
		}
		s.writeObject(w, r, ep, http.StatusCreated, out)
		return
	}
	out, err := s.create(r.Context(), ep, info.Namespace, obj, dryRun)
	addWarnings(w, warnings)
	if err != nil {
		name := ""
		if m, merr := meta.Accessor(obj); merr == nil {
			name = m.GetName()
		}
		writeError(w, r, err, gr, name)
		return
	}
	s.writeObject(w, r, ep, http.StatusCreated, out)
}

// create runs the whole create path for a decoded object: metadata, defaults, validation,
// admission and storage. It is also used by subresources that create (eviction does not).
func (s *Server) create(ctx context.Context, ep *endpoint, ns string, obj runtime.Object, dryRun bool) (runtime.Object, error) {
	return s.createObject(ctx, ep, ns, obj, dryRun, false)
}

// createObject is create; keepManagedFields keeps the managedFields server-side apply computed.
func (s *Server) createObject(ctx context.Context, ep *endpoint, ns string, obj runtime.Object, dryRun, keepManagedFields bool) (runtime.Object, error) {
	res := ep.res
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if res.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(ns)
		} else if ns != "" && m.GetNamespace() != ns {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	} else {
		m.SetNamespace("")
	}
	generated := false
	if m.GetName() == "" && m.GetGenerateName() != "" {
		generated = true
	}
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.NewTime(s.now().Truncate(time.Second)))
	m.SetResourceVersion("")
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	if !keepManagedFields {
		m.SetManagedFields(nil)
	}
	if res.NoGeneration {
		m.SetGeneration(0)
	} else {
		m.SetGeneration(1)
	}
	if res.HasStatus && !res.KeepStatusOnCreate && res.PrepareForCreate == nil {
		resetStatus(obj)
	}
	if res.PrepareForCreate != nil {
		res.PrepareForCreate(obj)
	}
	if res.Default != nil {
		res.Default(obj)
	}
	if err := s.admitCreate(ctx, ep, obj); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if generated {
			base := m.GetGenerateName()
			if len(base) > maxGenerateNameLength {
				base = base[:maxGenerateNameLength]
			}
			m.SetName(base + generatedSuffix())
			if ns, ok := obj.(*corev1.Namespace); ok {
				// Defaulting ran before the name existed; the name label follows it.
				if ns.Labels == nil {
					ns.Labels = map[string]string{}
				}
				ns.Labels[corev1.LabelMetadataName] = ns.Name
			}
		}
		if errs := s.validateCreate(ep, obj); len(errs) > 0 {
			return nil, apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), m.GetName(), errs)
		}
		if dryRun {
			return obj, nil
		}
		if attempt == 0 {
			// Quota last, on the object as it will be stored (a retry with another generated
			// name was charged already).
			if err := s.admitQuota(ctx, ep, obj); err != nil {
				return nil, err
			}
		}
		svc, isService := obj.(*corev1.Service)
		if isService {
			if err := s.svcAlloc.allocate(ctx, svc); err != nil {
				s.svcAlloc.release(ctx, svc)
				return nil, err
			}
		}
		out := res.New()
		err = ep.store.Create(ctx, ep.key(m.GetNamespace(), m.GetName()), obj, out)
		if err == nil {
			return out, nil
		}
		if isService {
			s.svcAlloc.release(ctx, svc)
		}
		if generated && storage.IsCode(err, storage.ErrCodeKeyExists) && attempt < 5 {
			continue
		}
		if storage.IsCode(err, storage.ErrCodeKeyExists) {
			return nil, apierrors.NewAlreadyExists(res.GroupResource(), m.GetName())
		}
		return nil, err
	}
}

func (s *Server) validateCreate(ep *endpoint, obj runtime.Object) field.ErrorList {
	res := ep.res
	m, _ := meta.Accessor(obj)
	nameFn := apivalidation.NameIsDNSSubdomain
	if res.ValidateName != nil {
		nameFn = apivalidation.ValidateNameFunc(res.ValidateName)
	}
	errs := apivalidation.ValidateObjectMetaAccessor(m, res.Namespaced, nameFn, field.NewPath("metadata"))
	if res.Validate != nil {
		errs = append(errs, res.Validate(obj)...)
	}
	return errs
}
