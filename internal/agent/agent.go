package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/agent/runtime"
	"github.com/skiff-sh/skiff/internal/controller"
)

// KubeletVersion is what the node reports as its kubelet version.
const KubeletVersion = "v1.37.2-skiff"

// DefaultPodCIDR is the pod CIDR an agent takes when nothing assigns one.
const DefaultPodCIDR = "10.42.0.0/24"

// Config configures a node agent; zero values mean defaults.
type Config struct {
	// NodeName is the Node's name (default: the hostname, lowercased).
	NodeName string
	// DataDir holds the agent's state: images, containerd, CNI, pods (default
	// /var/lib/skiff/agent).
	DataDir string
	// ImageDir holds image tarballs imported at start (default <DataDir>/images). Missing
	// skiff images are built into it when a Go toolchain is available.
	ImageDir string
	// SkipImageBuild turns the build of missing images off.
	SkipImageBuild bool
	// RuntimeEndpoint is an existing containerd's socket; empty starts a managed one
	// under <DataDir>/containerd.
	RuntimeEndpoint string
	// ClusterDNS is the DNS server pods with dnsPolicy ClusterFirst use (default
	// 10.43.0.10); comma-separated for several.
	ClusterDNS string
	// ClusterDomain is the cluster's DNS domain (default cluster.local).
	ClusterDomain string
	// PodCIDR is the node's pod network. Empty: the one the control plane sets on the
	// Node, or after 5 s DefaultPodCIDR, which the agent then sets on the Node itself.
	PodCIDR string
	// MaxPods is the node's pod capacity (default 110).
	MaxPods int
	// Labels are added to the Node's labels.
	Labels map[string]string
	// NodeIP is the node's InternalIP (default: the first non-loopback IPv4 address).
	NodeIP string
	// StreamingPort is the port of the agent's HTTPS server (logs, exec, stats), reported
	// as daemonEndpoints.kubeletEndpoint (default 10250).
	StreamingPort int
	// CAData is the cluster CA (PEM) that kube-root-ca.crt projections get when the
	// ConfigMap does not exist.
	CAData []byte

	// CNIConfDir is where the bridge conflist goes (default: the managed containerd's,
	// <DataDir>/cni/net.d; /etc/cni/net.d with RuntimeEndpoint).
	CNIConfDir string
	// CNIBinDir holds the CNI plugins (default /usr/lib/cni).
	CNIBinDir string
	// Bridge and NetworkName name the pod network (defaults skiff0 and skiff).
	Bridge, NetworkName string
	// ResolvConf is the node's resolver config (default /etc/resolv.conf).
	ResolvConf string

	// Logger receives the agent's logs (default slog.Default()).
	Logger *slog.Logger
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("node name: %w", err)
		}
		cfg.NodeName = strings.ToLower(h)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "/var/lib/skiff/agent"
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, err
	}
	cfg.DataDir = abs
	if cfg.ImageDir == "" {
		cfg.ImageDir = filepath.Join(cfg.DataDir, "images")
	}
	if cfg.ClusterDNS == "" {
		cfg.ClusterDNS = "10.43.0.10"
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.MaxPods <= 0 {
		cfg.MaxPods = 110
	}
	if cfg.StreamingPort <= 0 {
		cfg.StreamingPort = 10250
	}
	if cfg.CNIConfDir == "" {
		if cfg.RuntimeEndpoint != "" {
			cfg.CNIConfDir = "/etc/cni/net.d"
		} else {
			cfg.CNIConfDir = filepath.Join(cfg.DataDir, "cni", "net.d")
		}
	}
	if cfg.CNIBinDir == "" {
		cfg.CNIBinDir = runtime.DefaultCNIBinDir
	}
	if cfg.Bridge == "" {
		cfg.Bridge = runtime.DefaultBridge
	}
	if cfg.NetworkName == "" {
		cfg.NetworkName = runtime.DefaultNetworkName
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.NodeIP == "" {
		cfg.NodeIP = defaultNodeIP(cfg.Bridge)
	}
	if cfg.NodeIP != "" && net.ParseIP(cfg.NodeIP) == nil {
		return cfg, fmt.Errorf("node IP %q is not an IP address", cfg.NodeIP)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// DefaultNodeIP is the address an agent reports as its InternalIP when none is configured.
func DefaultNodeIP() string { return defaultNodeIP(runtime.DefaultBridge) }

// defaultNodeIP is the first IPv4 address of an interface that is up, not loopback, and
// not a pod network device.
func defaultNodeIP(bridge string) string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Name == bridge ||
			strings.HasPrefix(ifc.Name, "veth") || strings.HasPrefix(ifc.Name, "cni") || strings.HasPrefix(ifc.Name, "skiff") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return ""
}

// Agent is a running node agent.
type Agent struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	runtimeMu  sync.Mutex
	containerd *runtime.Containerd
	cri        *runtime.Client
	rt         runtimeapi.RuntimeServiceClient
	img        runtimeapi.ImageServiceClient

	runtimeName, runtimeVersion string

	hostname       string
	clusterDNS     []string
	nodeIPs        []string
	podCIDR        string
	capacity       corev1.ResourceList
	allocatable    corev1.ResourceList
	memoryCapacity int64

	informers   informers.SharedInformerFactory
	podFactory  informers.SharedInformerFactory
	podInformer cache.SharedIndexInformer
	pods        corelisters.PodLister
	services    corelisters.ServiceLister
	objects     objectSource

	states       *stateReader
	workers      *podWorkers
	probes       *probeManager
	volumes      *volumeManager
	crashBackoff *backoff
	pullBackoff  *backoff

	runCtx      context.Context
	nodeMu      sync.Mutex
	nodeChanged chan struct{}
	ready       chan struct{}
	done        chan struct{}
}

// New checks the configuration and builds an agent; Run starts it.
func New(cfg Config, client kubernetes.Interface) (*Agent, error) {
	if client == nil {
		return nil, errors.New("agent: a client is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:          cfg,
		client:       client,
		log:          cfg.Logger.With("component", "agent", "node", cfg.NodeName),
		crashBackoff: newCrashBackoff(),
		pullBackoff:  newBackoff(10*time.Second, 5*time.Minute, 10*time.Minute),
		nodeChanged:  make(chan struct{}, 1),
		ready:        make(chan struct{}),
		done:         make(chan struct{}),
	}
	a.hostname, _ = os.Hostname()
	if a.hostname == "" {
		a.hostname = cfg.NodeName
	}
	for _, s := range strings.Split(cfg.ClusterDNS, ",") {
		if s = strings.TrimSpace(s); s != "" {
			a.clusterDNS = append(a.clusterDNS, s)
		}
	}
	if cfg.NodeIP != "" {
		a.nodeIPs = []string{cfg.NodeIP}
	}
	return a, nil
}

// NewFactory returns a component factory that runs an agent inside `skiff server`, with
// the control plane's client and CA.
func NewFactory(cfg Config) func(*controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		if len(cfg.CAData) == 0 {
			cfg.CAData, _ = cc.ClusterCA()
		}
		if cfg.Logger == nil {
			cfg.Logger = cc.Logger
		}
		return New(cfg, cc.Client)
	}
}

// Name implements controller.Component.
func (a *Agent) Name() string { return "node-agent" }

// NodeName is the name of the agent's Node.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// Config returns the configuration with defaults filled in.
func (a *Agent) Config() Config { return a.cfg }

// Ready is closed once the node is registered and pods run.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Done is closed when Run has returned.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Runtime is the CRI client (nil until Run has connected).
func (a *Agent) Runtime() *runtime.Client { return a.cri }

// Containerd is the runtime Run started or connected to (nil before).
func (a *Agent) Containerd() *runtime.Containerd {
	a.runtimeMu.Lock()
	defer a.runtimeMu.Unlock()
	return a.containerd
}

// Pods returns the pods bound to this node as the agent sees them (what the kubelet's
// /pods endpoint serves), sorted by namespace and name.
func (a *Agent) Pods(ctx context.Context) ([]corev1.Pod, error) {
	select {
	case <-a.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	default:
		return nil, errors.New("node agent not ready")
	}
	list, err := a.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]corev1.Pod, 0, len(list))
	for _, p := range list {
		out = append(out, *p.DeepCopy())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Run starts the runtime, registers the node and runs the pods bound to it until ctx
// ends. Containers keep running after Run returns: a restarted agent adopts them.
func (a *Agent) Run(ctx context.Context) error {
	defer close(a.done)
	a.runCtx = ctx
	start := time.Now()
	if err := a.startRuntime(ctx); err != nil {
		return err
	}
	defer a.stopRuntime()

	a.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	a.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.client.CoreV1().Events("")})
	defer a.broadcaster.Shutdown()
	a.recorder = a.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: a.cfg.NodeName})

	if err := a.machineFacts(); err != nil {
		return err
	}
	if err := a.registerNode(ctx); err != nil {
		return err
	}
	cidr, err := a.ensurePodCIDR(ctx)
	if err != nil {
		return err
	}
	a.podCIDR = cidr
	if _, err := runtime.WriteBridge(a.cfg.CNIConfDir, runtime.BridgeConfig{
		PodCIDR: cidr, Bridge: a.cfg.Bridge, NetworkName: a.cfg.NetworkName,
		IPAMDataDir: filepath.Join(a.cfg.DataDir, "cni", "networks"),
	}); err != nil {
		return fmt.Errorf("write CNI config: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := a.cri.WaitReady(wctx); err != nil {
		a.log.Warn("runtime not ready yet; the node stays NotReady until it is", "err", err)
	}
	cancel()
	// The node registered NotReady (no pod network yet): say Ready now, not at the next
	// status period.
	if err := a.updateNodeStatus(ctx, true); err != nil {
		a.log.Warn("updating node status", "err", err)
	}

	a.setupInformers()
	a.informers.Start(ctx.Done())
	a.podFactory.Start(ctx.Done())
	for _, f := range []informers.SharedInformerFactory{a.informers, a.podFactory} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("informer %v did not sync", typ)
			}
		}
	}
	defer a.informers.Shutdown()
	defer a.podFactory.Shutdown()
	a.states = newStateReader(a.rt)
	a.probes = newProbeManager(a, func(uid types.UID) { a.workers.poke(uid) })
	a.volumes = newVolumeManager(a)
	a.workers = newPodWorkers(a)
	a.addPodHandlers()
	// Pods already bound here get workers; containers of pods that are gone are found by
	// the first relist and cleaned up.
	if pods, err := a.pods.List(labels.Everything()); err == nil {
		for _, p := range pods {
			a.workers.ensure(p.UID, p.Namespace, p.Name)
		}
	}
	if err := a.renewLease(ctx); err != nil {
		a.log.Warn("creating node lease", "err", err)
	}
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(a.relistLoop)
	run(a.gcLoop)
	run(a.nodeStatusLoop)
	run(a.leaseLoop)
	run(a.superviseRuntime)
	close(a.ready)
	a.log.Info("node agent ready", "podCIDR", cidr, "runtime", a.runtimeName+" "+a.runtimeVersion,
		"endpoint", a.cri.Endpoint(), "elapsed", time.Since(start).Round(time.Millisecond))

	<-ctx.Done()
	wg.Wait()
	a.workers.wait(10 * time.Second)
	a.log.Info("node agent stopped")
	return nil
}

// startRuntime imports images and starts (or dials) containerd.
func (a *Agent) startRuntime(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(a.cfg.DataDir, "pods"), 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if !a.cfg.SkipImageBuild {
		a.buildMissingImages(ctx)
	}
	t := time.Now()
	cd, err := runtime.Start(ctx, runtime.Config{
		Endpoint:     a.cfg.RuntimeEndpoint,
		DataDir:      a.cfg.DataDir,
		SandboxImage: images.Pause,
		CNIConfDir:   a.cfg.CNIConfDir,
		CNIBinDir:    a.cfg.CNIBinDir,
	})
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	a.containerd = cd
	cl, err := cd.Dial(ctx)
	if err != nil {
		_ = cd.Stop()
		return err
	}
	a.cri, a.rt, a.img = cl, cl.Runtime, cl.Images
	v, err := cl.Version(ctx)
	if err != nil {
		a.stopRuntime()
		return fmt.Errorf("runtime version: %w", err)
	}
	a.runtimeName, a.runtimeVersion = v.RuntimeName, v.RuntimeVersion
	a.log.Info("container runtime ready", "runtime", v.RuntimeName, "version", v.RuntimeVersion,
		"managed", cd.Managed(), "elapsed", time.Since(t).Round(time.Millisecond))
	a.importImages(ctx)
	return nil
}

// importImages imports the image tarballs, unless exactly these tarballs were imported
// into this runtime before and its skiff images are all there (an agent restart).
func (a *Agent) importImages(ctx context.Context) {
	t := time.Now()
	stamp := tarballStamp(a.cfg.ImageDir)
	stampFile := filepath.Join(a.cfg.DataDir, "images-imported")
	if stamp != "" && readString(stampFile) == stamp+"\n"+a.cri.Endpoint() {
		present := true
		for _, ref := range images.All {
			if img, err := a.imageStatus(ctx, ref); err != nil || img == nil {
				present = false
				break
			}
		}
		if present {
			return
		}
	}
	imported, err := a.cri.ImportDir(ctx, a.cfg.ImageDir)
	if err != nil {
		a.log.Warn("importing images", "dir", a.cfg.ImageDir, "err", err)
		return
	}
	if len(imported) > 0 {
		a.log.Info("images imported", "count", len(imported), "dir", a.cfg.ImageDir, "elapsed", time.Since(t).Round(time.Millisecond))
	}
	if stamp != "" {
		_ = os.WriteFile(stampFile, []byte(stamp+"\n"+a.cri.Endpoint()), 0o644)
	}
}

// tarballStamp names the tarballs of dir with their sizes and modification times.
func tarballStamp(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return ""
		}
		fmt.Fprintf(&b, "%s %d %d;", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}

func (a *Agent) stopRuntime() {
	if a.cri != nil {
		a.cri.Close()
	}
	a.runtimeMu.Lock()
	cd := a.containerd
	a.runtimeMu.Unlock()
	if cd != nil && cd.Managed() {
		if err := cd.Stop(); err != nil {
			a.log.Warn("stopping containerd", "err", err)
		}
	}
}

// superviseRuntime starts the managed containerd again when it dies; its containers
// keep running in their shims and it recovers them, and the CRI connection reconnects to
// the same socket.
func (a *Agent) superviseRuntime(ctx context.Context) {
	for {
		a.runtimeMu.Lock()
		cd := a.containerd
		a.runtimeMu.Unlock()
		if cd == nil || cd.Exited() == nil {
			return // not a child of this agent
		}
		select {
		case <-ctx.Done():
			return
		case <-cd.Exited():
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Error("containerd exited; starting it again", "log", cd.Paths().Log)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			ncd, err := runtime.Start(ctx, cd.Config())
			if err != nil {
				a.log.Error("restarting containerd", "err", err)
				continue
			}
			a.runtimeMu.Lock()
			a.containerd = ncd
			a.runtimeMu.Unlock()
			a.log.Info("containerd running again", "pid", ncd.Pid())
			break
		}
	}
}

// buildMissingImages builds the skiff images whose tarballs are missing, when a Go
// toolchain is there to compile them.
func (a *Agent) buildMissingImages(ctx context.Context) {
	var missing []string
	for _, ref := range images.All {
		if _, err := os.Stat(filepath.Join(a.cfg.ImageDir, images.FileName(ref))); err != nil {
			missing = append(missing, ref)
		}
	}
	if len(missing) == 0 {
		return
	}
	if !goAvailable() {
		a.log.Warn("image tarballs missing and no Go toolchain to build them", "dir", a.cfg.ImageDir, "missing", missing)
		return
	}
	t := time.Now()
	if _, err := images.Build(ctx, images.Options{OutDir: a.cfg.ImageDir, Images: missing}); err != nil {
		a.log.Warn("building images", "err", err)
		return
	}
	a.log.Info("images built", "images", missing, "elapsed", time.Since(t).Round(time.Millisecond))
}

func goAvailable() bool {
	if g := os.Getenv("GO"); g != "" {
		if _, err := exec.LookPath(g); err == nil {
			return true
		}
	}
	if _, err := exec.LookPath("go"); err == nil {
		return true
	}
	_, err := os.Stat("/usr/local/go/bin/go")
	return err == nil
}

// setupInformers watches the pods bound to this node (only those: a field selector) and
// all services (for the service environment variables).
func (a *Agent) setupInformers() {
	a.informers = informers.NewSharedInformerFactory(a.client, 0)
	a.podFactory = informers.NewSharedInformerFactoryWithOptions(a.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.nodeName=" + a.cfg.NodeName
		}))
	a.podInformer = a.podFactory.Core().V1().Pods().Informer()
	a.pods = a.podFactory.Core().V1().Pods().Lister()
	a.services = a.informers.Core().V1().Services().Lister()
	a.objects = &apiObjects{client: a.client, services: a.services}
}

// podOf returns the pod ns/name when it is the one with uid.
func (a *Agent) podOf(ns, name string, uid types.UID) *corev1.Pod {
	p, err := a.pods.Pods(ns).Get(name)
	if err != nil || p.UID != uid {
		return nil
	}
	return p
}

// containerEvent records an event on a container of a pod.
func (a *Agent) containerEvent(pod *corev1.Pod, container, eventType, reason, format string, args ...any) {
	if a.recorder == nil || pod == nil {
		return
	}
	ref := podRef(pod)
	if container != "" {
		ref.FieldPath = fieldPath(pod, container)
	}
	a.recorder.Eventf(ref, eventType, reason, format, args...)
}

// podEvent records an event on a pod.
func (a *Agent) podEvent(pod *corev1.Pod, eventType, reason, format string, args ...any) {
	if a.recorder == nil || pod == nil {
		return
	}
	a.recorder.Eventf(podRef(pod), eventType, reason, format, args...)
}

func podRef(pod *corev1.Pod) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
		UID: pod.UID, ResourceVersion: pod.ResourceVersion}
}
