package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// projectedFiles gathers a projected volume's sources; the time returned is when a
// service account token in it should be renewed.
func (m *volumeManager) projectedFiles(ctx context.Context, pod *corev1.Pod, p *corev1.ProjectedVolumeSource) (map[string]fileData, time.Time, error) {
	out := map[string]fileData{}
	mode := modeOr(p.DefaultMode, 0o644)
	var refresh time.Time
	add := func(files map[string]fileData) {
		for k, v := range files {
			out[k] = v
		}
	}
	for _, src := range p.Sources {
		switch {
		case src.ConfigMap != nil:
			files, err := m.configMapFiles(ctx, pod, &src.ConfigMap.LocalObjectReference, src.ConfigMap.Items, nil, src.ConfigMap.Optional, mode)
			if err != nil {
				return nil, time.Time{}, err
			}
			add(files)
		case src.Secret != nil:
			files, err := m.secretFiles(ctx, pod, src.Secret.Name, src.Secret.Items, nil, src.Secret.Optional, mode)
			if err != nil {
				return nil, time.Time{}, err
			}
			add(files)
		case src.DownwardAPI != nil:
			files, err := m.downwardFiles(pod, src.DownwardAPI.Items, nil, mode)
			if err != nil {
				return nil, time.Time{}, err
			}
			add(files)
		case src.ServiceAccountToken != nil:
			tok, renew, err := m.tokens.token(ctx, pod, src.ServiceAccountToken)
			if err != nil {
				return nil, time.Time{}, err
			}
			out[src.ServiceAccountToken.Path] = fileData{Data: []byte(tok), Mode: mode}
			if refresh.IsZero() || renew.Before(refresh) {
				refresh = renew
			}
		case src.ClusterTrustBundle != nil, src.PodCertificate != nil:
			return nil, time.Time{}, fmt.Errorf("projected source not supported by skiff's node agent")
		}
	}
	return out, refresh, nil
}

type tokenKey struct {
	uid       types.UID
	audience  string
	expiresIn int64
}

type cachedToken struct {
	token          string
	issued, expiry time.Time
}

// tokenManager obtains bound service account tokens for pods (TokenRequest with the pod
// as bound object) and renews them at 80% of their lifetime, as the kubelet does.
type tokenManager struct {
	client kubernetes.Interface
	now    func() time.Time

	mu     sync.Mutex
	tokens map[tokenKey]*cachedToken
}

func newTokenManager(client kubernetes.Interface) *tokenManager {
	return &tokenManager{client: client, now: time.Now, tokens: map[tokenKey]*cachedToken{}}
}

// token returns a valid token for the projection and when to renew it.
func (t *tokenManager) token(ctx context.Context, pod *corev1.Pod, p *corev1.ServiceAccountTokenProjection) (string, time.Time, error) {
	exp := int64(3600)
	if p.ExpirationSeconds != nil {
		exp = *p.ExpirationSeconds
	}
	key := tokenKey{pod.UID, p.Audience, exp}
	now := t.now()
	t.mu.Lock()
	c := t.tokens[key]
	t.mu.Unlock()
	if c != nil {
		renew := c.issued.Add(c.expiry.Sub(c.issued) * 8 / 10)
		if now.Before(renew) {
			return c.token, renew, nil
		}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if p.Audience != "" {
		tr.Spec.Audiences = []string{p.Audience}
	}
	resp, err := t.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		if c != nil && now.Before(c.expiry) {
			// The old token is still good: keep it and retry soon.
			return c.token, now.Add(time.Minute), nil
		}
		return "", time.Time{}, fmt.Errorf("fetch token for service account %q: %w", sa, err)
	}
	expiry := resp.Status.ExpirationTimestamp.Time
	if expiry.IsZero() || expiry.Before(now) {
		expiry = now.Add(time.Duration(exp) * time.Second)
	}
	c = &cachedToken{token: resp.Status.Token, issued: now, expiry: expiry}
	t.mu.Lock()
	t.tokens[key] = c
	t.mu.Unlock()
	return c.token, now.Add(expiry.Sub(now) * 8 / 10), nil
}

func (t *tokenManager) forgetPod(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.tokens {
		if k.uid == uid {
			delete(t.tokens, k)
		}
	}
}
