package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	ctrlcert "github.com/skiff-sh/skiff/internal/controller/certificates"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func csrFor(t *testing.T, cn string, orgs ...string) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: orgs}}, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// CertificateSigningRequests as Kubernetes' "normal user" walkthrough: a request records who
// made it, stays Pending until approved through /approval, is then signed by the cluster CA
// for the kube-apiserver-client signer, and the certificate authenticates its subject; a denied
// request is never signed and a request without a PEM CSR is refused.
func TestCertificateSigningRequests(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{ctrlcert.New}})
	ctx := context.Background()
	csrs := c.Client.CertificatesV1().CertificateSigningRequests()
	req, keyPEM := csrFor(t, "jane", "dev")
	mk := func(name string, request []byte) (*certificatesv1.CertificateSigningRequest, error) {
		return csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certificatesv1.CertificateSigningRequestSpec{Request: request, SignerName: "kubernetes.io/kube-apiserver-client",
				Username: "someone-else", Usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth}}}, metav1.CreateOptions{})
	}
	if _, err := mk("garbage", []byte("not a csr")); !apierrors.IsInvalid(err) {
		t.Fatalf("invalid request: %v", err)
	}
	csr, err := mk("jane", req)
	if err != nil {
		t.Fatal(err)
	}
	if csr.Spec.Username == "someone-else" || csr.Spec.Username == "" {
		t.Fatalf("requestor taken from the request: %q", csr.Spec.Username)
	}
	time.Sleep(300 * time.Millisecond)
	if got, _ := csrs.Get(ctx, "jane", metav1.GetOptions{}); len(got.Status.Certificate) != 0 {
		t.Fatal("signed before approval")
	}
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test", Message: "approved by the test"})
	if _, err := csrs.UpdateApproval(ctx, "jane", csr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var certPEM []byte
	wlEventually(t, 10*time.Second, "certificate issued", func() (bool, string) {
		got, err := csrs.Get(ctx, "jane", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		certPEM = got.Status.Certificate
		return len(certPEM) > 0, fmt.Sprintf("%+v", got.Status)
	})
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.Subject.CommonName != "jane" || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("certificate: %v %+v", err, cert)
	}
	// The certificate authenticates jane.
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.CertData, cfg.KeyData = certPEM, keyPEM
	review, err := kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || review.Status.UserInfo.Username != "jane" {
		t.Fatalf("whoami with the certificate: %v %+v", err, review)
	}

	// Denied: never signed.
	req2, _ := csrFor(t, "joe")
	denied, err := mk("joe", req2)
	if err != nil {
		t.Fatal(err)
	}
	denied.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue, Reason: "No"}}
	denied, err = csrs.UpdateApproval(ctx, "joe", denied, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	both := denied.DeepCopy()
	both.Status.Conditions = append(both.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue})
	if _, err := csrs.UpdateApproval(ctx, "joe", both, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("approved and denied: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if got, _ := csrs.Get(ctx, "joe", metav1.GetOptions{}); len(got.Status.Certificate) != 0 {
		t.Fatal("denied request signed")
	}
}
