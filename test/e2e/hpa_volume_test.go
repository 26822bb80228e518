package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// realKubectl is the machine's kubectl against s; the test skips without one.
func realKubectl(t *testing.T, s *server) kubectl {
	t.Helper()
	for _, k := range s.kubectls() {
		if k.name == "kubectl" {
			return k
		}
	}
	t.Skip("no /usr/bin/kubectl")
	return kubectl{}
}

const hvClaim = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
`

const hvPod = `apiVersion: v1
kind: Pod
metadata:
  name: writer
spec:
  containers:
  - name: app
    image: skiff.local/web:v1
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: data
`

const hvStatic = `apiVersion: v1
kind: PersistentVolume
metadata:
  name: static-pv
spec:
  capacity:
    storage: 2Gi
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: manual
  hostPath:
    path: /tmp/skiff-e2e-static-pv
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: static-claim
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
`

// TestHPAAndVolumesWithKubectl: dynamic local-path provisioning (WaitForFirstConsumer), static
// binding, `kubectl autoscale` / `kubectl get hpa`, and kube-root-ca.crt, on simulated nodes.
func TestHPAAndVolumesWithKubectl(t *testing.T) {
	s := startServer(t, "--simulated-nodes", "2", "--simulated-pod-start-delay", "200ms")
	k := realKubectl(t, s)

	// The default class exists.
	eventually(t, 20*time.Second, func() error {
		out, _, err := k.try("", "get", "storageclass")
		if err != nil || !regexp.MustCompile(`local-path \(default\)\s+skiff.sh/local-path\s+Delete\s+WaitForFirstConsumer`).MatchString(out) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	// A claim without a class gets local-path and waits for a consumer.
	k.stdin(hvClaim, "apply", "-f", "-")
	out := k.run("get", "pvc", "data")
	if !regexp.MustCompile(`data\s+Pending\s+local-path`).MatchString(out) {
		t.Fatalf("pending claim:\n%s", out)
	}
	eventually(t, 20*time.Second, func() error {
		out := k.run("describe", "pvc", "data")
		if !strings.Contains(out, "WaitForFirstConsumer") || !strings.Contains(out, "waiting for first consumer to be created before binding") {
			return fmt.Errorf("describe:\n%s", out)
		}
		return nil
	})
	if out := k.run("get", "pvc", "data", "-o", "jsonpath={.status.phase}"); out != "Pending" {
		t.Fatalf("claim without consumer: %s", out)
	}

	// A pod using it: provisioned and bound.
	k.stdin(hvPod, "apply", "-f", "-")
	var pv string
	eventually(t, 30*time.Second, func() error {
		out := k.run("get", "pvc", "data")
		m := regexp.MustCompile(`data\s+Bound\s+(pvc-[0-9a-f-]+)\s+1Gi\s+RWO\s+local-path`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("get pvc:\n%s", out)
		}
		pv = m[1]
		return nil
	})
	out = k.run("get", "pv", pv)
	if !regexp.MustCompile(pv + `\s+1Gi\s+RWO\s+Delete\s+Bound\s+default/data\s+local-path`).MatchString(out) {
		t.Fatalf("get pv:\n%s", out)
	}
	node := k.run("get", "pod", "writer", "-o", "jsonpath={.spec.nodeName}")
	mustContain(t, k.run("get", "pv", pv, "-o", "jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]} {.spec.hostPath.path}"),
		node+" /var/lib/skiff/storage/"+pv)
	mustContain(t, k.run("describe", "pvc", "data"), "ProvisioningSucceeded", "Successfully provisioned volume "+pv)

	// Deleting pod and claim deletes the volume (reclaim policy Delete).
	k.run("delete", "pod", "writer", "--grace-period=0", "--force")
	k.run("delete", "pvc", "data")
	eventually(t, 30*time.Second, func() error {
		out, errOut, err := k.try("", "get", "pv", pv)
		if err == nil || !strings.Contains(errOut, "NotFound") {
			return fmt.Errorf("pv still there: %s %s", out, errOut)
		}
		return nil
	})

	// A static volume and a claim of its class bind.
	k.stdin(hvStatic, "apply", "-f", "-")
	eventually(t, 20*time.Second, func() error {
		out := k.run("get", "pvc", "static-claim")
		if !regexp.MustCompile(`static-claim\s+Bound\s+static-pv\s+2Gi\s+RWO\s+manual`).MatchString(out) {
			return fmt.Errorf("get pvc:\n%s", out)
		}
		return nil
	})
	if !regexp.MustCompile(`static-pv\s+2Gi\s+RWO\s+Retain\s+Bound\s+default/static-claim\s+manual`).MatchString(k.run("get", "pv", "static-pv")) {
		t.Fatalf("get pv:\n%s", k.run("get", "pv", "static-pv"))
	}

	// kubectl autoscale: the HPA exists, its metric unknown (simulated nodes report none).
	k.run("create", "deployment", "web", "--image=skiff.local/web:v1")
	out = k.run("autoscale", "deploy", "web", "--cpu-percent=50", "--min=1", "--max=5")
	mustContain(t, out, "horizontalpodautoscaler.autoscaling/web autoscaled")
	eventually(t, 30*time.Second, func() error {
		out := k.run("get", "hpa")
		if !regexp.MustCompile(`(?m)^NAME\s+REFERENCE\s+TARGETS\s+MINPODS\s+MAXPODS\s+REPLICAS\s+AGE`).MatchString(out) ||
			!regexp.MustCompile(`web\s+Deployment/web\s+cpu: <unknown>/50%\s+1\s+5\s+1\s+`).MatchString(out) {
			return fmt.Errorf("get hpa:\n%s", out)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		out := k.run("describe", "hpa", "web")
		if !strings.Contains(out, "FailedGetResourceMetric") || !strings.Contains(out, "ScalingActive") {
			return fmt.Errorf("describe hpa:\n%s", out)
		}
		return nil
	})

	// kube-root-ca.crt in a new namespace.
	k.run("create", "namespace", "team-a")
	eventually(t, 20*time.Second, func() error {
		out, errOut, err := k.try("", "get", "configmap", "kube-root-ca.crt", "-n", "team-a", "-o", "jsonpath={.data.ca\\.crt}")
		if err != nil || !strings.HasPrefix(out, "-----BEGIN CERTIFICATE-----") {
			return fmt.Errorf("%v %s %s", err, out, errOut)
		}
		return nil
	})
}
