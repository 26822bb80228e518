package apps

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func controllerRevisions() *registry.Resource {
	r := newResource("controllerrevisions", "ControllerRevision", "controllerrevision", nil,
		func() runtime.Object { return &appsv1.ControllerRevision{} },
		func() runtime.Object { return &appsv1.ControllerRevisionList{} })
	r.NoGeneration = true
	r.Validate = func(obj runtime.Object) field.ErrorList {
		cr := obj.(*appsv1.ControllerRevision)
		var errs field.ErrorList
		if cr.Data.Raw == nil && cr.Data.Object == nil {
			errs = append(errs, field.Required(field.NewPath("data"), "data is mandatory"))
		}
		return append(errs, nonNegative(cr.Revision, field.NewPath("revision"))...)
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		cr, o := obj.(*appsv1.ControllerRevision), old.(*appsv1.ControllerRevision)
		if sameData(cr.Data, o.Data) {
			return nil
		}
		return field.ErrorList{field.Invalid(field.NewPath("data"), cr.Data, "field is immutable")}
	}
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		registry.Col("Controller", "string", "Controller of the object", 0),
		registry.Col("Revision", "string", appsv1.ControllerRevision{}.SwaggerDoc()["revision"], 0),
		registry.AgeCol,
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		cr := obj.(*appsv1.ControllerRevision)
		controller := "<none>"
		if ref := metav1.GetControllerOf(cr); ref != nil {
			controller = ref.Name
			if gv, err := schema.ParseGroupVersion(ref.APIVersion); err == nil && ref.Kind != "" {
				controller = lowerKind(gv.WithKind(ref.Kind).GroupKind()) + "/" + ref.Name
			}
		}
		return []interface{}{cr.Name, controller, cr.Revision, registry.Age(cr.CreationTimestamp, now)}
	}
	return r
}

// lowerKind prints a group kind as kubectl prefixes resource names: "statefulset.apps".
func lowerKind(gk schema.GroupKind) string {
	s := gk.Kind
	if gk.Group != "" {
		s += "." + gk.Group
	}
	return strings.ToLower(s)
}

// sameData compares two revisions' data as JSON documents, ignoring formatting.
func sameData(a, b runtime.RawExtension) bool {
	ra, rb := rawOf(a), rawOf(b)
	var ca, cb bytes.Buffer
	if json.Compact(&ca, ra) == nil && json.Compact(&cb, rb) == nil {
		return bytes.Equal(ca.Bytes(), cb.Bytes())
	}
	return bytes.Equal(ra, rb)
}

func rawOf(e runtime.RawExtension) []byte {
	if e.Raw != nil || e.Object == nil {
		return e.Raw
	}
	b, err := json.Marshal(e.Object)
	if err != nil {
		return nil
	}
	return b
}
