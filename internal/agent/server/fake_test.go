package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime is an in-memory Runtime.
type fakeRuntime struct {
	mu         sync.Mutex
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	statuses   map[string]*runtimeapi.ContainerStatus
	stats      []*runtimeapi.ContainerStats
	imageFs    *runtimeapi.ImageFsInfoResponse
	streamURL  string
	execs      []*runtimeapi.ExecRequest
	attaches   []*runtimeapi.AttachRequest
	forwards   []*runtimeapi.PortForwardRequest
}

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeRuntime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if filter != nil {
			if !matches(c.Labels, filter.LabelSelector) {
				continue
			}
			if filter.State != nil && filter.State.State != c.State {
				continue
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.statuses[id]; ok {
		return st, nil
	}
	return nil, status.Error(codes.NotFound, "no such container")
}

func (f *fakeRuntime) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, nil
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, s := range f.sandboxes {
		if filter != nil {
			if !matches(s.Labels, filter.LabelSelector) {
				continue
			}
			if filter.State != nil && filter.State.State != s.State {
				continue
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func (f *fakeRuntime) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	if f.imageFs == nil {
		return &runtimeapi.ImageFsInfoResponse{}, nil
	}
	return f.imageFs, nil
}

func (f *fakeRuntime) Exec(_ context.Context, req *runtimeapi.ExecRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.execs = append(f.execs, req)
	return f.streamURL + "/exec/token", nil
}

func (f *fakeRuntime) Attach(_ context.Context, req *runtimeapi.AttachRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attaches = append(f.attaches, req)
	return f.streamURL + "/attach/token", nil
}

func (f *fakeRuntime) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forwards = append(f.forwards, req)
	return f.streamURL + "/portforward/token", nil
}

// addPod adds a ready sandbox with the standard labels.
func (f *fakeRuntime) addPod(id, ns, name, uid string, created int64) {
	f.sandboxes = append(f.sandboxes, &runtimeapi.PodSandbox{
		Id: id, State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: created,
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: ns, Uid: uid},
		Labels:   map[string]string{LabelPodName: name, LabelPodNamespace: ns, LabelPodUID: uid},
	})
}

// addContainer adds a container of a sandbox with its status.
func (f *fakeRuntime) addContainer(id, sandbox, ns, pod, uid, name string, attempt uint32, state runtimeapi.ContainerState, created int64, logPath string) {
	if f.statuses == nil {
		f.statuses = map[string]*runtimeapi.ContainerStatus{}
	}
	f.containers = append(f.containers, &runtimeapi.Container{
		Id: id, PodSandboxId: sandbox, State: state, CreatedAt: created,
		Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		Image:    &runtimeapi.ImageSpec{Image: "img:" + name},
		Labels:   map[string]string{LabelPodName: pod, LabelPodNamespace: ns, LabelPodUID: uid, LabelContainerName: name},
	})
	f.statuses[id] = &runtimeapi.ContainerStatus{Id: id, State: state, LogPath: logPath, CreatedAt: created,
		Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt}}
}
