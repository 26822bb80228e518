package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestEnsurePKICreatesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	p, err := EnsurePKI(dir, []string{"skiff.example.com", "10.1.2.3"})
	if err != nil {
		t.Fatalf("EnsurePKI: %v", err)
	}

	files := []struct {
		name string
		perm os.FileMode
	}{
		{"ca.crt", 0o644},
		{"ca.key", 0o600},
		{"server.crt", 0o644},
		{"server.key", 0o600},
		{"admin.crt", 0o644},
		{"admin.key", 0o600},
		{"sa.key", 0o600},
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		if got := fi.Mode().Perm(); got != f.perm {
			t.Errorf("%s mode = %o, want %o", f.name, got, f.perm)
		}
	}

	ca := p.CACert
	if ca.Subject.CommonName != "skiff-ca" || !ca.IsCA {
		t.Errorf("CA subject %q IsCA %v", ca.Subject.CommonName, ca.IsCA)
	}
	if k, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}
	if v := ca.NotAfter.Sub(ca.NotBefore); v < 10*365*24*time.Hour {
		t.Errorf("CA validity %v, want >= 10y", v)
	}
	if p.SAKey == nil {
		t.Error("SAKey is nil")
	}

	srv := p.ServerCert.Leaf
	for _, n := range []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "skiff.example.com"} {
		if !slices.Contains(srv.DNSNames, n) {
			t.Errorf("serving cert lacks DNS SAN %q (has %v)", n, srv.DNSNames)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3"} {
		if !slices.ContainsFunc(srv.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("serving cert lacks IP SAN %s (has %v)", ip, srv.IPAddresses)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: p.CAPool, DNSName: "kubernetes.default.svc"}); err != nil {
		t.Errorf("serving cert does not verify: %v", err)
	}

	admin, err := parseCertPEM(p.AdminCertPEM)
	if err != nil {
		t.Fatalf("parse admin cert: %v", err)
	}
	if admin.Subject.CommonName != "system:admin" || !slices.Equal(admin.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("admin subject = %v", admin.Subject)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: p.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin cert does not verify for client auth: %v", err)
	}
}

func TestEnsurePKIReload(t *testing.T) {
	dir := t.TempDir()
	first, err := EnsurePKI(dir, []string{"a.example.com"})
	if err != nil {
		t.Fatalf("first EnsurePKI: %v", err)
	}

	tests := []struct {
		name        string
		hosts       []string
		prepare     func(t *testing.T)
		wantNewSrv  bool
		wantNewAdm  bool
		wantSANs    []string
		wantSANsIPs []string
	}{
		{name: "same hosts reuses everything", hosts: []string{"a.example.com"}},
		{name: "subset of hosts reuses everything", hosts: nil},
		{
			name:        "new host reissues only serving cert",
			hosts:       []string{"b.example.com", "192.168.7.7", "[fd00::1]"},
			wantNewSrv:  true,
			wantSANs:    []string{"b.example.com"},
			wantSANsIPs: []string{"192.168.7.7", "fd00::1"},
		},
		{
			name:       "missing admin key reissues admin cert",
			prepare:    func(t *testing.T) { remove(t, filepath.Join(dir, "admin.key")) },
			wantNewAdm: true,
		},
		{
			name:       "missing server cert reissues it",
			prepare:    func(t *testing.T) { remove(t, filepath.Join(dir, "server.crt")) },
			wantNewSrv: true,
		},
	}
	prev := first
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prepare != nil {
				tt.prepare(t)
			}
			p, err := EnsurePKI(dir, tt.hosts)
			if err != nil {
				t.Fatalf("EnsurePKI: %v", err)
			}
			if p.CACert.SerialNumber.Cmp(first.CACert.SerialNumber) != 0 || string(p.CAPEM) != string(first.CAPEM) {
				t.Error("CA changed on reload")
			}
			if !p.SAKey.Public().(*ecdsa.PublicKey).Equal(first.SAKey.Public()) {
				t.Error("service-account key changed on reload")
			}
			newSrv := p.ServerCert.Leaf.SerialNumber.Cmp(prev.ServerCert.Leaf.SerialNumber) != 0
			if newSrv != tt.wantNewSrv {
				t.Errorf("serving cert reissued = %v, want %v", newSrv, tt.wantNewSrv)
			}
			newAdm := string(p.AdminCertPEM) != string(prev.AdminCertPEM)
			if newAdm != tt.wantNewAdm {
				t.Errorf("admin cert reissued = %v, want %v", newAdm, tt.wantNewAdm)
			}
			for _, n := range tt.wantSANs {
				if !slices.Contains(p.ServerCert.Leaf.DNSNames, n) {
					t.Errorf("missing DNS SAN %q", n)
				}
			}
			for _, ip := range tt.wantSANsIPs {
				if !slices.ContainsFunc(p.ServerCert.Leaf.IPAddresses, net.ParseIP(ip).Equal) {
					t.Errorf("missing IP SAN %s", ip)
				}
			}
			prev = p
		})
	}
}

func TestEnsurePKIIncompleteCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := EnsurePKI(dir, nil); err != nil {
		t.Fatalf("EnsurePKI: %v", err)
	}
	remove(t, filepath.Join(dir, "ca.crt"))
	if _, err := EnsurePKI(dir, nil); err == nil {
		t.Fatal("EnsurePKI with ca.key but no ca.crt succeeded; want error rather than a silent new CA")
	}
}

func TestSignClientCert(t *testing.T) {
	p, err := EnsurePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatalf("EnsurePKI: %v", err)
	}
	certPEM, keyPEM, err := p.SignClientCert("system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatalf("SignClientCert: %v", err)
	}
	if len(keyPEM) == 0 {
		t.Fatal("empty key")
	}
	c, err := parseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "system:node:n1" || !slices.Equal(c.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject = %v", c.Subject)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: p.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if _, _, err := p.SignClientCert("", nil); err == nil {
		t.Error("SignClientCert with empty CN succeeded")
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
