package agent

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sandboxInfo is one of a pod's sandboxes as the runtime reports it.
type sandboxInfo struct {
	ID        string
	Attempt   uint32
	Ready     bool
	CreatedAt time.Time
	IPs       []string // primary first; only filled for the newest sandbox
}

// containerInfo is one container of a pod as the runtime reports it.
type containerInfo struct {
	ID, SandboxID, Name string
	State               runtimeapi.ContainerState
	RestartCount        int32
	Hash                string
	Kind                string // "init", "sidecar", "regular" ("" when created elsewhere)
	CreatedAt           time.Time
	StartedAt           time.Time
	FinishedAt          time.Time
	ExitCode            int32
	Reason, Message     string
	Image, ImageRef     string
	Annotations         map[string]string
}

func (c *containerInfo) running() bool { return c.State == runtimeapi.ContainerState_CONTAINER_RUNNING }
func (c *containerInfo) exited() bool  { return c.State == runtimeapi.ContainerState_CONTAINER_EXITED }

// podState is everything the runtime has of one pod, newest first.
type podState struct {
	Sandboxes  []*sandboxInfo
	Containers []*containerInfo
}

// sandbox returns the newest sandbox (nil when there is none).
func (s *podState) sandbox() *sandboxInfo {
	if s == nil || len(s.Sandboxes) == 0 {
		return nil
	}
	return s.Sandboxes[0]
}

// latest returns the newest container named name, in any sandbox.
func (s *podState) latest(name string) *containerInfo {
	if s == nil {
		return nil
	}
	for _, c := range s.Containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// previous returns the container named name that came before the newest one.
func (s *podState) previous(name string) *containerInfo {
	seen := false
	for _, c := range s.Containers {
		if c.Name == name {
			if seen {
				return c
			}
			seen = true
		}
	}
	return nil
}

// latestIn returns the newest container named name in sandbox id.
func (s *podState) latestIn(name, id string) *containerInfo {
	for _, c := range s.Containers {
		if c.Name == name && c.SandboxID == id {
			return c
		}
	}
	return nil
}

// running returns the running containers (in any sandbox).
func (s *podState) running() []*containerInfo {
	var out []*containerInfo
	if s == nil {
		return nil
	}
	for _, c := range s.Containers {
		if c.running() {
			out = append(out, c)
		}
	}
	return out
}

// empty tells whether the runtime has nothing of the pod.
func (s *podState) empty() bool { return s == nil || (len(s.Sandboxes) == 0 && len(s.Containers) == 0) }

// stateReader reads pods' runtime state through CRI. Exited containers never change, so
// their status is cached; so are sandbox IPs.
type stateReader struct {
	rt runtimeapi.RuntimeServiceClient

	mu      sync.Mutex
	exited  map[string]*containerInfo
	sandbox map[string][]string // sandbox ID -> IPs
}

func newStateReader(rt runtimeapi.RuntimeServiceClient) *stateReader {
	return &stateReader{rt: rt, exited: map[string]*containerInfo{}, sandbox: map[string][]string{}}
}

// forget drops cached entries of removed containers and sandboxes.
func (r *stateReader) forget(ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		delete(r.exited, id)
		delete(r.sandbox, id)
	}
}

// podState reads the sandboxes and containers labelled with the pod's UID.
func (r *stateReader) podState(ctx context.Context, uid types.UID) (*podState, error) {
	sel := map[string]string{labelPodUID: string(uid)}
	sbs, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	cs, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	st := &podState{}
	for _, sb := range sbs.Items {
		si := &sandboxInfo{ID: sb.Id, Ready: sb.State == runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: time.Unix(0, sb.CreatedAt)}
		if sb.Metadata != nil {
			si.Attempt = sb.Metadata.Attempt
		}
		st.Sandboxes = append(st.Sandboxes, si)
	}
	sort.SliceStable(st.Sandboxes, func(i, j int) bool { return newerSandbox(st.Sandboxes[i], st.Sandboxes[j]) })
	if sb := st.sandbox(); sb != nil && sb.Ready {
		ips, err := r.sandboxIPs(ctx, sb.ID)
		if err != nil && !isNotFound(err) {
			return nil, err
		}
		sb.IPs = ips
	}
	for _, c := range cs.Containers {
		ci, err := r.container(ctx, c)
		if err != nil {
			if isNotFound(err) {
				continue // removed in between
			}
			return nil, err
		}
		st.Containers = append(st.Containers, ci)
	}
	sort.SliceStable(st.Containers, func(i, j int) bool { return newerContainer(st.Containers[i], st.Containers[j]) })
	return st, nil
}

func newerSandbox(a, b *sandboxInfo) bool {
	if a.Attempt != b.Attempt {
		return a.Attempt > b.Attempt
	}
	return a.CreatedAt.After(b.CreatedAt)
}

func newerContainer(a, b *containerInfo) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.RestartCount > b.RestartCount
}

func (r *stateReader) sandboxIPs(ctx context.Context, id string) ([]string, error) {
	r.mu.Lock()
	ips, ok := r.sandbox[id]
	r.mu.Unlock()
	if ok {
		return ips, nil
	}
	resp, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return nil, err
	}
	if n := resp.GetStatus().GetNetwork(); n != nil && n.Ip != "" {
		ips = append(ips, n.Ip)
		for _, ip := range n.AdditionalIps {
			if ip.Ip != "" {
				ips = append(ips, ip.Ip)
			}
		}
	}
	if resp.GetStatus().GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
		r.mu.Lock()
		r.sandbox[id] = ips
		r.mu.Unlock()
	}
	return ips, nil
}

func (r *stateReader) container(ctx context.Context, c *runtimeapi.Container) (*containerInfo, error) {
	r.mu.Lock()
	cached := r.exited[c.Id]
	r.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	resp, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
	if err != nil {
		return nil, err
	}
	s := resp.Status
	ci := &containerInfo{
		ID:          c.Id,
		SandboxID:   c.PodSandboxId,
		Name:        c.Labels[labelContainerName],
		State:       s.State,
		Hash:        s.Annotations[annContainerHash],
		Kind:        s.Annotations[annContainerKind],
		CreatedAt:   unixNano(s.CreatedAt),
		StartedAt:   unixNano(s.StartedAt),
		FinishedAt:  unixNano(s.FinishedAt),
		ExitCode:    s.ExitCode,
		Reason:      s.Reason,
		Message:     s.Message,
		ImageRef:    s.ImageRef,
		Annotations: s.Annotations,
	}
	if ci.Name == "" && s.Metadata != nil {
		ci.Name = s.Metadata.Name
	}
	ci.Image = s.Annotations[annImage]
	if ci.Image == "" && s.Image != nil {
		ci.Image = s.Image.Image
	}
	if n, err := strconv.ParseInt(s.Annotations[annRestartCount], 10, 32); err == nil {
		ci.RestartCount = int32(n)
	} else if s.Metadata != nil {
		ci.RestartCount = int32(s.Metadata.Attempt)
	}
	if ci.exited() {
		if msg := readTerminationMessage(ci); msg != "" {
			ci.Message = msg
		}
		r.mu.Lock()
		r.exited[c.Id] = ci
		r.mu.Unlock()
	}
	return ci, nil
}

func unixNano(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// maxTerminationMessage is the kubelet's limit on a termination message.
const maxTerminationMessage = 4096

// readTerminationMessage reads what the container wrote to its termination message path,
// or with FallbackToLogsOnError and a failure, the end of its log.
func readTerminationMessage(ci *containerInfo) string {
	if p := ci.Annotations[annTerminationHostPath]; p != "" {
		if b, err := readLimited(p, maxTerminationMessage); err == nil && len(b) > 0 {
			return string(b)
		}
	}
	if ci.Annotations[annTerminationPolicy] == "FallbackToLogsOnError" && ci.ExitCode != 0 {
		if p := ci.Annotations[annLogPath]; p != "" {
			return tailCRILog(p, 80, 2048)
		}
	}
	return ""
}

// annLogPath records the absolute log path (CRI reports it too, but only in status).
const annLogPath = "skiff.sh/log-path"

func readLimited(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, _ := f.Read(buf)
	return buf[:m], nil
}

// tailCRILog returns the message part of the last lines of a CRI log file ("<time>
// <stream> <P|F> <message>"), at most maxLines lines and maxBytes bytes.
func tailCRILog(path string, maxLines, maxBytes int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	var out strings.Builder
	for _, l := range lines {
		parts := strings.SplitN(l, " ", 4)
		if len(parts) == 4 {
			out.WriteString(parts[3])
			if parts[2] == "F" {
				out.WriteByte('\n')
			}
		}
	}
	s := out.String()
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	return s
}
