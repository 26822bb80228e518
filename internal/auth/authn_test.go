package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const wantUnauthorized = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}` + "\n"

// seenRequest is what the test handler reports back as JSON.
type seenRequest struct {
	User          *User
	Authorization string
}

// newTestServer starts a TLS server using the PKI's serving config and the
// authenticator's middleware; the handler echoes the user it sees.
func newTestServer(t *testing.T, p *PKI, a *Authenticator) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		json.NewEncoder(w).Encode(seenRequest{User: u, Authorization: r.Header.Get("Authorization")})
	})
	srv := httptest.NewUnstartedServer(a.Middleware(h))
	srv.TLS = p.ServingTLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func newPKI(t *testing.T) *PKI {
	t.Helper()
	p, err := EnsurePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatalf("EnsurePKI: %v", err)
	}
	return p
}

func keyPair(t *testing.T, certPEM, keyPEM []byte) *tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestMiddlewareTLS(t *testing.T) {
	p := newPKI(t)
	a, err := NewAuthenticator(p, "")
	if err != nil {
		t.Fatalf("NewAuthenticator: %v", err)
	}
	token := GenerateToken()
	a.AddToken(token, User{Name: "alice", UID: "42", Groups: []string{"devs"}})
	srv := newTestServer(t, p, a)

	nodeCert, nodeKey, err := p.SignClientCert("system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatal(err)
	}
	foreign := newPKI(t) // a different CA

	tests := []struct {
		name       string
		cert       *tls.Certificate
		token      string
		path       string
		wantStatus int
		// wantHandshakeErr allows the TLS layer to reject the client
		// instead of the middleware answering 401.
		wantHandshakeErr bool
		wantUser         *User
	}{
		{
			name:       "admin client cert",
			cert:       keyPair(t, p.AdminCertPEM, p.AdminKeyPEM),
			path:       "/api",
			wantStatus: http.StatusOK,
			wantUser:   &User{Name: "system:admin", Groups: []string{"system:masters", "system:authenticated"}},
		},
		{
			name:       "signed node client cert",
			cert:       keyPair(t, nodeCert, nodeKey),
			path:       "/api/v1/nodes",
			wantStatus: http.StatusOK,
			wantUser:   &User{Name: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}},
		},
		{
			name:       "static bearer token",
			token:      token,
			path:       "/apis",
			wantStatus: http.StatusOK,
			wantUser:   &User{Name: "alice", UID: "42", Groups: []string{"devs", "system:authenticated"}},
		},
		{
			name:       "unknown bearer token",
			token:      "nope",
			path:       "/api",
			wantStatus: http.StatusUnauthorized,
		},
		{
			name:       "no credentials",
			path:       "/api",
			wantStatus: http.StatusUnauthorized,
		},
		{
			name:       "healthz without credentials",
			path:       "/healthz",
			wantStatus: http.StatusOK,
		},
		{
			name:       "readyz check without credentials",
			path:       "/readyz/etcd",
			wantStatus: http.StatusOK,
		},
		{
			name:             "client cert from another CA",
			cert:             keyPair(t, foreign.AdminCertPEM, foreign.AdminKeyPEM),
			path:             "/api",
			wantStatus:       http.StatusUnauthorized,
			wantHandshakeErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlsCfg := &tls.Config{RootCAs: p.CAPool}
			if tt.cert != nil {
				tlsCfg.Certificates = []tls.Certificate{*tt.cert}
			}
			tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()

			req, err := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				if tt.wantHandshakeErr {
					t.Logf("rejected during TLS handshake: %v", err)
					return
				}
				t.Fatalf("request: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if resp.StatusCode == http.StatusUnauthorized {
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				if string(body) != wantUnauthorized {
					t.Errorf("body = %s, want %s", body, wantUnauthorized)
				}
				return
			}
			var seen seenRequest
			if err := json.Unmarshal(body, &seen); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if seen.Authorization != "" {
				t.Errorf("handler saw Authorization header %q; want it stripped", seen.Authorization)
			}
			assertUser(t, seen.User, tt.wantUser)
		})
	}
}

func assertUser(t *testing.T, got, want *User) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("user = %+v, want %+v", got, want)
	case got.Name != want.Name || got.UID != want.UID || !slices.Equal(got.Groups, want.Groups):
		t.Errorf("user = %+v, want %+v", *got, *want)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.csv")
	content := `# static tokens
tok-alice,alice,uid-1,"dev,ops"
tok-bob,bob,uid-2

tok-carol, carol ,uid-3,viewers
`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthenticator(nil, path)
	if err != nil {
		t.Fatalf("NewAuthenticator: %v", err)
	}
	a.AddTokenAuthenticator(func(token string) (*User, bool) {
		if token == "jwt-sa" {
			return &User{Name: "system:serviceaccount:default:sa", Groups: []string{"system:serviceaccounts"}}, true
		}
		return nil, false
	})

	tests := []struct {
		name   string
		header string
		want   *User
	}{
		{"quoted groups", "Bearer tok-alice", &User{Name: "alice", UID: "uid-1", Groups: []string{"dev", "ops", "system:authenticated"}}},
		{"no groups", "Bearer tok-bob", &User{Name: "bob", UID: "uid-2", Groups: []string{"system:authenticated"}}},
		{"trimmed fields", "Bearer tok-carol", &User{Name: "carol", UID: "uid-3", Groups: []string{"viewers", "system:authenticated"}}},
		{"lower-case scheme", "bearer tok-bob", &User{Name: "bob", UID: "uid-2", Groups: []string{"system:authenticated"}}},
		{"pluggable authenticator", "Bearer jwt-sa", &User{Name: "system:serviceaccount:default:sa", Groups: []string{"system:serviceaccounts", "system:authenticated"}}},
		{"unknown token", "Bearer tok-mallory", nil},
		{"basic auth", "Basic dG9rLWFsaWNlOg==", nil},
		{"empty bearer", "Bearer ", nil},
		{"no header", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			got, ok := a.Authenticate(r)
			if ok != (tt.want != nil) {
				t.Fatalf("ok = %v, want %v", ok, tt.want != nil)
			}
			assertUser(t, got, tt.want)
		})
	}

	// Mutating a returned user must not leak into later requests.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer tok-alice")
	u, _ := a.Authenticate(r)
	u.Groups[0] = "hacked"
	u2, _ := a.Authenticate(r)
	if u2.Groups[0] != "dev" {
		t.Errorf("stored user was mutated: %v", u2.Groups)
	}
}

func TestNewAuthenticatorTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string // nil: file does not exist
		wantErr bool
	}{
		{name: "missing file", content: nil},
		{name: "empty file", content: ptr("")},
		{name: "too few fields", content: ptr("tok,alice\n"), wantErr: true},
		{name: "empty token", content: ptr(",alice,1\n"), wantErr: true},
		{name: "unterminated quote", content: ptr("tok,alice,1,\"a,b\n"), wantErr: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "tokens"+string(rune('a'+i))+".csv")
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := NewAuthenticator(nil, path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestPublicPaths(t *testing.T) {
	a, err := NewAuthenticator(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tests := []struct {
		path string
		want int
	}{
		{"/healthz", http.StatusOK},
		{"/healthz/etcd", http.StatusOK},
		{"/livez", http.StatusOK},
		{"/livez/ping", http.StatusOK},
		{"/readyz", http.StatusOK},
		{"/readyz/shutdown", http.StatusOK},
		{"/version", http.StatusOK},
		{"/version/", http.StatusUnauthorized},
		{"/versions", http.StatusUnauthorized},
		{"/healthzz", http.StatusUnauthorized},
		{"/", http.StatusUnauthorized},
		{"/api/v1/pods", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.want {
				t.Errorf("status = %d, want %d", rec.Code, tt.want)
			}
		})
	}
}

func TestUserContext(t *testing.T) {
	if _, ok := UserFrom(context.Background()); ok {
		t.Error("UserFrom(empty ctx) ok")
	}
	want := &User{Name: "bob"}
	got, ok := UserFrom(WithUser(context.Background(), want))
	if !ok || got != want {
		t.Errorf("UserFrom = %v, %v", got, ok)
	}
}

func TestGenerateToken(t *testing.T) {
	a, b := GenerateToken(), GenerateToken()
	if len(a) < 32 {
		t.Errorf("token %q shorter than 32 chars", a)
	}
	if a == b {
		t.Error("two tokens are equal")
	}
}

// Authenticate must verify certificates itself, not trust that the listener
// did: a server without ClientCAs would hand it unverified certificates.
func TestAuthenticateVerifiesCertificates(t *testing.T) {
	p, foreign := newPKI(t), newPKI(t)
	a, err := NewAuthenticator(p, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pki  *PKI
		want *User
	}{
		{"own CA", p, &User{Name: "system:admin", Groups: []string{"system:masters", "system:authenticated"}}},
		{"foreign CA", foreign, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := keyPair(t, tt.pki.AdminCertPEM, tt.pki.AdminKeyPEM).Leaf
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
			got, ok := a.Authenticate(r)
			if ok != (tt.want != nil) {
				t.Fatalf("ok = %v, want %v", ok, tt.want != nil)
			}
			assertUser(t, got, tt.want)
		})
	}
}

// An in-process loopback request arrives with its user in the context and is served as that
// user without credentials; the same request from outside, without the context, gets a 401.
func TestMiddlewareTrustsLoopbackUser(t *testing.T) {
	a, err := NewAuthenticator(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen *User
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen, _ = UserFrom(r.Context()) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/pods", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("without a user: status %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/pods", nil)
	h.ServeHTTP(rec, req.WithContext(WithUser(req.Context(), LoopbackUser())))
	if rec.Code != http.StatusOK || seen == nil || seen.Name != "system:admin" ||
		!slices.Contains(seen.Groups, "system:masters") || !slices.Contains(seen.Groups, AuthenticatedGroup) {
		t.Fatalf("loopback user: status %d, user %+v", rec.Code, seen)
	}
}

// kubectl --as / --as-group: the request acts as the impersonated user, in its groups plus
// system:authenticated; a service account gets its groups; without credentials nothing is
// impersonated.
func TestMiddlewareImpersonation(t *testing.T) {
	a, err := NewAuthenticator(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	a.AddToken("secret", User{Name: "alice"})
	var seen *User
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = UserFrom(r.Context())
		if r.Header.Get("Impersonate-User") != "" {
			t.Error("impersonation headers passed on")
		}
	}))
	do := func(token string, hdr map[string][]string) int {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/pods", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, vs := range hdr {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		rec := httptest.NewRecorder()
		seen = nil
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := do("secret", map[string][]string{"Impersonate-User": {"bob"}, "Impersonate-Group": {"devs", "ops"}}); code != 200 ||
		seen.Name != "bob" || !slices.Equal(seen.Groups, []string{"devs", "ops", AuthenticatedGroup}) {
		t.Fatalf("as bob: %d %+v", code, seen)
	}
	if do("secret", map[string][]string{"Impersonate-User": {"system:serviceaccount:web:builder"}}); seen.Name != "system:serviceaccount:web:builder" ||
		!slices.Contains(seen.Groups, "system:serviceaccounts:web") {
		t.Fatalf("as a service account: %+v", seen)
	}
	if do("secret", nil); seen.Name != "alice" {
		t.Fatalf("without impersonation: %+v", seen)
	}
	if code := do("", map[string][]string{"Impersonate-User": {"bob"}}); code != http.StatusUnauthorized {
		t.Fatalf("impersonation without credentials: %d", code)
	}
}
