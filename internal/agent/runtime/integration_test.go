package runtime

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent/images"
)

// Test pod network: a private range used only on this host; the test talks to the pod IP
// only.
const (
	testPodCIDR = "10.244.250.0/24"
	testBridge  = "skifftest0"
)

// TestContainerdIntegration runs real pods: it builds the images, starts a managed
// containerd in a temp dir, imports the images, runs a sandbox with the web container (and a
// busybox one) on a CNI bridge network, talks to it over the pod IP, execs into it, and
// tears everything down.
func TestContainerdIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (hack/setup.sh installs it)", bin)
		}
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(DefaultCNIBinDir, p)); err != nil {
			t.Skipf("CNI plugin %s missing (containernetworking-plugins)", p)
		}
	}
	if _, err := os.Stat(images.BusyboxBinary); err != nil {
		t.Skip("busybox-static not installed (hack/setup.sh installs it)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 missing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir := t.TempDir()
	start := time.Now()
	imgDir := filepath.Join(dir, "agent", "images")
	if _, err := images.Build(ctx, images.Options{OutDir: imgDir}); err != nil {
		t.Fatalf("building images: %v", err)
	}
	t.Logf("images built in %s", time.Since(start).Round(time.Millisecond))

	confDir := filepath.Join(dir, "cni", "net.d")
	if _, err := WriteBridge(confDir, BridgeConfig{
		PodCIDR: testPodCIDR, Bridge: testBridge, NetworkName: "skiff-test",
		IPAMDataDir: filepath.Join(dir, "cni", "ipam"),
	}); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	cd, err := Start(ctx, Config{DataDir: dir, SandboxImage: images.Pause, CNIConfDir: confDir, StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	t.Logf("containerd %d ready in %s at %s", cd.Pid(), time.Since(start).Round(time.Millisecond), cd.Endpoint())

	var cl *Client
	var netnsPaths []string
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer ccancel()
		if cl != nil {
			cl.Close()
		}
		removeAllPods(t, cctx, cd)
		if err := cd.Stop(); err != nil {
			t.Errorf("cleanup: stopping containerd: %v", err)
		}
		if n, err := cd.KillShims(); err != nil || n > 0 {
			t.Errorf("cleanup: %d leftover shim processes killed (%v)", n, err)
		}
		for _, ns := range netnsPaths {
			if _, err := os.Stat(ns); err == nil {
				t.Errorf("cleanup: network namespace %s was left behind", ns)
				_ = RemoveNetNS(ns)
			}
		}
		if err := UnmountUnder(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = exec.Command("ip", "link", "del", testBridge).Run()
		if t.Failed() {
			t.Logf("containerd log (tail):\n%s", tailFile(cd.Paths().Log, 40))
		}
	})

	cl, err = cd.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cl.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runtime %s %s (CRI %s)", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)

	start = time.Now()
	imported, err := cl.ImportDir(ctx, imgDir)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	t.Logf("imported %d images in %s", len(imported), time.Since(start).Round(time.Millisecond))
	got := map[string]bool{}
	for _, im := range imported {
		got[im.Ref] = true
	}
	for _, ref := range images.All {
		if !got[ref] {
			t.Errorf("image %s not imported (got %v)", ref, imported)
		}
		if img, err := cl.ImageStatus(ctx, ref); err != nil || img == nil {
			t.Errorf("CRI ImageStatus(%s) = %v, %v", ref, img, err)
		}
	}
	if cl.Snapshotter != "overlayfs" {
		t.Errorf("snapshotter detected from CRI = %q", cl.Snapshotter)
	}
	// Importing again is a no-op that succeeds.
	if _, err := cl.ImportDir(ctx, imgDir); err != nil {
		t.Fatalf("second import: %v", err)
	}

	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	if err := cl.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	rcancel()

	podNet := netip.MustParsePrefix(testPodCIDR)
	var sandboxTimes, podTimes []time.Duration
	for i := 0; i < 3; i++ {
		uid := fmt.Sprintf("test-uid-%d-%s", i, randomHex(4))
		logDir := filepath.Join(dir, "pods", uid)
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		podCfg := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("web-%d", i), Namespace: "default", Uid: uid},
			Hostname:     fmt.Sprintf("web-%d", i),
			LogDirectory: logDir,
			Labels:       map[string]string{"app": "web", "skiff.test": "integration"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
				},
			},
		}
		t0 := time.Now()
		podID, err := cl.RunPodSandbox(ctx, podCfg, "")
		if err != nil {
			t.Fatalf("RunPodSandbox: %v", err)
		}
		tSandbox := time.Since(t0)
		webCfg := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
			Image:    &runtimeapi.ImageSpec{Image: images.WebV1},
			LogPath:  "web/0.log",
			Linux: &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
				MemoryLimitInBytes: 64 << 20, CpuShares: 256,
			}},
		}
		webID, err := cl.CreateContainer(ctx, podID, webCfg, podCfg)
		if err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		if err := cl.StartContainer(ctx, webID); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		tPod := time.Since(t0)
		sandboxTimes, podTimes = append(sandboxTimes, tSandbox), append(podTimes, tPod)

		ns, err := cl.PodNetNS(ctx, podID)
		if err != nil || ns == "" {
			t.Errorf("PodNetNS = %q, %v", ns, err)
		}
		netnsPaths = append(netnsPaths, ns)
		ipStr, err := cl.PodIP(ctx, podID)
		if err != nil {
			t.Fatal(err)
		}
		ip, err := netip.ParseAddr(ipStr)
		if err != nil || !podNet.Contains(ip) {
			t.Fatalf("pod IP %q (%v) not in %s", ipStr, err, testPodCIDR)
		}

		body := httpGet(t, ctx, "http://"+ipStr+":80/")
		if !strings.Contains(body, "skiff web v1") || !strings.Contains(body, fmt.Sprintf("hostname=web-%d", i)) {
			t.Errorf("GET / from the host = %q", body)
		}
		t.Logf("pod %d: RunPodSandbox %s, sandbox+create+start %s, IP %s, GET / %q",
			i, tSandbox.Round(time.Millisecond), tPod.Round(time.Millisecond), ipStr, strings.TrimSpace(body))

		if i == 0 {
			checkPodInternals(t, ctx, cl, podID, webID, podCfg, logDir)
		}

		if err := cl.StopContainer(ctx, webID, 5); err != nil {
			t.Errorf("StopContainer: %v", err)
		}
		st, err := cl.ContainerStatus(ctx, webID, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 {
			t.Errorf("web after stop: state %s exit %d (%s)", st.State, st.ExitCode, st.Reason)
		}
		if err := cl.StopPodSandbox(ctx, podID); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
		if err := cl.RemovePodSandbox(ctx, podID); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
		if _, err := os.Stat(ns); err == nil {
			t.Errorf("network namespace %s still there after RemovePodSandbox", ns)
		}
	}
	pods, err := cl.ListPodSandbox(ctx, nil)
	if err != nil || len(pods) != 0 {
		t.Errorf("sandboxes left: %d (%v)", len(pods), err)
	}

	// A second Start with the same config adopts the running containerd (an agent restart
	// keeps its pods).
	cd2, err := Start(ctx, Config{DataDir: dir, SandboxImage: images.Pause, CNIConfDir: confDir, StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if cd2.Pid() != cd.Pid() || !cd2.Managed() {
		t.Errorf("second Start ran containerd %d, want the running %d adopted", cd2.Pid(), cd.Pid())
	}

	t.Logf("RunPodSandbox: %v; sandbox+create+start of one container: %v (RUNTIME.md floor: 0.46-0.50 s and 0.64-0.73 s)",
		roundAll(sandboxTimes), roundAll(podTimes))
}

// checkPodInternals execs into the web container and runs a busybox container beside it.
func checkPodInternals(t *testing.T, ctx context.Context, cl *Client, podID, webID string, podCfg *runtimeapi.PodSandboxConfig, logDir string) {
	t.Helper()
	res, err := cl.ExecSync(ctx, webID, []string{"/bin/web", "version"}, 10*time.Second)
	if err != nil || res.ExitCode != 0 || strings.TrimSpace(string(res.Stdout)) != "skiff web v1" {
		t.Errorf("ExecSync web version = %q/%q exit %d, %v", res.Stdout, res.Stderr, res.ExitCode, err)
	}
	res, err = cl.ExecSync(ctx, webID, []string{"web", "get", "http://127.0.0.1/healthz"}, 10*time.Second)
	if err != nil || res.ExitCode != 0 || strings.TrimSpace(string(res.Stdout)) != "ok" {
		t.Errorf("ExecSync web get healthz = %q/%q exit %d, %v", res.Stdout, res.Stderr, res.ExitCode, err)
	}
	res, err = cl.ExecSync(ctx, webID, []string{"/bin/web", "tcp", "127.0.0.1:81"}, 10*time.Second)
	if err != nil || res.ExitCode != 1 {
		t.Errorf("ExecSync web tcp to a closed port = exit %d, %v", res.ExitCode, err)
	}

	bbCfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sh"},
		Image:    &runtimeapi.ImageSpec{Image: images.Busybox},
		Command:  []string{"sh", "-c", "echo hello from busybox; exec sleep 3600"},
		LogPath:  "sh/0.log",
	}
	bbID, err := cl.CreateContainer(ctx, podID, bbCfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer busybox: %v", err)
	}
	if err := cl.StartContainer(ctx, bbID); err != nil {
		t.Fatalf("StartContainer busybox: %v", err)
	}
	res, err = cl.ExecSync(ctx, bbID, []string{"sh", "-c", "echo $((6*7)) $(hostname)"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "42 web-0" {
		t.Errorf("ExecSync busybox = %q/%q exit %d, %v", res.Stdout, res.Stderr, res.ExitCode, err)
	}
	// Containers of a pod share its network namespace.
	res, err = cl.ExecSync(ctx, webID, []string{"web", "get", "http://localhost:80/version"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "v1" {
		t.Errorf("ExecSync web get /version = %q/%q, %v", res.Stdout, res.Stderr, err)
	}
	cs, err := cl.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: podID})
	if err != nil || len(cs) != 2 {
		t.Errorf("ListContainers in pod = %d, %v", len(cs), err)
	}
	if _, err := cl.ContainerStats(ctx, webID); err != nil {
		t.Errorf("ContainerStats: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		webLog, _ := os.ReadFile(filepath.Join(logDir, "web", "0.log"))
		bbLog, _ := os.ReadFile(filepath.Join(logDir, "sh", "0.log"))
		if strings.Contains(string(webLog), "skiff web v1 listening on [::]:80") && strings.Contains(string(bbLog), "hello from busybox") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("container logs: web %q, busybox %q", webLog, bbLog)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// sleep as PID 1 ignores SIGTERM: a short timeout ends in SIGKILL.
	if err := cl.StopContainer(ctx, bbID, 1); err != nil {
		t.Errorf("StopContainer busybox: %v", err)
	}
	if err := cl.RemoveContainer(ctx, bbID); err != nil {
		t.Errorf("RemoveContainer busybox: %v", err)
	}
}

// removeAllPods tears down every pod through CRI, so that the CNI plugins undo what they
// did (iptables rules, IPAM). When containerd is gone (crashed, or the test failed while
// starting it) it is started again on the same directory first: it recovers its pods.
func removeAllPods(t *testing.T, ctx context.Context, cd *Containerd) {
	err := func() error {
		cl, err := Dial(ctx, cd.Endpoint())
		if err != nil {
			select {
			case <-cd.Exited():
			default:
				return err
			}
			t.Logf("cleanup: containerd is gone (%v); restarting it to tear pods down", err)
			cd2, err := Start(ctx, cd.Config())
			if err != nil {
				return err
			}
			defer cd2.Stop()
			if cl, err = cd2.Dial(ctx); err != nil {
				return err
			}
		}
		defer cl.Close()
		return cl.RemoveAllPods(ctx)
	}()
	if err != nil {
		t.Errorf("cleanup: removing pods: %v", err)
	}
}

func httpGet(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("%s %q %v", resp.Status, b, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
