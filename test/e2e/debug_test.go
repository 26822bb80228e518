package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// Objects are stored in protobuf; `skiff debug etcd-get` decodes them from a stopped server's
// data directory.
func TestDebugEtcdGetDecodesStorage(t *testing.T) {
	s := startServer(t)
	k := s.kubectls()[0]
	k.run("create", "configmap", "stored", "--from-literal=answer=42")
	s.stop()
	out, err := exec.Command(binary(t), "debug", "etcd-get", "--data-dir", s.dataDir, "/registry/core/configmaps/default/stored").CombinedOutput()
	if err != nil {
		t.Fatalf("debug etcd-get: %v\n%s", err, out)
	}
	mustContain(t, string(out), "# /registry/core/configmaps/default/stored", "kind: ConfigMap", `answer: "42"`)
}

// `skiff kubectl` is the real kubectl, stamped with the Kubernetes version it was built from.
func TestSkiffKubectlVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "kubectl", "version", "--client", "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), `"gitVersion": "v1.37.2"`) {
		t.Fatalf("skiff kubectl is not version-stamped (build with make build):\n%s", out)
	}
}
