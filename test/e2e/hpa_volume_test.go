package e2e

import (
	"fmt"
	"os"
	"path/filepath"
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
		node+" "+filepath.Join(s.dataDir, "storage", pv))
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

const hvNodeManifests = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: skiff.local/web:v1
        resources:
          requests: {cpu: 100m}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: notes
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: scribe
spec:
  containers:
  - name: c
    image: skiff.local/busybox:latest
    command: ["sh", "-c", "echo written-by-scribe > /notes/hello && sleep 3600"]
    volumeMounts:
    - {name: notes, mountPath: /notes}
  volumes:
  - name: notes
    persistentVolumeClaim: {claimName: notes}
`

// TestHPAAndVolumeOnRealNode runs on the node agent: the HPA reads real pod CPU from
// metrics.k8s.io (the TARGETS column shows a percentage, not <unknown>), and a pod writes
// into its local-path volume, which lands in the provisioned host directory.
func TestHPAAndVolumeOnRealNode(t *testing.T) {
	s := startNodeServer(t)
	k := realKubectl(t, s)
	k.stdin(hvNodeManifests, "apply", "-f", "-")
	k.run("rollout", "status", "deploy/web", "--timeout=120s")
	mustContain(t, k.run("autoscale", "deploy", "web", "--cpu-percent=50", "--min=1", "--max=3"),
		"horizontalpodautoscaler.autoscaling/web autoscaled")

	var pv string
	eventually(t, 120*time.Second, func() error {
		out := k.run("get", "pvc", "notes")
		m := regexp.MustCompile(`notes\s+Bound\s+(pvc-[0-9a-f-]+)\s+64Mi\s+RWO\s+local-path`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("get pvc:\n%s", out)
		}
		pv = m[1]
		return nil
	})
	dir := k.run("get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path}")
	// The node is named e2e-node, not after this host: the server leaves the directory to
	// the agent (DirectoryOrCreate) and does not remove it; clean up here.
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	eventually(t, 120*time.Second, func() error {
		b, err := os.ReadFile(dir + "/hello")
		if err != nil || strings.TrimSpace(string(b)) != "written-by-scribe" {
			return fmt.Errorf("%s/hello: %q %v", dir, b, err)
		}
		return nil
	})

	// Real metrics: an idle web pod uses a few percent of its 100m request.
	eventually(t, 120*time.Second, func() error {
		out := k.run("get", "hpa", "web")
		if !regexp.MustCompile(`web\s+Deployment/web\s+cpu: \d+%/50%\s+1\s+3\s+1\s+`).MatchString(out) {
			return fmt.Errorf("get hpa:\n%s", out)
		}
		return nil
	})
	if out := k.run("describe", "hpa", "web"); !regexp.MustCompile(`ScalingActive\s+True\s+ValidMetricFound`).MatchString(out) {
		t.Fatalf("describe hpa:\n%s", out)
	}
}
