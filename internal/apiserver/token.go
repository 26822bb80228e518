package apiserver

import (
	"fmt"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/auth"
)

// handleTokenRequest serves POST serviceaccounts/{name}/token: a signed JWT for the service
// account, optionally bound to a pod, secret or node, as `kubectl create token` asks.
func (s *Server) handleTokenRequest(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	gr := ep.res.GroupResource()
	if s.cfg.Tokens == nil {
		writeStatus(w, apierrors.NewServiceUnavailable("token issuing is not configured"))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	var tr authenticationv1.TokenRequest
	if len(body) > 0 {
		if err := decodeLoose(r, body, &tr, authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")); err != nil {
			writeError(w, r, err, gr, info.Name)
			return
		}
	}
	sa := &corev1.ServiceAccount{}
	if err := ep.store.Get(r.Context(), ep.key(info.Namespace, info.Name), sa); err != nil {
		writeError(w, r, err, gr, info.Name)
		return
	}
	gk := schema.GroupKind{Group: "authentication.k8s.io", Kind: "TokenRequest"}
	if tr.Spec.ExpirationSeconds == nil {
		d := int64(3600)
		tr.Spec.ExpirationSeconds = &d
	}
	if *tr.Spec.ExpirationSeconds < 600 {
		writeStatus(w, apierrors.NewInvalid(gk, info.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "expirationSeconds"),
			*tr.Spec.ExpirationSeconds, "may not specify a duration less than 10 minutes")}))
		return
	}
	if *tr.Spec.ExpirationSeconds > 1<<32 {
		writeStatus(w, apierrors.NewInvalid(gk, info.Name, field.ErrorList{field.TooLong(field.NewPath("spec", "expirationSeconds"),
			*tr.Spec.ExpirationSeconds, 1<<32)}))
		return
	}
	if len(tr.Spec.Audiences) == 0 {
		tr.Spec.Audiences = []string{auth.Issuer}
	}
	kc := auth.KubernetesClaims{Namespace: info.Namespace, ServiceAccount: auth.Ref{Name: sa.Name, UID: string(sa.UID)}}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		var res, ns string
		switch ref.Kind {
		case "Pod":
			res, ns = "pods", info.Namespace
		case "Secret":
			res, ns = "secrets", info.Namespace
		case "Node":
			res = "nodes"
		default:
			writeStatus(w, apierrors.NewInvalid(gk, info.Name, field.ErrorList{field.NotSupported(field.NewPath("spec", "boundObjectRef", "kind"), ref.Kind, []string{"Pod", "Secret", "Node"})}))
			return
		}
		bep := s.endpoints[gvrKey("", "v1", res)]
		obj := bep.res.New()
		if err := bep.store.Get(r.Context(), bep.key(ns, ref.Name), obj); err != nil {
			writeError(w, r, err, bep.res.GroupResource(), ref.Name)
			return
		}
		m, _ := meta.Accessor(obj)
		if ref.UID != "" && ref.UID != m.GetUID() {
			writeStatus(w, apierrors.NewConflict(bep.res.GroupResource(), ref.Name, fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID)))
			return
		}
		br := &auth.Ref{Name: ref.Name, UID: string(m.GetUID())}
		switch ref.Kind {
		case "Pod":
			kc.Pod = br
		case "Secret":
			kc.Secret = br
		case "Node":
			kc.Node = br
		}
	}
	tok, exp, err := s.cfg.Tokens.Issue(kc, tr.Spec.Audiences, time.Duration(*tr.Spec.ExpirationSeconds)*time.Second, s.now())
	if err != nil {
		writeStatus(w, apierrors.NewInternalError(err))
		return
	}
	tr.TypeMeta = metav1.TypeMeta{Kind: "TokenRequest", APIVersion: "authentication.k8s.io/v1"}
	tr.Name, tr.Namespace, tr.CreationTimestamp = sa.Name, sa.Namespace, metav1.NewTime(s.now())
	tr.Status = authenticationv1.TokenRequestStatus{Token: tok, ExpirationTimestamp: metav1.NewTime(exp)}
	writeJSON(w, http.StatusCreated, &tr)
}

// AuthenticateServiceAccountToken verifies a service-account JWT and that what it is bound
// to still exists with the same UID (a deleted pod's token stops working).
func (s *Server) AuthenticateServiceAccountToken(token string) (*auth.User, bool) {
	if s.cfg.Tokens == nil {
		return nil, false
	}
	c, err := s.cfg.Tokens.Verify(token, []string{auth.Issuer}, s.now())
	if err != nil {
		return nil, false
	}
	kc := c.Kubernetes
	if !s.liveUID("serviceaccounts", kc.Namespace, kc.ServiceAccount.Name, kc.ServiceAccount.UID) {
		return nil, false
	}
	if kc.Pod != nil && !s.liveUID("pods", kc.Namespace, kc.Pod.Name, kc.Pod.UID) {
		return nil, false
	}
	if kc.Secret != nil && !s.liveUID("secrets", kc.Namespace, kc.Secret.Name, kc.Secret.UID) {
		return nil, false
	}
	return auth.ServiceAccountUser(c), true
}

func (s *Server) liveUID(resource, ns, name, uid string) bool {
	ep := s.endpoints[gvrKey("", "v1", resource)]
	if ep == nil {
		return false
	}
	c, ok := ep.cacher.(peeker)
	if !ok {
		return false
	}
	obj, found := c.Peek(ep.key(ns, name))
	if !found {
		return false
	}
	m, err := meta.Accessor(obj)
	return err == nil && string(m.GetUID()) == uid
}
