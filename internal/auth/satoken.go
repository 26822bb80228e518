package auth

import (
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is the iss claim of service-account tokens, as Kubernetes clusters commonly use.
const Issuer = "https://kubernetes.default.svc.cluster.local"

// ServiceAccountClaims are the claims skiff puts in a service-account token, shaped as
// Kubernetes' bound tokens ("kubernetes.io" private claims).
type ServiceAccountClaims struct {
	jwt.Claims
	Kubernetes KubernetesClaims `json:"kubernetes.io"`
}

// KubernetesClaims bind a token to its service account and, optionally, a pod or secret.
type KubernetesClaims struct {
	Namespace      string `json:"namespace"`
	ServiceAccount Ref    `json:"serviceaccount"`
	Pod            *Ref   `json:"pod,omitempty"`
	Secret         *Ref   `json:"secret,omitempty"`
	Node           *Ref   `json:"node,omitempty"`
}

// Ref names a bound object.
type Ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// TokenIssuer signs and verifies service-account JWTs with the cluster's service-account key.
type TokenIssuer struct {
	key    crypto.Signer
	signer jose.Signer
}

// NewTokenIssuer uses key (the PKI's SAKey, ECDSA P-256: ES256).
func NewTokenIssuer(key crypto.Signer) (*TokenIssuer, error) {
	if _, ok := key.(*ecdsa.PrivateKey); !ok {
		return nil, errors.New("service-account key must be ECDSA")
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &TokenIssuer{key: key, signer: s}, nil
}

// Issue signs a token for the service account ns/name valid for ttl.
func (t *TokenIssuer) Issue(kc KubernetesClaims, audiences []string, ttl time.Duration, now time.Time) (string, time.Time, error) {
	exp := now.Add(ttl)
	claims := ServiceAccountClaims{
		Claims: jwt.Claims{
			Issuer:    Issuer,
			Subject:   fmt.Sprintf("system:serviceaccount:%s:%s", kc.Namespace, kc.ServiceAccount.Name),
			Audience:  jwt.Audience(audiences),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			Expiry:    jwt.NewNumericDate(exp),
		},
		Kubernetes: kc,
	}
	tok, err := jwt.Signed(t.signer).Claims(claims).Serialize()
	return tok, exp, err
}

// Verify checks a token's signature, issuer, audience and lifetime, returning its claims.
func (t *TokenIssuer) Verify(token string, audiences []string, now time.Time) (*ServiceAccountClaims, error) {
	if strings.Count(token, ".") != 2 {
		return nil, errors.New("not a JWT")
	}
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, err
	}
	var c ServiceAccountClaims
	if err := parsed.Claims(t.key.Public(), &c); err != nil {
		return nil, err
	}
	exp := jwt.Expected{Issuer: Issuer, Time: now}
	if err := c.Claims.ValidateWithLeeway(exp, 0); err != nil {
		return nil, err
	}
	if len(audiences) > 0 {
		ok := false
		for _, a := range audiences {
			if c.Audience.Contains(a) {
				ok = true
			}
		}
		if !ok {
			return nil, errors.New("token audience does not match")
		}
	}
	if c.Kubernetes.Namespace == "" || c.Kubernetes.ServiceAccount.Name == "" {
		return nil, errors.New("token is not a service-account token")
	}
	return &c, nil
}

// ServiceAccountUser is the user a service-account token authenticates as.
func ServiceAccountUser(c *ServiceAccountClaims) *User {
	ns := c.Kubernetes.Namespace
	return &User{
		Name:   fmt.Sprintf("system:serviceaccount:%s:%s", ns, c.Kubernetes.ServiceAccount.Name),
		UID:    c.Kubernetes.ServiceAccount.UID,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns},
	}
}
