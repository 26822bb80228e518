package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type probeKind int

const (
	liveness probeKind = iota
	readiness
	startup
)

func (k probeKind) String() string {
	return [...]string{"Liveness", "Readiness", "Startup"}[k]
}

func probeOf(c *corev1.Container, k probeKind) *corev1.Probe {
	switch k {
	case liveness:
		return c.LivenessProbe
	case readiness:
		return c.ReadinessProbe
	}
	return c.StartupProbe
}

type probeKey struct {
	uid       types.UID
	container string
	kind      probeKind
}

// probeResults are the probe outcomes of one container (by ID).
type probeResults struct {
	ready     bool
	started   bool
	unhealthy bool
	message   string
}

// probeManager runs one worker per probe of each running container and keeps the
// results; a result that changes wakes the pod's worker.
type probeManager struct {
	a        *Agent
	onChange func(types.UID)

	mu      sync.Mutex
	workers map[probeKey]*probeWorker
	results map[string]*probeResults
}

func newProbeManager(a *Agent, onChange func(types.UID)) *probeManager {
	return &probeManager{a: a, onChange: onChange, workers: map[probeKey]*probeWorker{}, results: map[string]*probeResults{}}
}

func (m *probeManager) result(id string) *probeResults {
	r := m.results[id]
	if r == nil {
		r = &probeResults{}
		m.results[id] = r
	}
	return r
}

// Ready, Started and Unhealthy answer for a container ID.
func (m *probeManager) Ready(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.results[id]
	return r != nil && r.ready
}

func (m *probeManager) Started(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.results[id]
	return r != nil && r.started
}

func (m *probeManager) Unhealthy(id string) (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.results[id]
	if r == nil {
		return false, ""
	}
	return r.unhealthy, r.message
}

// seed sets a container's results from what the API last showed, so that an agent
// restart does not flip ready pods to unready until the first probe.
func (m *probeManager) seed(id string, ready, started bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.results[id]; ok {
		return
	}
	m.results[id] = &probeResults{ready: ready, started: started}
}

func (m *probeManager) forgetContainer(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.results, id)
	for k, w := range m.workers {
		if w.containerID == id {
			w.stop()
			delete(m.workers, k)
		}
	}
}

// removePod stops every worker of the pod.
func (m *probeManager) removePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, w := range m.workers {
		if k.uid == uid {
			w.stop()
			delete(m.workers, k)
			delete(m.results, w.containerID)
		}
	}
}

// syncPod starts workers for the probes of running containers and stops those of
// containers that are gone.
func (m *probeManager) syncPod(ctx context.Context, pod *corev1.Pod, st *podState, podIPs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[probeKey]bool{}
	for _, c := range allContainers(pod) {
		if _, kind := specContainer(pod, c.Name); kind == kindInit {
			continue // plain init containers have no probes
		}
		ci := st.latest(c.Name)
		if ci == nil || !ci.running() {
			continue
		}
		for _, k := range []probeKind{liveness, readiness, startup} {
			p := probeOf(c, k)
			if p == nil {
				continue
			}
			key := probeKey{pod.UID, c.Name, k}
			want[key] = true
			if w := m.workers[key]; w != nil {
				if w.containerID == ci.ID {
					continue
				}
				w.stop()
			}
			r := m.result(ci.ID)
			if k == startup && r.started {
				continue // already started (seeded after an agent restart)
			}
			w := &probeWorker{m: m, key: key, pod: pod, container: c, probe: p, containerID: ci.ID,
				startedAt: ci.StartedAt, podIPs: podIPs, done: make(chan struct{})}
			m.workers[key] = w
			go w.run(ctx)
		}
	}
	for k, w := range m.workers {
		if k.uid == pod.UID && !want[k] {
			w.stop()
			delete(m.workers, k)
		}
	}
	// Results of containers that no longer run mean nothing anymore.
	for _, ci := range st.Containers {
		if !ci.running() {
			delete(m.results, ci.ID)
		}
	}
}

type probeWorker struct {
	m           *probeManager
	key         probeKey
	pod         *corev1.Pod
	container   *corev1.Container
	probe       *corev1.Probe
	containerID string
	startedAt   time.Time
	podIPs      []string

	once sync.Once
	done chan struct{}
}

func (w *probeWorker) stop() { w.once.Do(func() { close(w.done) }) }

func (w *probeWorker) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
		return false
	case <-t.C:
		return true
	}
}

func (w *probeWorker) run(ctx context.Context) {
	p := w.probe
	period := time.Duration(p.PeriodSeconds) * time.Second
	if period <= 0 {
		period = 10 * time.Second
	}
	failureThreshold, successThreshold := int(p.FailureThreshold), int(p.SuccessThreshold)
	if failureThreshold <= 0 {
		failureThreshold = 3
	}
	if successThreshold <= 0 {
		successThreshold = 1
	}
	start := w.startedAt
	if start.IsZero() {
		start = time.Now()
	}
	if !w.sleep(time.Until(start.Add(time.Duration(p.InitialDelaySeconds) * time.Second))) {
		return
	}
	var successes, failures int
	for {
		select {
		case <-w.done:
			return
		case <-ctx.Done():
			return
		default:
		}
		if w.key.kind != startup && w.container.StartupProbe != nil && !w.m.Started(w.containerID) {
			if !w.sleep(period) {
				return
			}
			continue
		}
		ok, output := w.m.a.runProbe(ctx, w.pod, w.container, w.containerID, w.podIPs, p)
		select {
		case <-w.done:
			return // the container went while probing: the result means nothing
		default:
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			w.m.a.containerEvent(w.pod, w.container.Name, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", w.key.kind, output)
		}
		changed, finished := w.record(ok, successes, failures, successThreshold, failureThreshold)
		if changed {
			w.m.onChange(w.key.uid)
		}
		if finished {
			return
		}
		if !w.sleep(period) {
			return
		}
	}
}

// record applies the thresholds; it tells whether a result changed and whether the
// worker is finished (startup succeeded, or the container is to be killed).
func (w *probeWorker) record(ok bool, successes, failures, successThreshold, failureThreshold int) (changed, finished bool) {
	m := w.m
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.result(w.containerID)
	switch w.key.kind {
	case readiness:
		if ok && successes >= successThreshold && !r.ready {
			r.ready, changed = true, true
		}
		if !ok && failures >= failureThreshold && r.ready {
			r.ready, changed = false, true
		}
	case liveness:
		if !ok && failures >= failureThreshold {
			r.unhealthy, r.message = true, fmt.Sprintf("Container %s failed liveness probe, will be restarted", w.container.Name)
			return true, true
		}
	case startup:
		if ok {
			r.started = true
			return true, true
		}
		if failures >= failureThreshold {
			r.unhealthy, r.message = true, fmt.Sprintf("Container %s failed startup probe, will be restarted", w.container.Name)
			return true, true
		}
	}
	return changed, false
}

// runProbe runs one probe and returns its outcome and, on failure, why.
func (a *Agent) runProbe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID string, podIPs []string, p *corev1.Probe) (bool, string) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	host := first(podIPs)
	if pod.Spec.HostNetwork || host == "" {
		host = first(a.nodeIPs)
	}
	switch {
	case p.Exec != nil:
		out, err := a.execProbe(ctx, containerID, p.Exec.Command, timeout)
		if err != nil {
			if out != "" {
				return false, strings.TrimSpace(out)
			}
			return false, err.Error()
		}
		return true, ""
	case p.HTTPGet != nil:
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if _, err := httpCheck(pctx, p.HTTPGet, host, c, "kube-probe/1.37"); err != nil {
			return false, err.Error()
		}
		return true, ""
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return false, err.Error()
		}
		h := p.TCPSocket.Host
		if h == "" {
			h = host
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(h, strconv.Itoa(port)), timeout)
		if err != nil {
			return false, fmt.Sprintf("dial tcp %s: %v", net.JoinHostPort(h, strconv.Itoa(port)), unwrapNet(err))
		}
		conn.Close()
		return true, ""
	case p.GRPC != nil:
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		svc := ""
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		if err := grpcCheck(pctx, net.JoinHostPort(host, strconv.Itoa(int(p.GRPC.Port))), svc); err != nil {
			return false, err.Error()
		}
		return true, ""
	}
	return false, "probe has no handler"
}

func unwrapNet(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// execProbe runs cmd in the container; a non-zero exit is an error, and the output
// (stdout then stderr) is returned either way.
func (a *Agent) execProbe(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (string, error) {
	secs := int64(timeout / time.Second)
	if secs < 1 {
		secs = 1
	}
	ectx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	resp, err := a.rt.ExecSync(ectx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: cmd, Timeout: secs})
	if err != nil {
		if strings.Contains(err.Error(), "timeout") || ectx.Err() != nil {
			return "", fmt.Errorf("command timed out after %s", timeout)
		}
		return "", errors.New(grpcMessage(err))
	}
	out := string(resp.Stdout) + string(resp.Stderr)
	if resp.ExitCode != 0 {
		return out, fmt.Errorf("command %q exited with %d", strings.Join(cmd, " "), resp.ExitCode)
	}
	return out, nil
}

// resolvePort turns a probe's port (a number or a container port's name) into a number.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	if c != nil {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("couldn't find port: %s", p.StrVal)
}

var probeTransport = &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // probes do not verify, as in Kubernetes
	DisableKeepAlives: true,
	Proxy:             nil,
}

// httpCheck performs an HTTP GET probe or hook: a status from 200 to 399 succeeds.
// Redirects to the same host are followed; one to another host counts as success.
func httpCheck(ctx context.Context, h *corev1.HTTPGetAction, host string, c *corev1.Container, userAgent string) (string, error) {
	port, err := resolvePort(h.Port, c)
	if err != nil {
		return "", err
	}
	if h.Host != "" {
		host = h.Host
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if p, q, ok := strings.Cut(path, "?"); ok {
		u.Path, u.RawQuery = p, q
	} else {
		u.Path = path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	client := &http.Client{Transport: probeTransport, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 || r.URL.Hostname() != via[0].URL.Hostname() {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return string(body), nil
	}
	return string(body), fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
}

// grpcCheck calls the gRPC health service (grpc.health.v1) at addr.
func grpcCheck(ctx context.Context, addr, service string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("failed to connect service %q within %s: %v", addr, timeLeft(ctx), grpcMessage(err))
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("service unhealthy (responded with %q)", resp.Status)
	}
	return nil
}

func timeLeft(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d).Round(time.Second)
	}
	return 0
}
