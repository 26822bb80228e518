package agent

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// waitingReason is why a container is not running, as the last sync found it
// (ErrImagePull, CrashLoopBackOff, CreateContainerConfigError, ...).
type waitingReason struct {
	Reason, Message string
}

// statusInput is what a pod's status is computed from. Everything is read before; the
// computation itself is pure.
type statusInput struct {
	Pod     *corev1.Pod // the API's pod, whose old status keeps transition times
	State   *podState
	HostIPs []string
	// RuntimeName prefixes container IDs ("containerd://...").
	RuntimeName string
	// Waiting holds the reasons the last sync recorded, by container name.
	Waiting map[string]waitingReason
	// Ready and Started are the readiness and startup probe results of a container ID
	// (consulted only for containers that have that probe).
	Ready   func(id string) bool
	Started func(id string) bool
	// Terminating: the pod is being deleted and its containers were stopped; the phase
	// settles as with restartPolicy Never.
	Terminating bool
	// Reason and Message set the pod's (DeadlineExceeded, ...); they make the pod Failed.
	Reason, Message string
	Now             time.Time
}

// generatePodStatus computes a pod's status from the runtime's view of it.
func generatePodStatus(in statusInput) corev1.PodStatus {
	pod := in.Pod
	old := pod.Status
	now := metav1.NewTime(in.Now.Truncate(time.Second))
	if in.Ready == nil {
		in.Ready = func(string) bool { return true }
	}
	if in.Started == nil {
		in.Started = func(string) bool { return true }
	}
	// Fields others own (nominatedNodeName, resource claims, ...) are kept as they are.
	st := *old.DeepCopy()
	st.ObservedGeneration = pod.Generation
	st.Reason, st.Message = "", ""
	st.HostIP, st.HostIPs, st.PodIP, st.PodIPs = "", nil, "", nil
	st.InitContainerStatuses, st.ContainerStatuses = nil, nil
	if st.QOSClass == "" {
		st.QOSClass = qosClass(pod)
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	for _, ip := range in.HostIPs {
		st.HostIPs = append(st.HostIPs, corev1.HostIP{IP: ip})
	}
	if len(st.HostIPs) > 0 {
		st.HostIP = st.HostIPs[0].IP
	}
	sb := in.State.sandbox()
	switch {
	case pod.Spec.HostNetwork:
		for _, ip := range in.HostIPs {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
	case sb != nil && sb.Ready && len(sb.IPs) > 0:
		for _, ip := range sb.IPs {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
	default:
		// Between sandboxes and after the pod ended, the last known IPs stay.
		st.PodIPs = append(st.PodIPs, old.PodIPs...)
	}
	if len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}

	initDone := initializationDone(pod, in.State)
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		st.InitContainerStatuses = append(st.InitContainerStatuses, containerStatus(in, c, true, initDone))
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		st.ContainerStatuses = append(st.ContainerStatuses, containerStatus(in, c, false, initDone))
	}

	st.Phase = podPhase(pod, st.InitContainerStatuses, st.ContainerStatuses, in.Terminating)
	if in.Reason != "" {
		st.Phase, st.Reason, st.Message = corev1.PodFailed, in.Reason, in.Message
	}
	// A finished pod stays finished, whatever the runtime shows later.
	if isTerminalPhase(old.Phase) {
		st.Phase = old.Phase
		if st.Reason == "" {
			st.Reason, st.Message = old.Reason, old.Message
		}
	}
	st.Conditions = podConditions(in, &st, sb, now)
	return st
}

// initializationDone tells whether every plain init container succeeded and every
// sidecar started (or a regular container already ran, which implies it).
func initializationDone(pod *corev1.Pod, s *podState) bool {
	for i := range pod.Spec.Containers {
		if s.latest(pod.Spec.Containers[i].Name) != nil {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		ci := s.latest(c.Name)
		if ci == nil {
			return false
		}
		if isSidecar(c) {
			if !ci.running() {
				return false
			}
			continue
		}
		if !ci.exited() || ci.ExitCode != 0 {
			return false
		}
	}
	return true
}

func containerStatus(in statusInput, c *corev1.Container, init, initDone bool) corev1.ContainerStatus {
	s := in.State
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	started := false
	cs.Started = &started
	ci := s.latest(c.Name)
	sidecar := init && isSidecar(c)
	if ci == nil && isTerminalPhase(in.Pod.Status.Phase) {
		// A finished pod whose containers the runtime no longer has (removed, or lost in
		// a reboot) keeps the statuses it ended with.
		for _, old := range append(append([]corev1.ContainerStatus{}, in.Pod.Status.InitContainerStatuses...), in.Pod.Status.ContainerStatuses...) {
			if old.Name == c.Name {
				return *old.DeepCopy()
			}
		}
	}
	if ci == nil {
		reason := "ContainerCreating"
		if init || !initDone {
			reason = "PodInitializing"
		}
		var msg string
		if w, ok := in.Waiting[c.Name]; ok {
			reason, msg = w.Reason, w.Message
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
		if init && !sidecar {
			cs.Started = nil
		}
		return cs
	}
	cs.RestartCount = ci.RestartCount
	if ci.Image != "" {
		cs.Image = ci.Image
	}
	cs.ImageID = ci.ImageRef
	cs.ContainerID = containerID(in.RuntimeName, ci.ID)
	prev := s.previous(c.Name)
	switch ci.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(ci.StartedAt)}
		if prev != nil && prev.exited() {
			cs.LastTerminationState.Terminated = terminatedState(in.RuntimeName, prev)
		}
		started = c.StartupProbe == nil || in.Started(ci.ID)
		cs.Ready = started && (c.ReadinessProbe == nil || in.Ready(ci.ID))
		if in.Terminating {
			cs.Ready = false
		}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		if w, ok := in.Waiting[c.Name]; ok && !in.Terminating {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
			cs.LastTerminationState.Terminated = terminatedState(in.RuntimeName, ci)
		} else {
			cs.State.Terminated = terminatedState(in.RuntimeName, ci)
			if prev != nil && prev.exited() {
				cs.LastTerminationState.Terminated = terminatedState(in.RuntimeName, prev)
			}
			// A plain init container that completed counts as ready, as the kubelet shows it.
			cs.Ready = init && !sidecar && ci.ExitCode == 0
		}
	default:
		reason := "ContainerCreating"
		var msg string
		if w, ok := in.Waiting[c.Name]; ok {
			reason, msg = w.Reason, w.Message
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
		if prev != nil && prev.exited() {
			cs.LastTerminationState.Terminated = terminatedState(in.RuntimeName, prev)
		}
	}
	if init && !sidecar && !ci.running() {
		cs.Started = nil
		if ci.exited() {
			f := false
			cs.Started = &f
		}
	}
	return cs
}

func containerID(runtimeName, id string) string {
	if runtimeName == "" {
		runtimeName = "containerd"
	}
	return runtimeName + "://" + id
}

func terminatedState(runtimeName string, ci *containerInfo) *corev1.ContainerStateTerminated {
	reason := ci.Reason
	if reason == "" {
		reason = "Error"
		if ci.ExitCode == 0 {
			reason = "Completed"
		}
	}
	return &corev1.ContainerStateTerminated{
		ExitCode:    ci.ExitCode,
		Reason:      reason,
		Message:     ci.Message,
		StartedAt:   metav1.NewTime(ci.StartedAt),
		FinishedAt:  metav1.NewTime(ci.FinishedAt),
		ContainerID: containerID(runtimeName, ci.ID),
	}
}

// podPhase follows the kubelet: Pending until initialized and every container started
// once; Running while something runs or will run again; Succeeded or Failed when every
// container is done for good. A waiting container that ran before (CrashLoopBackOff)
// counts as stopped, not as waiting.
func podPhase(pod *corev1.Pod, inits, regular []corev1.ContainerStatus, terminating bool) corev1.PodPhase {
	policy := pod.Spec.RestartPolicy
	if terminating {
		policy = corev1.RestartPolicyNever
	}
	ranBefore := func(s corev1.ContainerStatus) bool {
		return s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil
	}
	regularStarted := false
	for _, s := range regular {
		if ranBefore(s) {
			regularStarted = true
		}
	}
	if !regularStarted {
		for i, s := range inits {
			if isSidecar(&pod.Spec.InitContainers[i]) {
				continue
			}
			if t := s.State.Terminated; t != nil && t.ExitCode != 0 && policy == corev1.RestartPolicyNever {
				return corev1.PodFailed
			}
			if t := s.State.Terminated; t == nil || t.ExitCode != 0 {
				return corev1.PodPending
			}
		}
	}
	var running, waiting, stopped, succeeded, failed int
	for _, s := range regular {
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		case s.LastTerminationState.Terminated != nil:
			stopped++
			if terminating {
				if s.LastTerminationState.Terminated.ExitCode == 0 {
					succeeded++
				} else {
					failed++
				}
			}
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0 && !terminating:
		return corev1.PodPending
	case running > 0 && !terminating:
		return corev1.PodRunning
	case stopped == len(regular) || terminating:
		switch policy {
		case corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case corev1.RestartPolicyOnFailure:
			if succeeded == len(regular) {
				return corev1.PodSucceeded
			}
			return corev1.PodRunning
		default:
			if failed > 0 || waiting > 0 || running > 0 {
				return corev1.PodFailed
			}
			return corev1.PodSucceeded
		}
	}
	return corev1.PodPending
}

func podConditions(in statusInput, st *corev1.PodStatus, sb *sandboxInfo, now metav1.Time) []corev1.PodCondition {
	pod := in.Pod
	var out []corev1.PodCondition
	set := func(t corev1.PodConditionType, ok bool, reason, msg string) {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg, LastTransitionTime: now}
		if ok {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, "", ""
		}
		for _, o := range pod.Status.Conditions {
			if o.Type == t && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
				c.LastProbeTime = o.LastProbeTime
			}
		}
		out = append(out, c)
	}
	terminal := isTerminalPhase(st.Phase)
	sandboxOK := !terminal && sb != nil && sb.Ready && (pod.Spec.HostNetwork || len(sb.IPs) > 0)
	set(corev1.PodReadyToStartContainers, sandboxOK, "", "")

	var incomplete []string
	for i, s := range st.InitContainerStatuses {
		c := &pod.Spec.InitContainers[i]
		if isSidecar(c) {
			if s.State.Running == nil && !(s.Started != nil && *s.Started) && !initializationDone(pod, in.State) {
				incomplete = append(incomplete, c.Name)
			}
			continue
		}
		if t := s.State.Terminated; t == nil || t.ExitCode != 0 {
			incomplete = append(incomplete, c.Name)
		}
	}
	initialized := len(incomplete) == 0 || initializationDone(pod, in.State)
	if terminal && st.Phase == corev1.PodSucceeded {
		initialized = true
	}
	set(corev1.PodInitialized, initialized, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incomplete, " ")))

	var unready []string
	for i, s := range st.InitContainerStatuses {
		if isSidecar(&pod.Spec.InitContainers[i]) && !s.Ready {
			unready = append(unready, s.Name)
		}
	}
	for _, s := range st.ContainerStatuses {
		if !s.Ready {
			unready = append(unready, s.Name)
		}
	}
	containersReady := len(unready) == 0 && !terminal && !in.Terminating
	reason, msg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if st.Phase == corev1.PodSucceeded {
		reason, msg = "PodCompleted", ""
	}
	set(corev1.ContainersReady, containersReady, reason, msg)

	ready := containersReady
	readyReason, readyMsg := reason, msg
	if ready {
		for _, g := range pod.Spec.ReadinessGates {
			var found *corev1.PodCondition
			for i := range pod.Status.Conditions {
				if pod.Status.Conditions[i].Type == g.ConditionType {
					found = &pod.Status.Conditions[i]
				}
			}
			if found == nil {
				ready, readyReason, readyMsg = false, "ReadinessGatesNotReady", fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType)
				break
			}
			if found.Status != corev1.ConditionTrue {
				ready, readyReason, readyMsg = false, "ReadinessGatesNotReady", fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %s", g.ConditionType, found.Status)
				break
			}
		}
	}
	set(corev1.PodReady, ready, readyReason, readyMsg)

	// PodScheduled is the scheduler's; a pod bound directly gets it as the kubelet adds it.
	scheduled := false
	owned := map[corev1.PodConditionType]bool{corev1.PodReadyToStartContainers: true, corev1.PodInitialized: true,
		corev1.ContainersReady: true, corev1.PodReady: true}
	for _, o := range pod.Status.Conditions {
		if o.Type == corev1.PodScheduled {
			scheduled = true
		}
		if !owned[o.Type] {
			out = append(out, o)
		}
	}
	if !scheduled {
		out = append(out, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	order := map[corev1.PodConditionType]int{corev1.PodReadyToStartContainers: 0, corev1.PodInitialized: 1, corev1.PodReady: 2, corev1.ContainersReady: 3, corev1.PodScheduled: 4}
	sort.SliceStable(out, func(i, j int) bool {
		oi, iok := order[out[i].Type]
		oj, jok := order[out[j].Type]
		if !iok {
			oi = 5
		}
		if !jok {
			oj = 5
		}
		return oi < oj
	})
	return out
}

// qosClass computes the pod's QoS class from its containers' cpu and memory requests and
// limits (the API sets it at creation; this fills it when it is missing).
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	guaranteed, any := true, false
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
				any = true
			}
			if !hasLim || lim.IsZero() || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}
