package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/etcd3"
)

// toAPIError maps a storage or handler error to the metav1.Status kubectl expects.
func toAPIError(err error, gr schema.GroupResource, name string) *apierrors.StatusError {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return se
	}
	var st *storage.Error
	if errors.As(err, &st) {
		switch st.Code {
		case storage.ErrCodeKeyNotFound:
			return apierrors.NewNotFound(gr, name)
		case storage.ErrCodeKeyExists:
			return apierrors.NewAlreadyExists(gr, name)
		case storage.ErrCodeResourceVersionConflicts:
			return apierrors.NewConflict(gr, name, errors.New(registryConflictMsg))
		case storage.ErrCodeInvalidObj:
			return apierrors.NewConflict(gr, name, errors.New(st.AdditionalErrorMsg))
		case storage.ErrCodeExpired:
			return apierrors.NewResourceExpired(st.AdditionalErrorMsg)
		case storage.ErrCodeTooLargeResourceVersion:
			e := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: unknown", st.ResourceVersion), 1)
			e.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
			return e
		case storage.ErrCodeUnreachable:
			return apierrors.NewServiceUnavailable(fmt.Sprintf("storage is unavailable: %s", st.AdditionalErrorMsg))
		}
	}
	if errors.Is(err, etcd3.ErrInvalidContinue) {
		return apierrors.NewBadRequest(err.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return apierrors.NewTimeoutError("request did not complete within the allowed duration", 0)
	}
	return apierrors.NewInternalError(err)
}

const registryConflictMsg = "the object has been modified; please apply your changes to the latest version and try again"

func writeError(w http.ResponseWriter, r *http.Request, err error, gr schema.GroupResource, name string) {
	se := toAPIError(err, gr, name)
	writeStatus(w, se)
}

func writeStatus(w http.ResponseWriter, se *apierrors.StatusError) {
	st := se.Status()
	st.Kind = "Status"
	st.APIVersion = "v1"
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
		st.Code = int32(code)
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(st.Details.RetryAfterSeconds))
		}
	}
	writeJSON(w, code, &st)
}

func badRequest(w http.ResponseWriter, msg string) {
	writeStatus(w, apierrors.NewBadRequest(msg))
}

func methodNotAllowed(w http.ResponseWriter, verb string, gr schema.GroupResource) {
	writeStatus(w, apierrors.NewMethodNotSupported(gr, verb))
}

func notFoundPath(w http.ResponseWriter) {
	se := &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound,
		Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource", Details: &metav1.StatusDetails{}}}
	writeStatus(w, se)
}
