package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime is an in-memory CRI runtime: enough of RuntimeService and ImageService for
// the pod worker. Tests move containers along with exit.
type fakeRuntime struct {
	runtimeapi.RuntimeServiceClient // methods not implemented here panic
	runtimeapi.ImageServiceClient

	mu         sync.Mutex
	n          int
	sandboxes  map[string]*fakeSandbox
	containers map[string]*fakeContainer
	missing    map[string]bool // images that are not present
	calls      []string
}

type fakeSandbox struct {
	cfg     *runtimeapi.PodSandboxConfig
	ready   bool
	created time.Time
}

type fakeContainer struct {
	sandbox  string
	cfg      *runtimeapi.ContainerConfig
	state    runtimeapi.ContainerState
	created  time.Time
	started  time.Time
	finished time.Time
	exitCode int32
	reason   string
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{sandboxes: map[string]*fakeSandbox{}, containers: map[string]*fakeContainer{}, missing: map[string]bool{}}
}

func (f *fakeRuntime) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func notFound(id string) error { return status.Errorf(codes.NotFound, "%s not found", id) }

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// exit makes the running container named name exit.
func (f *fakeRuntime) exit(name string, code int32, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.cfg.Metadata.Name == name && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.state, c.exitCode, c.reason, c.finished = runtimeapi.ContainerState_CONTAINER_EXITED, code, reason, time.Now()
		}
	}
}

func (f *fakeRuntime) count(name string) (all, running int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.cfg.Metadata.Name == name {
			all++
			if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
				running++
			}
		}
	}
	return all, running
}

func (f *fakeRuntime) RunPodSandbox(_ context.Context, r *runtimeapi.RunPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RunPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := fmt.Sprintf("sb%d", f.n)
	f.sandboxes[id] = &fakeSandbox{cfg: r.Config, ready: true, created: time.Now()}
	f.record("RunPodSandbox %s", r.Config.Metadata.Name)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (f *fakeRuntime) StopPodSandbox(_ context.Context, r *runtimeapi.StopPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.StopPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.sandboxes[r.PodSandboxId]
	if sb == nil {
		return nil, notFound(r.PodSandboxId)
	}
	sb.ready = false
	for _, c := range f.containers {
		if c.sandbox == r.PodSandboxId && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.state, c.exitCode, c.finished = runtimeapi.ContainerState_CONTAINER_EXITED, 137, time.Now()
		}
	}
	f.record("StopPodSandbox")
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeRuntime) RemovePodSandbox(_ context.Context, r *runtimeapi.RemovePodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RemovePodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sandboxes, r.PodSandboxId)
	for id, c := range f.containers {
		if c.sandbox == r.PodSandboxId {
			delete(f.containers, id)
		}
	}
	f.record("RemovePodSandbox")
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (f *fakeRuntime) PodSandboxStatus(_ context.Context, r *runtimeapi.PodSandboxStatusRequest, _ ...grpc.CallOption) (*runtimeapi.PodSandboxStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.sandboxes[r.PodSandboxId]
	if sb == nil {
		return nil, notFound(r.PodSandboxId)
	}
	state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	if sb.ready {
		state = runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{Id: r.PodSandboxId, State: state,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.42.0.9"}}}, nil
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, r *runtimeapi.ListPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &runtimeapi.ListPodSandboxResponse{}
	for id, sb := range f.sandboxes {
		if !matches(sb.cfg.Labels, r.GetFilter().GetLabelSelector()) {
			continue
		}
		state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		if sb.ready {
			state = runtimeapi.PodSandboxState_SANDBOX_READY
		}
		out.Items = append(out.Items, &runtimeapi.PodSandbox{Id: id, Metadata: sb.cfg.Metadata, State: state, CreatedAt: sb.created.UnixNano(), Labels: sb.cfg.Labels})
	}
	return out, nil
}

func (f *fakeRuntime) CreateContainer(_ context.Context, r *runtimeapi.CreateContainerRequest, _ ...grpc.CallOption) (*runtimeapi.CreateContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sandboxes[r.PodSandboxId] == nil {
		return nil, notFound(r.PodSandboxId)
	}
	f.n++
	id := fmt.Sprintf("c%d", f.n)
	f.containers[id] = &fakeContainer{sandbox: r.PodSandboxId, cfg: r.Config, state: runtimeapi.ContainerState_CONTAINER_CREATED, created: time.Now()}
	f.record("CreateContainer %s", r.Config.Metadata.Name)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (f *fakeRuntime) StartContainer(_ context.Context, r *runtimeapi.StartContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StartContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[r.ContainerId]
	if c == nil {
		return nil, notFound(r.ContainerId)
	}
	c.state, c.started = runtimeapi.ContainerState_CONTAINER_RUNNING, time.Now()
	f.record("StartContainer %s", c.cfg.Metadata.Name)
	return &runtimeapi.StartContainerResponse{}, nil
}

func (f *fakeRuntime) StopContainer(_ context.Context, r *runtimeapi.StopContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StopContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[r.ContainerId]
	if c == nil {
		return nil, notFound(r.ContainerId)
	}
	if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		c.state, c.exitCode, c.finished = runtimeapi.ContainerState_CONTAINER_EXITED, 0, time.Now()
	}
	f.record("StopContainer %s timeout=%d", c.cfg.Metadata.Name, r.Timeout)
	return &runtimeapi.StopContainerResponse{}, nil
}

func (f *fakeRuntime) RemoveContainer(_ context.Context, r *runtimeapi.RemoveContainerRequest, _ ...grpc.CallOption) (*runtimeapi.RemoveContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, r.ContainerId)
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (f *fakeRuntime) ListContainers(_ context.Context, r *runtimeapi.ListContainersRequest, _ ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &runtimeapi.ListContainersResponse{}
	for id, c := range f.containers {
		if !matches(c.cfg.Labels, r.GetFilter().GetLabelSelector()) {
			continue
		}
		out.Containers = append(out.Containers, &runtimeapi.Container{Id: id, PodSandboxId: c.sandbox, Metadata: c.cfg.Metadata,
			State: c.state, CreatedAt: c.created.UnixNano(), Labels: c.cfg.Labels, Annotations: c.cfg.Annotations, Image: c.cfg.Image})
	}
	return out, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[r.ContainerId]
	if c == nil {
		return nil, notFound(r.ContainerId)
	}
	ts := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixNano()
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: r.ContainerId, Metadata: c.cfg.Metadata, State: c.state,
		CreatedAt: ts(c.created), StartedAt: ts(c.started), FinishedAt: ts(c.finished), ExitCode: c.exitCode, Reason: c.reason,
		Image: c.cfg.Image, ImageRef: "sha256:feed", Labels: c.cfg.Labels, Annotations: c.cfg.Annotations}}, nil
}

func (f *fakeRuntime) ImageStatus(_ context.Context, r *runtimeapi.ImageStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ImageStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missing[r.Image.Image] {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: "sha256:feed", RepoTags: []string{r.Image.Image}, Size: 1000}}, nil
}

func (f *fakeRuntime) PullImage(_ context.Context, r *runtimeapi.PullImageRequest, _ ...grpc.CallOption) (*runtimeapi.PullImageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("PullImage %s", r.Image.Image)
	if f.missing[r.Image.Image] {
		return nil, status.Errorf(codes.Unknown, "failed to resolve reference %q: not found", r.Image.Image)
	}
	return &runtimeapi.PullImageResponse{ImageRef: "sha256:feed"}, nil
}
