package auth

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestWriteKubeconfig(t *testing.T) {
	p := newPKI(t)
	a, err := NewAuthenticator(p, "")
	if err != nil {
		t.Fatal(err)
	}
	token := GenerateToken()
	a.AddToken(token, User{Name: "bob", UID: "7"})
	srv := newTestServer(t, p, a)

	dir := filepath.Join(t.TempDir(), "nested", ".kube")
	tests := []struct {
		name     string
		write    func(path string) error
		wantUser string
	}{
		{
			name: "client certificate",
			write: func(path string) error {
				return WriteKubeconfig(path, srv.URL, p.CAPEM, p.AdminCertPEM, p.AdminKeyPEM)
			},
			wantUser: "system:admin",
		},
		{
			name: "bearer token",
			write: func(path string) error {
				return WriteTokenKubeconfig(path, srv.URL, p.CAPEM, token)
			},
			wantUser: "bob",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "config")
			// Write twice: the second write replaces the first atomically.
			for range 2 {
				if err := tt.write(path); err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode = %o, want 600", fi.Mode().Perm())
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("dir has %d entries, want only the kubeconfig (temp files left?)", len(entries))
			}

			cfg, err := clientcmd.LoadFromFile(path)
			if err != nil {
				t.Fatalf("LoadFromFile: %v", err)
			}
			if cfg.CurrentContext != "skiff" {
				t.Errorf("current-context = %q", cfg.CurrentContext)
			}
			ctx, ok := cfg.Contexts["skiff"]
			if !ok || ctx.Cluster != "skiff" || ctx.AuthInfo != "skiff" {
				t.Errorf("context skiff = %+v", ctx)
			}
			cl, ok := cfg.Clusters["skiff"]
			if !ok || cl.Server != srv.URL || !bytes.Equal(cl.CertificateAuthorityData, p.CAPEM) || cl.CertificateAuthority != "" {
				t.Errorf("cluster skiff = %+v", cl)
			}
			if ai, ok := cfg.AuthInfos["skiff"]; !ok || ai.ClientCertificate != "" || ai.ClientKey != "" {
				t.Errorf("user skiff = %+v (want embedded data, not paths)", ai)
			}

			restCfg, err := clientcmd.BuildConfigFromFlags("", path)
			if err != nil {
				t.Fatalf("BuildConfigFromFlags: %v", err)
			}
			hc, err := rest.HTTPClientFor(restCfg)
			if err != nil {
				t.Fatalf("HTTPClientFor: %v", err)
			}
			resp, err := hc.Get(restCfg.Host + "/api")
			if err != nil {
				t.Fatalf("GET /api: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			var seen seenRequest
			if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
				t.Fatal(err)
			}
			if seen.User == nil || seen.User.Name != tt.wantUser {
				t.Errorf("user = %+v, want %s", seen.User, tt.wantUser)
			}
		})
	}
}
