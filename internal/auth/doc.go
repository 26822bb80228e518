// Package auth holds skiff's cluster identity: the PKI that backs the API
// server's TLS endpoint, kubeconfig generation for clients, and request
// authentication.
//
// The PKI is deliberately self-contained and file based. On first start
// EnsurePKI creates a cluster CA, a serving certificate, an admin client
// certificate and a service-account signing key under one directory; later
// starts reuse them, so kubeconfigs handed out earlier keep working.
//
// Authentication follows the Kubernetes conventions that kubectl and
// client-go rely on: x509 client certificates map the subject CN to the user
// name and O to groups, bearer tokens come from a static token CSV file (or
// pluggable token authenticators such as service-account JWTs), every
// authenticated user is in "system:authenticated", and a failure is reported
// as a 401 carrying a metav1.Status body.
package auth
