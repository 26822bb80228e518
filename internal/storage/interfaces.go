package storage

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Interface is what the API server needs from a store of one resource. Keys are full etcd keys
// (/registry/<group>/<resource>/<namespace>/<name>); resourceVersions are etcd revisions.
type Interface interface {
	// Create stores obj under key if the key is free and decodes the stored object into out.
	Create(ctx context.Context, key string, obj, out runtime.Object) error
	// Get decodes the object at key into out with a quorum read.
	Get(ctx context.Context, key string, out runtime.Object) error
	// GetList fills listObj with the objects under prefix that match opts.
	GetList(ctx context.Context, prefix string, opts ListOptions, listObj runtime.Object) error
	// GuaranteedUpdate reads the object at key, applies tryUpdate and writes the result with a
	// compare-and-swap on the revision, retrying tryUpdate on races. The result lands in out.
	GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, preconditions *Preconditions, tryUpdate UpdateFunc) error
	// Delete removes the object at key if the preconditions (and validate) hold for the current
	// object; out receives the last state.
	Delete(ctx context.Context, key string, out runtime.Object, preconditions *Preconditions, validate func(cur runtime.Object) error) error
	// Watch streams changes under prefix after opts.ResourceVersion.
	Watch(ctx context.Context, prefix string, opts ListOptions) (watch.Interface, error)
}

// UpdateFunc computes the new object from the current one. Returning ErrNoChange (wrapped or not)
// keeps the current object without a write.
type UpdateFunc func(cur runtime.Object) (runtime.Object, error)

// ListOptions select objects by version and predicate.
type ListOptions struct {
	ResourceVersion      string
	ResourceVersionMatch string // "", "NotOlderThan" or "Exact"
	Predicate            SelectionPredicate
	Recursive            bool // prefix watch/list (true) or single key
	AllowBookmarks       bool
	SendInitialEvents    *bool
}

// AttrFunc returns the labels and selectable fields of an object.
type AttrFunc func(obj runtime.Object) (labels.Set, fields.Set, error)

// SelectionPredicate filters objects by labels and fields, and pages lists.
type SelectionPredicate struct {
	Label    labels.Selector
	Field    fields.Selector
	GetAttrs AttrFunc
	Limit    int64
	Continue string
}

// Empty reports whether the predicate matches everything.
func (p SelectionPredicate) Empty() bool {
	return (p.Label == nil || p.Label.Empty()) && (p.Field == nil || p.Field.Empty())
}

// Matches reports whether obj passes the label and field selectors.
func (p SelectionPredicate) Matches(obj runtime.Object) (bool, error) {
	if p.Empty() {
		return true, nil
	}
	if p.GetAttrs == nil {
		return false, errors.New("predicate has selectors but no attribute function")
	}
	ls, fs, err := p.GetAttrs(obj)
	if err != nil {
		return false, err
	}
	return p.MatchesAttrs(ls, fs), nil
}

// MatchesAttrs matches precomputed attributes.
func (p SelectionPredicate) MatchesAttrs(ls labels.Set, fs fields.Set) bool {
	if p.Label != nil && !p.Label.Empty() && !p.Label.Matches(ls) {
		return false
	}
	if p.Field != nil && !p.Field.Empty() && !p.Field.Matches(fs) {
		return false
	}
	return true
}

// Preconditions must hold on the current object for an update or delete to proceed.
type Preconditions struct {
	UID             *types.UID
	ResourceVersion *string
}

// ErrCode classifies storage errors so the API layer can map them to Kubernetes statuses.
type ErrCode int

const (
	ErrCodeKeyNotFound ErrCode = iota + 1
	ErrCodeKeyExists
	ErrCodeResourceVersionConflicts
	ErrCodeInvalidObj
	ErrCodeUnreachable
	ErrCodeExpired
	ErrCodeTooLargeResourceVersion
)

// Error is a storage failure with a code the API layer maps to a Kubernetes status.
type Error struct {
	Code               ErrCode
	Key                string
	ResourceVersion    int64
	AdditionalErrorMsg string
}

func (e *Error) Error() string {
	switch e.Code {
	case ErrCodeKeyNotFound:
		return fmt.Sprintf("key not found: %s", e.Key)
	case ErrCodeKeyExists:
		return fmt.Sprintf("key exists: %s", e.Key)
	case ErrCodeResourceVersionConflicts:
		return fmt.Sprintf("resource version conflict on %s: %s", e.Key, e.AdditionalErrorMsg)
	case ErrCodeInvalidObj:
		return fmt.Sprintf("precondition failed on %s: %s", e.Key, e.AdditionalErrorMsg)
	case ErrCodeExpired:
		return e.AdditionalErrorMsg
	case ErrCodeTooLargeResourceVersion:
		return fmt.Sprintf("too large resource version: %d", e.ResourceVersion)
	default:
		return fmt.Sprintf("storage error on %s: %s", e.Key, e.AdditionalErrorMsg)
	}
}

// ErrNoChange may be returned by an UpdateFunc to skip the write.
var ErrNoChange = errors.New("no change")

// IsCode reports whether err is a storage Error with the given code.
func IsCode(err error, code ErrCode) bool {
	var se *Error
	return errors.As(err, &se) && se.Code == code
}

// IsNotFound reports a missing key.
func IsNotFound(err error) bool { return IsCode(err, ErrCodeKeyNotFound) }

// NewExpiredError is the "too old resource version" error that the API answers with 410 Gone.
func NewExpiredError(requested, oldest int64) *Error {
	return &Error{Code: ErrCodeExpired, ResourceVersion: requested,
		AdditionalErrorMsg: fmt.Sprintf("too old resource version: %d (%d)", requested, oldest)}
}
