package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const configMapManifest = `apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
  labels:
    app: web
data:
  keep: "1"
  drop: "2"
`

// Apply with a field removed from the manifest removes it (three-way merge); get in every
// output format; the three patch types; label, annotate, delete.
func TestKubectlBasics(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k.t = t
			ns := "basics-" + k.name
			k.run("create", "namespace", ns)
			mustContain(t, k.stdin(configMapManifest, "apply", "-n", ns, "-f", "-"), "configmap/demo created")
			mustContain(t, k.stdin(strings.Replace(configMapManifest, "  drop: \"2\"\n", "", 1), "apply", "-n", ns, "-f", "-"), "configmap/demo configured")
			if got := k.run("get", "cm", "demo", "-n", ns, "-o", "jsonpath={.data}"); got != `{"keep":"1"}` {
				t.Fatalf("after apply without 'drop': data = %s", got)
			}
			mustContain(t, k.run("get", "cm", "demo", "-n", ns, "-o", "yaml"), "kind: ConfigMap", "uid:", "resourceVersion:")
			mustContain(t, k.run("get", "cm", "demo", "-n", ns, "-o", "json"), `"kind": "ConfigMap"`)
			out := k.run("get", "cm", "-n", ns)
			mustContain(t, out, "NAME", "demo")
			k.run("patch", "cm", "demo", "-n", ns, "--type=merge", "-p", `{"data":{"m":"1"}}`)
			k.run("patch", "cm", "demo", "-n", ns, "--type=json", "-p", `[{"op":"add","path":"/data/j","value":"2"}]`)
			k.run("patch", "cm", "demo", "-n", ns, "-p", `{"data":{"s":"3"}}`)
			if got := k.run("get", "cm", "demo", "-n", ns, "-o", "jsonpath={.data.m}{.data.j}{.data.s}"); got != "123" {
				t.Fatalf("patches: %s", got)
			}
			k.run("label", "cm", "demo", "-n", ns, "tier=backend")
			k.run("annotate", "cm", "demo", "-n", ns, "note=hello")
			mustContain(t, k.run("get", "cm", "-n", ns, "-l", "tier=backend", "-o", "name"), "configmap/demo")
			mustContain(t, k.run("describe", "cm", "demo", "-n", ns), "Name:", "demo", "tier=backend", "note: ")
			mustContain(t, k.run("delete", "cm", "demo", "-n", ns), `configmap "demo" deleted`)
			_, errOut, err := k.try("", "get", "cm", "demo", "-n", ns)
			if err == nil || !strings.Contains(errOut, `configmaps "demo" not found`) {
				t.Fatalf("get after delete: %v %s", err, errOut)
			}
		})
	}
}

func TestKubectlBadInput(t *testing.T) {
	s := startServer(t)
	k := s.kubectls()[0]
	cases := []struct {
		name, manifest, want string
	}{
		{"unknown field", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nbogus: 1\n", `unknown field "bogus"`},
		{"invalid name", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n", `metadata.name: Invalid value: "Not_Valid"`},
		{"invalid label", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels:\n    \"a b\": c\n", `metadata.labels: Invalid value: "a b"`},
		{"malformed yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n", "error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := k.try(tc.manifest, "create", "-f", "-")
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Fatalf("want error containing %q, got err=%v stderr=%s", tc.want, err, errOut)
			}
		})
	}
	// Nothing was stored (kube-root-ca.crt is the root CA publisher's).
	if out := k.run("get", "cm", "-o", "name", "--field-selector", "metadata.name!=kube-root-ca.crt"); strings.TrimSpace(out) != "" {
		t.Fatalf("bad input stored objects: %s", out)
	}
}

func TestKubectlWatch(t *testing.T) {
	s := startServer(t)
	k := s.kubectls()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := k.cmd(ctx, "", "get", "cm", "-w", "--output-watch-events")
	var out syncBuffer
	c.Stdout = &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = c.Wait() }()
	time.Sleep(500 * time.Millisecond)
	k.run("create", "cm", "w1", "--from-literal=a=b")
	k.run("label", "cm", "w1", "x=y")
	k.run("delete", "cm", "w1")
	eventually(t, 10*time.Second, func() error {
		o := out.String()
		for _, w := range []string{"ADDED", "MODIFIED", "DELETED"} {
			if !strings.Contains(o, w) {
				return fmt.Errorf("no %s event yet in:\n%s", w, o)
			}
		}
		return nil
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// kill -9 during a burst of writes loses no acknowledged write.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	s := startServer(t)
	k := s.kubectls()[0]
	var acked sync.Map
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("burst-%d-%d", w, i)
				if _, _, err := k.try("", "create", "cm", name, "--from-literal=a=b"); err == nil {
					acked.Store(name, true)
					n.Add(1)
				}
			}
		}(w)
	}
	for n.Load() < 40 {
		time.Sleep(20 * time.Millisecond)
	}
	s.kill9()
	close(stop)
	wg.Wait()
	s.start()
	out := k.run("get", "cm", "-o", "name")
	missing := 0
	acked.Range(func(key, _ any) bool {
		if !strings.Contains(out, "configmap/"+key.(string)+"\n") {
			missing++
			t.Errorf("acknowledged write %s lost", key)
		}
		return true
	})
	t.Logf("%d acknowledged writes before kill -9, %d missing after restart", n.Load(), missing)
}

func TestExplainAndAPIResources(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k.t = t
			mustContain(t, k.run("api-resources"), "configmaps", "cm", "namespaces", "deployments", "apps/v1")
			mustContain(t, k.run("explain", "configmaps.data"), "KIND:", "ConfigMap")
		})
	}
}

var _ = os.Getenv
var _ = filepath.Join
