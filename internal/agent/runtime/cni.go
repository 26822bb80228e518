package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// Defaults of the pod network written by WriteBridgeConfig.
const (
	DefaultNetworkName  = "skiff"
	DefaultBridge       = "skiff0"
	DefaultCNIBinDir    = "/usr/lib/cni"
	BridgeConfigFile    = "10-skiff.conflist"
	defaultCNIVersion   = "0.4.0"
	maxLinuxIfNameBytes = 15
)

// BridgeConfig describes the node's pod network: a Linux bridge that is the pods' gateway
// (masquerading traffic that leaves the pod CIDR), host-local IPAM over the node's pod CIDR,
// portmap for hostPort and loopback.
type BridgeConfig struct {
	PodCIDR     string // the node's pod CIDR, e.g. 10.244.1.0/24 (required)
	NetworkName string // default "skiff"
	Bridge      string // bridge device, default "skiff0"
	MTU         int    // 0: the plugin's default
	// IPAMDataDir is where host-local records allocations (default: the plugin's own,
	// /var/lib/cni/networks).
	IPAMDataDir string
	// NoMasquerade turns ipMasq off (pods keep their IPs toward other networks).
	NoMasquerade bool
}

// WriteBridgeConfig writes the default bridge conflist for podCIDR into confDir and returns
// its path.
func WriteBridgeConfig(confDir, podCIDR string) (string, error) {
	return WriteBridge(confDir, BridgeConfig{PodCIDR: podCIDR})
}

// WriteBridge writes cfg as confDir/10-skiff.conflist (atomically; an identical file is left
// untouched so that the runtime does not reload it) and returns its path.
func WriteBridge(confDir string, cfg BridgeConfig) (string, error) {
	data, err := BridgeConflist(cfg)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(confDir, BridgeConfigFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return path, nil
	}
	// The ".tmp" suffix keeps the half-written file out of the CNI loader's sight.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

// BridgeConflist renders cfg as a CNI network configuration list.
func BridgeConflist(cfg BridgeConfig) ([]byte, error) {
	prefix, err := netip.ParsePrefix(cfg.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR: %w", err)
	}
	if prefix.Masked() != prefix {
		return nil, fmt.Errorf("pod CIDR %s has host bits set (want %s)", cfg.PodCIDR, prefix.Masked())
	}
	ones := prefix.Bits()
	if (prefix.Addr().Is4() && ones > 30) || (prefix.Addr().Is6() && ones > 126) {
		return nil, fmt.Errorf("pod CIDR %s is too small", cfg.PodCIDR)
	}
	if cfg.NetworkName == "" {
		cfg.NetworkName = DefaultNetworkName
	}
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if len(cfg.Bridge) > maxLinuxIfNameBytes {
		return nil, fmt.Errorf("bridge name %q is longer than %d bytes", cfg.Bridge, maxLinuxIfNameBytes)
	}
	defaultRoute := "0.0.0.0/0"
	if prefix.Addr().Is6() {
		defaultRoute = "::/0"
	}
	ipam := map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": prefix.String()}}},
		"routes": []map[string]string{{"dst": defaultRoute}},
	}
	if cfg.IPAMDataDir != "" {
		ipam["dataDir"] = cfg.IPAMDataDir
	}
	bridge := map[string]any{
		"type":        "bridge",
		"bridge":      cfg.Bridge,
		"isGateway":   true,
		"ipMasq":      !cfg.NoMasquerade,
		"hairpinMode": true,
		"ipam":        ipam,
	}
	if cfg.MTU > 0 {
		bridge["mtu"] = cfg.MTU
	}
	list := map[string]any{
		"cniVersion": defaultCNIVersion,
		"name":       cfg.NetworkName,
		"plugins": []any{
			bridge,
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			map[string]any{"type": "loopback"},
		},
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
