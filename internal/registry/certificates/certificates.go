// Package certificates describes certificates.k8s.io/v1 CertificateSigningRequests: their
// validation, table and the /approval subresource's rules. The API server records who asked
// (spec.username, groups, uid) and the signing controller (internal/controller/certificates)
// issues certificates for approved requests to the built-in signers.
package certificates

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// The signers skiff's controller serves, as Kubernetes names them.
const (
	SignerAPIServerClient        = "kubernetes.io/kube-apiserver-client"
	SignerAPIServerClientKubelet = "kubernetes.io/kube-apiserver-client-kubelet"
	SignerKubeletServing         = "kubernetes.io/kubelet-serving"
)

// Resources returns the certificates.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	doc := certificatesv1.CertificateSigningRequestSpec{}.SwaggerDoc()
	return []*registry.Resource{{
		Group: certificatesv1.GroupName, Version: "v1", Resource: "certificatesigningrequests",
		Kind: "CertificateSigningRequest", ListKind: "CertificateSigningRequestList",
		SingularName: "certificatesigningrequest", ShortNames: []string{"csr"}, HasStatus: true,
		New:     func() runtime.Object { return &certificatesv1.CertificateSigningRequest{} },
		NewList: func() runtime.Object { return &certificatesv1.CertificateSigningRequestList{} },
		PrepareForUpdate: func(obj, old runtime.Object) {
			// The request and who made it never change; status goes through /status and /approval.
			csr, prev := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
			csr.Spec = prev.Spec
			csr.Status = prev.Status
		},
		Validate: func(obj runtime.Object) field.ErrorList {
			return validate(obj.(*certificatesv1.CertificateSigningRequest))
		},
		Approval: func(cur, obj runtime.Object) (runtime.Object, field.ErrorList) {
			out := cur.(*certificatesv1.CertificateSigningRequest).DeepCopy()
			out.Status.Conditions = obj.(*certificatesv1.CertificateSigningRequest).Status.Conditions
			return out, validateConditions(out.Status.Conditions)
		},
		ValidateStatusUpdate: func(obj, _ runtime.Object) field.ErrorList {
			return validateConditions(obj.(*certificatesv1.CertificateSigningRequest).Status.Conditions)
		},
		Columns: []metav1.TableColumnDefinition{
			registry.AgeCol,
			registry.Col("SignerName", "string", doc["signerName"], 0),
			registry.Col("Requestor", "string", doc["request"], 0),
			registry.Col("RequestedDuration", "string", doc["expirationSeconds"], 0),
			registry.Col("Condition", "string", "", 0),
		},
		Row: func(obj runtime.Object, now time.Time) []interface{} {
			csr := obj.(*certificatesv1.CertificateSigningRequest)
			requested := "<none>"
			if s := csr.Spec.ExpirationSeconds; s != nil {
				requested = duration.HumanDuration(time.Duration(*s) * time.Second)
			}
			return []interface{}{registry.Age(csr.CreationTimestamp, now), csr.Spec.SignerName, csr.Spec.Username, requested, Condition(csr)}
		},
	}}
}

// Condition is the CONDITION cell: Pending, or the conditions that are true ("Approved,Issued").
func Condition(csr *certificatesv1.CertificateSigningRequest) string {
	var parts []string
	for _, c := range csr.Status.Conditions {
		if c.Status == corev1.ConditionTrue || c.Status == "" {
			parts = append(parts, string(c.Type))
		}
	}
	if len(csr.Status.Certificate) > 0 {
		parts = append(parts, "Issued")
	}
	if len(parts) == 0 {
		return "Pending"
	}
	return strings.Join(parts, ",")
}

// Approved reports whether csr is approved and not denied or failed.
func Approved(csr *certificatesv1.CertificateSigningRequest) bool {
	approved := false
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved:
			approved = c.Status == corev1.ConditionTrue
		case certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			if c.Status == corev1.ConditionTrue {
				return false
			}
		}
	}
	return approved
}

func validate(csr *certificatesv1.CertificateSigningRequest) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		errs = append(errs, field.Invalid(spec.Child("request"), csr.Spec.Request, "PEM block type must be CERTIFICATE REQUEST"))
	} else if _, err := x509.ParseCertificateRequest(block.Bytes); err != nil {
		errs = append(errs, field.Invalid(spec.Child("request"), csr.Spec.Request, err.Error()))
	}
	switch n := csr.Spec.SignerName; {
	case n == "":
		errs = append(errs, field.Required(spec.Child("signerName"), ""))
	case !strings.Contains(n, "/"):
		errs = append(errs, field.Invalid(spec.Child("signerName"), n, "must be a fully qualified domain and path of the form 'example.com/signer-name'"))
	default:
		domain, _, _ := strings.Cut(n, "/")
		for _, m := range validation.IsDNS1123Subdomain(domain) {
			errs = append(errs, field.Invalid(spec.Child("signerName"), n, m))
		}
	}
	if len(csr.Spec.Usages) == 0 {
		errs = append(errs, field.Required(spec.Child("usages"), ""))
	}
	if s := csr.Spec.ExpirationSeconds; s != nil && *s < 600 {
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), *s, "may not specify a duration less than 600 seconds (10 minutes)"))
	}
	return errs
}

func validateConditions(conds []certificatesv1.CertificateSigningRequestCondition) field.ErrorList {
	var errs field.ErrorList
	seen := map[certificatesv1.RequestConditionType]bool{}
	p := field.NewPath("status", "conditions")
	var approved, denied bool
	for i, c := range conds {
		if seen[c.Type] {
			errs = append(errs, field.Duplicate(p.Index(i).Child("type"), c.Type))
		}
		seen[c.Type] = true
		switch c.Type {
		case certificatesv1.CertificateApproved:
			approved = c.Status == corev1.ConditionTrue
		case certificatesv1.CertificateDenied:
			denied = c.Status == corev1.ConditionTrue
		}
	}
	if approved && denied {
		errs = append(errs, field.Invalid(p, fmt.Sprint(len(conds)), "Approved and Denied conditions are mutually exclusive"))
	}
	return errs
}
