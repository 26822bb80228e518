// Package registry describes the resources the API server serves. Each API group has its own
// package (core, apps, batch, ...) that returns *Resource values carrying that resource's
// Kubernetes defaults, validation, status handling, table columns and selectable fields; the
// API server's generic handlers do everything else.
package registry

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// NameValidator validates a metadata.name; it returns messages as
// k8s.io/apimachinery/pkg/api/validation name functions do.
type NameValidator func(name string, prefix bool) []string

// Resource is one served resource (e.g. apps/v1 deployments).
type Resource struct {
	Group, Version string
	Resource       string // plural, e.g. "deployments"
	Kind, ListKind string
	SingularName   string
	Namespaced     bool
	ShortNames     []string
	Categories     []string // "all" puts it in `kubectl get all`
	New            func() runtime.Object
	NewList        func() runtime.Object

	// Verbs the resource supports; nil means all of get list watch create update patch delete
	// deletecollection.
	Verbs []string
	// NotStored marks create-only reviews the API server answers without storing them
	// (TokenReview, SubjectAccessReview...).
	NotStored bool

	// HasStatus adds the /status subresource: the main endpoint then cannot change status,
	// and /status can change nothing but status.
	HasStatus bool
	// KeepStatusOnCreate lets a create set status (Nodes, Events...). Otherwise status is reset.
	KeepStatusOnCreate bool
	// NoGeneration: the resource does not track metadata.generation (ConfigMaps, Secrets...).
	NoGeneration bool
	// Stored is set for a version that is a view of another version's storage (autoscaling/v1
	// over v2): objects are converted on the way in and out, so both versions show the same
	// objects. Nil: the resource is stored in its own version.
	Stored *StorageConversion
	// Approval adds /approval (CertificateSigningRequests): it returns cur with the approval
	// that obj carries, and what is wrong with it.
	Approval func(cur, obj runtime.Object) (runtime.Object, field.ErrorList)
	// Scale adds /scale; nil means none.
	Scale *ScaleAccess

	// ValidateName checks metadata.name (default: DNS subdomain).
	ValidateName NameValidator

	// OpenAPISchema is a custom resource's schema, published in /openapi/v3 (built-in kinds
	// take theirs from the generated definitions).
	OpenAPISchema *spec.Schema

	// Prune removes the fields of a decoded object that its schema does not declare and
	// returns their paths, reported as unknown fields (custom resources; optional).
	Prune func(obj runtime.Object) []string

	// PrepareForCreate clears or sets server-owned fields before defaulting (optional).
	PrepareForCreate func(obj runtime.Object)
	// PrepareForUpdate copies server-owned fields from old to obj (optional).
	PrepareForUpdate func(obj, old runtime.Object)
	// Default applies Kubernetes' defaults in place (optional).
	Default func(obj runtime.Object)
	// Validate checks a new object beyond metadata (optional).
	Validate func(obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update beyond metadata: immutable fields and the like (optional).
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
	// ValidateStatusUpdate checks a /status update (optional).
	ValidateStatusUpdate func(obj, old runtime.Object) field.ErrorList

	// Fields returns the selectable fields beyond metadata.name and metadata.namespace, such as
	// spec.nodeName and status.phase for pods (optional).
	Fields func(obj runtime.Object) fields.Set

	// Table columns for `kubectl get`, and the cells of one object's row. Nil gives the
	// default NAME, AGE table (plus NAMESPACE handled by kubectl).
	Columns []metav1.TableColumnDefinition
	Row     func(obj runtime.Object, now time.Time) []interface{}
}

// ScaleAccess reads and writes the replica counts behind /scale.
type ScaleAccess struct {
	// SpecReplicas returns spec.replicas; SetSpecReplicas sets it.
	SpecReplicas    func(obj runtime.Object) int32
	SetSpecReplicas func(obj runtime.Object, n int32)
	// StatusReplicas and Selector fill the Scale's status.
	StatusReplicas func(obj runtime.Object) int32
	Selector       func(obj runtime.Object) string
}

// GroupVersion of the resource.
func (r *Resource) GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}
}

// GroupVersionKind of the resource's objects.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion().WithKind(r.Kind)
}

// GroupResource names the resource in errors ("deployments.apps").
func (r *Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.Group, Resource: r.Resource}
}

// AllVerbs is the verb set of an ordinary resource.
var AllVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// SupportedVerbs returns Verbs or AllVerbs.
func (r *Resource) SupportedVerbs() []string {
	if r.Verbs == nil {
		return AllVerbs
	}
	return r.Verbs
}

// Supports reports whether verb is served.
func (r *Resource) Supports(verb string) bool {
	for _, v := range r.SupportedVerbs() {
		if v == verb {
			return true
		}
	}
	return false
}

// StorageConversion converts between a served version and the version objects are stored in.
type StorageConversion struct {
	// Group and Version are the stored version's, served as its own Resource too (events.k8s.io
	// events are stored as core events; autoscaling/v1 autoscalers as autoscaling/v2).
	Group, Version string
	// FieldLabel maps a field selector label of this version to the stored version's (nil:
	// the same labels).
	FieldLabel func(label string) string
	// ToStorage converts obj to the stored version; cur is the stored object being updated
	// (nil on create), so that fields this version cannot express are kept.
	ToStorage func(obj, cur runtime.Object) runtime.Object
	// FromStorage converts a stored object to this version.
	FromStorage func(stored runtime.Object) runtime.Object
	NewStored   func() runtime.Object
	NewList     func() runtime.Object // stored version's list
}
