package ingress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// loadCertificate reads a kubernetes.io/tls Secret (tls.crt and tls.key in PEM).
func loadCertificate(secrets func(namespace, name string) (*corev1.Secret, error), namespace, name string) (*tls.Certificate, error) {
	s, err := secrets(namespace, name)
	if err != nil {
		return nil, err
	}
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 || len(key) == 0 {
		return nil, fmt.Errorf("secret %s/%s has no %s or %s", namespace, name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	cert, err := tls.X509KeyPair(crt, key)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	if cert.Leaf == nil {
		return nil, errors.New("certificate without leaf")
	}
	return &cert, nil
}

// certNames are the DNS names a certificate was issued for (the CN when it has no SANs).
func certNames(c *tls.Certificate) []string {
	if c.Leaf == nil {
		return nil
	}
	if len(c.Leaf.DNSNames) > 0 {
		return c.Leaf.DNSNames
	}
	if c.Leaf.Subject.CommonName != "" {
		return []string{c.Leaf.Subject.CommonName}
	}
	return nil
}

// selfSigned makes the fallback certificate served when no Ingress certificate matches the
// server name (as ingress-nginx's "Fake Certificate").
func selfSigned(commonName string, hosts ...string) (*tls.Certificate, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"skiff"}},
		DNSNames:     hosts,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	crtPEM := pemEncode("CERTIFICATE", der)
	keyPEM := pemEncode("EC PRIVATE KEY", keyDER)
	cert, err := tls.X509KeyPair(crtPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, err
	}
	return &cert, crtPEM, keyPEM, nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
