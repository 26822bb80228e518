package e2e

import (
	"strings"
	"testing"
)

// kubectl create priorityclass / get pc, and a pod that names the class, as against Kubernetes.
func TestKubectlPriorityClass(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			name := "high-" + k.name
			if out := k.run("create", "priorityclass", name, "--value=1000", "--description=important"); out != "priorityclass.scheduling.k8s.io/"+name+" created\n" {
				t.Fatalf("create: %q", out)
			}
			out := k.run("get", "pc")
			wantHeader(t, out, []string{"NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"})
			mustContain(t, out, "system-cluster-critical   2000000000", "system-node-critical      2000001000", name)
			pod := "prio-" + k.name
			k.stdin(`apiVersion: v1
kind: Pod
metadata: {name: `+pod+`}
spec:
  priorityClassName: `+name+`
  containers: [{name: c, image: busybox}]
`, "apply", "-f", "-")
			if got := k.run("get", "pod", pod, "-o", "jsonpath={.spec.priority} {.spec.preemptionPolicy}"); got != "1000 PreemptLowerPriority" {
				t.Fatalf("pod priority: %q", got)
			}
			_, errOut, err := k.try(`apiVersion: v1
kind: Pod
metadata: {name: nope-`+k.name+`}
spec:
  priorityClassName: missing
  containers: [{name: c, image: busybox}]
`, "apply", "-f", "-")
			if err == nil || !strings.Contains(errOut, "no PriorityClass with name missing was found") {
				t.Fatalf("unknown class: err=%v stderr=%s", err, errOut)
			}
		})
	}
}
