package agent

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestParseResolvConf(t *testing.T) {
	rc := parseResolvConf([]byte(`# generated
nameserver 192.168.1.1
nameserver 8.8.8.8 ; second
domain ignored.example
search corp.example lab.example
options edns0 timeout:2
`))
	want := resolvConf{Nameservers: []string{"192.168.1.1", "8.8.8.8"}, Searches: []string{"corp.example", "lab.example"}, Options: []string{"edns0", "timeout:2"}}
	if !reflect.DeepEqual(rc, want) {
		t.Errorf("got %+v", rc)
	}
}

func TestDNSConfig(t *testing.T) {
	host := resolvConf{Nameservers: []string{"192.168.1.1"}, Searches: []string{"corp.example"}, Options: []string{"timeout:2"}}
	ndots2 := "2"
	tests := []struct {
		name    string
		mod     func(*corev1.Pod)
		cluster []string
		want    *runtimeapi.DNSConfig
	}{
		{
			name:    "ClusterFirst",
			cluster: []string{"10.43.0.10"},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10"},
				Searches: []string{"dev.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Options: []string{"ndots:5"}},
		},
		{
			name:    "Default copies the node's",
			mod:     func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSDefault },
			cluster: []string{"10.43.0.10"},
			want:    &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example"}, Options: []string{"timeout:2"}},
		},
		{
			name:    "ClusterFirst with host network falls back to Default",
			mod:     func(p *corev1.Pod) { p.Spec.HostNetwork = true },
			cluster: []string{"10.43.0.10"},
			want:    &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example"}, Options: []string{"timeout:2"}},
		},
		{
			name:    "ClusterFirstWithHostNet",
			mod:     func(p *corev1.Pod) { p.Spec.HostNetwork = true; p.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet },
			cluster: []string{"10.43.0.10"},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10"},
				Searches: []string{"dev.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Options: []string{"ndots:5"}},
		},
		{
			name: "None with dnsConfig",
			mod: func(p *corev1.Pod) {
				p.Spec.DNSPolicy = corev1.DNSNone
				p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.example"},
					Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots2}, {Name: "rotate"}}}
			},
			cluster: []string{"10.43.0.10"},
			want:    &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1"}, Searches: []string{"a.example"}, Options: []string{"ndots:2", "rotate"}},
		},
		{
			name: "ClusterFirst merged with dnsConfig",
			mod: func(p *corev1.Pod) {
				p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.43.0.10", "1.1.1.1"}, Searches: []string{"cluster.local", "x.example"},
					Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots2}}}
			},
			cluster: []string{"10.43.0.10"},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10", "1.1.1.1"},
				Searches: []string{"dev.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "x.example"}, Options: []string{"ndots:2"}},
		},
		{
			name: "no cluster DNS: the node's",
			want: &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example"}, Options: []string{"timeout:2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod(always(), nil, "a")
			p.Namespace = "dev"
			if tt.mod != nil {
				tt.mod(p)
			}
			got := dnsConfigFor(p, tt.cluster, "cluster.local", host)
			if !reflect.DeepEqual(got.Servers, tt.want.Servers) || !reflect.DeepEqual(got.Searches, tt.want.Searches) || !reflect.DeepEqual(got.Options, tt.want.Options) {
				t.Errorf("got  %v %v %v\nwant %v %v %v", got.Servers, got.Searches, got.Options, tt.want.Servers, tt.want.Searches, tt.want.Options)
			}
		})
	}
}

func TestHostnameAndHostsFile(t *testing.T) {
	p := testPod(always(), nil, "a")
	p.Name = strings.Repeat("x", 70)
	if h, d := podHostname(p, "cluster.local"); len(h) != 63 || d != "" {
		t.Errorf("long name: %q %q", h, d)
	}
	p.Name = "web-0"
	p.Namespace = "dev"
	p.Spec.Hostname, p.Spec.Subdomain = "db-0", "db"
	h, d := podHostname(p, "cluster.local")
	if h != "db-0" || d != "db.dev.svc.cluster.local" {
		t.Errorf("hostname %q domain %q", h, d)
	}
	p.Spec.HostAliases = []corev1.HostAlias{{IP: "1.2.3.4", Hostnames: []string{"foo", "bar"}}}
	hosts := string(hostsFile(p, []string{"10.42.0.5"}, h, d))
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.42.0.5\tdb-0.db.dev.svc.cluster.local\tdb-0\n", "1.2.3.4\tfoo\tbar\n"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("hosts file lacks %q:\n%s", want, hosts)
		}
	}
}

func TestSandboxConfig(t *testing.T) {
	a := &Agent{cfg: Config{NodeName: "n1", DataDir: "/data", ClusterDomain: "cluster.local", ResolvConf: "/nonexistent"}, clusterDNS: []string{"10.43.0.10"}}
	p := testPod(always(), nil, "a", "b")
	p.Labels = map[string]string{"app": "x"}
	p.Spec.Containers[1].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolTCP}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
	priv := true
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &priv}
	share := true
	p.Spec.ShareProcessNamespace = &share
	cfg := a.sandboxConfig(p, 2)
	if cfg.Metadata.Attempt != 2 || cfg.Metadata.Uid != "uid-1" || cfg.Hostname != "p" || cfg.LogDirectory != "/data/pods/uid-1" {
		t.Errorf("metadata/hostname/logs: %+v", cfg)
	}
	if cfg.Labels["app"] != "x" || cfg.Labels[labelPodUID] != "uid-1" || cfg.Labels[labelPodName] != "p" || cfg.Labels[labelPodNamespace] != "ns" || cfg.Labels[labelNode] != "n1" {
		t.Errorf("labels %v", cfg.Labels)
	}
	if len(cfg.PortMappings) != 1 || cfg.PortMappings[0].HostPort != 8080 || cfg.PortMappings[0].ContainerPort != 80 {
		t.Errorf("port mappings %v", cfg.PortMappings)
	}
	sc := cfg.Linux.SecurityContext
	if !sc.Privileged || sc.NamespaceOptions.Pid != runtimeapi.NamespaceMode_POD || sc.NamespaceOptions.Network != runtimeapi.NamespaceMode_POD {
		t.Errorf("security context %+v", sc)
	}
	if cfg.Linux.CgroupParent != "/kubepods/besteffort/poduid-1" {
		t.Errorf("cgroup parent %s", cfg.Linux.CgroupParent)
	}
	if cfg.DnsConfig.Servers[0] != "10.43.0.10" {
		t.Errorf("dns %v", cfg.DnsConfig)
	}
}

func TestContainerSecurityContext(t *testing.T) {
	uid0, uid1000, gid := int64(0), int64(1000), int64(3000)
	yes, no := true, false
	p := testPod(always(), nil, "a")
	p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid1000, RunAsGroup: &gid, FSGroup: &gid, SupplementalGroups: []int64{4000}}
	c := &p.Spec.Containers[0]
	c.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: &yes, AllowPrivilegeEscalation: &no,
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}}}
	sc, err := containerSecurityContext(p, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.RunAsUser.GetValue() != 1000 || sc.RunAsGroup.GetValue() != 3000 || !sc.ReadonlyRootfs || !sc.NoNewPrivs ||
		!reflect.DeepEqual(sc.SupplementalGroups, []int64{3000, 4000}) || !reflect.DeepEqual(sc.Capabilities.AddCapabilities, []string{"NET_ADMIN"}) ||
		!reflect.DeepEqual(sc.Capabilities.DropCapabilities, []string{"ALL"}) || len(sc.MaskedPaths) == 0 {
		t.Errorf("security context %+v", sc)
	}
	// The container's user wins over the pod's.
	c.SecurityContext.RunAsUser = &uid0
	if sc, _ := containerSecurityContext(p, c, nil); sc.RunAsUser.GetValue() != 0 {
		t.Errorf("runAsUser %v", sc.RunAsUser)
	}
	// runAsNonRoot against root.
	c.SecurityContext.RunAsNonRoot = &yes
	if _, err := containerSecurityContext(p, c, nil); err == nil {
		t.Error("runAsNonRoot with runAsUser 0 accepted")
	}
	c.SecurityContext.RunAsUser = nil
	p.Spec.SecurityContext.RunAsUser = nil
	if _, err := containerSecurityContext(p, c, &runtimeapi.Image{Uid: &runtimeapi.Int64Value{Value: 0}}); err == nil || !strings.Contains(err.Error(), "image will run as root") {
		t.Errorf("runAsNonRoot with a root image: %v", err)
	}
	if _, err := containerSecurityContext(p, c, &runtimeapi.Image{Uid: &runtimeapi.Int64Value{Value: 65534}}); err != nil {
		t.Errorf("runAsNonRoot with a non-root image: %v", err)
	}
	// Privileged: no masked paths.
	c.SecurityContext = &corev1.SecurityContext{Privileged: &yes}
	if sc, _ := containerSecurityContext(p, c, nil); !sc.Privileged || len(sc.MaskedPaths) != 0 {
		t.Errorf("privileged %+v", sc)
	}
}
