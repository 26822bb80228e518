package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	streamhttp "k8s.io/streaming/pkg/httpstream"

	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/agent/runtime"
	"github.com/skiff-sh/skiff/internal/agent/server"
	"github.com/skiff-sh/skiff/internal/apiserver/podproxy"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// A pod network used only by this test on this host.
const (
	itPodCIDR = "10.244.251.0/24"
	itBridge  = "skiffsrv0"
	itNode    = "node1"
	itPod     = "web"
)

func skipUnlessContainerd(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real containers; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(runtime.DefaultCNIBinDir, p)); err != nil {
			t.Skipf("CNI plugin %s missing", p)
		}
	}
	if _, err := os.Stat(images.BusyboxBinary); err != nil {
		t.Skip("busybox-static not installed")
	}
}

// TestAgentServerIntegration runs a pod through CRI on a managed containerd, serves it with
// the agent server, wires the pod proxy into a real API server, and uses the pod's logs,
// exec, port-forward and metrics through client-go (and kubectl when installed).
func TestAgentServerIntegration(t *testing.T) {
	skipUnlessContainerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()

	// Control plane, no controllers: the test plays the scheduler and the agent core.
	cpDir := filepath.Join(dir, "cp")
	cl := skifftest.Start(t, skifftest.Options{DataDir: cpDir, Controllers: []controlplane.ComponentFactory{}})
	caCert, caKey, err := server.LoadCA(filepath.Join(cpDir, "tls", "ca.crt"), filepath.Join(cpDir, "tls", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}

	// Containerd with the test images and a bridge network.
	imgDir := filepath.Join(dir, "images")
	if _, err := images.Build(ctx, images.Options{OutDir: imgDir, Images: []string{images.Pause, images.WebV1, images.Busybox}}); err != nil {
		t.Fatalf("building images: %v", err)
	}
	confDir := filepath.Join(dir, "cni")
	if _, err := runtime.WriteBridge(confDir, runtime.BridgeConfig{PodCIDR: itPodCIDR, Bridge: itBridge,
		NetworkName: "skiff-srv-test", IPAMDataDir: filepath.Join(dir, "ipam")}); err != nil {
		t.Fatal(err)
	}
	rtDir := filepath.Join(dir, "rt")
	cd, err := runtime.Start(ctx, runtime.Config{DataDir: rtDir, SandboxImage: images.Pause, CNIConfDir: confDir, StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if c, err := cd.Dial(cctx); err == nil {
			if err := c.RemoveAllPods(cctx); err != nil {
				t.Errorf("cleanup: removing pods: %v", err)
			}
			c.Close()
		} else {
			t.Errorf("cleanup: %v", err)
		}
		if err := cd.Stop(); err != nil {
			t.Errorf("cleanup: stopping containerd: %v", err)
		}
		if n, err := cd.KillShims(); err != nil || n > 0 {
			t.Logf("cleanup: %d leftover shim processes killed (%v)", n, err)
		}
		if err := runtime.UnmountUnder(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = exec.Command("ip", "link", "del", itBridge).Run()
		if t.Failed() {
			if b, err := os.ReadFile(cd.Paths().Log); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 30 {
					lines = lines[len(lines)-30:]
				}
				t.Logf("containerd log (tail):\n%s", strings.Join(lines, "\n"))
			}
		}
	})
	rc, err := cd.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.ImportDir(ctx, imgDir); err != nil {
		t.Fatalf("import: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	if err := rc.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	wcancel()

	// The agent server, with a serving certificate from the cluster CA.
	serving, err := server.SignServingCert(caCert, caKey, itNode, []string{"127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Certificate: serving, ClientCAs: cl.PKI.CAPool, Runtime: rc, NodeName: itNode,
		SampleInterval: time.Second, FsPath: dir})
	sctx, scancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		scancel()
		if err := <-served; err != nil {
			t.Errorf("agent server: %v", err)
		}
	})
	agentPort := ln.Addr().(*net.TCPAddr).Port

	// The node and the pod as the API knows them.
	node, err := cl.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: itNode}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: itNode}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(agentPort)
	node.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")}
	node.Status.Allocatable = node.Status.Capacity
	if node, err = cl.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := cl.Client.CoreV1().Pods("default")
	apiPod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: itPod, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: itNode, Containers: []corev1.Container{
			{Name: "web", Image: images.WebV1}, {Name: "sh", Image: images.Busybox}, {Name: "job", Image: images.Busybox}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// kubectl port-forward wants a running pod.
	apiPod.Status.Phase = corev1.PodRunning
	if apiPod, err = pods.UpdateStatus(ctx, apiPod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The pod proxy, wired into the API server as the control plane does.
	certPEM, keyPEM, err := cl.PKI.SignClientCert("skiff-apiserver-agent-client", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	proxy := podproxy.New(podproxy.Config{Client: cl.Client, ClientCert: clientCert, RootCAs: cl.PKI.CAPool})
	defer proxy.Close()
	cl.API.PodSubresources = proxy.ServePodSubresource

	// The pod in the runtime, with the API pod's identity.
	uid := string(apiPod.UID)
	logDir := filepath.Join(dir, "pods", uid)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	podLabels := map[string]string{server.LabelPodName: itPod, server.LabelPodNamespace: "default", server.LabelPodUID: uid}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: itPod, Namespace: "default", Uid: uid},
		Hostname:     itPod,
		LogDirectory: logDir,
		Labels:       podLabels,
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}}},
	}
	sandboxID, err := rc.RunPodSandbox(ctx, podCfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	run := func(name, image string, attempt uint32, cmd ...string) string {
		t.Helper()
		labels := map[string]string{server.LabelContainerName: name}
		for k, v := range podLabels {
			labels[k] = v
		}
		id, err := rc.CreateContainer(ctx, sandboxID, &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  cmd,
			LogPath:  fmt.Sprintf("%s/%d.log", name, attempt),
			Labels:   labels,
			Stdin:    false,
		}, podCfg)
		if err != nil {
			t.Fatalf("CreateContainer %s: %v", name, err)
		}
		if err := rc.StartContainer(ctx, id); err != nil {
			t.Fatalf("StartContainer %s: %v", name, err)
		}
		return id
	}
	run("web", images.WebV1, 0)
	// A line longer than containerd's max_container_log_line_size (16 KiB) is split into
	// partial records.
	shID := run("sh", images.Busybox, 0, "sh", "-c", `head -c 20000 /dev/zero | tr '\0' a; echo; echo ready
while true; do if [ -f /tmp/say ]; then cat /tmp/say; rm /tmp/say; fi; sleep 0.1; done`)
	jobID := run("job", images.Busybox, 0, "sh", "-c", "echo first run")
	for deadline := time.Now().Add(20 * time.Second); ; {
		st, err := rc.ContainerStatus(ctx, jobID, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job did not exit: %s", st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	run("job", images.Busybox, 1, "sh", "-c", "echo second run; exec sleep 3600")

	getLogs := func(opts *corev1.PodLogOptions) (string, error) {
		// Stream, as kubectl logs does (DoRaw does not decode Status errors).
		rd, err := pods.GetLogs(itPod, opts).Stream(ctx)
		if err != nil {
			return "", err
		}
		defer rd.Close()
		b, err := io.ReadAll(rd)
		return string(b), err
	}
	waitLogs := func(opts *corev1.PodLogOptions, want string) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got, err := getLogs(opts)
			if err == nil && strings.Contains(got, want) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("logs %+v = %q, %v; want %q in them", opts, got, err, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("logs", func(t *testing.T) {
		waitLogs(&corev1.PodLogOptions{Container: "web"}, "skiff web v1 listening on")
		got := waitLogs(&corev1.PodLogOptions{Container: "sh"}, "ready\n")
		lines := strings.Split(got, "\n")
		if len(lines) != 3 || lines[0] != strings.Repeat("a", 20000) || lines[1] != "ready" {
			t.Errorf("sh logs: %d lines, first %d bytes; want the 20000-byte line joined from partial records, then ready", len(lines), len(lines[0]))
		}
		if got, err := getLogs(&corev1.PodLogOptions{Container: "sh", TailLines: ptr(int64(1))}); err != nil || got != "ready\n" {
			t.Errorf("tailLines=1 = %q, %v", got, err)
		}
		if got, err := getLogs(&corev1.PodLogOptions{Container: "sh", LimitBytes: ptr(int64(5))}); err != nil || got != "aaaaa" {
			t.Errorf("limitBytes=5 = %q, %v", got, err)
		}
		got, err := getLogs(&corev1.PodLogOptions{Container: "web", Timestamps: true})
		if err != nil || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z skiff web v1 listening`).MatchString(got) {
			t.Errorf("timestamps = %q, %v", got, err)
		}
		if got, err := getLogs(&corev1.PodLogOptions{Container: "web", SinceTime: &metav1.Time{Time: time.Now().Add(time.Hour)}}); err != nil || got != "" {
			t.Errorf("sinceTime in the future = %q, %v", got, err)
		}
		if got, err := getLogs(&corev1.PodLogOptions{Container: "job"}); err != nil || got != "second run\n" {
			t.Errorf("job logs = %q, %v", got, err)
		}
		if got, err := getLogs(&corev1.PodLogOptions{Container: "job", Previous: true}); err != nil || got != "first run\n" {
			t.Errorf("job previous logs = %q, %v", got, err)
		}
		_, err = getLogs(&corev1.PodLogOptions{Container: "web", Previous: true})
		wantErr(t, err, `previous terminated container "web" in pod "web" not found`)
		_, err = getLogs(&corev1.PodLogOptions{})
		wantErr(t, err, "a container name must be specified for pod web, choose one of: [web sh job]")
		_, err = getLogs(&corev1.PodLogOptions{Container: "nope"})
		wantErr(t, err, "container nope is not valid for pod web")
	})

	t.Run("logs follow", func(t *testing.T) {
		fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
		defer fcancel()
		stream, err := pods.GetLogs(itPod, &corev1.PodLogOptions{Container: "sh", Follow: true, TailLines: ptr(int64(1))}).Stream(fctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		lines := make(chan string, 10)
		go func() {
			sc := bufio.NewScanner(stream)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		expect := func(want string) {
			t.Helper()
			select {
			case l := <-lines:
				if l != want {
					t.Fatalf("followed line %q, want %q", l, want)
				}
			case <-fctx.Done():
				b, _ := os.ReadFile(filepath.Join(logDir, "sh", "0.log"))
				if len(b) > 300 {
					b = b[len(b)-300:]
				}
				t.Fatalf("no line %q while following; the log file ends with %q", want, b)
			}
		}
		expect("ready")
		// The container prints what shows up in /tmp/say.
		for i := 1; i <= 2; i++ {
			res, err := rc.ExecSync(ctx, shID, []string{"sh", "-c", fmt.Sprintf("echo followed-%d > /tmp/say.new && mv /tmp/say.new /tmp/say", i)}, 10*time.Second)
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("writing to the log: %v %q", err, res.Stderr)
			}
			expect(fmt.Sprintf("followed-%d", i))
		}
	})

	execURL := func(container string, stdin, tty bool, cmd ...string) *url.URL {
		return cl.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name(itPod).SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdin: stdin, Stdout: true, Stderr: !tty, TTY: tty}, scheme.ParameterCodec).URL()
	}
	spdyExec := func(u *url.URL) remotecommand.Executor {
		e, err := remotecommand.NewSPDYExecutor(cl.Config, "POST", u)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// As kubectl 1.32 does: WebSocket (v5.channel.k8s.io) first, SPDY when the upgrade fails.
	fallbackExec := func(u *url.URL) remotecommand.Executor {
		ws, err := remotecommand.NewWebSocketExecutor(cl.Config, "GET", u.String())
		if err != nil {
			t.Fatal(err)
		}
		e, err := remotecommand.NewFallbackExecutor(ws, spdyExec(u), func(err error) bool {
			return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	stream := func(e remotecommand.Executor, stdin string) (string, string, error) {
		var out, errOut bytes.Buffer
		opts := remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}
		if stdin != "" {
			opts.Stdin = strings.NewReader(stdin)
		}
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		err := e.StreamWithContext(sctx, opts)
		return out.String(), errOut.String(), err
	}

	for _, tc := range []struct {
		name string
		mk   func(*url.URL) remotecommand.Executor
	}{{"spdy", spdyExec}, {"websocket-fallback", fallbackExec}} {
		t.Run("exec "+tc.name, func(t *testing.T) {
			out, errOut, err := stream(tc.mk(execURL("web", false, false, "/bin/web", "version")), "")
			if err != nil || out != "skiff web v1\n" {
				t.Errorf("exec web version = %q / %q, %v", out, errOut, err)
			}
			out, errOut, err = stream(tc.mk(execURL("sh", false, false, "sh", "-c", "echo hi; echo oops >&2")), "")
			if err != nil || out != "hi\n" || errOut != "oops\n" {
				t.Errorf("exec echo = %q / %q, %v", out, errOut, err)
			}
			out, _, err = stream(tc.mk(execURL("sh", true, false, "cat")), "hello from stdin\n")
			if err != nil || out != "hello from stdin\n" {
				t.Errorf("exec cat with stdin = %q, %v", out, err)
			}
			_, _, err = stream(tc.mk(execURL("sh", false, false, "sh", "-c", "exit 3")), "")
			var ce utilexec.CodeExitError
			if !errors.As(err, &ce) || ce.Code != 3 {
				t.Errorf("exec exit 3: err %v (%T)", err, err)
			}
			out, _, err = stream(tc.mk(execURL("sh", false, true, "tty")), "")
			if err != nil || !strings.HasPrefix(out, "/dev/pts/") {
				t.Errorf("exec tty = %q, %v", out, err)
			}
		})
	}

	t.Run("attach", func(t *testing.T) {
		u := cl.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name(itPod).SubResource("attach").
			VersionedParams(&corev1.PodAttachOptions{Container: "sh", Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
		for name, e := range map[string]remotecommand.Executor{"spdy": spdyExec(u), "websocket-fallback": fallbackExec(u)} {
			actx, acancel := context.WithTimeout(ctx, 30*time.Second)
			out := &lockedBuffer{}
			done := make(chan error, 1)
			go func() { done <- e.StreamWithContext(actx, remotecommand.StreamOptions{Stdout: out, Stderr: out}) }()
			// Attached output is what the container prints from now on.
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; !strings.Contains(out.String(), "attached-"+name); i++ {
				if time.Now().After(deadline) {
					t.Fatalf("%s: attach saw %q", name, out.String())
				}
				if i%10 == 0 {
					if _, err := rc.ExecSync(ctx, shID, []string{"sh", "-c", "echo attached-" + name + " > /tmp/say.new && mv /tmp/say.new /tmp/say"}, 10*time.Second); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			acancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s: attach did not end with its context", name)
			}
		}
	})

	t.Run("exec websocket only", func(t *testing.T) {
		// The agent speaks v5.channel.k8s.io itself (containerd 1.6 does not), so a WebSocket
		// client needs no fallback.
		ws := func(u *url.URL) remotecommand.Executor {
			e, err := remotecommand.NewWebSocketExecutor(cl.Config, "GET", u.String())
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		out, errOut, err := stream(ws(execURL("web", false, false, "/bin/web", "version")), "")
		if err != nil || out != "skiff web v1\n" {
			t.Errorf("v5 exec = %q / %q, %v", out, errOut, err)
		}
		out, errOut, err = stream(ws(execURL("sh", true, false, "sh", "-c", "cat; echo done >&2")), "from stdin\n")
		if err != nil || out != "from stdin\n" || errOut != "done\n" {
			t.Errorf("v5 exec with stdin = %q / %q, %v", out, errOut, err)
		}
		_, _, err = stream(ws(execURL("sh", false, false, "sh", "-c", "exit 5")), "")
		var ce utilexec.CodeExitError
		if !errors.As(err, &ce) || ce.Code != 5 {
			t.Errorf("v5 exec exit 5: %v", err)
		}
		out, _, err = stream(ws(execURL("sh", false, true, "tty")), "")
		if err != nil || !strings.HasPrefix(out, "/dev/pts/") {
			t.Errorf("v5 exec tty = %q, %v", out, err)
		}
	})

	t.Run("exec errors", func(t *testing.T) {
		_, _, err := stream(spdyExec(execURL("", false, false, "true")), "")
		wantErr(t, err, "a container name must be specified for pod web, choose one of: [web sh job]")
		_, _, err = stream(spdyExec(execURL("nope", false, false, "true")), "")
		wantErr(t, err, "container nope is not valid for pod web")
	})

	pfURL := cl.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name(itPod).SubResource("portforward").URL()
	spdyDialer := func() streamhttp.Dialer {
		tr, up, err := spdy.RoundTripperFor(cl.Config)
		if err != nil {
			t.Fatal(err)
		}
		return spdy.NewDialerForStreaming(up, &http.Client{Transport: tr}, "POST", pfURL)
	}
	for _, tc := range []struct {
		name   string
		dialer func() streamhttp.Dialer
	}{
		{"spdy", spdyDialer},
		{"websocket-fallback", func() streamhttp.Dialer {
			tun, err := portforward.NewSPDYOverWebsocketDialerForStreaming(pfURL, cl.Config)
			if err != nil {
				t.Fatal(err)
			}
			return portforward.NewFallbackDialerForStreaming(tun, spdyDialer(), func(err error) bool {
				return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
			})
		}},
	} {
		t.Run("portforward "+tc.name, func(t *testing.T) {
			stop, ready := make(chan struct{}), make(chan struct{})
			var out, errOut bytes.Buffer
			fw, err := portforward.NewOnAddressesForStreaming(tc.dialer(), []string{"127.0.0.1"}, []string{"0:80"}, stop, ready, &out, &errOut)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- fw.ForwardPorts() }()
			defer func() {
				close(stop)
				<-done
			}()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("port-forward: %v (%s)", err, errOut.String())
			case <-time.After(30 * time.Second):
				t.Fatal("port-forward not ready")
			}
			ports, err := fw.GetPorts()
			if err != nil || len(ports) != 1 {
				t.Fatalf("ports %v, %v", ports, err)
			}
			for i := 0; i < 3; i++ {
				body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
				if !strings.Contains(body, "skiff web v1 hostname=web") {
					t.Errorf("GET / through the port-forward = %q", body)
				}
			}
		})
	}

	t.Run("stats", func(t *testing.T) {
		var sum *server.Summary
		deadline := time.Now().Add(20 * time.Second)
		for {
			sum, err = proxy.Summary(ctx, node)
			if err == nil && sum.Node.CPU != nil && sum.Node.CPU.UsageNanoCores != nil && len(sum.Pods) == 1 && len(sum.Pods[0].Containers) == 3 {
				break
			}
			if time.Now().After(deadline) {
				b, _ := json.MarshalIndent(sum, "", "  ")
				t.Fatalf("summary: %v\n%s", err, b)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if sum.Node.NodeName != itNode || sum.Node.Memory == nil || sum.Node.Memory.WorkingSetBytes == nil || sum.Node.Fs == nil || sum.Node.Runtime == nil {
			t.Errorf("node stats incomplete: %+v", sum.Node)
		}
		p := sum.Pods[0]
		if p.PodRef != (server.PodReference{Name: itPod, Namespace: "default", UID: uid}) {
			t.Errorf("podRef %+v", p.PodRef)
		}
		for _, c := range p.Containers {
			if c.CPU == nil || c.CPU.UsageNanoCores == nil || c.CPU.UsageCoreNanoSeconds == nil || c.Memory == nil || c.Memory.WorkingSetBytes == nil || *c.Memory.WorkingSetBytes == 0 {
				t.Errorf("container %s stats incomplete: %+v", c.Name, c)
			}
		}
		if p.CPU == nil || p.Memory == nil || p.Memory.WorkingSetBytes == nil {
			t.Errorf("pod totals missing: %+v", p)
		}

		// The Prometheus endpoint metrics-server scrapes.
		base, _ := proxy.NodeAgentURL(node)
		resp, err := (&http.Client{Transport: proxy.Transport()}).Get(base.String() + "/metrics/resource")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`container_cpu_usage_seconds_total{container="web",namespace="default",pod="web"} `,
			`container_memory_working_set_bytes{container="sh",namespace="default",pod="web"} `,
			"\nnode_cpu_usage_seconds_total ", "\nnode_memory_working_set_bytes ",
			`pod_cpu_usage_seconds_total{namespace="default",pod="web"} `, "\nresource_scrape_error 0\n",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics/resource lacks %q:\n%s", want, b)
			}
		}
	})

	t.Run("metrics API", func(t *testing.T) {
		h := httptest.NewServer(podproxy.NewMetricsAPI(proxy))
		defer h.Close()
		var nodes metricsv1beta1.NodeMetricsList
		getJSON(t, h.URL+"/apis/metrics.k8s.io/v1beta1/nodes", &nodes)
		if len(nodes.Items) != 1 || nodes.Items[0].Name != itNode || nodes.Items[0].Usage.Cpu().IsZero() || nodes.Items[0].Usage.Memory().IsZero() {
			t.Errorf("node metrics %+v", nodes)
		}
		var pm metricsv1beta1.PodMetrics
		getJSON(t, h.URL+"/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web", &pm)
		if pm.Name != itPod || len(pm.Containers) != 3 || pm.Labels["app"] != "web" {
			t.Errorf("pod metrics %+v", pm)
		}
		var pl metricsv1beta1.PodMetricsList
		getJSON(t, h.URL+"/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb", &pl)
		if len(pl.Items) != 1 {
			t.Errorf("pod metrics list %+v", pl)
		}
		getJSON(t, h.URL+"/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dother", &pl)
		if len(pl.Items) != 0 {
			t.Errorf("pod metrics list for app=other %+v", pl)
		}
		resp, err := http.Get(h.URL + "/apis/metrics.k8s.io/v1beta1/nodes/nope")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), `nodemetrics.metrics.k8s.io \"nope\" not found`) {
			t.Errorf("missing node: %s %s", resp.Status, b)
		}
	})

	t.Run("agent authentication", func(t *testing.T) {
		noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cl.PKI.CAPool}}}
		base := fmt.Sprintf("https://127.0.0.1:%d", agentPort)
		resp, err := noCert.Get(base + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("healthz without a client certificate: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		resp, err = noCert.Get(base + "/stats/summary")
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("stats without a client certificate: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		resp, err = (&http.Client{Transport: proxy.Transport()}).Get(base + "/pods")
		if err != nil {
			t.Fatal(err)
		}
		var pl corev1.PodList
		err = json.NewDecoder(resp.Body).Decode(&pl)
		resp.Body.Close()
		if err != nil || len(pl.Items) != 1 || pl.Items[0].Name != itPod || len(pl.Items[0].Spec.Containers) != 3 {
			t.Errorf("/pods = %+v, %v", pl, err)
		}
	})

	t.Run("kubectl", func(t *testing.T) {
		if _, err := exec.LookPath("kubectl"); err != nil {
			t.Skip("kubectl not installed")
		}
		kubectl := func(stdin string, args ...string) (string, error) {
			cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", cl.Kubeconfig}, args...)...)
			cmd.Stdin = strings.NewReader(stdin)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := kubectl("", "logs", itPod, "-c", "job", "--previous"); err != nil || out != "first run\n" {
			t.Errorf("kubectl logs --previous = %q, %v", out, err)
		}
		// kubectl picks the first container itself.
		if out, err := kubectl("", "logs", itPod); err != nil || !strings.Contains(out, "skiff web v1 listening") {
			t.Errorf("kubectl logs without -c = %q, %v", out, err)
		}
		if out, err := kubectl("", "exec", itPod, "-c", "web", "--", "web", "version"); err != nil || out != "skiff web v1\n" {
			t.Errorf("kubectl exec = %q, %v", out, err)
		}
		// kubectl 1.30+ uses WebSocket (v5.channel.k8s.io) first: the agent speaks it.
		if out, err := kubectl("", "exec", "-v=4", itPod, "-c", "web", "--", "web", "version"); err != nil || !strings.Contains(out, "subprotocol is v5.channel.k8s.io") {
			t.Errorf("kubectl exec -v=4 did not negotiate v5.channel.k8s.io: %q, %v", out, err)
		}
		if out, err := kubectl("piped\n", "exec", "-i", itPod, "-c", "sh", "--", "cat"); err != nil || out != "piped\n" {
			t.Errorf("kubectl exec -i = %q, %v", out, err)
		}
		if out, err := kubectl("", "exec", itPod, "-c", "sh", "--", "sh", "-c", "exit 7"); err == nil || !strings.Contains(out, "command terminated with exit code 7") {
			t.Errorf("kubectl exec exit 7 = %q, %v", out, err)
		}

		// kubectl cp is tar over exec.
		cpDst := filepath.Join(dir, "copied-hostname")
		if out, err := kubectl("", "cp", "-c", "sh", itPod+":/etc/hostname", cpDst); err != nil {
			t.Errorf("kubectl cp = %q, %v", out, err)
		} else if b, err := os.ReadFile(cpDst); err != nil || strings.TrimSpace(string(b)) != itPod {
			t.Errorf("copied /etc/hostname = %q, %v", b, err)
		}

		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		cmd := exec.CommandContext(pctx, "kubectl", "--kubeconfig", cl.Kubeconfig, "port-forward", "pod/"+itPod, ":80")
		stdout, _ := cmd.StdoutPipe()
		stderr := &lockedBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			pcancel()
			_ = cmd.Wait()
		}()
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 80`)
		port := ""
		for port == "" && sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				port = m[1]
			}
		}
		if port == "" {
			t.Fatalf("kubectl port-forward printed no port (%s)", stderr.String())
		}
		go func() {
			for sc.Scan() {
			}
		}()
		if body := httpGet(t, "http://127.0.0.1:"+port+"/"); !strings.Contains(body, "skiff web v1") {
			t.Errorf("GET through kubectl port-forward = %q", body)
		}
		if strings.Contains(stderr.String(), "error") {
			t.Errorf("kubectl port-forward stderr: %s", stderr.String())
		}
	})

	t.Run("kubectl top", func(t *testing.T) {
		if _, err := exec.LookPath("kubectl"); err != nil {
			t.Skip("kubectl not installed")
		}
		front := metricsFront(t, cl, podproxy.NewMetricsAPI(proxy))
		kubectl := func(args ...string) (string, error) {
			cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", cl.Kubeconfig, "--server", front, "--insecure-skip-tls-verify", "--cache-dir", filepath.Join(dir, "kcache")}, args...)...)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		out, err := kubectl("top", "node")
		if err != nil || !regexp.MustCompile(`(?m)^node1\s+\d+m\s+\d+%\s+\d+Mi\s+`).MatchString(out) {
			t.Errorf("kubectl top node = %q, %v", out, err)
		}
		out, err = kubectl("top", "pod", "--containers")
		if err != nil || !regexp.MustCompile(`(?m)^web\s+web\s+\d+m\s+\d+Mi`).MatchString(out) {
			t.Errorf("kubectl top pod = %q, %v", out, err)
		}
		t.Logf("kubectl top pod --containers:\n%s", out)
	})
}

// metricsFront is an API front that adds the metrics.k8s.io group to the real API server
// as the control plane's wiring does: the handler under /apis/metrics.k8s.io and the group in
// both discovery formats.
func metricsFront(t *testing.T, cl *skifftest.Cluster, metrics http.Handler) string {
	t.Helper()
	tr, err := rest.TransportFor(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(cl.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: tr}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, podproxy.MetricsPrefix) {
			metrics.ServeHTTP(w, r)
			return
		}
		if r.URL.Path != "/apis" {
			rp.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if strings.Contains(rec.Header().Get("Content-Type"), "as=APIGroupDiscoveryList") {
			var l apidiscoveryv2.APIGroupDiscoveryList
			if err := json.Unmarshal(body, &l); err == nil {
				l.Items = append(l.Items, podproxy.MetricsAggregatedDiscovery())
				body, _ = json.Marshal(&l)
			}
		} else {
			var l metav1.APIGroupList
			if err := json.Unmarshal(body, &l); err == nil {
				l.Groups = append(l.Groups, podproxy.MetricsAPIGroup())
				body, _ = json.Marshal(&l)
			}
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func wantErr(t *testing.T, err error, msg string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("error %v, want one saying %q", err, msg)
	}
}

func ptr[T any](v T) *T { return &v }

func httpGet(t *testing.T, u string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", u, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
