package e2e

import (
	"strings"
	"testing"
)

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

// A ResourceQuota with kubectl: create quota, pods up to it, the next one refused with
// Kubernetes' message, and describe showing used against hard.
func TestKubectlResourceQuota(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			ns := "rq-" + k.shortName()
			k.run("create", "namespace", ns)
			mustContain(t, k.run("create", "quota", "pod-demo", "-n", ns, "--hard=pods=1"), "resourcequota/pod-demo created")
			mustContain(t, k.run("run", "first", "-n", ns, "--image=busybox", "--restart=Never"), "pod/first created")
			_, errOut, err := k.try("", "run", "second", "-n", ns, "--image=busybox", "--restart=Never")
			if err == nil || !strings.Contains(errOut, `pods "second" is forbidden: exceeded quota: pod-demo, requested: pods=1, used: pods=1, limited: pods=1`) {
				t.Fatalf("over quota: err=%v stderr=%s", err, errOut)
			}
			out := k.run("describe", "quota", "pod-demo", "-n", ns)
			mustContain(t, out, "Resource", "Used", "Hard")
			if !strings.Contains(strings.Join(strings.Fields(out), " "), "pods 1 1") {
				t.Fatalf("describe quota:\n%s", out)
			}
		})
	}
}
