package server

import (
	"crypto"
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
	"net"
	"os"
	"time"
)

// CertSigner issues serving certificates from the cluster CA. auth.PKI is meant to implement
// it; until then SignServingCert does the same with the CA's certificate and key.
type CertSigner interface {
	SignServingCert(cn string, orgs, hosts []string) (certPEM, keyPEM []byte, err error)
}

// NodeCommonName and NodesGroup name a node's certificates as Kubernetes does.
const NodesGroup = "system:nodes"

// NodeCommonName is the certificate subject of a node agent.
func NodeCommonName(nodeName string) string { return "system:node:" + nodeName }

// ServingCertificate asks signer for the agent's serving certificate: CN system:node:<name>,
// O system:nodes, and hosts (DNS names or IP addresses) as subject alternative names.
func ServingCertificate(signer CertSigner, nodeName string, hosts []string) (tls.Certificate, error) {
	certPEM, keyPEM, err := signer.SignServingCert(NodeCommonName(nodeName), []string{NodesGroup}, hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// SignServingCert issues a serving certificate for the agent of nodeName with the CA's
// certificate and key, valid for hosts (DNS names or IPs; the node name is always added) for
// validity (default one year). The key is a fresh ECDSA P-256 key.
func SignServingCert(caCert *x509.Certificate, caKey crypto.Signer, nodeName string, hosts []string, validity time.Duration) (tls.Certificate, error) {
	certPEM, keyPEM, err := SignServingCertPEM(caCert, caKey, NodeCommonName(nodeName), []string{NodesGroup}, append([]string{nodeName}, hosts...), validity)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// SelfSignedServingCert makes a self-signed serving certificate for an agent that cannot get
// one from the cluster CA (the API server must then skip verifying it, as Kubernetes does by
// default with kubelets: podproxy.Config.InsecureSkipVerify).
func SelfSignedServingCert(nodeName string, hosts []string, validity time.Duration) (tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: nodeName + "-ca@" + fmt.Sprint(now.Unix())},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	if ca, err = x509.ParseCertificate(der); err != nil {
		return tls.Certificate{}, err
	}
	return SignServingCert(ca, caKey, nodeName, hosts, validity)
}

// SignServingCertPEM issues a serving certificate for cn/orgs and hosts, PEM-encoded.
func SignServingCertPEM(caCert *x509.Certificate, caKey crypto.Signer, cn string, orgs, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if caCert == nil || caKey == nil {
		return nil, nil, errors.New("serving cert: no CA")
	}
	if validity <= 0 {
		validity = 365 * 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("serving cert: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// LoadCA reads a CA certificate and its key (PKCS#8, SEC1 or PKCS#1 PEM), such as the
// cluster CA's <data-dir>/tls/ca.crt and ca.key, for SignServingCert.
func LoadCA(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no CERTIFICATE PEM block", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", keyPath)
	}
	var key any
	switch kb.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	default:
		return nil, nil, fmt.Errorf("%s: unsupported PEM block %q", keyPath, kb.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: unsupported key type %T", keyPath, key)
	}
	return cert, signer, nil
}
