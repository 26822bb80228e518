package apiserver

import (
	"crypto/subtle"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/auth"
)

// Bootstrap tokens, as Kubernetes defines them: a Secret kube-system/bootstrap-token-<id> of
// type bootstrap.kubernetes.io/token holds token-id, token-secret, an optional expiration
// and usage-bootstrap-authentication; the bearer token "<id>.<secret>" authenticates as
// system:bootstrap:<id> in group system:bootstrappers (and any auth-extra-groups). Nodes
// join with them (`skiff token create`, `skiff agent --token`).

// BootstrapTokenSecretType is the Secret type of bootstrap tokens.
const BootstrapTokenSecretType corev1.SecretType = "bootstrap.kubernetes.io/token"

var bootstrapTokenRE = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// AuthenticateBootstrapToken authenticates a bootstrap token against its Secret in the
// watch cache.
func (s *Server) AuthenticateBootstrapToken(token string) (*auth.User, bool) {
	m := bootstrapTokenRE.FindStringSubmatch(token)
	if m == nil {
		return nil, false
	}
	id, secret := m[1], m[2]
	ep := s.endpoints[gvrKey("", "v1", "secrets")]
	if ep == nil {
		return nil, false
	}
	c, ok := ep.cacher.(peeker)
	if !ok {
		return nil, false
	}
	obj, found := c.Peek(ep.key("kube-system", "bootstrap-token-"+id))
	if !found {
		return nil, false
	}
	sec, ok := obj.(*corev1.Secret)
	if !ok || sec.Type != BootstrapTokenSecretType || sec.DeletionTimestamp != nil {
		return nil, false
	}
	if string(sec.Data["token-id"]) != id || subtle.ConstantTimeCompare(sec.Data["token-secret"], []byte(secret)) != 1 {
		return nil, false
	}
	if string(sec.Data["usage-bootstrap-authentication"]) != "true" {
		return nil, false
	}
	if exp := string(sec.Data["expiration"]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !s.now().Before(t) {
			return nil, false
		}
	}
	groups := []string{"system:bootstrappers"}
	for _, g := range strings.Split(string(sec.Data["auth-extra-groups"]), ",") {
		if g = strings.TrimSpace(g); strings.HasPrefix(g, "system:bootstrappers:") {
			groups = append(groups, g)
		}
	}
	return &auth.User{Name: "system:bootstrap:" + id, Groups: groups}, true
}
