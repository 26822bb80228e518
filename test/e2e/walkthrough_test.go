package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const pcDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: pc-deployment
  namespace: dev
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx-pod
    matchExpressions:
    - {key: app, operator: In, values: [nginx-pod]}
  template:
    metadata:
      labels:
        app: nginx-pod
    spec:
      containers:
      - name: web
        image: skiff.local/web:v1
        ports:
        - containerPort: 80
`

// The seeds' Deployment walkthrough (WALKTHROUGH.md steps 3–8 and 11) with the real kubectl
// on simulated nodes: create with --record, scale, edit, Recreate, RollingUpdate, rollout
// status/history/undo, canary with pause/resume, restart, delete, namespace deletion.
func TestWalkthroughDeploymentOnSimulatedNodes(t *testing.T) {
	s := startServer(t, "--simulated-nodes", "3", "--simulated-pod-start-delay", "200ms")
	k := s.kubectls()[0]
	eventually(t, 20*time.Second, func() error {
		if out := k.run("get", "nodes", "--no-headers"); strings.Count(out, " Ready ") != 3 {
			return fmt.Errorf("nodes:\n%s", out)
		}
		return nil
	})
	deploymentWalkthrough(t, k, "skiff.local/web:v1.1")
}

// deploymentWalkthrough runs WALKTHROUGH steps 3–8 and 11 with kubectl k; step6Image is the
// image of the rolling update (any name on simulated nodes; a real one on a real node).
func deploymentWalkthrough(t *testing.T, k kubectl, step6Image string) {
	file := t.TempDir() + "/pc-deployment.yaml"
	writeFile(t, file, pcDeployment)

	// Step 3.
	k.run("create", "ns", "dev")
	k.run("create", "-f", file, "--record")
	mustContain(t, k.run("rollout", "status", "deploy", "pc-deployment", "-n", "dev", "--timeout=60s"), `deployment "pc-deployment" successfully rolled out`)
	out := k.run("get", "deploy,rs,pod", "-n", "dev")
	mustContain(t, out, "deployment.apps/pc-deployment   3/3     3            3")
	rs := strings.TrimSpace(k.run("get", "rs", "-n", "dev", "-o", "jsonpath={.items[0].metadata.name}"))
	if !strings.HasPrefix(rs, "pc-deployment-") || len(rs) <= len("pc-deployment-") {
		t.Fatalf("replica set name %q", rs)
	}
	for _, p := range strings.Fields(k.run("get", "pods", "-n", "dev", "-o", "jsonpath={.items[*].metadata.name}")) {
		if !strings.HasPrefix(p, rs+"-") || len(p) != len(rs)+6 {
			t.Fatalf("pod name %q is not <rs>-<5 chars>", p)
		}
	}
	runningPods := func(n int) func() error {
		return func() error {
			out := k.run("get", "pods", "-n", "dev", "--no-headers", "--field-selector", "status.phase=Running")
			if got := len(strings.Fields(strings.TrimSpace(out))) / 5; got != n || strings.Contains(out, "Terminating") {
				return fmt.Errorf("want %d running pods:\n%s", n, out)
			}
			return nil
		}
	}

	// Step 4: scale to 5, edit back to 3.
	k.run("scale", "deploy", "pc-deployment", "--replicas=5", "-n", "dev")
	eventually(t, 30*time.Second, runningPods(5))
	editor := t.TempDir() + "/editor.sh"
	writeFile(t, editor, "#!/bin/sh\nsed -i 's/replicas: 5/replicas: 3/' \"$1\"\n")
	chmodX(t, editor)
	ek := k
	ek.extraEnv = []string{"EDITOR=" + editor}
	ek.run("edit", "deploy", "pc-deployment", "-n", "dev")
	eventually(t, 30*time.Second, runningPods(3))

	// Step 5: Recreate, then set image: the old replica set is scaled to 0 before the new one.
	k.run("patch", "deploy", "pc-deployment", "-n", "dev", "-p", `{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`)
	k.run("set", "image", "deploy", "pc-deployment", "web=skiff.local/web:v2", "-n", "dev")
	mustContain(t, k.run("rollout", "status", "deploy", "pc-deployment", "-n", "dev", "--timeout=60s"), "successfully rolled out")
	mustContain(t, k.run("describe", "deploy", "pc-deployment", "-n", "dev"), "StrategyType:       Recreate", "Scaled down replica set "+rs+" from 3 to 0")

	// Step 6: RollingUpdate 25%/25%; the old replica set stays with 0 replicas.
	k.run("patch", "deploy", "pc-deployment", "-n", "dev", "-p", `{"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}}}}`)
	k.run("set", "image", "deploy", "pc-deployment", "web="+step6Image, "-n", "dev")
	// Step 7: rollout status, history with CHANGE-CAUSE, undo to revision 1.
	mustContain(t, k.run("rollout", "status", "deploy", "pc-deployment", "-n", "dev", "--timeout=60s"), "successfully rolled out")
	hist := k.run("rollout", "history", "deploy", "pc-deployment", "-n", "dev")
	mustContain(t, hist, "REVISION  CHANGE-CAUSE", "1         kubectl create --filename=", "3         kubectl create")
	if n := len(strings.Fields(k.run("get", "rs", "-n", "dev", "-o", "jsonpath={.items[*].metadata.name}"))); n != 3 {
		t.Fatalf("%d replica sets after two updates, want 3", n)
	}
	k.run("rollout", "undo", "deploy", "pc-deployment", "--to-revision=1", "-n", "dev")
	mustContain(t, k.run("rollout", "status", "deploy", "pc-deployment", "-n", "dev", "--timeout=60s"), "successfully rolled out")
	if got := k.run("get", "rs", rs, "-n", "dev", "-o", "jsonpath={.status.readyReplicas}"); got != "3" {
		t.Fatalf("undo to revision 1 did not bring %s back: readyReplicas=%q", rs, got)
	}

	// Step 8: canary with pause/resume, then restart.
	k.run("set", "image", "deploy", "pc-deployment", "web=skiff.local/web:v2", "-n", "dev")
	k.run("rollout", "pause", "deploy", "pc-deployment", "-n", "dev")
	eventually(t, 20*time.Second, func() error {
		out, _, _ := k.try("", "rollout", "status", "deploy", "pc-deployment", "-n", "dev", "--timeout=2s")
		// The seed's run shows 1 of 3; how far the controller got before the pause landed
		// depends on timing, but a paused rollout never finishes.
		for _, n := range []string{"1", "2"} {
			if strings.Contains(out, `Waiting for deployment "pc-deployment" rollout to finish: `+n+` out of 3 new replicas have been updated...`) {
				return nil
			}
		}
		return fmt.Errorf("rollout status while paused:\n%s", out)
	})
	k.run("rollout", "resume", "deploy", "pc-deployment", "-n", "dev")
	mustContain(t, k.run("rollout", "status", "deploy", "pc-deployment", "-n", "dev", "--timeout=60s"), "successfully rolled out")
	before := k.run("get", "pods", "-n", "dev", "-o", "jsonpath={.items[*].metadata.name}")
	k.run("rollout", "restart", "deploy", "pc-deployment", "-n", "dev")
	mustContain(t, k.run("rollout", "status", "deploy", "pc-deployment", "-n", "dev", "--timeout=60s"), "successfully rolled out")
	eventually(t, 30*time.Second, func() error {
		after := k.run("get", "pods", "-n", "dev", "-o", "jsonpath={.items[*].metadata.name}")
		for _, p := range strings.Fields(before) {
			if strings.Contains(after, p) {
				return fmt.Errorf("pod %s survived the restart", p)
			}
		}
		return runningPods(3)()
	})

	// Step 11: delete the deployment (replica sets and pods go), then the namespace.
	k.run("delete", "-f", file)
	eventually(t, 30*time.Second, func() error {
		if out := strings.TrimSpace(k.run("get", "rs,pods", "-n", "dev", "-o", "name")); out != "" {
			return fmt.Errorf("left after deleting the deployment:\n%s", out)
		}
		return nil
	})
	k.run("create", "configmap", "leftover", "-n", "dev")
	k.run("delete", "ns", "dev")
	eventually(t, 30*time.Second, func() error {
		_, errOut, err := k.try("", "get", "ns", "dev")
		if err == nil || !strings.Contains(errOut, `namespaces "dev" not found`) {
			return fmt.Errorf("namespace dev still there")
		}
		return nil
	})
}
