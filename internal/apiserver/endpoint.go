package apiserver

import (
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// endpoint binds a registry resource to its store.
type endpoint struct {
	res    *registry.Resource
	store  storage.Interface
	prefix string // /registry/<group>/<resource>/
	fields map[string]bool
	cacher interface{ Stats() (int, int, int64) }
}

// storagePrefix is the etcd prefix of a resource: /registry/<group>/<resource>/, with "core"
// for the legacy group.
func storagePrefix(r *registry.Resource) string {
	g := r.Group
	if g == "" {
		g = "core"
	}
	return fmt.Sprintf("/registry/%s/%s/", g, r.Resource)
}

func (e *endpoint) key(ns, name string) string {
	if e.res.Namespaced {
		return e.prefix + ns + "/" + name
	}
	return e.prefix + name
}

func (e *endpoint) listPrefix(ns string) string {
	if e.res.Namespaced && ns != "" {
		return e.prefix + ns + "/"
	}
	return e.prefix
}

// attrs returns the labels and selectable fields of obj.
func attrsFunc(res *registry.Resource) storage.AttrFunc {
	return func(obj runtime.Object) (labels.Set, fields.Set, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, nil, err
		}
		fs := fields.Set{"metadata.name": m.GetName()}
		if res.Namespaced {
			fs["metadata.namespace"] = m.GetNamespace()
		}
		if res.Fields != nil {
			for k, v := range res.Fields(obj) {
				fs[k] = v
			}
		}
		return labels.Set(m.GetLabels()), fs, nil
	}
}

// supportedFields lists the field selector keys of a resource, computed from an empty object.
func supportedFields(res *registry.Resource) map[string]bool {
	out := map[string]bool{"metadata.name": true}
	if res.Namespaced {
		out["metadata.namespace"] = true
	}
	if res.Fields != nil {
		for k := range res.Fields(res.New()) {
			out[k] = true
		}
	}
	return out
}

// statusField returns the addressable Status field of a typed object, if it has one.
func statusField(obj runtime.Object) (reflect.Value, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer {
		return reflect.Value{}, false
	}
	v = v.Elem()
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := v.FieldByName("Status")
	if !f.IsValid() || !f.CanSet() {
		return reflect.Value{}, false
	}
	return f, true
}

// resetStatus zeroes obj.Status.
func resetStatus(obj runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		delete(u.Object, "status")
		return
	}
	if f, ok := statusField(obj); ok {
		f.Set(reflect.Zero(f.Type()))
	}
}

// copyStatus sets dst.Status to src.Status.
func copyStatus(dst, src runtime.Object) {
	if d, ok := dst.(*unstructured.Unstructured); ok {
		if st, ok := src.(*unstructured.Unstructured).Object["status"]; ok {
			d.Object["status"] = runtime.DeepCopyJSONValue(st)
		} else {
			delete(d.Object, "status")
		}
		return
	}
	d, ok1 := statusField(dst)
	s, ok2 := statusField(src)
	if ok1 && ok2 {
		d.Set(s)
	}
}

// specEqual reports whether two objects are equal outside metadata and status: what decides
// whether metadata.generation moves.
func specEqual(a, b runtime.Object) bool {
	if ua, ok := a.(*unstructured.Unstructured); ok {
		ub := b.(*unstructured.Unstructured)
		for _, m := range []map[string]interface{}{ua.Object, ub.Object} {
			for k := range m {
				if k != "metadata" && k != "status" && k != "apiVersion" && k != "kind" &&
					!reflect.DeepEqual(ua.Object[k], ub.Object[k]) {
					return false
				}
			}
		}
		return true
	}
	av := reflect.ValueOf(a).Elem()
	bv := reflect.ValueOf(b).Elem()
	for i := 0; i < av.NumField(); i++ {
		name := av.Type().Field(i).Name
		if name == "TypeMeta" || name == "ObjectMeta" || name == "Status" {
			continue
		}
		if !reflect.DeepEqual(av.Field(i).Interface(), bv.Field(i).Interface()) {
			return false
		}
	}
	return true
}
