package integration

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// Bootstrap tokens authenticate while their Secret says so: the right secret, usage
// authentication, not expired; anything else is 401.
func TestBootstrapTokenAuthentication(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	mk := func(id, secret string, data map[string]string) {
		t.Helper()
		d := map[string][]byte{"token-id": []byte(id), "token-secret": []byte(secret)}
		for k, v := range data {
			d[k] = []byte(v)
		}
		_, err := c.Client.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id}, Type: "bootstrap.kubernetes.io/token", Data: d,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("aaaaaa", "0123456789abcdef", map[string]string{"usage-bootstrap-authentication": "true",
		"expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	mk("bbbbbb", "0123456789abcdef", map[string]string{"usage-bootstrap-authentication": "true",
		"expiration": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
	mk("cccccc", "0123456789abcdef", map[string]string{"usage-bootstrap-signing": "true"})
	try := func(token string) error {
		rc := rest.AnonymousClientConfig(c.Config)
		rc.BearerToken = token
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		var last error
		for i := 0; i < 50; i++ { // the watch cache sees a new Secret within milliseconds
			_, last = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if last == nil || !apierrors.IsUnauthorized(last) {
				return last
			}
			time.Sleep(20 * time.Millisecond)
		}
		return last
	}
	if err := try("aaaaaa.0123456789abcdef"); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	for _, bad := range []string{"aaaaaa.0123456789abcdee", "bbbbbb.0123456789abcdef", "cccccc.0123456789abcdef", "dddddd.0123456789abcdef", "aaaaaa0123456789abcdef"} {
		if err := try(bad); !apierrors.IsUnauthorized(err) {
			t.Errorf("token %s: want 401, got %v", bad, err)
		}
	}
}
