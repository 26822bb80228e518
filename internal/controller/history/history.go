// Package history keeps the ControllerRevisions of DaemonSets and StatefulSets in the form
// kubectl's `rollout history|undo` reads: each revision's data is a strategic merge patch
// {"spec":{"template":{...,"$patch":"replace"}}} that restores the owner's pod template, its
// labels are the template's labels (kubectl lists revisions with the owner's selector) and its
// annotations the owner's (change-cause).
package history

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"

	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// TemplatePatch is the revision data for a pod template.
func TemplatePatch(tmpl *corev1.PodTemplateSpec) ([]byte, error) {
	b, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": m}})
}

// Hash names a revision: a hash of its data and the owner's collision count, encoded
// so that it is a valid label value and name suffix.
func Hash(data []byte, collisionCount *int32) string {
	h := fnv.New32a()
	h.Write(data)
	if collisionCount != nil {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], uint32(*collisionCount))
		h.Write(buf[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// Name is <owner>-<hash>, the owner's name cut so that the result stays a valid name.
func Name(owner, hash string) string {
	if len(owner) > 223 {
		owner = owner[:223]
	}
	return owner + "-" + hash
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

func RawData(cr *appsv1.ControllerRevision) []byte {
	if cr.Data.Raw != nil || cr.Data.Object == nil {
		return cr.Data.Raw
	}
	b, _ := json.Marshal(cr.Data.Object)
	return b
}

// SameData reports whether a revision holds data (ignoring JSON formatting).
func SameData(cr *appsv1.ControllerRevision, data []byte) bool {
	return bytes.Equal(compactJSON(RawData(cr)), compactJSON(data))
}

// TemplateOf returns the pod template a revision stores. The data replaces the whole
// template, so it is the template itself (the "$patch" directive is not a field).
func TemplateOf(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var h struct {
		Spec struct {
			Template *corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(RawData(cr), &h); err != nil {
		return nil, err
	}
	if h.Spec.Template == nil {
		return nil, fmt.Errorf("revision %s holds no pod template", cr.Name)
	}
	return h.Spec.Template, nil
}

// History reads and writes an owner's ControllerRevisions.
type History struct {
	Client kubernetes.Interface
	Lister appslisters.ControllerRevisionLister
}

// Owned returns the revisions in namespace that selector selects and owner controls, oldest
// revision first, adopting selected revisions that have no controller (left behind when a
// previous owner was deleted with --cascade=orphan).
func (h History) Owned(ctx context.Context, owner metav1.Object, gvk schema.GroupVersionKind, selector labels.Selector) ([]*appsv1.ControllerRevision, error) {
	all, err := h.Lister.ControllerRevisions(owner.GetNamespace()).List(selector)
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ControllerRevision
	for _, cr := range all {
		ref := metav1.GetControllerOf(cr)
		switch {
		case ref != nil && ref.UID == owner.GetUID():
			out = append(out, cr)
		case ref == nil && cr.DeletionTimestamp == nil && owner.GetDeletionTimestamp() == nil:
			body, err := json.Marshal(map[string]any{"metadata": map[string]any{
				"ownerReferences": []any{controllerutil.ControllerRef(owner, gvk)},
				"uid":             cr.UID,
			}})
			if err != nil {
				return nil, err
			}
			adopted, err := h.Client.AppsV1().ControllerRevisions(cr.Namespace).Patch(ctx, cr.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, adopted)
		}
	}
	Sort(out)
	return out, nil
}

func Sort(revs []*appsv1.ControllerRevision) {
	sort.SliceStable(revs, func(i, j int) bool {
		if revs[i].Revision != revs[j].Revision {
			return revs[i].Revision < revs[j].Revision
		}
		return revs[i].Name < revs[j].Name
	})
}

func MaxRevision(revs []*appsv1.ControllerRevision) int64 {
	var m int64
	for _, r := range revs {
		if r.Revision > m {
			m = r.Revision
		}
	}
	return m
}

// Ensure returns the revision of tmpl: an existing one with the same data (renumbered as the
// newest if an older one is reused, as after a rollback) or a new one. It returns the
// collision count to record in the owner's status (raised when another object took the name).
func (h History) Ensure(ctx context.Context, owner metav1.Object, gvk schema.GroupVersionKind, tmpl *corev1.PodTemplateSpec,
	revs []*appsv1.ControllerRevision, collisionCount *int32) (*appsv1.ControllerRevision, *int32, error) {
	data, err := TemplatePatch(tmpl)
	if err != nil {
		return nil, collisionCount, err
	}
	top := MaxRevision(revs)
	var match *appsv1.ControllerRevision
	for _, r := range revs {
		if SameData(r, data) {
			match = r // revs is sorted: the last match has the highest revision
		}
	}
	if match != nil {
		if match.Revision == top {
			return match, collisionCount, nil
		}
		cp := match.DeepCopy()
		cp.Revision = top + 1
		out, err := h.Client.AppsV1().ControllerRevisions(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
		return out, collisionCount, err
	}
	var cc int32
	if collisionCount != nil {
		cc = *collisionCount
	}
	for attempt := 0; attempt < 10; attempt++ {
		cr := NewRevision(owner, gvk, tmpl, data, top+1, &cc)
		out, err := h.Client.AppsV1().ControllerRevisions(cr.Namespace).Create(ctx, cr, metav1.CreateOptions{})
		if err == nil {
			return out, &cc, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, &cc, err
		}
		existing, gerr := h.Client.AppsV1().ControllerRevisions(cr.Namespace).Get(ctx, cr.Name, metav1.GetOptions{})
		if gerr != nil {
			return nil, &cc, gerr
		}
		if ref := metav1.GetControllerOf(existing); ref != nil && ref.UID == owner.GetUID() && SameData(existing, data) {
			// Ours, just not in the cache yet.
			return existing, &cc, nil
		}
		cc++
	}
	return nil, &cc, fmt.Errorf("too many ControllerRevision name collisions for %s/%s", owner.GetNamespace(), owner.GetName())
}

// NewRevision builds the revision of tmpl for owner.
func NewRevision(owner metav1.Object, gvk schema.GroupVersionKind, tmpl *corev1.PodTemplateSpec, data []byte, revision int64, collisionCount *int32) *appsv1.ControllerRevision {
	hash := Hash(data, collisionCount)
	lbls := make(map[string]string, len(tmpl.Labels)+1)
	for k, v := range tmpl.Labels {
		lbls[k] = v
	}
	lbls[appsv1.ControllerRevisionHashLabelKey] = hash
	var ann map[string]string
	if a := owner.GetAnnotations(); len(a) > 0 {
		ann = make(map[string]string, len(a))
		for k, v := range a {
			if k == corev1.LastAppliedConfigAnnotation {
				continue
			}
			ann[k] = v
		}
	}
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            Name(owner.GetName(), hash),
			Namespace:       owner.GetNamespace(),
			Labels:          lbls,
			Annotations:     ann,
			OwnerReferences: []metav1.OwnerReference{*controllerutil.ControllerRef(owner, gvk)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
}

// Truncate deletes the oldest revisions beyond limit that no live pod uses and that are not
// in keep.
func (h History) Truncate(ctx context.Context, revs []*appsv1.ControllerRevision, keep map[string]bool, limit int32) error {
	var candidates []*appsv1.ControllerRevision
	for _, r := range revs {
		if !keep[r.Name] {
			candidates = append(candidates, r)
		}
	}
	excess := len(candidates) - int(limit)
	for i := 0; i < excess; i++ {
		err := h.Client.AppsV1().ControllerRevisions(candidates[i].Namespace).Delete(ctx, candidates[i].Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
