package server

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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newTestServer(t *testing.T, rt *fakeRuntime) *httptest.Server {
	t.Helper()
	s := New(Config{Runtime: rt, NodeName: "n1"})
	s.noAuth = true
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestContainerLogsHandler(t *testing.T) {
	dir := t.TempDir()
	logFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rt := &fakeRuntime{}
	rt.addPod("s1", "ns", "p", "u1", 1)
	rt.addContainer("a0", "s1", "ns", "p", "u1", "app", 0, runtimeapi.ContainerState_CONTAINER_EXITED, 100, logFile("u1/app/0.log", crilog("stdout F first")))
	rt.addContainer("a1", "s1", "ns", "p", "u1", "app", 1, runtimeapi.ContainerState_CONTAINER_RUNNING, 200, logFile("u1/app/1.log", crilog("stdout F second")))
	// The previous instance was removed; its log file is still there.
	logFile("u1/side/2.log", crilog("stdout F side two"))
	rt.addContainer("b3", "s1", "ns", "p", "u1", "side", 3, runtimeapi.ContainerState_CONTAINER_EXITED, 300, logFile("u1/side/3.log", crilog("stdout F side three")))
	rt.addContainer("c0", "s1", "ns", "p", "u1", "solo", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, 300, logFile("u1/solo/0.log", crilog("stdout F solo")))
	// A pod of the same name created again: its containers win.
	rt.addPod("s2", "ns", "again", "old", 1)
	rt.addContainer("o0", "s2", "ns", "again", "old", "app", 0, runtimeapi.ContainerState_CONTAINER_EXITED, 100, logFile("old/app/0.log", crilog("stdout F old pod")))
	rt.addPod("s3", "ns", "again", "new", 2)
	rt.addContainer("n0", "s3", "ns", "again", "new", "app", 0, runtimeapi.ContainerState_CONTAINER_EXITED, 500, logFile("new/app/0.log", crilog("stdout F new pod")))
	srv := newTestServer(t, rt)

	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/containerLogs/ns/p/app", 200, "second\n"},
		{"/containerLogs/ns/p/app?previous=true", 200, "first\n"},
		{"/containerLogs/ns/p/side?previous=true", 200, "side two\n"},
		{"/containerLogs/ns/p/side?follow=true", 200, "side three\n"}, // exited: no following
		{"/containerLogs/ns/p/solo?previous=true", 400, `previous terminated container "solo" in pod "p" not found`},
		{"/containerLogs/ns/p/other", 400, `container "other" in pod "p" is waiting to start: ContainerCreating`},
		{"/containerLogs/ns/p/other?previous=1", 400, `previous terminated container "other" in pod "p" not found`},
		{"/containerLogs/ns/nopod/app", 404, `pod "ns/nopod" not found`},
		{"/containerLogs/ns/again/app", 200, "new pod\n"},
		{"/containerLogs/ns/p/app?tailLines=-2", 400, "invalid tailLines"},
		{"/containerLogs/ns/p", 404, "expected /containerLogs/{namespace}/{pod}/{container}"},
	} {
		code, body := get(t, srv.URL+tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) || (code == 200 && body != tc.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
}

func TestContainerLogsFollowEndsWithContainer(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.log")
	os.WriteFile(p, []byte(crilog("stdout F hi")), 0o644)
	rt := &fakeRuntime{}
	rt.addPod("s1", "ns", "p", "u1", 1)
	rt.addContainer("a0", "s1", "ns", "p", "u1", "app", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, 100, p)
	srv := newTestServer(t, rt)
	resp, err := http.Get(srv.URL + "/containerLogs/ns/p/app?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if l, err := r.ReadString('\n'); err != nil || l != "hi\n" {
		t.Fatalf("first line %q, %v", l, err)
	}
	appendFile(t, p, crilog("stdout F more"))
	if l, err := r.ReadString('\n'); err != nil || l != "more\n" {
		t.Fatalf("followed line %q, %v", l, err)
	}
	rt.mu.Lock()
	rt.statuses["a0"].State = runtimeapi.ContainerState_CONTAINER_EXITED
	rt.mu.Unlock()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(r); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the container exited")
	}
}

// upgradeEcho is a stand-in for the runtime's streaming server: it answers an upgrade with
// 101 and echoes the connection.
func upgradeEcho(t *testing.T, paths chan<- string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Upgrade") + " " + r.Header.Get("X-Stream-Protocol-Version")
		if r.Header.Get("Upgrade") == "" {
			http.Error(w, "Upgrade request required", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n", r.Header.Get("Upgrade"))
		brw.Flush()
		io.Copy(conn, brw)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// upgrade sends an upgrade request over a raw connection and checks the echo through it.
func upgrade(t *testing.T, base, method, path string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n", method, path)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if resp.Header.Get("X-Stream-Protocol-Version") != "v4.channel.k8s.io" {
		t.Errorf("protocol %q", resp.Header.Get("X-Stream-Protocol-Version"))
	}
	fmt.Fprint(conn, "ping\n")
	l, err := br.ReadString('\n')
	if err != nil || l != "ping\n" {
		t.Errorf("echo through the stream: %q, %v", l, err)
	}
	return resp.StatusCode, ""
}

func TestStreamHandlers(t *testing.T) {
	paths := make(chan string, 10)
	stream := upgradeEcho(t, paths)
	rt := &fakeRuntime{streamURL: stream.URL}
	rt.addPod("s1", "ns", "p", "u1", 1)
	rt.addPod("s0", "ns", "p", "u0", 0)
	rt.sandboxes[1].State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	rt.addContainer("a0", "s1", "ns", "p", "u1", "app", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, 100, "")
	rt.addContainer("x0", "s1", "ns", "p", "u1", "done", 0, runtimeapi.ContainerState_CONTAINER_EXITED, 100, "")
	srv := newTestServer(t, rt)

	code, body := upgrade(t, srv.URL, "POST", "/exec/ns/p/app?command=sh&command=-c&command=echo+hi&input=1&output=1&error=1&tty=1")
	if code != 101 {
		t.Fatalf("exec: %d %s", code, body)
	}
	if p := <-paths; p != "POST /exec/token SPDY/3.1 v4.channel.k8s.io" {
		t.Errorf("streaming server saw %q", p)
	}
	e := rt.execs[0]
	if e.ContainerId != "a0" || strings.Join(e.Cmd, " ") != "sh -c echo hi" || !e.Stdin || !e.Stdout || e.Stderr || !e.Tty {
		t.Errorf("exec request %+v", e)
	}
	// PodExecOptions parameter names, and the pod UID in the path.
	if code, body := upgrade(t, srv.URL, "GET", "/exec/ns/p/u1/app?command=ls&stdout=true&stderr=true"); code != 101 {
		t.Fatalf("exec: %d %s", code, body)
	}
	<-paths
	if e := rt.execs[1]; !e.Stdout || !e.Stderr || e.Stdin || e.Tty {
		t.Errorf("exec request %+v", e)
	}
	if code, body := upgrade(t, srv.URL, "POST", "/attach/ns/p/app?output=1"); code != 101 {
		t.Fatalf("attach: %d %s", code, body)
	}
	if p := <-paths; !strings.HasPrefix(p, "POST /attach/token") || rt.attaches[0].ContainerId != "a0" || !rt.attaches[0].Stdout {
		t.Errorf("attach: %q %+v", p, rt.attaches[0])
	}
	if code, body := upgrade(t, srv.URL, "POST", "/portForward/ns/p?port=80&port=8080"); code != 101 {
		t.Fatalf("portForward: %d %s", code, body)
	}
	if p := <-paths; !strings.HasPrefix(p, "POST /portforward/token") || rt.forwards[0].PodSandboxId != "s1" || fmt.Sprint(rt.forwards[0].Port) != "[80 8080]" {
		t.Errorf("portForward: %q %+v", p, rt.forwards[0])
	}

	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/exec/ns/p/app?output=1", 400, "you must specify at least one command for the container"},
		{"/exec/ns/p/app?command=ls", 400, "you must specify at least 1 of stdin, stdout, stderr"},
		{"/exec/ns/p/done?command=ls&output=1", 400, `container "done" in pod "p" is not running`},
		{"/exec/ns/p/nope?command=ls&output=1", 404, `container not found ("nope")`},
		{"/exec/ns/p/u9/app?command=ls&output=1", 404, `pod "ns/p" not found`},
		{"/exec/ns/p?command=ls&output=1", 404, "expected /exec/{namespace}/{pod}/{container}"},
		{"/portForward/ns/nope", 404, `pod "ns/nope" not found`},
		{"/portForward/ns/p?port=x", 400, `invalid port "x"`},
	} {
		code, body := upgrade(t, srv.URL, "POST", tc.path)
		var st metav1.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil || code != tc.code || int(st.Code) != tc.code || st.Kind != "Status" || st.Message != tc.msg {
			t.Errorf("POST %s = %d %s, want %d %q", tc.path, code, body, tc.code, tc.msg)
		}
	}
}

func TestPodsHandler(t *testing.T) {
	rt := &fakeRuntime{}
	rt.addPod("s1", "ns", "p", "u1", 1)
	rt.addContainer("a0", "s1", "ns", "p", "u1", "app", 0, runtimeapi.ContainerState_CONTAINER_EXITED, 100, "")
	rt.addContainer("a1", "s1", "ns", "p", "u1", "app", 1, runtimeapi.ContainerState_CONTAINER_RUNNING, 200, "")
	srv := newTestServer(t, rt)
	code, body := get(t, srv.URL+"/pods")
	var pl corev1.PodList
	if err := json.Unmarshal([]byte(body), &pl); err != nil || code != 200 || len(pl.Items) != 1 {
		t.Fatalf("/pods = %d %s", code, body)
	}
	p := pl.Items[0]
	if p.Name != "p" || p.Namespace != "ns" || p.UID != "u1" || p.Status.Phase != corev1.PodRunning || len(p.Spec.Containers) != 1 ||
		p.Status.ContainerStatuses[0].RestartCount != 1 || p.Status.ContainerStatuses[0].State.Running == nil {
		t.Errorf("pod %+v", p)
	}
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok" {
		t.Errorf("healthz = %d %q", code, body)
	}
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
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

func (ca *testCA) clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestAuthentication(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	other := newTestCA(t, "other-ca")
	serving, err := SignServingCert(ca.cert, ca.key, "n1", []string{"127.0.0.1", "n1.example"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(serving.Certificate[0])
	if leaf.Subject.CommonName != "system:node:n1" || leaf.Subject.Organization[0] != "system:nodes" || len(leaf.IPAddresses) != 1 ||
		strings.Join(leaf.DNSNames, ",") != "n1,n1.example" {
		t.Errorf("serving cert %v %v %v", leaf.Subject, leaf.IPAddresses, leaf.DNSNames)
	}
	rt := &fakeRuntime{}
	s := New(Config{Certificate: serving, ClientCAs: ca.pool, Runtime: rt, NodeName: "n1",
		Authorize: func(c *x509.Certificate) bool { return c.Subject.CommonName != "intruder" }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "https://" + ln.Addr().String()
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: certs}}}
	}
	for _, tc := range []struct {
		name   string
		c      *http.Client
		path   string
		status int
	}{
		{"healthz without a certificate", client(), "/healthz", 200},
		{"no certificate", client(), "/pods", 401},
		{"another CA's certificate", client(other.clientCert(t, "apiserver")), "/pods", 401},
		{"cluster CA certificate", client(ca.clientCert(t, "apiserver")), "/pods", 200},
		{"not authorized", client(ca.clientCert(t, "intruder")), "/pods", 403},
	} {
		resp, err := tc.c.Get(base + tc.path)
		if err != nil {
			// A certificate from another CA may be refused at the handshake.
			if tc.status == 401 {
				continue
			}
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	if _, err := New(Config{Runtime: rt}).TLSConfig(); err == nil {
		t.Error("TLSConfig without a certificate")
	}
}

func TestSelfSignedServingCert(t *testing.T) {
	c, err := SelfSignedServingCert("n1", []string{"10.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if leaf.Subject.CommonName != "system:node:n1" || len(leaf.IPAddresses) != 1 || leaf.NotAfter.After(time.Now().Add(2*time.Hour)) {
		t.Errorf("cert %v %v %v", leaf.Subject, leaf.IPAddresses, leaf.NotAfter)
	}
}

func TestWebSocketV5Helpers(t *testing.T) {
	r, _ := http.NewRequest("GET", "/exec/ns/p/c", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Protocol", "v4.channel.k8s.io, v5.channel.k8s.io")
	if !wantsWebSocketV5(r) {
		t.Error("v5 offer not seen")
	}
	r.Header.Set("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
	if wantsWebSocketV5(r) {
		t.Error("v4 only taken for v5")
	}
	r.Header.Set("Upgrade", "SPDY/3.1")
	if wantsWebSocketV5(r) {
		t.Error("SPDY taken for v5")
	}
	if st := streamStatus(nil); st.Status != metav1.StatusSuccess {
		t.Errorf("success %+v", st)
	}
	st := streamStatus(fmt.Errorf("wrapped: %w", utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code 3"), Code: 3}))
	if st.Reason != "NonZeroExitCode" || st.Details == nil || st.Details.Causes[0].Type != "ExitCode" || st.Details.Causes[0].Message != "3" {
		t.Errorf("exit status %+v", st)
	}
	if st := streamStatus(fmt.Errorf("boom")); st.Status != metav1.StatusFailure || st.Message != "boom" {
		t.Errorf("failure %+v", st)
	}
}
