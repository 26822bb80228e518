package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthenticatedGroup is added to every authenticated user, as in Kubernetes,
// so RBAC can grant things to "anyone who logged in".
const AuthenticatedGroup = "system:authenticated"

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
}

func (u *User) clone() *User {
	c := *u
	c.Groups = slices.Clone(u.Groups)
	return &c
}

// withAuthenticatedGroup returns a copy of u that is a member of
// AuthenticatedGroup. Copying keeps stored users immutable from the point
// of view of request handlers.
func (u *User) withAuthenticatedGroup() *User {
	c := u.clone()
	if !slices.Contains(c.Groups, AuthenticatedGroup) {
		c.Groups = append(c.Groups, AuthenticatedGroup)
	}
	return c
}

// Authenticator identifies the user behind an HTTP request from its client
// certificate or bearer token.
type Authenticator struct {
	roots *x509.CertPool // nil disables client-certificate authentication
	caRaw []byte         // the cluster CA, to recognise chains the handshake verified

	mu sync.RWMutex
	// tokens is keyed by the SHA-256 of the token so lookups do not compare
	// secrets byte by byte and the plaintext is not kept around.
	tokens map[[sha256.Size]byte]User
	extra  []func(token string) (*User, bool)
}

// NewAuthenticator returns an Authenticator trusting client certificates
// issued by pki's CA (pki may be nil to disable them) and the static tokens
// in tokenFile. tokenFile uses the Kubernetes static token file format, one
// `token,user,uid,"group1,group2"` record per line, groups optional; lines
// starting with # are ignored. An empty or missing tokenFile means no static
// tokens.
func NewAuthenticator(pki *PKI, tokenFile string) (*Authenticator, error) {
	a := &Authenticator{tokens: make(map[[sha256.Size]byte]User)}
	if pki != nil {
		a.roots = pki.CAPool
		a.caRaw = pki.CACert.Raw
	}
	if tokenFile == "" {
		return a, nil
	}
	f, err := os.Open(tokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer f.Close()
	if err := a.loadTokens(f); err != nil {
		return nil, fmt.Errorf("load token file %s: %w", tokenFile, err)
	}
	return a, nil
}

func (a *Authenticator) loadTokens(r io.Reader) error {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < 3 {
			return fmt.Errorf("line %d: want token,user,uid[,groups], got %d fields", line, len(rec))
		}
		u := User{Name: strings.TrimSpace(rec[1]), UID: strings.TrimSpace(rec[2])}
		token := strings.TrimSpace(rec[0])
		if token == "" || u.Name == "" {
			return fmt.Errorf("line %d: empty token or user name", line)
		}
		if len(rec) > 3 {
			for g := range strings.SplitSeq(rec[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					u.Groups = append(u.Groups, g)
				}
			}
		}
		if _, dup := a.tokens[hashToken(token)]; dup {
			slog.Warn("duplicate token in token file, later entry wins", "line", line, "user", u.Name)
		}
		a.AddToken(token, u)
	}
}

// AddToken registers a static bearer token for u.
func (a *Authenticator) AddToken(token string, u User) {
	stored := u.clone()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens[hashToken(token)] = *stored
}

// AddTokenAuthenticator registers f to resolve bearer tokens that are not
// static tokens (for example service-account JWTs). Authenticators are
// consulted in registration order.
func (a *Authenticator) AddTokenAuthenticator(f func(token string) (*User, bool)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.extra = append(a.extra, f)
}

// GenerateToken returns a random bearer token (256 bits, base64url, 43
// characters) that is safe to put in a token CSV file or HTTP header.
func GenerateToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails, see crypto/rand docs
	return base64.RawURLEncoding.EncodeToString(b)
}

// Authenticate identifies the user behind r: a client certificate chaining to
// the cluster CA wins, then a bearer token. The returned user is always a
// fresh copy including AuthenticatedGroup.
func (a *Authenticator) Authenticate(r *http.Request) (*User, bool) {
	if u, ok := a.authenticateCert(r); ok {
		return u, true
	}
	token, ok := bearerToken(r)
	if !ok {
		return nil, false
	}
	return a.AuthenticateToken(token)
}

// AuthenticateToken identifies the user a bearer token stands for: a static token, then the
// added authenticators (service-account and bootstrap tokens). It also answers TokenReviews.
func (a *Authenticator) AuthenticateToken(token string) (*User, bool) {
	a.mu.RLock()
	stored, found := a.tokens[hashToken(token)]
	extra := a.extra
	a.mu.RUnlock()
	if found {
		return stored.withAuthenticatedGroup(), true
	}
	for _, f := range extra {
		if u, ok := f(token); ok && u != nil && u.Name != "" {
			return u.withAuthenticatedGroup(), true
		}
	}
	return nil, false
}

// authenticateCert maps a verified client certificate to a user. The TLS
// layer already verifies certificates when configured with
// PKI.ServingTLSConfig, but verifying again keeps authentication correct
// behind any listener configuration (for example one without ClientCAs).
func (a *Authenticator) authenticateCert(r *http.Request) (*User, bool) {
	if a.roots == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false
	}
	leaf := r.TLS.PeerCertificates[0]
	// A listener with PKI.ServingTLSConfig verified the chain in the handshake, against the
	// same CA and for client auth: VerifiedChains says so. Verifying again on every request
	// would cost an ECDSA verification per request, the dominant CPU cost under load.
	if !a.verifiedByHandshake(r) {
		intermediates := x509.NewCertPool()
		for _, c := range r.TLS.PeerCertificates[1:] {
			intermediates.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         a.roots,
			Intermediates: intermediates,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			slog.Debug("client certificate rejected", "subject", leaf.Subject.String(), "err", err)
			return nil, false
		}
	}
	// Kubernetes rejects certificates without a CN rather than
	// authenticating an unnamed user.
	if leaf.Subject.CommonName == "" {
		return nil, false
	}
	u := &User{Name: leaf.Subject.CommonName, Groups: leaf.Subject.Organization}
	return u.withAuthenticatedGroup(), true
}

// verifiedByHandshake reports whether the TLS handshake verified the client's chain up to one
// of this authenticator's roots.
func (a *Authenticator) verifiedByHandshake(r *http.Request) bool {
	for _, chain := range r.TLS.VerifiedChains {
		if len(chain) == 0 {
			continue
		}
		root := chain[len(chain)-1]
		if a.caRaw != nil && bytes.Equal(root.Raw, a.caRaw) {
			return true
		}
	}
	return false
}

// bearerToken extracts the token from "Authorization: Bearer <token>"; the
// scheme is case-insensitive per RFC 6750.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func hashToken(token string) [sha256.Size]byte {
	return sha256.Sum256([]byte(token))
}

type userKey struct{}

// LoopbackUser is the identity of the clients inside `skiff server` (controllers, scheduler,
// node components), which reach the API through internal/loopback rather than with the
// admin certificate: the same user and groups.
func LoopbackUser() *User {
	u := &User{Name: adminUser, Groups: []string{mastersGroup}}
	return u.withAuthenticatedGroup()
}

// WithUser returns a copy of ctx carrying u.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the user stored by WithUser.
func UserFrom(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(userKey{}).(*User)
	return u, ok && u != nil
}

// unauthorizedBody is the metav1.Status a Kubernetes API server sends with a
// 401; clients such as kubectl parse it to print "Unauthorized". The
// trailing newline matches the apimachinery JSON encoder.
var unauthorizedBody = func() []byte {
	b, err := json.Marshal(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  "Unauthorized",
		Reason:   metav1.StatusReasonUnauthorized,
		Code:     http.StatusUnauthorized,
	})
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}()

// Middleware authenticates every request and stores the user in its context.
// Health and version endpoints are reachable without credentials so load
// balancers and probes need none; everything else gets a 401.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := UserFrom(r.Context()); ok {
			// Set by an in-process loopback transport: a request that came over a socket
			// starts with a fresh context, so it cannot carry a user.
			next.ServeHTTP(w, r)
			return
		}
		u, ok := a.Authenticate(r)
		switch {
		case ok:
			// Credentials must not travel further, e.g. to backends
			// reached through a proxy handler.
			r.Header.Del("Authorization")
			u = impersonate(r, u)
			r = r.WithContext(WithUser(r.Context(), u))
		case isPublicPath(r.URL.Path):
		default:
			writeUnauthorized(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// impersonate applies the Impersonate-User, -Uid and -Group headers (kubectl --as,
// --as-group, --as-uid): the request then acts as that user. Kubernetes lets a user
// impersonate when authorized to; this server authorizes every authenticated user, so any
// authenticated user may. The headers are removed once applied.
func impersonate(r *http.Request, u *User) *User {
	name := r.Header.Get("Impersonate-User")
	if name == "" {
		return u
	}
	imp := &User{Name: name, UID: r.Header.Get("Impersonate-Uid"), Groups: r.Header.Values("Impersonate-Group")}
	if strings.HasPrefix(name, "system:serviceaccount:") && len(imp.Groups) == 0 {
		// As Kubernetes does: a service account is in its groups.
		if parts := strings.Split(name, ":"); len(parts) == 4 {
			imp.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:" + parts[2]}
		}
	}
	for _, h := range []string{"Impersonate-User", "Impersonate-Uid", "Impersonate-Group"} {
		r.Header.Del(h)
	}
	for k := range r.Header {
		if strings.HasPrefix(k, "Impersonate-Extra-") {
			r.Header.Del(k)
		}
	}
	return imp.withAuthenticatedGroup()
}

func isPublicPath(p string) bool {
	switch p {
	case "/healthz", "/livez", "/readyz", "/version":
		return true
	}
	return strings.HasPrefix(p, "/healthz/") ||
		strings.HasPrefix(p, "/livez/") ||
		strings.HasPrefix(p, "/readyz/")
}

func writeUnauthorized(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(unauthorizedBody)
}
