package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestRateTracker(t *testing.T) {
	r := newRateTracker(time.Second)
	t0 := time.Unix(1000, 0)
	if _, ok := r.observe("a", t0, 1e9); ok {
		t.Fatal("a rate from one sample")
	}
	// Too close to the last sample: no rate, and not kept as a reference.
	if _, ok := r.observe("a", t0.Add(100*time.Millisecond), 1.05e9); ok {
		t.Fatal("a rate over less than the minimum window")
	}
	rate, ok := r.observe("a", t0.Add(2*time.Second), 2e9)
	if !ok || rate != 5e8 {
		t.Fatalf("rate = %d, %v; want half a core", rate, ok)
	}
	// The newest sample at least a window older is the reference.
	rate, ok = r.observe("a", t0.Add(3500*time.Millisecond), 2.75e9)
	if !ok || rate != 5e8 {
		t.Fatalf("rate = %d, %v", rate, ok)
	}
	// A counter that goes back (a new container under the same key) starts over.
	if _, ok := r.observe("a", t0.Add(5*time.Second), 1e6); ok {
		t.Fatal("rate across a counter reset")
	}
	if rate, ok := r.observe("a", t0.Add(6*time.Second), 1e6+2e8); !ok || rate != 2e8 {
		t.Fatalf("rate after reset = %d, %v", rate, ok)
	}
}

// fakeProc writes a /proc look-alike.
func fakeProc(t *testing.T, dir, stat string) {
	t.Helper()
	files := map[string]string{
		"stat":    stat + "\ncpu0 1 2 3 4\nintr 1\nbtime 1700000000\n",
		"meminfo": "MemTotal:        8000000 kB\nMemFree:         2000000 kB\nMemAvailable:    4000000 kB\nInactive(file):  1000000 kB\nHugePages_Total: 0\n",
		"net/dev": "Inter-|   Receive                                                |  Transmit\n" +
			" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
			"    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n" +
			"  eth0: 5000 10 1 0 0 0 0 0 7000 12 2 0 0 0 0 0\n",
		"net/route":          "Iface\tDestination\tGateway\tFlags\nbr0\t0000A8C0\t00000000\t0001\neth0\t00000000\t0100A8C0\t0003\n",
		"loadavg":            "0.10 0.20 0.30 2/345 6789\n",
		"sys/kernel/pid_max": "4194304\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func cstats(id string, ts time.Time, cpu, ws uint64) *runtimeapi.ContainerStats {
	return &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: id},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: ts.UnixNano(), UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpu}},
		Memory: &runtimeapi.MemoryUsage{Timestamp: ts.UnixNano(), WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws},
			UsageBytes: &runtimeapi.UInt64Value{Value: ws * 2}, RssBytes: &runtimeapi.UInt64Value{Value: ws / 2}},
		WritableLayer: &runtimeapi.FilesystemUsage{Timestamp: ts.UnixNano(), UsedBytes: &runtimeapi.UInt64Value{Value: 4096},
			InodesUsed: &runtimeapi.UInt64Value{Value: 3}},
	}
}

func TestSummary(t *testing.T) {
	proc := t.TempDir()
	// busy = user+nice+system+irq+softirq+steal = 160 jiffies = 1.6 s
	fakeProc(t, proc, "cpu  100 0 50 1000 10 5 5 0 7 0")
	t0 := time.Unix(1_700_000_100, 0)
	rt := &fakeRuntime{}
	rt.addPod("s1", "ns", "p", "uid-1", t0.Add(-time.Minute).UnixNano())
	rt.addPod("s2", "ns", "gone", "uid-2", t0.Add(-time.Minute).UnixNano())
	rt.sandboxes[1].State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	rt.addContainer("c1", "s1", "ns", "p", "uid-1", "app", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, t0.Add(-10*time.Second).UnixNano(), "")
	rt.addContainer("c2", "s1", "ns", "p", "uid-1", "side", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, t0.Add(-20*time.Second).UnixNano(), "")
	rt.addContainer("c3", "s1", "ns", "p", "uid-1", "old", 0, runtimeapi.ContainerState_CONTAINER_EXITED, t0.Add(-30*time.Second).UnixNano(), "")
	rt.stats = []*runtimeapi.ContainerStats{cstats("c1", t0, 1e9, 10<<20), cstats("c2", t0, 2e9, 20<<20), cstats("c3", t0, 5e9, 1)}
	rt.imageFs = &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: proc}, UsedBytes: &runtimeapi.UInt64Value{Value: 123}}}}
	now := t0
	p := &statsProvider{rt: rt, nodeName: "n1", fsPath: proc, procRoot: proc, now: func() time.Time { return now }, rates: newRateTracker(time.Second)}

	s, err := p.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := s.Node
	if n.NodeName != "n1" || n.StartTime.Unix() != 1_700_000_000 {
		t.Errorf("node %q start %v", n.NodeName, n.StartTime)
	}
	if n.CPU == nil || *n.CPU.UsageCoreNanoSeconds != 1.6e9 || n.CPU.UsageNanoCores != nil {
		t.Errorf("first node cpu %+v", n.CPU)
	}
	if m := n.Memory; m == nil || *m.UsageBytes != 6000000*1024 || *m.WorkingSetBytes != 5000000*1024 || *m.AvailableBytes != 3000000*1024 {
		t.Errorf("node memory %+v", n.Memory)
	}
	if n.Fs == nil || n.Fs.CapacityBytes == nil || n.Runtime == nil || n.Runtime.ImageFs == nil || *n.Runtime.ImageFs.UsedBytes != 123 || n.Runtime.ImageFs.CapacityBytes == nil {
		t.Errorf("node fs %+v runtime %+v", n.Fs, n.Runtime)
	}
	if n.Network == nil || n.Network.Name != "eth0" || *n.Network.RxBytes != 5000 || *n.Network.TxErrors != 2 || len(n.Network.Interfaces) != 1 {
		t.Errorf("node network %+v", n.Network)
	}
	if n.Rlimit == nil || *n.Rlimit.MaxPID != 4194304 || *n.Rlimit.NumOfRunningProcesses != 345 {
		t.Errorf("rlimit %+v", n.Rlimit)
	}
	if len(s.Pods) != 1 {
		t.Fatalf("pods %+v", s.Pods)
	}
	pod := s.Pods[0]
	if pod.PodRef != (PodReference{Name: "p", Namespace: "ns", UID: "uid-1"}) || len(pod.Containers) != 2 {
		t.Fatalf("pod %+v", pod)
	}
	app, side := pod.Containers[0], pod.Containers[1]
	if app.Name != "app" || side.Name != "side" {
		t.Fatalf("containers %q %q", app.Name, side.Name)
	}
	// No earlier sample: the average since the container started (1 s over 10 s).
	if *app.CPU.UsageNanoCores != 1e8 || *side.CPU.UsageNanoCores != 1e8 {
		t.Errorf("first usageNanoCores %d %d", *app.CPU.UsageNanoCores, *side.CPU.UsageNanoCores)
	}
	if *app.Memory.WorkingSetBytes != 10<<20 || *app.Rootfs.UsedBytes != 4096 || app.Rootfs.CapacityBytes != nil {
		t.Errorf("app memory %+v rootfs %+v", app.Memory, app.Rootfs)
	}
	if *pod.CPU.UsageCoreNanoSeconds != 3e9 || *pod.Memory.WorkingSetBytes != 30<<20 || *pod.Memory.UsageBytes != 60<<20 || *pod.EphemeralStorage.UsedBytes != 8192 {
		t.Errorf("pod totals cpu %+v memory %+v", pod.CPU, pod.Memory)
	}

	// Two seconds later: rates from the two samples.
	fakeProc(t, proc, "cpu  200 0 100 2000 10 5 5 0 7 0") // 310 jiffies
	now = t0.Add(2 * time.Second)
	rt.stats = []*runtimeapi.ContainerStats{cstats("c1", now, 2e9, 11<<20), cstats("c2", now, 2e9, 20<<20)}
	s, err = p.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Node.CPU; c.UsageNanoCores == nil || *c.UsageNanoCores != 750_000_000 {
		t.Errorf("node usageNanoCores %v", c.UsageNanoCores)
	}
	pod = s.Pods[0]
	if *pod.Containers[0].CPU.UsageNanoCores != 5e8 || *pod.Containers[1].CPU.UsageNanoCores != 0 || *pod.CPU.UsageNanoCores != 5e8 {
		t.Errorf("usageNanoCores app %d side %d pod %d", *pod.Containers[0].CPU.UsageNanoCores, *pod.Containers[1].CPU.UsageNanoCores, *pod.CPU.UsageNanoCores)
	}

	var b bytes.Buffer
	if err := resourceMetrics(&b, s, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	ms := now.UnixMilli()
	for _, want := range []string{
		"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n",
		`container_cpu_usage_seconds_total{container="app",namespace="ns",pod="p"} 2 ` + itoa(ms) + "\n",
		`container_memory_working_set_bytes{container="side",namespace="ns",pod="p"} 2.097152e+07 ` + itoa(ms) + "\n",
		"# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total 3.1 " + itoa(ms) + "\n",
		"node_memory_working_set_bytes 5.12e+09 " + itoa(ms) + "\n",
		`pod_cpu_usage_seconds_total{namespace="ns",pod="p"} 4 `,
		`pod_memory_working_set_bytes{namespace="ns",pod="p"} 3.2505856e+07 `,
		`container_start_time_seconds{container="app",namespace="ns",pod="p"} 1.70000009e+09 `,
		"\nresource_scrape_error 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	if escapeLabel("a\"b\\c\nd") != `a\"b\\c\nd` {
		t.Errorf("escapeLabel = %q", escapeLabel("a\"b\\c\nd"))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
