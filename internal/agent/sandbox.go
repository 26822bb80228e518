package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// resolvConf is the part of a resolv.conf the agent uses.
type resolvConf struct {
	Nameservers, Searches, Options []string
}

// parseResolvConf reads nameserver, search/domain and options lines.
func parseResolvConf(data []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			rc.Nameservers = append(rc.Nameservers, f[1])
		case "search":
			rc.Searches = append([]string(nil), f[1:]...)
		case "domain":
			rc.Searches = []string{f[1]}
		case "options":
			rc.Options = append(rc.Options, f[1:]...)
		}
	}
	return rc
}

// dnsConfigFor computes a pod's resolver configuration from its dnsPolicy and dnsConfig:
// ClusterFirst points at the cluster DNS with the namespace's search path and ndots:5,
// Default copies the node's resolv.conf, None uses only the pod's dnsConfig. A host
// network pod with ClusterFirst uses the node's resolver (ClusterFirstWithHostNet does
// not).
func dnsConfigFor(pod *corev1.Pod, clusterDNS []string, clusterDomain string, host resolvConf) *runtimeapi.DNSConfig {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = corev1.DNSDefault
	}
	if (policy == corev1.DNSClusterFirst || policy == corev1.DNSClusterFirstWithHostNet) && len(clusterDNS) == 0 {
		policy = corev1.DNSDefault // no cluster DNS configured: the node's resolver
	}
	cfg := &runtimeapi.DNSConfig{}
	switch policy {
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet:
		cfg.Servers = append(cfg.Servers, clusterDNS...)
		if clusterDomain != "" {
			cfg.Searches = []string{pod.Namespace + ".svc." + clusterDomain, "svc." + clusterDomain, clusterDomain}
		}
		cfg.Searches = append(cfg.Searches, host.Searches...)
		cfg.Options = []string{"ndots:5"}
	case corev1.DNSDefault:
		cfg.Servers = append(cfg.Servers, host.Nameservers...)
		cfg.Searches = append(cfg.Searches, host.Searches...)
		cfg.Options = append(cfg.Options, host.Options...)
	case corev1.DNSNone:
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		cfg.Servers = appendUnique(cfg.Servers, dc.Nameservers...)
		cfg.Searches = appendUnique(cfg.Searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = setOption(cfg.Options, o.Name, opt)
		}
	}
	cfg.Searches = dedupe(cfg.Searches)
	// The resolver reads at most 32 search domains.
	if len(cfg.Searches) > 32 {
		cfg.Searches = cfg.Searches[:32]
	}
	return cfg
}

func appendUnique(list []string, add ...string) []string {
	for _, a := range add {
		found := false
		for _, l := range list {
			if l == a {
				found = true
				break
			}
		}
		if !found {
			list = append(list, a)
		}
	}
	return list
}

func dedupe(list []string) []string {
	var out []string
	return appendUnique(out, list...)
}

// setOption replaces the option called name (ndots:5 has the name ndots) or appends it.
func setOption(opts []string, name, opt string) []string {
	for i, o := range opts {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

// podHostname returns the pod's hostname (spec.hostname or the pod's name, cut to 63
// characters) and, with a subdomain, its domain <subdomain>.<ns>.svc.<cluster domain>.
func podHostname(pod *corev1.Pod, clusterDomain string) (string, string) {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	var domain string
	if pod.Spec.Subdomain != "" && clusterDomain != "" {
		domain = fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	}
	return h, domain
}

// hostsFile renders the /etc/hosts the agent mounts into a pod's containers: localhost,
// the pod's own name on its IPs, and the pod's hostAliases.
func hostsFile(pod *corev1.Pod, podIPs []string, hostname, domain string) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range podIPs {
		if domain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, ha := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
		}
	}
	return b.Bytes()
}

// podDir is <data-dir>/pods/<uid>: the sandbox's log directory, the parent of volumes.
func (a *Agent) podDir(uid string) string { return filepath.Join(a.cfg.DataDir, "pods", uid) }

// runDir holds the agent's per-pod files (etc-hosts, termination messages); its name
// starts with a dot so that it cannot clash with a container's log directory.
func (a *Agent) runDir(uid string) string { return filepath.Join(a.podDir(uid), ".run") }

// sandboxConfig builds the CRI sandbox config of a pod.
func (a *Agent) sandboxConfig(pod *corev1.Pod, attempt uint32) *runtimeapi.PodSandboxConfig {
	hostname, _ := podHostname(pod, a.cfg.ClusterDomain)
	if pod.Spec.HostNetwork {
		hostname = a.hostname
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		Hostname:     hostname,
		LogDirectory: a.podDir(string(pod.UID)),
		DnsConfig:    dnsConfigFor(pod, a.clusterDNS, a.cfg.ClusterDomain, a.hostResolv()),
		Labels:       podLabels(pod, a.cfg.NodeName),
		Annotations:  copyMap(pod.Annotations),
	}
	for _, c := range allContainers(pod) {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{
				Protocol: criProtocol(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP,
			})
		}
	}
	sc := &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = supplementalGroups(psc)
		sc.Seccomp = seccompProfile(psc.SeccompProfile, nil)
	}
	for _, c := range allContainers(pod) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			sc.Privileged = true // a privileged container needs a privileged sandbox
		}
	}
	linux := &runtimeapi.LinuxPodSandboxConfig{CgroupParent: podCgroupParent(pod), SecurityContext: sc}
	if psc := pod.Spec.SecurityContext; psc != nil && len(psc.Sysctls) > 0 {
		linux.Sysctls = map[string]string{}
		for _, s := range psc.Sysctls {
			linux.Sysctls[s.Name] = s.Value
		}
	}
	cfg.Linux = linux
	return cfg
}

func allContainers(pod *corev1.Pod) []*corev1.Container {
	out := make([]*corev1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	for i := range pod.Spec.InitContainers {
		out = append(out, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func criProtocol(p corev1.Protocol) runtimeapi.Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case corev1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

func namespaceOptions(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}

func supplementalGroups(psc *corev1.PodSecurityContext) []int64 {
	var out []int64
	if psc.FSGroup != nil {
		out = append(out, *psc.FSGroup)
	}
	return append(out, psc.SupplementalGroups...)
}

func seccompProfile(pod, container *corev1.SeccompProfile) *runtimeapi.SecurityProfile {
	p := container
	if p == nil {
		p = pod
	}
	if p == nil {
		return nil // the runtime's default: unconfined, as the kubelet's default
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.SeccompProfileTypeLocalhost:
		ref := ""
		if p.LocalhostProfile != nil {
			ref = *p.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
}

// hostResolv reads the node's resolv.conf (for dnsPolicy Default and the search path).
func (a *Agent) hostResolv() resolvConf {
	data, err := os.ReadFile(a.cfg.ResolvConf)
	if err != nil {
		return resolvConf{}
	}
	return parseResolvConf(data)
}

// createSandbox runs a new sandbox for the pod and writes its /etc/hosts.
func (a *Agent) createSandbox(ctx context.Context, pod *corev1.Pod, attempt uint32) (string, error) {
	uid := string(pod.UID)
	if err := os.MkdirAll(a.runDir(uid), 0o755); err != nil {
		return "", err
	}
	cfg := a.sandboxConfig(pod, attempt)
	resp, err := a.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return "", err
	}
	return resp.PodSandboxId, nil
}

// writeHostsFile (re)writes the pod's etc-hosts for its current IPs.
func (a *Agent) writeHostsFile(pod *corev1.Pod, podIPs []string) (string, error) {
	hostname, domain := podHostname(pod, a.cfg.ClusterDomain)
	p := filepath.Join(a.runDir(string(pod.UID)), "etc-hosts")
	data := hostsFile(pod, podIPs, hostname, domain)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, writeFileAtomic(p, data, 0o644)
}

// stopSandbox stops a sandbox (its containers with it) and tears down its network.
func (a *Agent) stopSandbox(ctx context.Context, id string) error {
	_, err := a.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	if isNotFound(err) {
		return nil
	}
	return err
}

// removeSandbox removes a stopped sandbox and its containers.
func (a *Agent) removeSandbox(ctx context.Context, id string) error {
	_, err := a.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	if isNotFound(err) {
		err = nil
	}
	a.states.forget(id)
	return err
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
