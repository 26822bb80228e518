package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// helmBinary is bin/helm (`make helm`: helm v4 from the Go module proxy).
func helmBinary(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	b := filepath.Join(filepath.Dir(file), "..", "..", "bin", "helm")
	if _, err := os.Stat(b); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no helm at %s: `make helm` builds it", b)
		}
		t.Skipf("no helm at %s: run `make helm`", b)
	}
	return b
}

// The real helm v4, unchanged: the chart `helm create` writes is installed, waited for,
// upgraded, rolled back and uninstalled on simulated nodes, with a CustomResourceDefinition in
// crds/ and an object of it in the templates. helm v4 applies server-side, keeps
// releases in Secrets and waits by watching the objects it created.
func TestHelm(t *testing.T) {
	bin := helmBinary(t)
	s := startServer(t, "--simulated-nodes", "2", "--simulated-pod-start-delay", "100ms")
	home := t.TempDir()
	helm := kubectl{name: "helm", argv: []string{bin}, kc: s.kubeconfig, t: t, extraEnv: []string{
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"), "HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data")}}
	k := s.kubectls()[0].forTest(t)
	chart := filepath.Join(home, "demo")
	helm.run("create", chart)
	// A CustomResourceDefinition in crds/ (installed first, never deleted by helm) and an object
	// of it among the templates.
	group := "helm.stable.example.com"
	if err := os.MkdirAll(filepath.Join(chart, "crds"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(chart, "crds", "crontab.yaml"), []byte(crdManifest(group)), 0o644); err != nil {
		t.Fatal(err)
	}
	cr := "apiVersion: " + group + "/v1\nkind: CronTab\nmetadata: {name: '{{ .Release.Name }}-cron'}\nspec: {cronSpec: '*/5 * * * *', replicas: {{ .Values.replicaCount }}}\n"
	if err := os.WriteFile(filepath.Join(chart, "templates", "crontab.yaml"), []byte(cr), 0o644); err != nil {
		t.Fatal(err)
	}

	mustContain(t, helm.run("install", "demo", chart, "--wait", "--timeout", "60s"), "STATUS: deployed", "REVISION: 1")
	replicas := func() string {
		return k.run("get", "deployment", "demo", "-o", "jsonpath={.spec.replicas}/{.status.readyReplicas}")
	}
	if got := replicas(); got != "1/1" {
		t.Fatalf("after install: replicas/ready %s", got)
	}
	mustContain(t, k.run("get", "deployment", "demo", "-o", "jsonpath={.metadata.managedFields[*].manager}"), "helm")
	mustContain(t, k.run("get", "secrets", "-l", "owner=helm"), "sh.helm.release.v1.demo.v1")
	if got := k.run("get", "crontabs."+group, "demo-cron", "-o", "jsonpath={.spec.replicas}"); got != "1" {
		t.Fatalf("custom resource after install: %q", got)
	}

	mustContain(t, helm.run("upgrade", "demo", chart, "--set", "replicaCount=3", "--wait", "--timeout", "60s"), "REVISION: 2")
	if got := replicas(); got != "3/3" {
		t.Fatalf("after upgrade: replicas/ready %s", got)
	}
	if got := k.run("get", "crontabs."+group, "demo-cron", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Fatalf("custom resource after upgrade: %q", got)
	}
	history := helm.run("history", "demo")
	if !strings.Contains(history, "superseded") || !strings.Contains(history, "Upgrade complete") {
		t.Fatalf("history:\n%s", history)
	}
	mustContain(t, helm.run("rollback", "demo", "1", "--wait", "--timeout", "60s"), "Rollback was a success")
	if got := replicas(); got != "1/1" {
		t.Fatalf("after rollback: replicas/ready %s", got)
	}
	mustContain(t, helm.run("list"), "demo", "deployed")

	mustContain(t, helm.run("uninstall", "demo", "--wait", "--timeout", "60s"), `release "demo" uninstalled`)
	if out, _, err := k.try("", "get", "deployment", "demo"); err == nil {
		t.Fatalf("deployment left after uninstall: %s", out)
	}
	if out := k.run("get", "secrets", "-l", "owner=helm", "-o", "name"); out != "" {
		t.Fatalf("release secrets left: %s", out)
	}
	if out := k.run("get", "crontabs."+group, "-o", "name"); out != "" {
		t.Fatalf("custom resources left after uninstall: %s", out)
	}
	mustContain(t, k.run("get", "crd", "crontabs."+group, "-o", "name"), "crontabs."+group) // helm keeps CRDs
}
