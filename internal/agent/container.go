package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container kinds recorded in annContainerKind.
const (
	kindInit    = "init"
	kindSidecar = "sidecar"
	kindRegular = "regular"
)

// minGracePeriod is the least time a container gets between SIGTERM and SIGKILL.
const minGracePeriod = 2

// Default masked and read-only /proc and /sys paths of unprivileged containers (the OCI
// runtime defaults Docker and the kubelet use).
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// sandboxRef is the sandbox containers are started in.
type sandboxRef struct {
	ID     string
	Config *runtimeapi.PodSandboxConfig
	IPs    []string
}

// errContainerConfig marks errors that leave the container waiting with
// CreateContainerConfigError (a missing ConfigMap key, runAsNonRoot with a root image).
var errContainerConfig = errors.New("container config")

// containerConfig builds the CRI config of one container.
func (a *Agent) containerConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, kind string, restartCount int32, sb *sandboxRef, img *runtimeapi.Image) (*runtimeapi.ContainerConfig, error) {
	env, err := makeEnvironment(ctx, pod, c, a.objects, envContext{PodIPs: sb.IPs, HostIPs: a.nodeIPs, Allocatable: a.allocatable})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errContainerConfig, err)
	}
	vars := make(map[string]string, len(env))
	kvs := make([]*runtimeapi.KeyValue, 0, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
		kvs = append(kvs, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(e.Value)})
	}
	expand := func(in []string) []string {
		if in == nil {
			return nil
		}
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = expandVars(s, vars)
		}
		return out
	}
	sc, err := containerSecurityContext(pod, c, img)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errContainerConfig, err)
	}
	mounts, err := a.volumes.containerMounts(pod, c, vars)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errContainerConfig, err)
	}
	uid := string(pod.UID)
	annotations := map[string]string{
		annContainerHash:          containerHash(c),
		annRestartCount:           strconv.Itoa(int(restartCount)),
		annTerminationMessagePath: c.TerminationMessagePath,
		annTerminationPolicy:      string(c.TerminationMessagePolicy),
		annPodGracePeriod:         strconv.FormatInt(podGracePeriod(pod), 10),
		annImage:                  c.Image,
		annContainerKind:          kind,
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if b, err := json.Marshal(c.Lifecycle.PreStop); err == nil {
			annotations[annPreStopHandler] = string(b)
		}
	}
	logPath := filepath.Join(c.Name, strconv.Itoa(int(restartCount))+".log")
	annotations[annLogPath] = filepath.Join(a.podDir(uid), logPath)

	// /etc/hosts with the pod's own name, unless the pod shares the node's network or
	// mounts its own.
	if !pod.Spec.HostNetwork && !hasMountAt(mounts, "/etc/hosts") {
		p, err := a.writeHostsFile(pod, sb.IPs)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: p})
	}
	if c.TerminationMessagePath != "" && !hasMountAt(mounts, c.TerminationMessagePath) {
		dir := filepath.Join(a.runDir(uid), "termination")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, fmt.Sprintf("%s-%d", c.Name, restartCount))
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return nil, err
		}
		_ = os.Chmod(p, 0o666) // any user the container runs as may write it
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: p})
		annotations[annTerminationHostPath] = p
	}

	cfg := &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: uint32(restartCount)},
		Image:       &runtimeapi.ImageSpec{Image: imageRefFor(c, img), UserSpecifiedImage: c.Image},
		Command:     expand(c.Command),
		Args:        expand(c.Args),
		WorkingDir:  c.WorkingDir,
		Envs:        kvs,
		Mounts:      mounts,
		Labels:      containerLabels(pod, c.Name, a.cfg.NodeName),
		Annotations: annotations,
		LogPath:     logPath,
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       containerResources(pod, c, a.memoryCapacity),
			SecurityContext: sc,
		},
	}
	return cfg, nil
}

// imageRefFor is what the container is created from: the image ID the name resolved to,
// so that a tag moved in between does not change what runs.
func imageRefFor(c *corev1.Container, img *runtimeapi.Image) string {
	if img != nil && img.Id != "" {
		return img.Id
	}
	return c.Image
}

func hasMountAt(mounts []*runtimeapi.Mount, p string) bool {
	for _, m := range mounts {
		if filepath.Clean(m.ContainerPath) == filepath.Clean(p) {
			return true
		}
	}
	return false
}

// containerSecurityContext maps the pod's and the container's security settings onto
// CRI's; runAsNonRoot is checked against the user the image runs as.
func containerSecurityContext(pod *corev1.Pod, c *corev1.Container, img *runtimeapi.Image) (*runtimeapi.LinuxContainerSecurityContext, error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	sc.Privileged = csc.Privileged != nil && *csc.Privileged
	runAsUser, runAsGroup := psc.RunAsUser, psc.RunAsGroup
	if csc.RunAsUser != nil {
		runAsUser = csc.RunAsUser
	}
	if csc.RunAsGroup != nil {
		runAsGroup = csc.RunAsGroup
	}
	if runAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *runAsUser}
	}
	if runAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *runAsGroup}
	}
	nonRoot := psc.RunAsNonRoot
	if csc.RunAsNonRoot != nil {
		nonRoot = csc.RunAsNonRoot
	}
	if nonRoot != nil && *nonRoot {
		switch {
		case runAsUser != nil:
			if *runAsUser == 0 {
				return nil, errors.New("container's runAsUser breaks non-root policy")
			}
		case img != nil && img.Uid != nil:
			if img.Uid.Value == 0 {
				return nil, errors.New("container has runAsNonRoot and image will run as root")
			}
		case img != nil && img.Username != "":
			return nil, fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", img.Username)
		default:
			return nil, errors.New("container has runAsNonRoot and image will run as root")
		}
	}
	sc.SupplementalGroups = supplementalGroups(psc)
	sc.ReadonlyRootfs = csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem
	if caps := csc.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, cp := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(cp))
		}
		for _, cp := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(cp))
		}
	}
	if csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation && !sc.Privileged {
		sc.NoNewPrivs = true
	}
	sc.Seccomp = seccompProfile(psc.SeccompProfile, csc.SeccompProfile)
	if !sc.Privileged && (csc.ProcMount == nil || *csc.ProcMount != corev1.UnmaskedProcMount) {
		sc.MaskedPaths = defaultMaskedPaths
		sc.ReadonlyPaths = defaultReadonlyPaths
	}
	return sc, nil
}

// podGracePeriod is the pod's termination grace period in seconds.
func podGracePeriod(pod *corev1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// specContainer finds a container of the pod by name, with its kind.
func specContainer(pod *corev1.Pod, name string) (*corev1.Container, string) {
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; c.Name == name {
			if isSidecar(c) {
				return c, kindSidecar
			}
			return c, kindInit
		}
	}
	for i := range pod.Spec.Containers {
		if c := &pod.Spec.Containers[i]; c.Name == name {
			return c, kindRegular
		}
	}
	return nil, ""
}

// fieldPath is how events name a container of a pod.
func fieldPath(pod *corev1.Pod, name string) string {
	_, kind := specContainer(pod, name)
	if kind == kindInit || kind == kindSidecar {
		return fmt.Sprintf("spec.initContainers{%s}", name)
	}
	return fmt.Sprintf("spec.containers{%s}", name)
}

// runContainer creates and starts a container and runs its postStart hook. The returned
// waiting reason says why it did not start, when it did not.
func (a *Agent) runContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, kind string, restartCount int32, sb *sandboxRef) (*waitingReason, error) {
	img, wr, err := a.ensureImage(ctx, pod, c)
	if err != nil {
		return wr, err
	}
	cfg, err := a.containerConfig(ctx, pod, c, kind, restartCount, sb, img)
	if err != nil {
		if errors.Is(err, errContainerConfig) {
			msg := strings.TrimPrefix(err.Error(), errContainerConfig.Error()+": ")
			a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: %s", msg)
			return &waitingReason{Reason: "CreateContainerConfigError", Message: msg}, err
		}
		return &waitingReason{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	resp, err := a.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.ID, Config: cfg, SandboxConfig: sb.Config})
	if err != nil {
		a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: %s", grpcMessage(err))
		return &waitingReason{Reason: "CreateContainerError", Message: grpcMessage(err)}, err
	}
	id := resp.ContainerId
	a.containerEvent(pod, c.Name, corev1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	if _, err := a.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: %s", grpcMessage(err))
		return &waitingReason{Reason: "RunContainerError", Message: grpcMessage(err)}, err
	}
	a.containerEvent(pod, c.Name, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		hctx, cancel := context.WithTimeout(ctx, time.Duration(podGracePeriod(pod)+30)*time.Second)
		err := a.runHandler(hctx, pod, c, id, sb.IPs, c.Lifecycle.PostStart)
		cancel()
		if err != nil {
			a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %v", err)
			ci := &containerInfo{ID: id, Name: c.Name, State: runtimeapi.ContainerState_CONTAINER_RUNNING}
			_ = a.killContainer(ctx, pod, ci, podGracePeriod(pod), "FailedPostStartHook")
			return &waitingReason{Reason: "PostStartHookError", Message: err.Error()}, fmt.Errorf("postStart hook: %w", err)
		}
	}
	return nil, nil
}

// killContainer stops a running container: its preStop hook first, then SIGTERM and
// SIGKILL after what remains of grace seconds. pod may be nil (a pod the API no longer
// has): the hook is then read from the container's annotations.
func (a *Agent) killContainer(ctx context.Context, pod *corev1.Pod, ci *containerInfo, grace int64, message string) error {
	start := time.Now()
	var preStop *corev1.LifecycleHandler
	var spec *corev1.Container
	if pod != nil {
		spec, _ = specContainer(pod, ci.Name)
		if spec != nil && spec.Lifecycle != nil {
			preStop = spec.Lifecycle.PreStop
		}
		if message == "" {
			message = "Stopping container " + ci.Name
		}
		a.containerEvent(pod, ci.Name, corev1.EventTypeNormal, "Killing", "%s", message)
	} else if raw := ci.Annotations[annPreStopHandler]; raw != "" {
		var h corev1.LifecycleHandler
		if json.Unmarshal([]byte(raw), &h) == nil {
			preStop = &h
		}
	}
	if preStop != nil && grace > 0 {
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		var ips []string
		if pod != nil {
			ips = podIPsOf(pod)
		}
		if err := a.runHandler(hctx, pod, spec, ci.ID, ips, preStop); err != nil && pod != nil {
			a.containerEvent(pod, ci.Name, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v", err)
		}
		cancel()
	}
	remaining := grace - int64(time.Since(start)/time.Second)
	if remaining < minGracePeriod {
		remaining = minGracePeriod
	}
	sctx, cancel := context.WithTimeout(ctx, time.Duration(remaining+30)*time.Second)
	defer cancel()
	_, err := a.rt.StopContainer(sctx, &runtimeapi.StopContainerRequest{ContainerId: ci.ID, Timeout: remaining})
	if isNotFound(err) {
		err = nil
	}
	a.probes.forgetContainer(ci.ID)
	return err
}

func podIPsOf(pod *corev1.Pod) []string {
	var out []string
	for _, ip := range pod.Status.PodIPs {
		out = append(out, ip.IP)
	}
	if len(out) == 0 && pod.Status.PodIP != "" {
		out = append(out, pod.Status.PodIP)
	}
	return out
}

// removeContainer deletes a container.
func (a *Agent) removeContainer(ctx context.Context, id string) error {
	_, err := a.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	if isNotFound(err) {
		err = nil
	}
	a.states.forget(id)
	return err
}

// runHandler runs a lifecycle hook (exec, httpGet, sleep; tcpSocket is accepted and does
// nothing, as in Kubernetes).
func (a *Agent) runHandler(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID string, podIPs []string, h *corev1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		timeout := time.Until(deadlineOr(ctx, time.Now().Add(30*time.Second)))
		out, err := a.execProbe(ctx, containerID, h.Exec.Command, timeout)
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
		}
		return nil
	case h.HTTPGet != nil:
		host := first(podIPs)
		if pod != nil && pod.Spec.HostNetwork {
			host = first(a.nodeIPs)
		}
		_, err := httpCheck(ctx, h.HTTPGet, host, c, "kube-lifecycle/1.37")
		return err
	case h.Sleep != nil:
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		}
		return nil
	}
	return nil
}

func deadlineOr(ctx context.Context, def time.Time) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return def
}
