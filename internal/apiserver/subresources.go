package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/skiff-sh/skiff/internal/storage"
)

// SubresourceHandler serves pod log/exec/attach/portforward (wired by the node agent side).
type SubresourceHandler func(w http.ResponseWriter, r *http.Request, pod *corev1.Pod, subresource string)

func (s *Server) serveSubresource(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	sub := info.Subresource
	switch {
	case sub == "status" && ep.res.HasStatus, sub == "finalize" && ep.res.Group == "" && ep.res.Resource == "namespaces",
		sub == "approval" && ep.res.Approval != nil:
		switch info.Verb {
		case "get":
			if sub == "finalize" {
				methodNotAllowed(w, "get", gr)
				return
			}
			s.handleGet(w, r, ep, info)
		case "update":
			s.handleUpdate(w, r, ep, info)
		case "patch":
			if sub == "finalize" {
				methodNotAllowed(w, "patch", gr)
				return
			}
			s.handlePatch(w, r, ep, info)
		default:
			methodNotAllowed(w, info.Verb, gr)
		}
	case sub == "scale" && ep.res.Scale != nil:
		s.handleScale(w, r, ep, info)
	case sub == "token" && ep.res.Group == "" && ep.res.Resource == "serviceaccounts" && info.Verb == "create":
		s.handleTokenRequest(w, r, ep, info)
	case sub == "binding" && ep.res.Group == "" && ep.res.Resource == "pods" && info.Verb == "create":
		s.handleBinding(w, r, ep, info)
	case sub == "eviction" && ep.res.Group == "" && ep.res.Resource == "pods" && info.Verb == "create":
		s.handleEviction(w, r, ep, info)
	case ep.res.Group == "" && ep.res.Resource == "pods" && (sub == "log" || sub == "exec" || sub == "attach" || sub == "portforward"):
		pod := &corev1.Pod{}
		if err := ep.store.Get(r.Context(), ep.key(info.Namespace, info.Name), pod); err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
		if s.PodSubresources == nil {
			badRequest(w, fmt.Sprintf("pod %s has no node agent that serves %s", info.Name, sub))
			return
		}
		s.PodSubresources(w, r, pod, sub)
	default:
		notFoundPath(w)
	}
}

func (s *Server) scaleOf(ep *endpoint, obj runtime.Object) *autoscalingv1.Scale {
	m, _ := metaOf(obj)
	sa := ep.res.Scale
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp()},
		Spec:   autoscalingv1.ScaleSpec{Replicas: sa.SpecReplicas(obj)},
		Status: autoscalingv1.ScaleStatus{Replicas: sa.StatusReplicas(obj), Selector: sa.Selector(obj)},
	}
}

func (s *Server) handleScale(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	switch info.Verb {
	case "get":
		obj := ep.res.New()
		if err := ep.store.Get(r.Context(), ep.key(info.Namespace, info.Name), obj); err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
		writeJSON(w, http.StatusOK, s.scaleOf(ep, obj))
	case "update", "patch":
		body, err := readBody(r)
		if err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
		dryRun, err := isDryRun(r)
		if err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
		pt := types.PatchType(mediaType(r.Header.Get("Content-Type")))
		out, _, err := s.update(r.Context(), ep, info2(info), dryRun, func(cur runtime.Object) (runtime.Object, []string, error) {
			scale := s.scaleOf(ep, cur)
			var want autoscalingv1.Scale
			if info.Verb == "update" {
				if err := decodeLoose(r, body, &want, autoscalingv1.SchemeGroupVersion.WithKind("Scale")); err != nil {
					return nil, nil, err
				}
				if want.ResourceVersion != "" && want.ResourceVersion != scale.ResourceVersion {
					return nil, nil, apierrors.NewConflict(gr, info.Name, fmt.Errorf("%s", registryConflictMsg))
				}
			} else {
				curJSON, _ := json.Marshal(scale)
				var patched []byte
				var err error
				switch pt {
				case types.JSONPatchType:
					var p jsonpatch.Patch
					if p, err = jsonpatch.DecodePatch(body); err == nil {
						patched, err = p.Apply(curJSON)
					}
				case types.MergePatchType:
					patched, err = jsonpatch.MergePatch(curJSON, body)
				case types.StrategicMergePatchType:
					patched, err = strategicpatch.StrategicMergePatch(curJSON, body, &autoscalingv1.Scale{})
				default:
					return nil, nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, info.Name, "unsupported patch type", 0, false)
				}
				if err != nil {
					return nil, nil, apierrors.NewBadRequest(err.Error())
				}
				if err := json.Unmarshal(patched, &want); err != nil {
					return nil, nil, apierrors.NewBadRequest(err.Error())
				}
			}
			if want.Spec.Replicas < 0 {
				return nil, nil, apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, info.Name,
					field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
			}
			obj := cur.DeepCopyObject()
			ep.res.Scale.SetSpecReplicas(obj, want.Spec.Replicas)
			return obj, nil, nil
		})
		if err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
		writeJSON(w, http.StatusOK, s.scaleOf(ep, out))
	default:
		methodNotAllowed(w, info.Verb, gr)
	}
}

// info2 is info for the main resource: a scale write is a spec update of the object.
func info2(info *requestInfo) *requestInfo {
	c := *info
	c.Subresource = ""
	return &c
}

func (s *Server) handleBinding(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	var b corev1.Binding
	if err := decodeLoose(r, body, &b, corev1.SchemeGroupVersion.WithKind("Binding")); err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	if b.Target.Name == "" {
		writeStatus(w, apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, info.Name,
			field.ErrorList{field.Required(field.NewPath("target", "name"), "")}))
		return
	}
	_, err = s.Bind(r.Context(), info.Namespace, info.Name, b.UID, b.Target.Name, b.Annotations)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	writeJSON(w, http.StatusCreated, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

// Bind assigns a pod to a node, as POST pods/binding does: only an unassigned pod can be bound,
// and the pod gets PodScheduled=True.
func (s *Server) Bind(ctx context.Context, ns, name string, uid types.UID, node string, annotations map[string]string) (*corev1.Pod, error) {
	ep := s.endpoints[gvrKey("", "v1", "pods")]
	out := &corev1.Pod{}
	var pre *storage.Preconditions
	if uid != "" {
		pre = &storage.Preconditions{UID: &uid}
	}
	err := ep.store.GuaranteedUpdate(ctx, ep.key(ns, name), out, pre, func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(ep.res.GroupResource(), name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(ep.res.GroupResource(), name, fmt.Errorf("pod %s is already assigned to node %q", name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = node
		if len(annotations) > 0 && pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		for k, v := range annotations {
			pod.Annotations[k] = v
		}
		setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(s.now())})
		return pod, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			if st.Conditions[i].Status != c.Status {
				st.Conditions[i] = c
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// handleEviction deletes a pod unless a PodDisruptionBudget forbids it (429, as Kubernetes).
func (s *Server) handleEviction(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	var ev policyv1.Eviction
	if len(body) > 0 {
		if err := decodeLoose(r, body, &ev, policyv1.SchemeGroupVersion.WithKind("Eviction")); err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
	}
	pod := &corev1.Pod{}
	if err := ep.store.Get(r.Context(), ep.key(info.Namespace, info.Name), pod); err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	if pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed && pod.DeletionTimestamp == nil {
		if err := s.checkDisruptionBudgets(r.Context(), pod); err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
	}
	opts := ev.DeleteOptions
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	if _, _, err := s.delete(r.Context(), ep, info.Namespace, info.Name, opts); err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	writeJSON(w, http.StatusCreated, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

func (s *Server) checkDisruptionBudgets(ctx context.Context, pod *corev1.Pod) error {
	pep := s.endpoints[gvrKey("policy", "v1", "poddisruptionbudgets")]
	if pep == nil {
		return nil
	}
	list := &policyv1.PodDisruptionBudgetList{}
	if err := pep.store.GetList(ctx, pep.listPrefix(pod.Namespace), storage.ListOptions{ResourceVersion: "0", Recursive: true}, list); err != nil {
		return err
	}
	for _, pdb := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if pdb.Status.DisruptionsAllowed < 1 {
			e := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
			e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metav1.StatusCause{Type: "DisruptionBudget",
				Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy)})
			return e
		}
	}
	return nil
}
