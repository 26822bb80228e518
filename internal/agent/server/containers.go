package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The labels the agent puts on sandboxes and containers, as the kubelet does.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// Runtime is the part of the CRI client the server uses (*runtime.Client implements it).
type Runtime interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatus, error)
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
	Exec(ctx context.Context, req *runtimeapi.ExecRequest) (string, error)
	Attach(ctx context.Context, req *runtimeapi.AttachRequest) (string, error)
	PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (string, error)
}

// httpError is an error with the HTTP status the server answers with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// podRef names a pod on this node; UID is optional.
type podRef struct {
	Namespace, Name, UID string
}

func (p podRef) String() string { return p.Namespace + "/" + p.Name }

// containerInstances returns the runtime's containers named name in the pod, newest first:
// the current instance first, then earlier ones (restarts). When the pod's UID is not given
// and the name was used by several pods (a pod deleted and created again), only the newest
// pod's containers are returned.
func containerInstances(ctx context.Context, rt Runtime, pod podRef, name string) ([]*runtimeapi.Container, error) {
	sel := map[string]string{LabelPodNamespace: pod.Namespace, LabelPodName: pod.Name, LabelContainerName: name}
	if pod.UID != "" {
		sel[LabelPodUID] = pod.UID
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "listing containers: %v", err)
	}
	sortInstances(cs)
	if pod.UID == "" && len(cs) > 0 {
		uid := cs[0].Labels[LabelPodUID]
		kept := cs[:0]
		for _, c := range cs {
			if c.Labels[LabelPodUID] == uid {
				kept = append(kept, c)
			}
		}
		cs = kept
	}
	return cs, nil
}

// sortInstances orders containers newest first: by creation time, then attempt.
func sortInstances(cs []*runtimeapi.Container) {
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].CreatedAt != cs[j].CreatedAt {
			return cs[i].CreatedAt > cs[j].CreatedAt
		}
		return attempt(cs[i]) > attempt(cs[j])
	})
}

func attempt(c *runtimeapi.Container) uint32 {
	if c.Metadata == nil {
		return 0
	}
	return c.Metadata.Attempt
}

// podExists tells whether the runtime has a sandbox for the pod.
func podExists(ctx context.Context, rt Runtime, pod podRef) (bool, error) {
	sel := map[string]string{LabelPodNamespace: pod.Namespace, LabelPodName: pod.Name}
	if pod.UID != "" {
		sel[LabelPodUID] = pod.UID
	}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return false, errorf(http.StatusInternalServerError, "listing pod sandboxes: %v", err)
	}
	return len(sbs) > 0, nil
}

// runningContainer returns the running instance of a container, for exec and attach.
func runningContainer(ctx context.Context, rt Runtime, pod podRef, name string) (*runtimeapi.Container, error) {
	cs, err := containerInstances(ctx, rt, pod, name)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c, nil
		}
	}
	if len(cs) > 0 {
		return nil, errorf(http.StatusBadRequest, "container %q in pod %q is not running", name, pod.Name)
	}
	if ok, err := podExists(ctx, rt, pod); err != nil {
		return nil, err
	} else if !ok {
		return nil, errorf(http.StatusNotFound, "pod %q not found", pod.String())
	}
	return nil, errorf(http.StatusNotFound, "container not found (%q)", name)
}

// logTarget is the log file to read and how to tell whether its writer is still running.
type logTarget struct {
	path        string
	containerID string
	running     bool
}

// logFor picks the log file of the current (or, with previous, the previous) instance of a
// container, with the kubelet's messages when there is none.
func logFor(ctx context.Context, rt Runtime, pod podRef, name string, previous bool) (*logTarget, error) {
	cs, err := containerInstances(ctx, rt, pod, name)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		if ok, err := podExists(ctx, rt, pod); err != nil {
			return nil, err
		} else if !ok {
			return nil, errorf(http.StatusNotFound, "pod %q not found", pod.String())
		}
		if previous {
			return nil, errorf(http.StatusBadRequest, "previous terminated container %q in pod %q not found", name, pod.Name)
		}
		return nil, errorf(http.StatusBadRequest, "container %q in pod %q is waiting to start: ContainerCreating", name, pod.Name)
	}
	cur := cs[0]
	st, err := rt.ContainerStatus(ctx, cur.Id, false)
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "container status: %v", err)
	}
	if !previous {
		if st.LogPath == "" {
			return nil, errorf(http.StatusNotFound, "container %q in pod %q has no log file", name, pod.Name)
		}
		return &logTarget{path: st.LogPath, containerID: cur.Id, running: st.State == runtimeapi.ContainerState_CONTAINER_RUNNING}, nil
	}
	// The previous instance: the runtime may still have it (the agent keeps the last dead
	// container), else its log file may still be there beside the current one
	// (<container>/<restartCount>.log).
	if len(cs) > 1 {
		pst, err := rt.ContainerStatus(ctx, cs[1].Id, false)
		if err == nil && pst.LogPath != "" {
			return &logTarget{path: pst.LogPath, containerID: cs[1].Id}, nil
		}
	}
	if a := attempt(cur); a > 0 && st.LogPath != "" {
		p := filepath.Join(filepath.Dir(st.LogPath), strconv.FormatUint(uint64(a-1), 10)+".log")
		if fileExists(p) {
			return &logTarget{path: p}, nil
		}
	}
	return nil, errorf(http.StatusBadRequest, "previous terminated container %q in pod %q not found", name, pod.Name)
}
