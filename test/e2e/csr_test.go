package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Kubernetes' "issue a certificate for a normal user" walkthrough with kubectl: submit a
// CertificateSigningRequest, see it Pending, `kubectl certificate approve`, read the issued
// certificate and use it: the server then knows the user by the certificate's name.
func TestKubectlCertificateSigningRequest(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			user := "myuser-" + k.shortName()
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: user, Organization: []string{"dev"}}}, key)
			if err != nil {
				t.Fatal(err)
			}
			csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
			mustContain(t, k.stdin(`apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: `+user+`}
spec:
  request: `+base64.StdEncoding.EncodeToString(csrPEM)+`
  signerName: kubernetes.io/kube-apiserver-client
  expirationSeconds: 86400
  usages: [client auth]
`, "apply", "-f", "-"), "certificatesigningrequest.certificates.k8s.io/"+user+" created")
			out := k.run("get", "csr", user)
			wantHeader(t, out, []string{"NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"})
			mustContain(t, out, "kubernetes.io/kube-apiserver-client", "24h", "Pending")

			mustContain(t, k.run("certificate", "approve", user), "certificatesigningrequest.certificates.k8s.io/"+user+" approved")
			var cert string
			eventually(t, 10*time.Second, func() error {
				cert = k.run("get", "csr", user, "-o", "jsonpath={.status.certificate}")
				if cert == "" {
					return errors.New("not issued yet")
				}
				return nil
			})
			mustContain(t, k.run("get", "csr", user), "Approved,Issued")
			certPEM, err := base64.StdEncoding.DecodeString(cert)
			if err != nil {
				t.Fatal(err)
			}
			keyDER, err := x509.MarshalECPrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			crt, keyFile := filepath.Join(dir, "user.crt"), filepath.Join(dir, "user.key")
			if err := os.WriteFile(crt, certPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
				t.Fatal(err)
			}
			// As the walkthrough does: a user and a context for it, in a copy of the kubeconfig.
			kc, err := os.ReadFile(s.kubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			u := k
			u.kc = filepath.Join(dir, "kubeconfig")
			if err := os.WriteFile(u.kc, kc, 0o600); err != nil {
				t.Fatal(err)
			}
			u.run("config", "set-credentials", user, "--client-key="+keyFile, "--client-certificate="+crt, "--embed-certs=true")
			u.run("config", "set-context", user, "--cluster="+u.run("config", "view", "-o", "jsonpath={.clusters[0].name}"), "--user="+user)
			out = u.run("--context", user, "auth", "whoami")
			if !strings.Contains(out, user) || !strings.Contains(out, "dev") {
				t.Fatalf("whoami with the issued certificate:\n%s", out)
			}
		})
	}
}
