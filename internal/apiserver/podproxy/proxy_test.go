package podproxy

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentserver "github.com/skiff-sh/skiff/internal/agent/server"
)

func pod(name string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "uid-1"}, Spec: corev1.PodSpec{NodeName: "n1"}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	return p
}

func TestResolveContainer(t *testing.T) {
	multi := pod("p", "a", "b")
	withInit := pod("p", "a", "b")
	withInit.Spec.InitContainers = []corev1.Container{{Name: "init"}}
	withInit.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug"}}}
	annotated := pod("p", "a", "b")
	annotated.Annotations = map[string]string{DefaultContainerAnnotation: "b"}
	badAnnotation := pod("p", "a", "b")
	badAnnotation.Annotations = map[string]string{DefaultContainerAnnotation: "zzz"}
	for _, tc := range []struct {
		name, container, want, err string
		pod                        *corev1.Pod
	}{
		{name: "only container", pod: pod("p", "a"), want: "a"},
		{name: "named", pod: multi, container: "b", want: "b"},
		{name: "init container named", pod: withInit, container: "init", want: "init"},
		{name: "ephemeral container named", pod: withInit, container: "debug", want: "debug"},
		{name: "annotation", pod: annotated, want: "b"},
		{name: "named beats annotation", pod: annotated, container: "a", want: "a"},
		{name: "several", pod: multi, err: "a container name must be specified for pod p, choose one of: [a b]"},
		{name: "annotation naming nothing", pod: badAnnotation, err: "a container name must be specified for pod p, choose one of: [a b]"},
		{name: "several with init", pod: withInit, err: "a container name must be specified for pod p, choose one of: [init a b debug]"},
		{name: "none", pod: pod("p"), err: "a container name must be specified for pod p"},
		{name: "unknown", pod: multi, container: "c", err: "container c is not valid for pod p"},
	} {
		got, err := ResolveContainer(tc.pod, tc.container)
		if tc.err != "" {
			if !apierrors.IsBadRequest(err) || err.Error() != tc.err {
				t.Errorf("%s: %q, %v; want BadRequest %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestCheckLogStatus(t *testing.T) {
	p := pod("p", "a")
	if err := checkLogStatus(p, "a", false); err != nil {
		t.Errorf("no status: %v", err)
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "a", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
	if err := checkLogStatus(p, "a", false); err == nil || err.Error() != `container "a" in pod "p" is waiting to start: ImagePullBackOff` {
		t.Errorf("waiting: %v", err)
	}
	if err := checkLogStatus(p, "a", true); err == nil || err.Error() != `previous terminated container "a" in pod "p" not found` {
		t.Errorf("previous: %v", err)
	}
	// Crash-looping: waiting, with a terminated instance to show.
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1}
	if err := checkLogStatus(p, "a", false); err != nil {
		t.Errorf("crash loop: %v", err)
	}
	if err := checkLogStatus(p, "a", true); err != nil {
		t.Errorf("crash loop previous: %v", err)
	}
}

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) clientCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeAgent is a TLS server that requires a client certificate from the CA and records the
// requests it gets.
type fakeAgent struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	port int32
}

func newFakeAgent(t *testing.T, ca *testCA, h http.HandlerFunc) *fakeAgent {
	return newFakeAgentFor(t, ca, ca.pool, h)
}

func newFakeAgentFor(t *testing.T, ca *testCA, clientCAs *x509.CertPool, h http.HandlerFunc) *fakeAgent {
	t.Helper()
	a := &fakeAgent{}
	serving, err := agentserver.SignServingCert(ca.cert, ca.key, "n1", []string{"127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.reqs = append(a.reqs, r)
		a.mu.Unlock()
		h(w, r)
	}))
	a.TLS = &tls.Config{Certificates: []tls.Certificate{serving}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	a.StartTLS()
	t.Cleanup(a.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(a.URL, "https://"))
	n, _ := strconv.Atoi(port)
	a.port = int32(n)
	return a
}

func (a *fakeAgent) last() *http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) == 0 {
		return nil
	}
	return a.reqs[len(a.reqs)-1]
}

func (a *fakeAgent) node() *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = a.port
	return n
}

// frontFor serves pod subresources of p at /<sub>, as the API server would.
func frontFor(t *testing.T, px *Proxy, p *corev1.Pod) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		px.ServePodSubresource(w, r, p, strings.TrimPrefix(r.URL.Path, "/"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func statusOf(t *testing.T, body string) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Kind != "Status" {
		t.Fatalf("not a Status: %s (%v)", body, err)
	}
	return st
}

func TestServePodSubresource(t *testing.T) {
	ca := newTestCA(t)
	agent := newFakeAgent(t, ca, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/broken"):
			http.Error(w, `previous terminated container "broken" in pod "p" not found`, http.StatusBadRequest)
		case strings.HasPrefix(r.URL.Path, "/containerLogs/"):
			w.Write([]byte("log line\n"))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"container not found (\"x\")","reason":"NotFound","code":404}`))
		}
	})
	node := agent.node()
	px := New(Config{GetNode: func(_ context.Context, name string) (*corev1.Node, error) {
		if name != "n1" {
			return nil, apierrors.NewNotFound(corev1.Resource("nodes"), name)
		}
		return node, nil
	}, ClientCert: ca.clientCert(t), RootCAs: ca.pool})
	defer px.Close()
	p := pod("p", "web", "broken")
	front := frontFor(t, px, p)

	code, body := do(t, "GET", front.URL+"/log?container=web&follow=true&tailLines=5&timestamps=true&sinceSeconds=10&limitBytes=9&insecureSkipTLSVerifyBackend=true",
		"Authorization", "Bearer secret", "Impersonate-User", "x")
	r := agent.last()
	if code != 200 || body != "log line\n" || r.URL.Path != "/containerLogs/ns/p/web" ||
		r.URL.RawQuery != "follow=true&limitBytes=9&sinceSeconds=10&tailLines=5&timestamps=true" {
		t.Errorf("log: %d %q; agent got %s?%s", code, body, r.URL.Path, r.URL.RawQuery)
	}
	if r.Header.Get("Authorization") != "" || r.Header.Get("Impersonate-User") != "" {
		t.Errorf("credentials reached the agent: %v", r.Header)
	}
	// The agent's plain-text error becomes a Status with its message.
	code, body = do(t, "GET", front.URL+"/log?container=broken&previous=true")
	if st := statusOf(t, body); code != 400 || st.Code != 400 || st.Reason != metav1.StatusReasonBadRequest ||
		st.Message != `previous terminated container "broken" in pod "p" not found` {
		t.Errorf("agent error: %d %s", code, body)
	}
	code, body = do(t, "GET", front.URL+"/log")
	if st := statusOf(t, body); code != 400 || st.Message != "a container name must be specified for pod p, choose one of: [web broken]" {
		t.Errorf("no container: %d %s", code, body)
	}
	code, body = do(t, "GET", front.URL+"/log?container=web&tailLines=-1")
	if st := statusOf(t, body); code != 400 || !strings.Contains(st.Message, "tailLines") {
		t.Errorf("bad tailLines: %d %s", code, body)
	}

	code, body = do(t, "POST", front.URL+"/exec?container=web&command=sh&command=-c&command=echo+hi&stdin=true&stdout=true&stderr=false&tty=true")
	r = agent.last()
	if r.URL.Path != "/exec/ns/p/uid-1/web" || r.URL.Query().Encode() != "command=sh&command=-c&command=echo+hi&input=1&output=1&tty=1" || r.Method != "POST" {
		t.Errorf("exec: agent got %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
	}
	// The agent's Status passes through.
	if st := statusOf(t, body); code != 404 || st.Message != `container not found ("x")` {
		t.Errorf("exec answer: %d %s", code, body)
	}
	do(t, "GET", front.URL+"/attach?container=broken&stdout=1")
	if r = agent.last(); r.URL.Path != "/attach/ns/p/uid-1/broken" || r.URL.RawQuery != "output=1" {
		t.Errorf("attach: agent got %s?%s", r.URL.Path, r.URL.RawQuery)
	}
	do(t, "POST", front.URL+"/portforward?ports=80,8080")
	if r = agent.last(); r.URL.Path != "/portForward/ns/p/uid-1" || r.URL.RawQuery != "port=80&port=8080" {
		t.Errorf("portforward: agent got %s?%s", r.URL.Path, r.URL.RawQuery)
	}
	code, body = do(t, "POST", front.URL+"/exec?command=ls&stdout=true")
	if st := statusOf(t, body); code != 400 || st.Message != "a container name must be specified for pod p, choose one of: [web broken]" {
		t.Errorf("exec without container: %d %s", code, body)
	}
	code, body = do(t, "GET", front.URL+"/nope")
	if code != 404 {
		t.Errorf("unknown subresource: %d %s", code, body)
	}

	// Unscheduled: exec and port-forward are refused, logs are empty.
	unscheduled := pod("p", "web")
	unscheduled.Spec.NodeName = ""
	front2 := frontFor(t, px, unscheduled)
	for _, sub := range []string{"exec?command=ls&stdout=true", "attach?stdout=true", "portforward"} {
		code, body := do(t, "POST", front2.URL+"/"+sub)
		if st := statusOf(t, body); code != 400 || st.Message != "pod p does not have a host assigned" {
			t.Errorf("%s unscheduled: %d %s", sub, code, body)
		}
	}
	if code, body := do(t, "GET", front2.URL+"/log"); code != 200 || body != "" {
		t.Errorf("log unscheduled: %d %q", code, body)
	}

	// A node that is gone, and an agent that does not answer.
	elsewhere := pod("p", "web")
	elsewhere.Spec.NodeName = "n2"
	if code, body := do(t, "GET", frontFor(t, px, elsewhere).URL+"/log"); code != 404 || statusOf(t, body).Reason != metav1.StatusReasonNotFound {
		t.Errorf("missing node: %d %s", code, body)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(deadPort)
	code, body = do(t, "GET", front.URL+"/log?container=web")
	if st := statusOf(t, body); code != 500 || !strings.Contains(st.Message, "error dialing backend") {
		t.Errorf("dead agent: %d %s", code, body)
	}
}

func TestUpgradeThroughProxy(t *testing.T) {
	ca := newTestCA(t)
	agent := newFakeAgent(t, ca, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "SPDY/3.1" || r.Header.Get("X-Stream-Protocol-Version") != "v4.channel.k8s.io" {
			http.Error(w, "not an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	})
	node := agent.node()
	px := New(Config{GetNode: func(context.Context, string) (*corev1.Node, error) { return node, nil }, ClientCert: ca.clientCert(t), RootCAs: ca.pool})
	front := frontFor(t, px, pod("p", "web"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "POST /exec?command=sh&stdin=true&stdout=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprint(conn, "over the stream\n")
	if l, err := br.ReadString('\n'); err != nil || l != "over the stream\n" {
		t.Errorf("echo: %q, %v", l, err)
	}
}

func TestInsecureSkipVerify(t *testing.T) {
	// An agent whose serving certificate is from another CA is refused unless told otherwise.
	ca, other := newTestCA(t), newTestCA(t)
	agent := newFakeAgentFor(t, other, ca.pool, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	node := agent.node()
	get := func(skip bool) int {
		px := New(Config{GetNode: func(context.Context, string) (*corev1.Node, error) { return node, nil }, ClientCert: ca.clientCert(t),
			RootCAs: ca.pool, InsecureSkipVerify: skip})
		code, _ := do(t, "GET", frontFor(t, px, pod("p", "web")).URL+"/log")
		return code
	}
	if code := get(false); code != 500 {
		t.Errorf("untrusted agent: %d", code)
	}
	if code := get(true); code != 200 {
		t.Errorf("untrusted agent with InsecureSkipVerify: %d", code)
	}
}
