package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff-sh/skiff/internal/agent/images"
)

func TestRenderConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, SandboxImage: "skiff.local/pause:test", CNIConfDir: "/etc/x/net.d"}
	b, err := RenderConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"version = 2\n",
		`root = "` + dir + `/containerd/root"`,
		`state = "` + dir + `/containerd/state"`,
		`address = "` + dir + `/containerd/containerd.sock"`,
		`sandbox_image = "skiff.local/pause:test"`,
		"restrict_oom_score_adj = true",
		"SystemdCgroup = false",
		`runtime_type = "io.containerd.runc.v2"`,
		`bin_dir = "/usr/lib/cni"`,
		`conf_dir = "/etc/x/net.d"`,
		`snapshotter = "overlayfs"`,
		`path = "` + dir + `/containerd/opt"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("config lacks %q:\n%s", want, s)
		}
	}
	if _, err := RenderConfig(Config{}); err == nil {
		t.Error("RenderConfig without DataDir succeeded")
	}
	// Defaults.
	b, _ = RenderConfig(Config{DataDir: "/var/lib/skiff"})
	for _, want := range []string{`sandbox_image = "` + DefaultSandboxImage + `"`, `conf_dir = "/var/lib/skiff/cni/net.d"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("default config lacks %q", want)
		}
	}
	if DefaultSandboxImage != images.Pause {
		t.Errorf("DefaultSandboxImage %q != images.Pause %q", DefaultSandboxImage, images.Pause)
	}

	// containerd itself accepts the file, and reads what we meant.
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Log("containerd not installed: not checking the config with it")
		return
	}
	odd := Config{DataDir: filepath.Join(dir, `we"ird dir`), SandboxImage: images.Pause}
	b, err = RenderConfig(odd)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("containerd", "--config", path, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, out)
	}
	for _, want := range []string{
		"restrict_oom_score_adj = true", "SystemdCgroup = false",
		`sandbox_image = "skiff.local/pause:3.10"`,
		`root = "` + strings.ReplaceAll(odd.DataDir, `"`, `\"`) + `/containerd/root"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("containerd config dump lacks %q:\n%s", want, out)
		}
	}
}

func TestTOMLQuote(t *testing.T) {
	for in, want := range map[string]string{
		`/var/lib/skiff`: `"/var/lib/skiff"`,
		`a"b\c`:          `"a\"b\\c"`,
		"tab\there":      `"tab\u0009here"`,
		"ünï":            `"ünï"`,
	} {
		if got := tomlQuote(in); got != want {
			t.Errorf("tomlQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestStartFailsWhenContainerdExits(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	_, err := Start(context.Background(), Config{DataDir: dir, Binary: "false", StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "exited during start") {
		t.Fatalf("Start with a binary that exits = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Start took %s to notice the exit", time.Since(start))
	}
	if _, err := os.Stat(filepath.Join(dir, "containerd", "config.toml")); err != nil {
		t.Errorf("config not written: %v", err)
	}
}

func TestStartExistingEndpointUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Start(ctx, Config{Endpoint: filepath.Join(t.TempDir(), "none.sock"), StartTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("Start on a missing endpoint succeeded")
	}
}

func TestBridgeConflist(t *testing.T) {
	b, err := BridgeConflist(BridgeConfig{PodCIDR: "10.244.3.0/24", IPAMDataDir: "/tmp/ipam", MTU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	if list.Name != DefaultNetworkName || list.CNIVersion == "" || len(list.Plugins) != 3 {
		t.Fatalf("conflist = %s", b)
	}
	br := list.Plugins[0]
	for k, want := range map[string]any{"type": "bridge", "bridge": DefaultBridge, "isGateway": true, "ipMasq": true, "hairpinMode": true, "mtu": 1400.0} {
		if br[k] != want {
			t.Errorf("bridge %s = %v, want %v", k, br[k], want)
		}
	}
	ipam := br["ipam"].(map[string]any)
	if ipam["type"] != "host-local" || ipam["dataDir"] != "/tmp/ipam" {
		t.Errorf("ipam = %v", ipam)
	}
	subnet := ipam["ranges"].([]any)[0].([]any)[0].(map[string]any)["subnet"]
	if subnet != "10.244.3.0/24" {
		t.Errorf("subnet = %v", subnet)
	}
	if route := ipam["routes"].([]any)[0].(map[string]any)["dst"]; route != "0.0.0.0/0" {
		t.Errorf("route = %v", route)
	}
	if list.Plugins[1]["type"] != "portmap" || list.Plugins[1]["capabilities"].(map[string]any)["portMappings"] != true {
		t.Errorf("portmap = %v", list.Plugins[1])
	}
	if list.Plugins[2]["type"] != "loopback" {
		t.Errorf("last plugin = %v", list.Plugins[2])
	}

	b, err = BridgeConflist(BridgeConfig{PodCIDR: "fd00:10:244::/64", NoMasquerade: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"::/0"`) || !strings.Contains(string(b), `"ipMasq": false`) {
		t.Errorf("IPv6 conflist = %s", b)
	}

	for _, bad := range []BridgeConfig{
		{PodCIDR: ""}, {PodCIDR: "10.244.3.1/24"}, {PodCIDR: "10.0.0.0/31"}, {PodCIDR: "nope"},
		{PodCIDR: "10.244.0.0/24", Bridge: "a-very-long-bridge-name"},
	} {
		if _, err := BridgeConflist(bad); err == nil {
			t.Errorf("BridgeConflist(%+v) succeeded", bad)
		}
	}
}

func TestWriteBridgeConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net.d")
	path, err := WriteBridgeConfig(dir, "10.42.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, BridgeConfigFile) {
		t.Errorf("path = %s", path)
	}
	st1, _ := os.Stat(path)
	time.Sleep(10 * time.Millisecond)
	if _, err := WriteBridgeConfig(dir, "10.42.0.0/24"); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(path)
	if !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("an identical config was rewritten")
	}
	if _, err := WriteBridgeConfig(dir, "10.42.1.0/24"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "10.42.1.0/24") {
		t.Errorf("config not updated: %s", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("conf dir holds %d files", len(entries))
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                    "docker.io/library/busybox:latest",
		"busybox:1.36":               "docker.io/library/busybox:1.36",
		"library/nginx":              "docker.io/library/nginx:latest",
		"bitnami/redis:7":            "docker.io/bitnami/redis:7",
		"skiff.local/web:v1":         "skiff.local/web:v1",
		"skiff.local/busybox":        "skiff.local/busybox:latest",
		"localhost/x":                "localhost/x:latest",
		"localhost:5000/a/b:c":       "localhost:5000/a/b:c",
		"registry.k8s.io/pause:3.10": "registry.k8s.io/pause:3.10",
		"quay.io/x/y@sha256:abc":     "quay.io/x/y@sha256:abc",
	} {
		if got := NormalizeRef(in); got != want {
			t.Errorf("NormalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChainIDs(t *testing.T) {
	a := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	b := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	c := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}
	got := chainIDs([]v1.Hash{a, b, c})
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(h[:])
	}
	ab := sum(a.String() + " " + b.String())
	want := []string{a.String(), ab, sum(ab + " " + c.String())}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("chain[%d] = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestMountPathUnescape(t *testing.T) {
	if got := unescapeMountPath(`/a\040b/c\134d`); got != `/a b/c\d` {
		t.Errorf("got %q", got)
	}
	if got := unescapeMountPath(`/plain`); got != "/plain" {
		t.Errorf("got %q", got)
	}
}

func TestEndpointAndEnv(t *testing.T) {
	if normalizeEndpoint("/run/c.sock") != "unix:///run/c.sock" || normalizeEndpoint("unix:///x") != "unix:///x" {
		t.Error("normalizeEndpoint")
	}
	t.Setenv("PATH", "/opt/bin")
	var path string
	for _, kv := range containerdEnv() {
		if strings.HasPrefix(kv, "PATH=") {
			path = kv
		}
	}
	if !strings.HasPrefix(path, "PATH=/opt/bin:") || !strings.Contains(path, ":/usr/sbin") {
		t.Errorf("containerd PATH = %q", path)
	}
}

func TestRemoveNetNSMissing(t *testing.T) {
	if err := RemoveNetNS(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Error(err)
	}
	if err := RemoveNetNS(""); err != nil {
		t.Error(err)
	}
}
