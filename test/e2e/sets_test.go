package e2e

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// setsKubectl is the machine's kubectl when installed (else `skiff kubectl`).
func setsKubectl(s *server) kubectl { return s.kubectls()[0] }

// setsWatch runs `kubectl get <args> --watch` in the background and collects its lines (one
// per event; a deleted object's last state is printed once more).
type setsWatch struct {
	mu     sync.Mutex
	lines  []string
	cancel context.CancelFunc
	done   chan struct{}
}

func startSetsWatch(t *testing.T, k kubectl, args ...string) *setsWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := k.cmd(ctx, "", append([]string{"get"}, append(args, "--watch", "--no-headers")...)...)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	w := &setsWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, strings.Join(strings.Fields(sc.Text()), " "))
			w.mu.Unlock()
		}
		_ = c.Wait()
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *setsWatch) stop() {
	w.cancel()
	<-w.done
}

func (w *setsWatch) snapshot() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// index returns the position of the first line with all the fields, or -1.
func setsIndex(lines []string, fields ...string) int {
	for i, l := range lines {
		f := strings.Fields(l)
		ok := true
		for _, want := range fields {
			found := false
			for _, have := range f {
				if have == want {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			return i
		}
	}
	return -1
}

const setsDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: %s
spec:
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      containers:
      - name: agent
        image: skiff.local/web:v1
`

func TestE2EDaemonSet(t *testing.T) {
	s := startServer(t, "--simulated-nodes", "3", "--simulated-pod-start-delay", "200ms")
	k := setsKubectl(s)
	eventually(t, 30*time.Second, func() error {
		out := k.run("get", "nodes", "--no-headers")
		if n := strings.Count(out, " Ready "); n != 3 {
			return fmt.Errorf("%d ready nodes:\n%s", n, out)
		}
		return nil
	})
	nodes := strings.Fields(k.run("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"))

	k.stdin(fmt.Sprintf(setsDaemonSet, "agent", "agent", "agent"), "apply", "-f", "-")
	out := k.run("rollout", "status", "ds/agent", "--timeout=60s")
	mustContain(t, out, `daemon set "agent" successfully rolled out`)
	podNodes := func(app string) map[string]int {
		out := k.run("get", "pods", "-l", "app="+app, "-o", `jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}`)
		m := map[string]int{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 1 { // bound and not terminating
				m[f[0]]++
			}
		}
		return m
	}
	if m := podNodes("agent"); len(m) != 3 || m[nodes[0]] != 1 || m[nodes[1]] != 1 || m[nodes[2]] != 1 {
		t.Fatalf("pods per node %v", m)
	}
	out = k.run("get", "ds", "agent")
	mustContain(t, out, "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE")
	if f := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); len(f) < 7 || strings.Join(f[1:7], " ") != "3 3 3 3 3 <none>" {
		t.Fatalf("kubectl get ds:\n%s", out)
	}

	// A tainted node is skipped unless tolerated.
	tainted := nodes[2]
	k.run("taint", "nodes", tainted, "dedicated=infra:NoSchedule")
	k.stdin(fmt.Sprintf(setsDaemonSet, "infra", "infra", "infra"), "apply", "-f", "-")
	mustContain(t, k.run("rollout", "status", "ds/infra", "--timeout=60s"), `daemon set "infra" successfully rolled out`)
	if m := podNodes("infra"); len(m) != 2 || m[tainted] != 0 {
		t.Fatalf("infra pods per node %v (tainted %s must be skipped)", m, tainted)
	}
	k.run("patch", "ds", "infra", "--type=json", "-p",
		`[{"op":"add","path":"/spec/template/spec/tolerations","value":[{"key":"dedicated","operator":"Equal","value":"infra","effect":"NoSchedule"}]}]`)
	mustContain(t, k.run("rollout", "status", "ds/infra", "--timeout=60s"), `daemon set "infra" successfully rolled out`)
	eventually(t, 30*time.Second, func() error {
		if m := podNodes("infra"); len(m) != 3 || m[tainted] != 1 {
			return fmt.Errorf("infra pods per node %v", m)
		}
		return nil
	})
	// The NoSchedule taint did not evict the agent pod already there.
	if m := podNodes("agent"); m[tainted] != 1 {
		t.Fatalf("agent pods per node %v", m)
	}

	// An image change rolls out; history and undo read the ControllerRevisions.
	k.run("taint", "nodes", tainted, "dedicated=infra:NoSchedule-")
	k.run("set", "image", "ds/agent", "agent=skiff.local/web:v2")
	out = k.run("rollout", "status", "ds/agent", "--timeout=60s")
	mustContain(t, out, `daemon set "agent" successfully rolled out`)
	eventually(t, 30*time.Second, func() error {
		out := k.run("get", "pods", "-l", "app=agent", "-o", `jsonpath={range .items[*]}{.spec.containers[0].image}{"\n"}{end}`)
		if strings.Count(out, "web:v2") != 3 || strings.Contains(out, "web:v1") {
			return fmt.Errorf("images:\n%s", out)
		}
		return nil
	})
	out = k.run("rollout", "history", "ds/agent")
	mustContain(t, out, "REVISION", "CHANGE-CAUSE", "1 ", "2 ")
	mustContain(t, k.run("rollout", "history", "ds/agent", "--revision=1"), "skiff.local/web:v1")
	mustContain(t, k.run("rollout", "undo", "ds/agent"), "daemonset.apps/agent rolled back")
	mustContain(t, k.run("rollout", "status", "ds/agent", "--timeout=60s"), `daemon set "agent" successfully rolled out`)
	mustContain(t, k.run("get", "ds", "agent", "-o", "jsonpath={.spec.template.spec.containers[0].image}"), "skiff.local/web:v1")
	out = k.run("get", "controllerrevisions", "-l", "app=agent")
	mustContain(t, out, "daemonset.apps/agent")

	out = k.run("describe", "ds", "agent")
	mustContain(t, out, "SuccessfulCreate", "Created pod: agent-", "SuccessfulDelete", "Deleted pod: agent-")
}

const setsStatefulSet = `apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  clusterIP: None
  selector: {app: nginx}
  ports:
  - port: 80
    name: web
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 3
  selector:
    matchLabels: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers:
      - name: nginx
        image: skiff.local/web:v1
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
`

func TestE2EStatefulSet(t *testing.T) {
	s := startServer(t, "--simulated-nodes", "3", "--simulated-pod-start-delay", "200ms")
	k := setsKubectl(s)
	eventually(t, 30*time.Second, func() error {
		if n := strings.Count(k.run("get", "nodes", "--no-headers"), " Ready "); n != 3 {
			return fmt.Errorf("%d ready nodes", n)
		}
		return nil
	})
	w := startSetsWatch(t, k, "pods", "-l", "app=nginx", "-o",
		`custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,DELETING:.metadata.deletionTimestamp`)
	k.stdin(setsStatefulSet, "apply", "-f", "-")
	out := k.run("rollout", "status", "sts/web", "--timeout=90s")
	mustContain(t, out, "partitioned roll out complete: 3 new pods have been updated...")

	// web-0, web-1, web-2 appear in order, each after its predecessor was Ready.
	eventually(t, 10*time.Second, func() error {
		lines := w.snapshot()
		prevReady := -1
		for i := 0; i < 3; i++ {
			added := setsIndex(lines, fmt.Sprintf("web-%d", i))
			if added < 0 {
				return fmt.Errorf("web-%d never added:\n%s", i, strings.Join(lines, "\n"))
			}
			if added < prevReady {
				t.Fatalf("web-%d added before web-%d was ready:\n%s", i, i-1, strings.Join(lines, "\n"))
			}
			prevReady = setsIndex(lines, fmt.Sprintf("web-%d", i), "True")
			if prevReady < 0 {
				return fmt.Errorf("web-%d never ready", i)
			}
		}
		return nil
	})
	ts := k.run("get", "pods", "-l", "app=nginx", "--sort-by=.metadata.creationTimestamp", "-o", "jsonpath={.items[*].metadata.name}")
	if ts != "web-0 web-1 web-2" {
		t.Fatalf("pods by creationTimestamp: %q", ts)
	}
	out = k.run("get", "sts", "web")
	mustContain(t, out, "NAME", "READY", "AGE", "web", "3/3")
	out = k.run("get", "pvc", "-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}")
	for i := 0; i < 3; i++ {
		mustContain(t, out, fmt.Sprintf("www-web-%d", i))
	}
	out = k.run("get", "pod", "web-1", "-o", "jsonpath={.spec.hostname} {.spec.subdomain} {.metadata.labels.statefulset\\.kubernetes\\.io/pod-name} {.metadata.labels.apps\\.kubernetes\\.io/pod-index}")
	if out != "web-1 nginx web-1 1" {
		t.Fatalf("web-1 identity: %q", out)
	}

	// Image change: rolling update, history, status.
	k.run("set", "image", "sts/web", "nginx=skiff.local/web:v2")
	out = k.run("rollout", "status", "sts/web", "--timeout=90s")
	mustContain(t, out, "partitioned roll out complete: 3 new pods have been updated...")
	eventually(t, 30*time.Second, func() error {
		out := k.run("get", "sts", "web", "-o", "jsonpath={.status.currentRevision} {.status.updateRevision} {.status.updatedReplicas}")
		f := strings.Fields(out)
		if len(f) != 3 || f[0] != f[1] || f[2] != "3" {
			return fmt.Errorf("status %q", out)
		}
		return nil
	})
	out = k.run("rollout", "history", "sts/web")
	mustContain(t, out, "REVISION", "CHANGE-CAUSE", "1 ", "2 ")
	mustContain(t, k.run("rollout", "history", "sts/web", "--revision=2"), "skiff.local/web:v2")
	mustContain(t, k.run("get", "controllerrevisions"), "statefulset.apps/web")

	// Scale to 1: web-2 goes, then web-1; the claims stay.
	n := len(w.snapshot())
	k.run("scale", "sts", "web", "--replicas=1")
	eventually(t, 60*time.Second, func() error {
		out := k.run("get", "pods", "-l", "app=nginx", "-o", "jsonpath={.items[*].metadata.name}")
		if out != "web-0" {
			return fmt.Errorf("pods %q", out)
		}
		return nil
	})
	lines := w.snapshot()[n:]
	gone2, term1 := -1, -1
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		if f[0] == "web-2" {
			gone2 = i // its last line is the deletion
		}
		if f[0] == "web-1" && f[2] != "<none>" && term1 < 0 {
			term1 = i
		}
	}
	if gone2 < 0 || term1 < 0 || term1 < gone2 {
		t.Fatalf("web-2 must be gone before web-1 terminates (web-2 deleted at %d, web-1 terminating at %d):\n%s", gone2, term1, strings.Join(lines, "\n"))
	}
	out = k.run("get", "pvc", "--no-headers")
	if strings.Count(out, "www-web-") != 3 {
		t.Fatalf("claims after scale down:\n%s", out)
	}
	mustContain(t, k.run("get", "sts", "web"), "1/1")
	out = k.run("describe", "sts", "web")
	mustContain(t, out, "SuccessfulCreate", "create Pod web-0 in StatefulSet web successful",
		"create Claim www-web-0 Pod web-0 in StatefulSet web success", "SuccessfulDelete", "delete Pod web-2 in StatefulSet web successful")
}
