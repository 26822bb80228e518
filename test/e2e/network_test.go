package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const networkManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: net}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: skiff.local/web:v1
        ports: [{name: http, containerPort: 80}]
        readinessProbe:
          httpGet: {path: /readyz, port: http}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: net}
spec:
  containers:
  - {name: client, image: skiff.local/web:v1}
---
apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: net}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-sticky, namespace: net}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: net}
spec:
  type: ExternalName
  externalName: web.net.svc.cluster.local
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: net}
spec:
  rules:
  - host: demo.local
    http:
      paths:
      - {path: /version, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

// WALKTHROUGH step 9 with real containers: a Service over the deployment answers on its
// cluster IP and DNS name from inside a pod, a NodePort and a LoadBalancer answer on the
// node, an Ingress routes by host and path, a pod failing readiness leaves the rotation and
// comes back, session affinity holds, and cluster DNS answers headless and ExternalName
// services.
func TestNodeServicesDNSIngress(t *testing.T) {
	ingressPort := freePort(t)
	s := startNodeServer(t, "--ingress-http-port", strconv.Itoa(ingressPort), "--ingress-https-port", "0")
	k := s.kubectls()[0]
	k.run("create", "ns", "net")
	eventually(t, 30*time.Second, func() error {
		_, _, err := k.try("", "get", "serviceaccount", "default", "-n", "net")
		return err
	})
	k.stdin(networkManifest, "apply", "-f", "-")
	k.run("expose", "deploy", "web", "-n", "net", "--port", "80")
	k.run("expose", "deploy", "web", "-n", "net", "--name", "web-np", "--type", "NodePort", "--port", "80")
	k.run("expose", "deploy", "web", "-n", "net", "--name", "web-lb", "--type", "LoadBalancer", "--port", "8080", "--target-port", "80")
	k.run("rollout", "status", "deploy/web", "-n", "net", "--timeout=60s")
	k.run("wait", "--for=condition=Ready", "pod/client", "-n", "net", "--timeout=60s")

	nodeIP := k.run("get", "node", "e2e-node", "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	clusterIP := k.run("get", "svc", "web", "-n", "net", "-o", "jsonpath={.spec.clusterIP}")
	pods := map[string]string{} // name → IP
	for _, line := range strings.Split(strings.TrimSpace(k.run("get", "pods", "-n", "net", "-l", "app=web", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}`)), "\n") {
		f := strings.Fields(line)
		pods[f[0]] = f[1]
	}
	if len(pods) != 2 {
		t.Fatalf("web pods: %v", pods)
	}
	inPod := func(args ...string) (string, error) {
		out, errOut, err := k.try("", append([]string{"exec", "-n", "net", "client", "--", "web"}, args...)...)
		if err != nil {
			return out, fmt.Errorf("%v: %s", err, errOut)
		}
		return out, nil
	}
	hostnames := func(get func() (string, error), n int) (map[string]int, error) {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			body, err := get()
			if err != nil {
				return nil, err
			}
			seen[strings.TrimPrefix(strings.TrimSpace(body), "skiff web v1 hostname=")]++
		}
		return seen, nil
	}
	fromHost := func(url string) func() (string, error) {
		return func() (string, error) {
			code, body, err := httpGet(url)
			if err == nil && code != 200 {
				err = fmt.Errorf("GET %s: %d %s", url, code, body)
			}
			return body, err
		}
	}

	// From inside a pod: by cluster IP, by full DNS name and by the search path.
	for _, url := range []string{"http://" + clusterIP + "/", "http://web.net.svc.cluster.local/", "http://web/"} {
		eventually(t, 20*time.Second, func() error {
			out, err := inPod("get", "-t", "2s", url)
			if err != nil || !strings.Contains(out, "skiff web v1 hostname=web-") {
				return fmt.Errorf("GET %s from a pod: %q %v", url, out, err)
			}
			return nil
		})
	}
	// DNS: A for the service, pod IPs for the headless one, ExternalName followed.
	out, err := inPod("resolve", "web.net.svc.cluster.local")
	if err != nil || strings.TrimSpace(out) != clusterIP {
		t.Fatalf("resolve web: %q %v (cluster IP %s)", out, err, clusterIP)
	}
	out, err = inPod("resolve", "web-headless")
	var want []string
	for _, ip := range pods {
		want = append(want, ip)
	}
	sort.Strings(want)
	got := strings.Fields(out)
	sort.Strings(got)
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("resolve web-headless: %q %v, want %v", out, err, want)
	}
	if out, err := inPod("resolve", "ext.net.svc.cluster.local"); err != nil || strings.TrimSpace(out) != clusterIP {
		t.Fatalf("resolve ExternalName ext: %q %v", out, err)
	}
	if _, err := inPod("resolve", "nothing.net.svc.cluster.local"); err == nil {
		t.Fatal("a missing service resolved")
	}
	// The cluster DNS service answers from the host too (the proxy forwards 10.43.0.10).
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, "10.43.0.10:53")
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	addrs, err := r.LookupHost(ctx, "web.net.svc.cluster.local")
	cancel()
	if err != nil || len(addrs) != 1 || addrs[0] != clusterIP {
		t.Fatalf("host lookup through 10.43.0.10: %v %v", addrs, err)
	}

	// Both pods serve through the cluster IP.
	seen, err := hostnames(fromHost("http://"+clusterIP+"/"), 30)
	if err != nil || len(seen) != 2 {
		t.Fatalf("30 requests to the cluster IP reached %v (%v)", seen, err)
	}
	// NodePort on the node's address; LoadBalancer on its ingress address.
	np := k.run("get", "svc", "web-np", "-n", "net", "-o", "jsonpath={.spec.ports[0].nodePort}")
	if _, err := fromHost("http://" + net.JoinHostPort(nodeIP, np) + "/")(); err != nil {
		t.Fatalf("NodePort: %v", err)
	}
	var lbIP string
	eventually(t, 20*time.Second, func() error {
		lbIP = k.run("get", "svc", "web-lb", "-n", "net", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if lbIP == "" {
			return fmt.Errorf("no load-balancer address yet")
		}
		return nil
	})
	mustContain(t, squash(k.run("get", "svc", "web-lb", "-n", "net")), "LoadBalancer "+k.run("get", "svc", "web-lb", "-n", "net", "-o", "jsonpath={.spec.clusterIP}")+" "+lbIP+" 8080:")
	if _, err := fromHost("http://" + net.JoinHostPort(lbIP, "8080") + "/")(); err != nil {
		t.Fatalf("LoadBalancer: %v", err)
	}

	// Ingress by host and path; status carries the node's address.
	ing := fmt.Sprintf("http://127.0.0.1:%d", ingressPort)
	eventually(t, 20*time.Second, func() error {
		req, _ := http.NewRequest("GET", ing+"/version", nil)
		req.Host = "demo.local"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("ingress demo.local/version: %s", resp.Status)
		}
		return nil
	})
	for _, c := range []struct{ host, path string }{{"demo.local", "/other"}, {"else.local", "/version"}} {
		req, _ := http.NewRequest("GET", ing+c.path, nil)
		req.Host = c.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("ingress %s%s: %s, want 404", c.host, c.path, resp.Status)
		}
	}
	eventually(t, 20*time.Second, func() error {
		if out := squash(k.run("get", "ingress", "web", "-n", "net")); !strings.Contains(out, "demo.local "+nodeIP+" 80") {
			return fmt.Errorf("ingress status:\n%s", out)
		}
		return nil
	})

	// Session affinity: one client keeps its pod.
	stuck, err := hostnames(func() (string, error) { return inPod("get", "-t", "2s", "http://web-sticky/") }, 8)
	if err != nil || len(stuck) != 1 {
		t.Fatalf("sessionAffinity ClientIP spread one client over %v (%v)", stuck, err)
	}

	// A pod failing readiness leaves the rotation within seconds, and comes back.
	var unreadyPod, unreadyIP string
	for name, ip := range pods {
		unreadyPod, unreadyIP = name, ip
		break
	}
	if _, err := fromHost("http://" + unreadyIP + "/unready")(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 10*time.Second, func() error {
		if eps := k.run("get", "endpoints", "web", "-n", "net", "-o", "jsonpath={.subsets[*].addresses[*].ip}"); strings.Contains(eps, unreadyIP) {
			return fmt.Errorf("unready pod %s still in endpoints %s", unreadyPod, eps)
		}
		return nil
	})
	t.Logf("unready pod left the endpoints in %v", time.Since(start).Round(10*time.Millisecond))
	eventually(t, 5*time.Second, func() error {
		seen, err := hostnames(fromHost("http://"+clusterIP+"/"), 20)
		if err != nil || seen[unreadyPod] != 0 {
			return fmt.Errorf("cluster IP still reaches the unready pod: %v %v", seen, err)
		}
		return nil
	})
	if _, err := fromHost("http://" + unreadyIP + "/ready")(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		seen, err := hostnames(fromHost("http://"+clusterIP+"/"), 30)
		if err != nil || seen[unreadyPod] == 0 {
			return fmt.Errorf("ready pod not back in rotation: %v %v", seen, err)
		}
		return nil
	})

	// Deleting the service removes its rules: the cluster IP stops reaching the pods. (Some
	// machines' networks answer any address on port 80 themselves, so the test looks at who
	// answers.)
	k.run("delete", "svc", "web", "-n", "net")
	eventually(t, 10*time.Second, func() error {
		if _, body, err := httpGet("http://" + clusterIP + "/"); err == nil && strings.Contains(body, "skiff web") {
			return fmt.Errorf("deleted service's cluster IP still reaches a pod")
		}
		return nil
	})
}
