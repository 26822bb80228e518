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

// A LimitRange as in Kubernetes' "Configure Default Memory Requests and Limits for a
// Namespace": pods without resources get the defaults, a pod over the max is refused.
func TestKubectlLimitRange(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			ns := "lr-" + k.shortName()
			k.run("create", "namespace", ns)
			k.stdin(`apiVersion: v1
kind: LimitRange
metadata: {name: mem-limit-range}
spec:
  limits:
  - {type: Container, default: {memory: 512Mi}, defaultRequest: {memory: 256Mi}, max: {memory: 1Gi}}
`, "apply", "-n", ns, "-f", "-")
			mustContain(t, k.run("get", "limitrange", "-n", ns), "mem-limit-range")
			mustContain(t, k.run("run", "default-mem-demo", "-n", ns, "--image=busybox", "--restart=Never"), "pod/default-mem-demo created")
			if got := k.run("get", "pod", "default-mem-demo", "-n", ns, "-o", "jsonpath={.spec.containers[0].resources.requests.memory} {.spec.containers[0].resources.limits.memory}"); got != "256Mi 512Mi" {
				t.Fatalf("defaults: %q", got)
			}
			errOut := k.mustFail(`apiVersion: v1
kind: Pod
metadata: {name: too-big}
spec:
  containers: [{name: c, image: busybox, resources: {limits: {memory: 2Gi}}}]
`, "apply", "-n", ns, "-f", "-")
			mustContain(t, errOut, `pods "too-big" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi`)
		})
	}
}
