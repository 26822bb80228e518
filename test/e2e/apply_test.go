package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// kubectl apply --server-side, as users run it: creates and re-applies, reports conflicts
// with kubectl's own advice and changes nothing, --force-conflicts takes the field over,
// --dry-run=server and kubectl diff --server-side leave the object alone.
func TestKubectlServerSideApply(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			ns := "ssa-" + k.name
			k.run("create", "namespace", ns)
			manifest := filepath.Join("testdata", "deployment.yaml")
			if out := k.run("apply", "--server-side", "-n", ns, "-f", manifest); out != "deployment.apps/web serverside-applied\n" {
				t.Fatalf("first apply: %q", out)
			}
			if out := k.run("apply", "--server-side", "-n", ns, "-f", manifest); out != "deployment.apps/web serverside-applied\n" {
				t.Fatalf("second apply: %q", out)
			}
			mustContain(t, k.run("get", "deployment", "web", "-n", ns, "-o", "yaml", "--show-managed-fields"),
				"manager: kubectl", "operation: Apply", "f:replicas: {}")
			replicas := func() string {
				return k.run("get", "deployment", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}")
			}
			want := replicas()

			k.run("scale", "deployment", "web", "-n", ns, "--replicas=7")
			_, errOut, err := k.try("", "apply", "--server-side", "-n", ns, "-f", manifest)
			if err == nil || !strings.Contains(errOut, "Apply failed with 1 conflict") || !strings.Contains(errOut, ".spec.replicas") ||
				!strings.Contains(errOut, "--force-conflicts") {
				t.Fatalf("conflicting apply: err=%v stderr=%s", err, errOut)
			}
			if got := replicas(); got != "7" {
				t.Fatalf("conflicting apply changed replicas to %s", got)
			}
			// kubectl diff exits 1 when it finds differences.
			diff, errOut, err := k.try("", "diff", "--server-side", "--force-conflicts", "-n", ns, "-f", manifest)
			if err == nil || errOut != "" {
				t.Fatalf("diff: err=%v stderr=%s", err, errOut)
			}
			mustContain(t, diff, "-  replicas: 7", "+  replicas: "+want)
			k.run("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-n", ns, "-f", manifest)
			if got := replicas(); got != "7" {
				t.Fatalf("dry run changed replicas to %s", got)
			}
			if out := k.run("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", manifest); out != "deployment.apps/web serverside-applied\n" {
				t.Fatalf("forced apply: %q", out)
			}
			if got := replicas(); got != want {
				t.Fatalf("after forced apply replicas = %s, want %s", got, want)
			}
		})
	}
}
