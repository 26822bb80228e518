package auth

import (
	"strings"
	"testing"
	"time"
)

func TestServiceAccountTokens(t *testing.T) {
	p, err := EnsurePKI(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewTokenIssuer(p.SAKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	kc := KubernetesClaims{Namespace: "ns", ServiceAccount: Ref{Name: "sa", UID: "u1"}, Pod: &Ref{Name: "p", UID: "u2"}}
	tok, exp, err := iss.Issue(kc, []string{"https://kubernetes.default.svc.cluster.local"}, time.Hour, now)
	if err != nil || !exp.After(now) {
		t.Fatal(err)
	}
	c, err := iss.Verify(tok, []string{"https://kubernetes.default.svc.cluster.local"}, now)
	if err != nil || c.Kubernetes.Pod.Name != "p" {
		t.Fatalf("verify: %v", err)
	}
	u := ServiceAccountUser(c)
	if u.Name != "system:serviceaccount:ns:sa" || u.Groups[1] != "system:serviceaccounts:ns" {
		t.Fatalf("user %+v", u)
	}
	for name, check := range map[string]func() error{
		"expired":        func() error { _, err := iss.Verify(tok, nil, now.Add(2*time.Hour)); return err },
		"wrong audience": func() error { _, err := iss.Verify(tok, []string{"other"}, now); return err },
		"tampered": func() error {
			parts := strings.Split(tok, ".")
			_, err := iss.Verify(parts[0]+"."+parts[1]+"x."+parts[2], nil, now)
			return err
		},
	} {
		if check() == nil {
			t.Errorf("%s token accepted", name)
		}
	}
	other, _ := EnsurePKI(t.TempDir(), nil)
	iss2, _ := NewTokenIssuer(other.SAKey)
	if _, err := iss2.Verify(tok, nil, now); err == nil {
		t.Error("token verified with another cluster's key")
	}
}
