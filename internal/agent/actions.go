package agent

import (
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podActions is the plan of one sync, computed from the pod's spec and what the runtime
// has before anything is done (the kubelet's podActions).
type podActions struct {
	// KillPod stops every running container and the sandbox: the sandbox is gone or
	// broken, or the pod has finished.
	KillPod bool
	// CreateSandbox makes a new sandbox (after KillPod when an old one is there).
	CreateSandbox bool
	// Attempt is the new sandbox's attempt number.
	Attempt uint32
	// SandboxID is the ready sandbox to start containers in (when !CreateSandbox).
	SandboxID string
	// InitStart are the init containers to start, by index: the next one in order, or
	// sidecars (restartable init containers) to restart.
	InitStart []int
	// Start are the regular containers to start, by index.
	Start []int
	// Kill are running containers to stop first (liveness failure, changed spec).
	Kill []killAction
	// Remove are containers that never ran (created, unknown) to delete before the start.
	Remove []string
	// InitFailed: an init container failed and the restart policy gives up (Never).
	InitFailed bool
	// Done: the pod will run nothing anymore (every container finished for good).
	Done bool
}

type killAction struct {
	ID, Name string
	Reason   string // event message
}

// healthFunc tells whether a running container must be killed for its probes (liveness
// or startup failure) and why.
type healthFunc func(containerID string) (unhealthy bool, message string)

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// restartAllowed tells whether an exited container may run again under the pod's policy.
func restartAllowed(policy corev1.RestartPolicy, c *containerInfo) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return c.ExitCode != 0
	default:
		return true
	}
}

func isTerminalPhase(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

// computePodActions decides what a sync does for a pod that is not being deleted.
func computePodActions(pod *corev1.Pod, st *podState, unhealthy healthFunc) podActions {
	if unhealthy == nil {
		unhealthy = func(string) (bool, string) { return false, "" }
	}
	a := podActions{}
	policy := pod.Spec.RestartPolicy
	sb := st.sandbox()
	anythingRunning := len(st.running()) > 0

	// A pod the API already holds as finished never runs again.
	if isTerminalPhase(pod.Status.Phase) {
		a.Done = true
		a.KillPod = anythingRunning || (sb != nil && sb.Ready)
		return a
	}

	if sb == nil || !sb.Ready {
		if sb != nil && !podMayRunAgain(pod, st) {
			// The sandbox went away after the pod's containers ran: with Never (or
			// OnFailure after success) the pod is over.
			a.Done = true
			a.KillPod = anythingRunning
			return a
		}
		a.KillPod = sb != nil
		a.CreateSandbox = true
		if sb != nil {
			a.Attempt = sb.Attempt + 1
		}
		if len(pod.Spec.InitContainers) > 0 {
			a.InitStart = []int{0}
			return a
		}
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			if prev := st.latest(c.Name); prev != nil && prev.exited() && policy == corev1.RestartPolicyOnFailure && prev.ExitCode == 0 {
				continue // succeeded once: OnFailure does not run it again
			}
			a.Start = append(a.Start, i)
		}
		return a
	}
	a.SandboxID = sb.ID

	initDone := computeInitActions(pod, st, sb, unhealthy, &a)
	if a.InitFailed {
		a.KillPod = true
		a.Done = true
		return a
	}
	if !initDone {
		return a
	}

	finished := 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		ci := st.latestIn(c.Name, sb.ID)
		if ci == nil {
			// Never ran in this sandbox; it may have in an earlier one.
			if prev := st.latest(c.Name); prev != nil && prev.exited() && !restartAllowed(policy, prev) {
				finished++
				continue
			}
			a.Start = append(a.Start, i)
			continue
		}
		switch ci.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			if ci.Hash != "" && ci.Hash != containerHash(c) {
				a.Kill = append(a.Kill, killAction{ID: ci.ID, Name: c.Name, Reason: "Container " + c.Name + " definition changed, will be restarted"})
				a.Start = append(a.Start, i)
				continue
			}
			if bad, msg := unhealthy(ci.ID); bad {
				a.Kill = append(a.Kill, killAction{ID: ci.ID, Name: c.Name, Reason: msg})
				if policy != corev1.RestartPolicyNever {
					a.Start = append(a.Start, i)
				} else {
					finished++
				}
			}
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			if restartAllowed(policy, ci) {
				a.Start = append(a.Start, i)
			} else {
				finished++
			}
		default:
			// Created but never started (the agent stopped in between), or unknown: start
			// afresh.
			a.Remove = append(a.Remove, ci.ID)
			a.Start = append(a.Start, i)
		}
	}
	if len(pod.Spec.Containers) > 0 && finished == len(pod.Spec.Containers) {
		// Every container is done for good: sidecars and the sandbox go too.
		a.Done = true
		a.KillPod = true
		a.InitStart = nil
		a.Kill = nil
	}
	return a
}

// computeInitActions fills a's init container part and tells whether initialization is
// complete (every plain init container succeeded, every sidecar started).
func computeInitActions(pod *corev1.Pod, st *podState, sb *sandboxInfo, unhealthy healthFunc, a *podActions) bool {
	if len(pod.Spec.InitContainers) == 0 {
		return true
	}
	// Once a regular container ran in this sandbox the pod was initialized: init
	// containers removed since (garbage collection) do not run again.
	initialized := false
	for i := range pod.Spec.Containers {
		if st.latestIn(pod.Spec.Containers[i].Name, sb.ID) != nil {
			initialized = true
			break
		}
	}
	policy := pod.Spec.RestartPolicy
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		sidecar := isSidecar(c)
		ci := st.latestIn(c.Name, sb.ID)
		if ci == nil {
			if initialized && !sidecar {
				continue
			}
			a.InitStart = append(a.InitStart, i)
			if initialized {
				continue
			}
			return false
		}
		switch ci.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			if sidecar {
				if bad, msg := unhealthy(ci.ID); bad {
					a.Kill = append(a.Kill, killAction{ID: ci.ID, Name: c.Name, Reason: msg})
					a.InitStart = append(a.InitStart, i)
				}
				continue
			}
			if initialized {
				continue
			}
			return false // wait for it
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			if sidecar {
				a.InitStart = append(a.InitStart, i)
				if initialized {
					continue
				}
				return false
			}
			if ci.ExitCode == 0 || initialized {
				continue
			}
			if policy == corev1.RestartPolicyNever {
				a.InitFailed = true
				return false
			}
			a.InitStart = append(a.InitStart, i)
			return false
		default:
			a.Remove = append(a.Remove, ci.ID)
			a.InitStart = append(a.InitStart, i)
			if initialized {
				continue
			}
			return false
		}
	}
	return true
}

// podMayRunAgain tells whether a pod whose sandbox is gone gets a new one: always with
// restartPolicy Always; with OnFailure unless every container succeeded; with Never only
// when nothing ran yet.
func podMayRunAgain(pod *corev1.Pod, st *podState) bool {
	switch pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return len(st.Containers) == 0
	case corev1.RestartPolicyOnFailure:
		for i := range pod.Spec.Containers {
			ci := st.latest(pod.Spec.Containers[i].Name)
			if ci == nil || !ci.exited() || ci.ExitCode != 0 {
				return true
			}
		}
		return false
	default:
		return true
	}
}
