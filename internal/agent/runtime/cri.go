package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxMsgSize bounds CRI messages (ListContainers on a busy node can be large).
const maxMsgSize = 16 << 20

// Client is a CRI client (RuntimeService and ImageService) over a unix socket. The same
// connection also reaches containerd's own services, which Import uses.
type Client struct {
	Runtime  runtimeapi.RuntimeServiceClient
	Images   runtimeapi.ImageServiceClient
	conn     *grpc.ClientConn
	endpoint string
	// Snapshotter used when Import unpacks layers. Empty: the one CRI reports in its
	// verbose status, else "overlayfs".
	Snapshotter string
}

// Dial connects to the CRI endpoint (unix:///path or /path) and checks that the runtime
// answers Version. Without a deadline in ctx, the check gives up after 10 seconds.
func Dial(ctx context.Context, endpoint string) (*Client, error) {
	endpoint = normalizeEndpoint(endpoint)
	conn, err := grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, err
	}
	c := &Client{
		Runtime:  runtimeapi.NewRuntimeServiceClient(conn),
		Images:   runtimeapi.NewImageServiceClient(conn),
		conn:     conn,
		endpoint: endpoint,
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if _, err := c.Version(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("CRI runtime at %s: %w", endpoint, err)
	}
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Endpoint returns the endpoint the client is connected to.
func (c *Client) Endpoint() string { return c.endpoint }

// Conn returns the gRPC connection (for containerd's own services).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// IsNotFound tells whether err is a CRI NotFound error.
func IsNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// Version returns the runtime's name and versions.
func (c *Client) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	return c.Runtime.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
}

// Status returns the runtime conditions (verbose adds runtime-specific info).
func (c *Client) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	return c.Runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: verbose})
}

// NotReady returns the runtime conditions that are not true (RuntimeReady, NetworkReady),
// each with its reason and message; none means ready.
func (c *Client) NotReady(ctx context.Context) ([]string, error) {
	st, err := c.Status(ctx, false)
	if err != nil {
		return nil, err
	}
	if st.Status == nil {
		return []string{"no status"}, nil
	}
	var bad []string
	seen := map[string]bool{}
	for _, cond := range st.Status.Conditions {
		seen[cond.Type] = true
		if !cond.Status {
			bad = append(bad, fmt.Sprintf("%s=false (%s: %s)", cond.Type, cond.Reason, cond.Message))
		}
	}
	for _, t := range []string{runtimeapi.RuntimeReady, runtimeapi.NetworkReady} {
		if !seen[t] {
			bad = append(bad, t+" missing")
		}
	}
	return bad, nil
}

// WaitReady polls Status until RuntimeReady and NetworkReady are true (NetworkReady needs a
// CNI config in the runtime's conf dir).
func (c *Client) WaitReady(ctx context.Context) error {
	var last []string
	for {
		bad, err := c.NotReady(ctx)
		if err == nil && len(bad) == 0 {
			return nil
		}
		if err != nil {
			last = []string{err.Error()}
		} else {
			last = bad
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("runtime not ready: %s", strings.Join(last, "; "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CRISnapshotter returns the snapshotter the CRI plugin uses, from its verbose status
// ("" when it does not say).
func (c *Client) CRISnapshotter(ctx context.Context) (string, error) {
	st, err := c.Status(ctx, true)
	if err != nil {
		return "", err
	}
	var cfg struct {
		Containerd struct {
			Snapshotter string `json:"snapshotter"`
		} `json:"containerd"`
	}
	if raw := st.Info["config"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			return "", fmt.Errorf("CRI config: %w", err)
		}
	}
	return cfg.Containerd.Snapshotter, nil
}

// RunPodSandbox creates and starts a pod sandbox and returns its ID.
func (c *Client) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	r, err := c.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: runtimeHandler})
	if err != nil {
		return "", err
	}
	return r.PodSandboxId, nil
}

// StopPodSandbox stops every container of the sandbox and tears its network down.
func (c *Client) StopPodSandbox(ctx context.Context, id string) error {
	_, err := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	return err
}

// RemovePodSandbox removes the sandbox and its containers (a missing one is no error).
func (c *Client) RemovePodSandbox(ctx context.Context, id string) error {
	_, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	if IsNotFound(err) {
		return nil
	}
	return err
}

// PodSandboxStatus returns the sandbox's status; verbose adds the runtime's info map.
func (c *Client) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	return c.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: verbose})
}

// ListPodSandbox lists sandboxes matching filter (nil: all).
func (c *Client) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	r, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	return r.Items, nil
}

// PodIP returns the sandbox's primary IP ("" with host networking).
func (c *Client) PodIP(ctx context.Context, id string) (string, error) {
	st, err := c.PodSandboxStatus(ctx, id, false)
	if err != nil {
		return "", err
	}
	if st.Status == nil || st.Status.Network == nil {
		return "", nil
	}
	return st.Status.Network.Ip, nil
}

// PodNetNS returns the path of the sandbox's network namespace as the runtime reports it in
// its verbose info ("" when the runtime does not say, or with host networking).
func (c *Client) PodNetNS(ctx context.Context, id string) (string, error) {
	st, err := c.PodSandboxStatus(ctx, id, true)
	if err != nil {
		return "", err
	}
	var info struct {
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct {
					Type string `json:"type"`
					Path string `json:"path"`
				} `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	raw, ok := st.Info["info"]
	if !ok {
		return "", nil
	}
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		return "", fmt.Errorf("sandbox info: %w", err)
	}
	for _, ns := range info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path, nil
		}
	}
	return "", nil
}

// CreateContainer creates a container in the sandbox and returns its ID.
func (c *Client) CreateContainer(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig, sandboxCfg *runtimeapi.PodSandboxConfig) (string, error) {
	r, err := c.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: sandboxCfg})
	if err != nil {
		return "", err
	}
	return r.ContainerId, nil
}

// StartContainer starts a created container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	_, err := c.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	return err
}

// StopContainer stops a container: SIGTERM (or the image's stop signal), SIGKILL after
// timeout seconds.
func (c *Client) StopContainer(ctx context.Context, id string, timeout int64) error {
	_, err := c.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout})
	return err
}

// RemoveContainer removes a container (a missing one is no error).
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	_, err := c.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	if IsNotFound(err) {
		return nil
	}
	return err
}

// ListContainers lists containers matching filter (nil: all).
func (c *Client) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	r, err := c.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	return r.Containers, nil
}

// ContainerStatus returns a container's status.
func (c *Client) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatus, error) {
	r, err := c.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: verbose})
	if err != nil {
		return nil, err
	}
	return r.Status, nil
}

// ContainerStats returns a container's resource usage.
func (c *Client) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	r, err := c.Runtime.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		return nil, err
	}
	return r.Stats, nil
}

// ListContainerStats returns the resource usage of the containers matching filter.
func (c *Client) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	r, err := c.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	if err != nil {
		return nil, err
	}
	return r.Stats, nil
}

// UpdateContainerResources changes a running container's Linux resources.
func (c *Client) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	_, err := c.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: res})
	return err
}

// ReopenContainerLog asks the runtime to reopen a container's log file (after rotation).
func (c *Client) ReopenContainerLog(ctx context.Context, id string) error {
	_, err := c.Runtime.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
	return err
}

// ExecResult is the outcome of ExecSync.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// ExecSync runs cmd in a running container and waits for it (timeout 0: no limit).
func (c *Client) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (ExecResult, error) {
	r, err := c.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: int64(timeout / time.Second)})
	if err != nil {
		return ExecResult{}, err
	}
	return ExecResult{Stdout: r.Stdout, Stderr: r.Stderr, ExitCode: r.ExitCode}, nil
}

// Exec, Attach and PortForward return a URL on the runtime's streaming server.

// Exec prepares a streaming exec and returns its URL.
func (c *Client) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (string, error) {
	r, err := c.Runtime.Exec(ctx, req)
	if err != nil {
		return "", err
	}
	return r.Url, nil
}

// Attach prepares a streaming attach and returns its URL.
func (c *Client) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (string, error) {
	r, err := c.Runtime.Attach(ctx, req)
	if err != nil {
		return "", err
	}
	return r.Url, nil
}

// PortForward prepares a streaming port-forward and returns its URL.
func (c *Client) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (string, error) {
	r, err := c.Runtime.PortForward(ctx, req)
	if err != nil {
		return "", err
	}
	return r.Url, nil
}

// ImageStatus returns the image ref resolves to, or nil when it is not present.
func (c *Client) ImageStatus(ctx context.Context, ref string) (*runtimeapi.Image, error) {
	r, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return r.Image, nil
}

// ListImages lists the runtime's images.
func (c *Client) ListImages(ctx context.Context) ([]*runtimeapi.Image, error) {
	r, err := c.Images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, err
	}
	return r.Images, nil
}

// PullImage pulls ref and returns the image reference the runtime reports.
func (c *Client) PullImage(ctx context.Context, ref string, auth *runtimeapi.AuthConfig, sandboxCfg *runtimeapi.PodSandboxConfig) (string, error) {
	r, err := c.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth, SandboxConfig: sandboxCfg})
	if err != nil {
		return "", err
	}
	return r.ImageRef, nil
}

// EnsureImage returns the present image for ref, pulling it when it is missing and pull is
// true.
func (c *Client) EnsureImage(ctx context.Context, ref string, pull bool) (*runtimeapi.Image, error) {
	img, err := c.ImageStatus(ctx, ref)
	if err != nil || img != nil {
		return img, err
	}
	if !pull {
		return nil, fmt.Errorf("image %s not present", ref)
	}
	if _, err := c.PullImage(ctx, ref, nil, nil); err != nil {
		return nil, err
	}
	img, err = c.ImageStatus(ctx, ref)
	if err == nil && img == nil {
		err = fmt.Errorf("image %s not present after pull", ref)
	}
	return img, err
}

// RemoveImage removes an image (a missing one is no error).
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	_, err := c.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if IsNotFound(err) {
		return nil
	}
	return err
}

// ImageFsInfo returns the usage of the image filesystems.
func (c *Client) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return c.Images.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
}

// RemoveAllPods stops and removes every sandbox (and so every container) the runtime has:
// used at teardown and by tests. It goes on after errors and returns them joined.
func (c *Client) RemoveAllPods(ctx context.Context) error {
	pods, err := c.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		if err := c.StopPodSandbox(ctx, p.Id); err != nil && !IsNotFound(err) {
			errs = append(errs, fmt.Errorf("stop sandbox %s: %w", p.Id, err))
		}
		if err := c.RemovePodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", p.Id, err))
		}
	}
	return errors.Join(errs...)
}
