package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// userHZ is the unit of /proc/stat's CPU times (USER_HZ is 100 on every Linux ABI).
const userHZ = 100

// rateTracker turns cumulative CPU times into rates (nanocores) from successive samples.
type rateTracker struct {
	mu        sync.Mutex
	minWindow time.Duration
	hist      map[string][]cpuSample
	seen      map[string]time.Time
	lastGC    time.Time
}

type cpuSample struct {
	t time.Time
	v uint64 // cumulative CPU nanoseconds
}

func newRateTracker(minWindow time.Duration) *rateTracker {
	return &rateTracker{minWindow: minWindow, hist: map[string][]cpuSample{}, seen: map[string]time.Time{}}
}

// observe records a sample of key's cumulative CPU time v at t and returns the usage rate
// since the newest earlier sample at least minWindow older (false when there is none).
func (r *rateTracker) observe(key string, t time.Time, v uint64) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hist[key]
	var rate uint64
	ok := false
	for i := len(h) - 1; i >= 0; i-- {
		dt := t.Sub(h[i].t)
		if dt >= r.minWindow && v >= h[i].v {
			rate = uint64(math.Round(float64(v-h[i].v) / dt.Seconds()))
			ok = true
			break
		}
	}
	switch {
	case len(h) > 0 && v < h[len(h)-1].v:
		h = []cpuSample{{t, v}} // counter went back: a new container behind the same key
	case len(h) == 0 || t.Sub(h[len(h)-1].t) >= r.minWindow:
		h = append(h, cpuSample{t, v})
		if len(h) > 4 {
			h = append([]cpuSample(nil), h[len(h)-4:]...)
		}
	}
	r.hist[key] = h
	r.seen[key] = t
	if t.Sub(r.lastGC) > 5*time.Minute {
		r.lastGC = t
		for k, last := range r.seen {
			if t.Sub(last) > 10*time.Minute {
				delete(r.seen, k)
				delete(r.hist, k)
			}
		}
	}
	return rate, ok
}

// statsProvider computes the Summary from the runtime and the host's /proc.
type statsProvider struct {
	rt       Runtime
	nodeName string
	fsPath   string
	procRoot string
	now      func() time.Time
	rates    *rateTracker
}

func u64(v uint64) *uint64 { return &v }

func i64(v int64) *int64 { return &v }

// Summary returns the node's and its pods' usage now.
func (p *statsProvider) Summary(ctx context.Context) (*Summary, error) {
	now := p.now()
	sandboxes, err := p.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("listing pod sandboxes: %w", err)
	}
	containers, err := p.rt.ListContainers(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	stats, err := p.rt.ListContainerStats(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("listing container stats: %w", err)
	}
	byID := make(map[string]*runtimeapi.Container, len(containers))
	for _, c := range containers {
		byID[c.Id] = c
	}
	var fsCache sync.Map
	pods := map[string]*PodStats{}
	for _, sb := range sandboxes {
		if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		ref := PodReference{Name: sb.Labels[LabelPodName], Namespace: sb.Labels[LabelPodNamespace], UID: sb.Labels[LabelPodUID]}
		if sb.Metadata != nil {
			ref = PodReference{Name: sb.Metadata.Name, Namespace: sb.Metadata.Namespace, UID: sb.Metadata.Uid}
		}
		pods[sb.Id] = &PodStats{PodRef: ref, StartTime: metav1.NewTime(time.Unix(0, sb.CreatedAt)), Containers: []ContainerStats{}}
	}
	for _, st := range stats {
		if st.Attributes == nil {
			continue
		}
		c := byID[st.Attributes.Id]
		if c == nil || c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		ps := pods[c.PodSandboxId]
		if ps == nil {
			continue
		}
		name := c.Labels[LabelContainerName]
		if name == "" && c.Metadata != nil {
			name = c.Metadata.Name
		}
		start := time.Unix(0, c.CreatedAt)
		cs := ContainerStats{Name: name, StartTime: metav1.NewTime(start)}
		if cpu := st.Cpu; cpu != nil && cpu.UsageCoreNanoSeconds != nil {
			t := time.Unix(0, cpu.Timestamp)
			if cpu.Timestamp == 0 {
				t = now
			}
			total := cpu.UsageCoreNanoSeconds.Value
			cs.CPU = &CPUStats{Time: metav1.NewTime(t), UsageCoreNanoSeconds: u64(total)}
			if rate, ok := p.rates.observe("container/"+c.Id, t, total); ok {
				cs.CPU.UsageNanoCores = u64(rate)
			} else if cpu.UsageNanoCores != nil && cpu.UsageNanoCores.Value > 0 {
				cs.CPU.UsageNanoCores = u64(cpu.UsageNanoCores.Value)
			} else if age := t.Sub(start); age > 0 {
				// No earlier sample yet (a new container or a fresh agent): the average
				// since the container started.
				cs.CPU.UsageNanoCores = u64(uint64(math.Round(float64(total) / age.Seconds())))
			}
		}
		if m := st.Memory; m != nil {
			t := time.Unix(0, m.Timestamp)
			if m.Timestamp == 0 {
				t = now
			}
			ms := &MemoryStats{Time: metav1.NewTime(t)}
			if m.WorkingSetBytes != nil {
				ms.WorkingSetBytes = u64(m.WorkingSetBytes.Value)
			}
			if m.UsageBytes != nil {
				ms.UsageBytes = u64(m.UsageBytes.Value)
			}
			if m.AvailableBytes != nil && m.AvailableBytes.Value > 0 {
				ms.AvailableBytes = u64(m.AvailableBytes.Value)
			}
			if m.RssBytes != nil {
				ms.RSSBytes = u64(m.RssBytes.Value)
			}
			if m.PageFaults != nil {
				ms.PageFaults = u64(m.PageFaults.Value)
			}
			if m.MajorPageFaults != nil {
				ms.MajorPageFaults = u64(m.MajorPageFaults.Value)
			}
			cs.Memory = ms
		}
		if wl := st.WritableLayer; wl != nil {
			fs := &FsStats{Time: metav1.NewTime(time.Unix(0, wl.Timestamp))}
			if wl.Timestamp == 0 {
				fs.Time = metav1.NewTime(now)
			}
			if wl.UsedBytes != nil {
				fs.UsedBytes = u64(wl.UsedBytes.Value)
			}
			if wl.InodesUsed != nil {
				fs.InodesUsed = u64(wl.InodesUsed.Value)
			}
			if wl.FsId != nil && wl.FsId.Mountpoint != "" {
				if v, ok := fsCache.Load(wl.FsId.Mountpoint); ok {
					fillCapacity(fs, v.(*FsStats))
				} else if fsCap, err := statFs(wl.FsId.Mountpoint, now); err == nil {
					fsCache.Store(wl.FsId.Mountpoint, fsCap)
					fillCapacity(fs, fsCap)
				}
			}
			cs.Rootfs = fs
		}
		ps.Containers = append(ps.Containers, cs)
	}

	s := &Summary{Node: p.nodeStats(ctx, now), Pods: []PodStats{}}
	for _, ps := range pods {
		sumPod(ps)
		s.Pods = append(s.Pods, *ps)
	}
	sort.Slice(s.Pods, func(i, j int) bool {
		a, b := s.Pods[i].PodRef, s.Pods[j].PodRef
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.UID < b.UID
	})
	return s, nil
}

func fillCapacity(fs, c *FsStats) {
	fs.CapacityBytes, fs.AvailableBytes, fs.Inodes, fs.InodesFree = c.CapacityBytes, c.AvailableBytes, c.Inodes, c.InodesFree
}

// sumPod fills a pod's totals from its containers. A total is left out when a container
// lacks the value (a partial sum would mislead).
func sumPod(ps *PodStats) {
	sort.Slice(ps.Containers, func(i, j int) bool { return ps.Containers[i].Name < ps.Containers[j].Name })
	if len(ps.Containers) == 0 {
		return
	}
	var cpuT, memT time.Time
	var nano, total, ws, usage, rss, eph uint64
	haveNano, haveTotal, haveWS, haveUsage, haveRSS, haveEph := true, true, true, true, true, true
	for _, c := range ps.Containers {
		if c.CPU != nil {
			if c.CPU.Time.After(cpuT) {
				cpuT = c.CPU.Time.Time
			}
			haveNano, nano = addOpt(haveNano, nano, c.CPU.UsageNanoCores)
			haveTotal, total = addOpt(haveTotal, total, c.CPU.UsageCoreNanoSeconds)
		} else {
			haveNano, haveTotal = false, false
		}
		if c.Memory != nil {
			if c.Memory.Time.After(memT) {
				memT = c.Memory.Time.Time
			}
			haveWS, ws = addOpt(haveWS, ws, c.Memory.WorkingSetBytes)
			haveUsage, usage = addOpt(haveUsage, usage, c.Memory.UsageBytes)
			haveRSS, rss = addOpt(haveRSS, rss, c.Memory.RSSBytes)
		} else {
			haveWS, haveUsage, haveRSS = false, false, false
		}
		if c.Rootfs != nil {
			haveEph, eph = addOpt(haveEph, eph, c.Rootfs.UsedBytes)
		} else {
			haveEph = false
		}
	}
	if haveTotal {
		ps.CPU = &CPUStats{Time: metav1.NewTime(cpuT), UsageCoreNanoSeconds: u64(total)}
		if haveNano {
			ps.CPU.UsageNanoCores = u64(nano)
		}
	}
	if haveWS || haveUsage {
		ps.Memory = &MemoryStats{Time: metav1.NewTime(memT)}
		if haveWS {
			ps.Memory.WorkingSetBytes = u64(ws)
		}
		if haveUsage {
			ps.Memory.UsageBytes = u64(usage)
		}
		if haveRSS {
			ps.Memory.RSSBytes = u64(rss)
		}
	}
	if haveEph {
		ps.EphemeralStorage = &FsStats{Time: metav1.NewTime(cpuT), UsedBytes: u64(eph)}
		if c := ps.Containers[0].Rootfs; c != nil {
			ps.EphemeralStorage.Time = c.Time
		}
	}
}

func addOpt(have bool, sum uint64, v *uint64) (bool, uint64) {
	if !have || v == nil {
		return false, sum
	}
	return true, sum + *v
}

// nodeStats reads the node's usage from /proc and the filesystems. Parts that cannot be read
// are left out.
func (p *statsProvider) nodeStats(ctx context.Context, now time.Time) NodeStats {
	ns := NodeStats{NodeName: p.nodeName}
	if boot, err := bootTime(p.procRoot); err == nil {
		ns.StartTime = metav1.NewTime(boot)
	}
	if total, err := nodeCPUTime(p.procRoot); err == nil {
		ns.CPU = &CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: u64(total)}
		if rate, ok := p.rates.observe("node", now, total); ok {
			ns.CPU.UsageNanoCores = u64(rate)
		}
	}
	if mem, err := nodeMemory(p.procRoot, now); err == nil {
		ns.Memory = mem
	}
	if fs, err := statFs(p.fsPath, now); err == nil {
		ns.Fs = fs
	}
	if net, err := nodeNetwork(p.procRoot, now); err == nil {
		ns.Network = net
	}
	if rl, err := nodeRlimit(p.procRoot, now); err == nil {
		ns.Rlimit = rl
	}
	if p.rt == nil {
		return ns
	}
	if info, err := p.rt.ImageFsInfo(ctx); err == nil && len(info.ImageFilesystems) > 0 {
		u := info.ImageFilesystems[0]
		fs := &FsStats{Time: metav1.NewTime(now)}
		if u.FsId != nil && u.FsId.Mountpoint != "" {
			if c, err := statFs(u.FsId.Mountpoint, now); err == nil {
				fs = c
			}
		}
		if u.UsedBytes != nil {
			fs.UsedBytes = u64(u.UsedBytes.Value)
		}
		if u.InodesUsed != nil {
			fs.InodesUsed = u64(u.InodesUsed.Value)
		}
		ns.Runtime = &RuntimeStats{ImageFs: fs}
	}
	return ns
}

// nodeCPUTime is the CPU time the node has spent not idle, in nanoseconds (first line of
// /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice; guest time
// is already counted in user).
func nodeCPUTime(procRoot string) (uint64, error) {
	f, err := os.Open(filepath.Join(procRoot, "stat"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != "cpu" {
			continue
		}
		var busy uint64
		for i, f := range fields[1:] {
			if i == 3 || i == 4 || i >= 8 { // idle, iowait, guest, guest_nice
				continue
			}
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s/stat: %w", procRoot, err)
			}
			busy += v
		}
		return busy * (1e9 / userHZ), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s/stat: no cpu line", procRoot)
}

func bootTime(procRoot string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return time.Time{}, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "btime "); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(v, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s/stat: no btime", procRoot)
}

// readMeminfo returns /proc/meminfo's values in bytes.
func readMeminfo(procRoot string) (map[string]uint64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out, nil
}

// nodeMemory: usage is what is not free (page cache included, as the root cgroup counts it),
// the working set is usage less inactive file pages, available is capacity less the working
// set (as the kubelet computes it for eviction).
func nodeMemory(procRoot string, now time.Time) (*MemoryStats, error) {
	mi, err := readMeminfo(procRoot)
	if err != nil {
		return nil, err
	}
	total, ok := mi["MemTotal"]
	if !ok {
		return nil, fmt.Errorf("%s/meminfo: no MemTotal", procRoot)
	}
	usage := total - min(mi["MemFree"], total)
	ws := usage - min(mi["Inactive(file)"], usage)
	return &MemoryStats{Time: metav1.NewTime(now), UsageBytes: u64(usage), WorkingSetBytes: u64(ws), AvailableBytes: u64(total - ws)}, nil
}

func statFs(path string, now time.Time) (*FsStats, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return nil, err
	}
	bs := uint64(st.Bsize)
	fs := &FsStats{
		Time:           metav1.NewTime(now),
		CapacityBytes:  u64(st.Blocks * bs),
		AvailableBytes: u64(st.Bavail * bs),
		UsedBytes:      u64((st.Blocks - st.Bfree) * bs),
	}
	if st.Files > 0 {
		fs.Inodes, fs.InodesFree, fs.InodesUsed = u64(st.Files), u64(st.Ffree), u64(st.Files-st.Ffree)
	}
	return fs, nil
}

// nodeNetwork reads /proc/net/dev; the interface of the default route is the inline one.
func nodeNetwork(procRoot string, now time.Time) (*NetworkStats, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "net", "dev"))
	if err != nil {
		return nil, err
	}
	ifs, err := parseNetDev(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	def := defaultRouteInterface(procRoot)
	ns := &NetworkStats{Time: metav1.NewTime(now)}
	for _, i := range ifs {
		if i.Name == "lo" {
			continue
		}
		ns.Interfaces = append(ns.Interfaces, i)
		if i.Name == def {
			ns.InterfaceStats = i
		}
	}
	return ns, nil
}

func parseNetDev(r io.Reader) ([]InterfaceStats, error) {
	var out []InterfaceStats
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		num := func(i int) *uint64 {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil
			}
			return &v
		}
		// Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes
		// packets errs ...
		out = append(out, InterfaceStats{Name: strings.TrimSpace(name), RxBytes: num(0), RxErrors: num(2), TxBytes: num(8), TxErrors: num(10)})
	}
	return out, sc.Err()
}

func defaultRouteInterface(procRoot string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, "net", "route"))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 2 && f[1] == "00000000" {
			return f[0]
		}
	}
	return ""
}

func nodeRlimit(procRoot string, now time.Time) (*RlimitStats, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "sys", "kernel", "pid_max"))
	if err != nil {
		return nil, err
	}
	maxPID, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return nil, err
	}
	rl := &RlimitStats{Time: metav1.NewTime(now), MaxPID: i64(maxPID)}
	if la, err := os.ReadFile(filepath.Join(procRoot, "loadavg")); err == nil {
		if f := strings.Fields(string(la)); len(f) > 3 {
			if _, total, ok := strings.Cut(f[3], "/"); ok {
				if n, err := strconv.ParseInt(total, 10, 64); err == nil {
					rl.NumOfRunningProcesses = i64(n)
				}
			}
		}
	}
	return rl, nil
}

// resourceMetrics renders the Summary in the Prometheus text format of the kubelet's
// /metrics/resource (what metrics-server scrapes).
func resourceMetrics(w io.Writer, s *Summary, scrapeErr bool) error {
	bw := bufio.NewWriter(w)
	family := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s [STABLE] %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	sample := func(name string, labels []string, v float64, t metav1.Time) {
		bw.WriteString(name)
		if len(labels) > 0 {
			bw.WriteByte('{')
			for i := 0; i+1 < len(labels); i += 2 {
				if i > 0 {
					bw.WriteByte(',')
				}
				fmt.Fprintf(bw, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
			}
			bw.WriteByte('}')
		}
		bw.WriteByte(' ')
		bw.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		if !t.IsZero() {
			fmt.Fprintf(bw, " %d", t.UnixMilli())
		}
		bw.WriteByte('\n')
	}
	type ctr struct {
		pod *PodStats
		c   *ContainerStats
	}
	var ctrs []ctr
	for i := range s.Pods {
		for j := range s.Pods[i].Containers {
			ctrs = append(ctrs, ctr{&s.Pods[i], &s.Pods[i].Containers[j]})
		}
	}
	clabels := func(x ctr) []string {
		return []string{"container", x.c.Name, "namespace", x.pod.PodRef.Namespace, "pod", x.pod.PodRef.Name}
	}
	plabels := func(p *PodStats) []string {
		return []string{"namespace", p.PodRef.Namespace, "pod", p.PodRef.Name}
	}

	family("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the container in core-seconds")
	for _, x := range ctrs {
		if x.c.CPU != nil && x.c.CPU.UsageCoreNanoSeconds != nil {
			sample("container_cpu_usage_seconds_total", clabels(x), float64(*x.c.CPU.UsageCoreNanoSeconds)/1e9, x.c.CPU.Time)
		}
	}
	family("container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes")
	for _, x := range ctrs {
		if x.c.Memory != nil && x.c.Memory.WorkingSetBytes != nil {
			sample("container_memory_working_set_bytes", clabels(x), float64(*x.c.Memory.WorkingSetBytes), x.c.Memory.Time)
		}
	}
	family("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds")
	for _, x := range ctrs {
		sample("container_start_time_seconds", clabels(x), float64(x.c.StartTime.UnixNano())/1e9, x.c.StartTime)
	}
	family("node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds")
	if c := s.Node.CPU; c != nil && c.UsageCoreNanoSeconds != nil {
		sample("node_cpu_usage_seconds_total", nil, float64(*c.UsageCoreNanoSeconds)/1e9, c.Time)
	}
	family("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes")
	if m := s.Node.Memory; m != nil && m.WorkingSetBytes != nil {
		sample("node_memory_working_set_bytes", nil, float64(*m.WorkingSetBytes), m.Time)
	}
	family("pod_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the pod in core-seconds")
	for i := range s.Pods {
		if c := s.Pods[i].CPU; c != nil && c.UsageCoreNanoSeconds != nil {
			sample("pod_cpu_usage_seconds_total", plabels(&s.Pods[i]), float64(*c.UsageCoreNanoSeconds)/1e9, c.Time)
		}
	}
	family("pod_memory_working_set_bytes", "gauge", "Current working set of the pod in bytes")
	for i := range s.Pods {
		if m := s.Pods[i].Memory; m != nil && m.WorkingSetBytes != nil {
			sample("pod_memory_working_set_bytes", plabels(&s.Pods[i]), float64(*m.WorkingSetBytes), m.Time)
		}
	}
	family("resource_scrape_error", "gauge", "1 if there was an error while getting container metrics, 0 otherwise")
	v := 0.0
	if scrapeErr {
		v = 1
	}
	sample("resource_scrape_error", nil, v, metav1.Time{})
	return bw.Flush()
}

func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(s)
}
