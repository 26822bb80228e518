package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the PKI directory.
const (
	caCertFile     = "ca.crt"
	caKeyFile      = "ca.key"
	serverCertFile = "server.crt"
	serverKeyFile  = "server.key"
	adminCertFile  = "admin.crt"
	adminKeyFile   = "admin.key"
	saKeyFile      = "sa.key"
)

const (
	caCommonName     = "skiff-ca"
	serverCommonName = "skiff-apiserver"
	adminUser        = "system:admin"
	mastersGroup     = "system:masters"

	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// Leaf certificates are reissued on start once they get this close to
	// expiry, so a cluster restarted at least monthly never serves an
	// expired certificate.
	leafRenewBefore = 30 * 24 * time.Hour
	// Backdating absorbs clock skew between the server and its clients.
	backdate = time.Hour

	certPerm = 0o644
	keyPerm  = 0o600
)

// defaultServerNames are the SANs every serving certificate carries: local
// access plus the in-cluster names of the "kubernetes" Service, which pods
// use to reach the API server.
var defaultServerNames = []string{
	"localhost",
	"127.0.0.1",
	"::1",
	"kubernetes",
	"kubernetes.default",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

// PKI is the cluster's certificate authority together with the certificates
// and keys the API server needs.
type PKI struct {
	CACert *x509.Certificate
	CAPool *x509.CertPool
	CAPEM  []byte

	// ServerCert is the API server's serving certificate (Leaf is set).
	ServerCert tls.Certificate

	// AdminCertPEM and AdminKeyPEM are a client credential for
	// system:admin in group system:masters, meant for the admin kubeconfig.
	AdminCertPEM []byte
	AdminKeyPEM  []byte

	// SAKey signs service-account tokens.
	SAKey crypto.Signer

	caKey crypto.Signer
}

// EnsurePKI loads the PKI stored in dir, creating whatever is missing.
//
// The CA is only ever created when neither ca.crt nor ca.key exist: replacing
// it would silently invalidate every credential issued so far, so a partial or
// unreadable CA is an error. Leaf certificates are cheap to replace and are
// reissued when missing, unreadable, not issued by the CA, close to expiry or,
// for the serving certificate, lacking one of the SANs for hosts. Because the
// admin certificate may be reissued, callers should rewrite the admin
// kubeconfig from AdminCertPEM/AdminKeyPEM after every call.
func EnsurePKI(dir string, hosts []string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pki dir: %w", err)
	}
	p := &PKI{}
	if err := p.ensureCA(dir); err != nil {
		return nil, fmt.Errorf("ensure ca: %w", err)
	}
	if err := p.ensureServer(dir, hosts); err != nil {
		return nil, fmt.Errorf("ensure serving cert: %w", err)
	}
	if err := p.ensureAdmin(dir); err != nil {
		return nil, fmt.Errorf("ensure admin cert: %w", err)
	}
	if err := p.ensureSAKey(dir); err != nil {
		return nil, fmt.Errorf("ensure service-account key: %w", err)
	}
	return p, nil
}

// ServingTLSConfig returns a TLS configuration for the API server. Client
// certificates are requested but optional, because bearer-token clients (and
// unauthenticated health probes) connect without one; a certificate that is
// presented must chain to the cluster CA.
func (p *PKI) ServingTLSConfig() *tls.Config {
	// The chain carries the CA so that a joining node can pin it by hash
	// (`skiff agent --ca-cert-hash`) before it sends any credential.
	chain := p.ServerCert
	chain.Certificate = append(slices.Clone(chain.Certificate), p.CACert.Raw)
	return &tls.Config{
		Certificates: []tls.Certificate{chain},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.CAPool,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// SignClientCert issues a client certificate for user cn in groups orgs,
// with a fresh key, following the Kubernetes convention that CN is the user
// name and O the groups.
func (p *PKI) SignClientCert(cn string, orgs []string) (certPEM, keyPEM []byte, err error) {
	if cn == "" {
		return nil, nil, errors.New("sign client cert: empty common name")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: slices.Clone(orgs)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certPEM, keyPEM, err = p.issue(tmpl)
	if err != nil {
		return nil, nil, fmt.Errorf("sign client cert %q: %w", cn, err)
	}
	return certPEM, keyPEM, nil
}

// SignCSR issues a certificate for a PEM certificate request (CertificateSigningRequests): the
// request's subject and public key, the given key usages, valid for the given duration (0:
// the default leaf validity) and never beyond the CA.
func (p *PKI) SignCSR(csrPEM []byte, usages []x509.ExtKeyUsage, keyUsage x509.KeyUsage, validity time.Duration) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("sign CSR: no PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sign CSR: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign CSR: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = leafValidity
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		NotBefore: now.Add(-backdate), NotAfter: now.Add(validity),
		KeyUsage: keyUsage, ExtKeyUsage: usages, BasicConstraintsValid: true,
	}
	if tmpl.NotAfter.After(p.CACert.NotAfter) {
		tmpl.NotAfter = p.CACert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CACert, req.PublicKey, p.caKey)
	if err != nil {
		return nil, fmt.Errorf("sign CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func (p *PKI) ensureCA(dir string) error {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	certExists, err := exists(certPath)
	if err != nil {
		return err
	}
	keyExists, err := exists(keyPath)
	if err != nil {
		return err
	}
	switch {
	case certExists && keyExists:
		if err := p.loadCA(certPath, keyPath); err != nil {
			return fmt.Errorf("load ca: %w", err)
		}
	case !certExists && !keyExists:
		if err := p.createCA(certPath, keyPath); err != nil {
			return fmt.Errorf("create ca: %w", err)
		}
		slog.Info("created cluster CA", "dir", dir)
	default:
		return fmt.Errorf("incomplete ca in %s: need both %s and %s (remove both to regenerate)", dir, caCertFile, caKeyFile)
	}
	if time.Now().After(p.CACert.NotAfter) {
		return fmt.Errorf("ca expired at %s (remove %s and %s to regenerate)", p.CACert.NotAfter.Format(time.RFC3339), caCertFile, caKeyFile)
	}
	p.CAPool = x509.NewCertPool()
	p.CAPool.AddCert(p.CACert)
	return nil
}

func (p *PKI) loadCA(certPath, keyPath string) error {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return err
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", certPath, err)
	}
	if !cert.IsCA {
		return fmt.Errorf("%s is not a CA certificate", certPath)
	}
	key, err := readKey(keyPath)
	if err != nil {
		return err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return fmt.Errorf("%s does not match %s", keyPath, certPath)
	}
	p.CACert, p.CAPEM, p.caKey = cert, certPEM, key
	return nil
}

func (p *PKI) createCA(certPath, keyPath string) error {
	key, keyPEM, err := newKey()
	if err != nil {
		return err
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves directly, so verifiers should never accept an
		// intermediate CA below it.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// Key first: a crash in between leaves ca.key without ca.crt, which
	// ensureCA reports instead of guessing.
	if err := writeFileAtomic(keyPath, keyPEM, keyPerm); err != nil {
		return err
	}
	if err := writeFileAtomic(certPath, certPEM, certPerm); err != nil {
		return err
	}
	p.CACert, p.CAPEM, p.caKey = cert, certPEM, key
	return nil
}

func (p *PKI) ensureServer(dir string, hosts []string) error {
	certPath, keyPath := filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile)
	dnsNames, ips := splitHosts(append(slices.Clone(defaultServerNames), hosts...))

	pair, _, _, err := p.loadLeaf(certPath, keyPath, x509.ExtKeyUsageServerAuth)
	if err == nil {
		missing := missingSANs(pair.Leaf, dnsNames, ips)
		if len(missing) == 0 {
			p.ServerCert = pair
			return nil
		}
		err = fmt.Errorf("missing SANs %v", missing)
	}
	slog.Info("issuing serving certificate", "reason", err.Error(), "dns", dnsNames, "ips", ips)

	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: serverCommonName},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
	certPEM, keyPEM, err := p.issue(tmpl)
	if err != nil {
		return err
	}
	if err := writePair(certPath, keyPath, certPEM, keyPEM); err != nil {
		return err
	}
	p.ServerCert, err = tls.X509KeyPair(certPEM, keyPEM)
	return err
}

func (p *PKI) ensureAdmin(dir string) error {
	certPath, keyPath := filepath.Join(dir, adminCertFile), filepath.Join(dir, adminKeyFile)
	_, certPEM, keyPEM, err := p.loadLeaf(certPath, keyPath, x509.ExtKeyUsageClientAuth)
	if err != nil {
		slog.Info("issuing admin client certificate", "reason", err.Error())
		certPEM, keyPEM, err = p.SignClientCert(adminUser, []string{mastersGroup})
		if err != nil {
			return err
		}
		if err := writePair(certPath, keyPath, certPEM, keyPEM); err != nil {
			return err
		}
	}
	p.AdminCertPEM, p.AdminKeyPEM = certPEM, keyPEM
	return nil
}

func (p *PKI) ensureSAKey(dir string) error {
	path := filepath.Join(dir, saKeyFile)
	key, err := readKey(path)
	if err == nil {
		p.SAKey = key
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		// Regenerating would invalidate every issued token; make the
		// operator decide.
		return fmt.Errorf("load %s: %w", saKeyFile, err)
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, keyPEM, keyPerm); err != nil {
		return err
	}
	p.SAKey = key
	return nil
}

// loadLeaf reads a certificate/key pair and checks that it is still usable:
// the key matches, it chains to the current CA for usage, and it is not due
// for renewal. Any error means "reissue".
func (p *PKI) loadLeaf(certPath, keyPath string, usage x509.ExtKeyUsage) (pair tls.Certificate, certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(certPath); err != nil {
		return pair, nil, nil, err
	}
	if keyPEM, err = os.ReadFile(keyPath); err != nil {
		return pair, nil, nil, err
	}
	if pair, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return pair, nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	leaf := pair.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.CAPool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return pair, nil, nil, fmt.Errorf("verify %s: %w", certPath, err)
	}
	// Renewing only helps if the new certificate would outlive the old one,
	// which it cannot once the CA itself is about to expire.
	if time.Until(leaf.NotAfter) < leafRenewBefore && leaf.NotAfter.Before(p.CACert.NotAfter) {
		return pair, nil, nil, fmt.Errorf("%s expires at %s", certPath, leaf.NotAfter.Format(time.RFC3339))
	}
	return pair, certPEM, keyPEM, nil
}

// issue fills in serial and validity for tmpl, signs it with the CA using a
// fresh key and returns both PEM encoded.
func (p *PKI) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	// A leaf outliving its CA would just fail verification at the end.
	tmpl.NotAfter = now.Add(leafValidity)
	if tmpl.NotAfter.After(p.CACert.NotAfter) {
		tmpl.NotAfter = p.CACert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CACert, key.Public(), p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// writePair writes the key before the certificate; after a crash in between
// the pair no longer matches and loadLeaf triggers a reissue.
func writePair(certPath, keyPath string, certPEM, keyPEM []byte) error {
	if err := writeFileAtomic(keyPath, keyPEM, keyPerm); err != nil {
		return err
	}
	return writeFileAtomic(certPath, certPEM, certPerm)
}

// splitHosts deduplicates hosts and sorts them into IP and DNS SANs.
func splitHosts(hosts []string) (dnsNames []string, ips []net.IP) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]") // "[::1]" style IPv6
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

// missingSANs reports which of dnsNames and ips cert does not carry.
func missingSANs(cert *x509.Certificate, dnsNames []string, ips []net.IP) []string {
	var missing []string
	for _, n := range dnsNames {
		if !slices.ContainsFunc(cert.DNSNames, func(have string) bool { return strings.EqualFold(have, n) }) {
			missing = append(missing, n)
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			missing = append(missing, ip.String())
		}
	}
	return missing
}

// newKey generates an ECDSA P-256 key: small, fast, and accepted by every
// Kubernetes client.
func newKey() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	// 128 random bits, as recommended for unpredictable serials.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	return serial, nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// readKey loads a PEM private key. Besides our own PKCS#8 it accepts SEC1 and
// PKCS#1 so operators can drop in keys made with openssl.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s: unsupported PEM block %q", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("%s: unsupported key type %T", path, key)
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}
