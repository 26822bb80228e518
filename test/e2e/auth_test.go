package e2e

import (
	"strings"
	"testing"
)

// kubectl auth can-i / whoami and --as, as users run them. The cluster authorizes every
// authenticated user (no RBAC yet), so the answers are "yes"; whoami names the user, or the
// impersonated one.
func TestKubectlAuth(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			if out := k.run("auth", "can-i", "create", "deployments"); out != "yes\n" {
				t.Fatalf("can-i: %q", out)
			}
			if out := k.run("auth", "can-i", "get", "/healthz"); out != "yes\n" {
				t.Fatalf("can-i non-resource: %q", out)
			}
			mustContain(t, k.run("auth", "can-i", "--list", "-n", "default"), "*.*", "[*]")
			out := k.run("auth", "whoami")
			mustContain(t, out, "Username", "system:admin", "system:masters")
			out = k.run("auth", "whoami", "--as", "jane", "--as-group", "devs")
			mustContain(t, out, "jane", "devs")
			if strings.Contains(out, "system:admin") {
				t.Fatalf("whoami --as still the admin:\n%s", out)
			}
		})
	}
}
