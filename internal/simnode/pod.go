package simnode

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// exitPlan is a scripted container exit read from a pod's annotations.
type exitPlan struct {
	code  int32
	after time.Duration
}

// parseExit reads skiff.dev/sim-exit-code and skiff.dev/sim-exit-after.
func parseExit(pod *corev1.Pod) (exitPlan, bool, error) {
	codeS, hasCode := pod.Annotations[AnnotationExitCode]
	afterS, hasAfter := pod.Annotations[AnnotationExitAfter]
	if !hasCode && !hasAfter {
		return exitPlan{}, false, nil
	}
	var p exitPlan
	if hasCode {
		c, err := strconv.ParseInt(strings.TrimSpace(codeS), 10, 32)
		if err != nil || c < 0 || c > 255 {
			return exitPlan{}, false, fmt.Errorf("%s: %q is not an exit code (0-255)", AnnotationExitCode, codeS)
		}
		p.code = int32(c)
	}
	if hasAfter {
		s := strings.TrimSpace(afterS)
		d, err := time.ParseDuration(s)
		if err != nil {
			secs, err2 := strconv.ParseFloat(s, 64)
			if err2 != nil {
				return exitPlan{}, false, fmt.Errorf("%s: %q is not a duration", AnnotationExitAfter, afterS)
			}
			d = time.Duration(secs * float64(time.Second))
		}
		if d < 0 {
			d = 0
		}
		p.after = d
	}
	return p, true, nil
}

// normalizeImage turns an image reference into what a runtime reports: the fully qualified
// reference and an image ID with a digest.
func normalizeImage(image string) (ref, id string) {
	name, digest := image, ""
	if i := strings.Index(image, "@"); i >= 0 {
		name, digest = image[:i], image[i+1:]
	}
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	if first, _, ok := strings.Cut(name, "/"); !ok || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !ok {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	switch {
	case digest != "":
		ref = name + "@" + digest
		if tag != "" {
			ref = name + ":" + tag + "@" + digest
		}
	case tag != "":
		ref = name + ":" + tag
	default:
		ref = name + ":latest"
	}
	if digest == "" {
		digest = "sha256:" + hashHex(ref)
	}
	return ref, name + "@" + digest
}

func containerID(uid types.UID, name string, restarts int32) string {
	return runtimeScheme + hashHex(string(uid)+"/"+name+"/"+strconv.Itoa(int(restarts)))
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// setCondition sets a pod condition, keeping its transition time when the status is unchanged.
func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != s {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message = s, reason, msg
		c.LastProbeTime = metav1.Time{}
		return
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg, LastTransitionTime: now})
}

func podCondition(st *corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setReady sets Ready from ContainersReady and the pod's readiness gates, as the kubelet does.
func setReady(pod *corev1.Pod, st *corev1.PodStatus, containersReady bool, now metav1.Time) {
	if !containersReady {
		setCondition(st, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", "", now)
		return
	}
	var missing []string
	for _, g := range pod.Spec.ReadinessGates {
		c := podCondition(st, g.ConditionType)
		if c == nil {
			missing = append(missing, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
		} else if c.Status != corev1.ConditionTrue {
			missing = append(missing, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, c.Status))
		}
	}
	if len(missing) > 0 {
		setCondition(st, corev1.PodReady, corev1.ConditionFalse, "ReadinessGatesNotReady", strings.Join(missing, ", "), now)
		return
	}
	setCondition(st, corev1.PodReady, corev1.ConditionTrue, "", "", now)
}

func runningState(at metav1.Time) corev1.ContainerState {
	return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at}}
}

func exitReason(code int32) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// runningStatus is the status of a pod whose containers have just started: init containers
// completed, sidecars and containers running and ready.
func runningStatus(pod *corev1.Pod, hostIP, podIP string, now metav1.Time) *corev1.PodStatus {
	st := pod.Status.DeepCopy()
	st.Phase = corev1.PodRunning
	st.Reason, st.Message = "", ""
	st.HostIP, st.HostIPs = hostIP, []corev1.HostIP{{IP: hostIP}}
	st.PodIP, st.PodIPs = podIP, []corev1.PodIP{{IP: podIP}}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	t := true
	st.InitContainerStatuses = make([]corev1.ContainerStatus, 0, len(pod.Spec.InitContainers))
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		ref, id := normalizeImage(c.Image)
		cid := containerID(pod.UID, c.Name, 0)
		cs := corev1.ContainerStatus{Name: c.Name, Image: ref, ImageID: id, ContainerID: cid}
		if isSidecar(c) {
			cs.Ready, cs.Started, cs.State = true, &t, runningState(now)
		} else {
			f := false
			cs.Ready, cs.Started = true, &f
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: cid}}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	if len(st.InitContainerStatuses) == 0 {
		st.InitContainerStatuses = nil
	}
	st.ContainerStatuses = make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		ref, id := normalizeImage(c.Image)
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: ref, ImageID: id, ContainerID: containerID(pod.UID, c.Name, 0),
			Ready: true, Started: &t, State: runningState(now),
		})
	}
	setCondition(st, corev1.PodReadyToStartContainers, corev1.ConditionTrue, "", "", now)
	setCondition(st, corev1.PodInitialized, corev1.ConditionTrue, "", "", now)
	setCondition(st, corev1.ContainersReady, corev1.ConditionTrue, "", "", now)
	setReady(pod, st, true, now)
	setCondition(st, corev1.PodScheduled, corev1.ConditionTrue, "", "", now)
	return st
}

// restarts reports whether a container that exited with code is restarted under the pod's
// restart policy.
func restarts(policy corev1.RestartPolicy, code int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	default:
		return true
	}
}

// exitedStatus applies an exit of every running container with code. Under the restart
// policy the containers either start again (restartCount+1, the exit in lastState) or stay
// terminated and the pod ends: Succeeded when every container exited 0, Failed otherwise.
// It reports whether the pod reached a terminal phase.
func exitedStatus(pod *corev1.Pod, code int32, now metav1.Time) (*corev1.PodStatus, bool) {
	st := pod.Status.DeepCopy()
	restart := restarts(pod.Spec.RestartPolicy, code)
	for i := range st.ContainerStatuses {
		cs := &st.ContainerStatuses[i]
		if cs.State.Running == nil {
			continue
		}
		term := &corev1.ContainerStateTerminated{ExitCode: code, Reason: exitReason(code),
			StartedAt: cs.State.Running.StartedAt, FinishedAt: now, ContainerID: cs.ContainerID}
		if restart {
			cs.LastTerminationState = corev1.ContainerState{Terminated: term}
			cs.RestartCount++
			cs.ContainerID = containerID(pod.UID, cs.Name, cs.RestartCount)
			cs.State = runningState(now)
			cs.Ready = true
			t := true
			cs.Started = &t
			continue
		}
		f := false
		cs.State = corev1.ContainerState{Terminated: term}
		cs.Ready, cs.Started = false, &f
	}
	if restart {
		return st, false
	}
	finishPod(st, now)
	return st, true
}

// stoppedStatus is the final status of a pod whose containers were stopped for its deletion:
// running containers end with SIGTERM's exit code.
func stoppedStatus(pod *corev1.Pod, now metav1.Time) *corev1.PodStatus {
	st := pod.Status.DeepCopy()
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for i := range list {
			cs := &list[i]
			if cs.State.Running == nil {
				continue
			}
			f := false
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 143, Reason: "Error",
				StartedAt: cs.State.Running.StartedAt, FinishedAt: now, ContainerID: cs.ContainerID}}
			cs.Ready, cs.Started = false, &f
		}
	}
	finishPod(st, now)
	return st
}

// finishPod ends a pod whose containers have all terminated: sidecars stop, the phase is
// Succeeded when every container exited 0, and the pod is no longer ready.
func finishPod(st *corev1.PodStatus, now metav1.Time) {
	for i := range st.InitContainerStatuses {
		cs := &st.InitContainerStatuses[i]
		if cs.State.Running != nil {
			f := false
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
				StartedAt: cs.State.Running.StartedAt, FinishedAt: now, ContainerID: cs.ContainerID}}
			cs.Ready, cs.Started = false, &f
		}
	}
	ok := true
	for _, cs := range st.ContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			ok = false
		}
	}
	st.Phase = corev1.PodFailed
	if ok {
		st.Phase = corev1.PodSucceeded
	}
	setCondition(st, corev1.PodReadyToStartContainers, corev1.ConditionFalse, "", "", now)
	setCondition(st, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", "", now)
	setCondition(st, corev1.PodReady, corev1.ConditionFalse, "PodCompleted", "", now)
}

// runStart is when the current run of a pod's containers began, as recorded in its status.
func runStart(pod *corev1.Pod) time.Time {
	var t time.Time
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running != nil && cs.State.Running.StartedAt.After(t) {
			t = cs.State.Running.StartedAt.Time
		}
	}
	return t
}

// needsReadyRepair reports a running pod someone else marked not ready (the node lifecycle
// controller does while the node is unreachable); a live kubelet posts it ready again.
func needsReadyRepair(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	c := podCondition(&pod.Status, corev1.PodReady)
	if c == nil || c.Status == corev1.ConditionTrue {
		return c == nil
	}
	// Unmet readiness gates are not ours to repair.
	st := pod.Status.DeepCopy()
	setReady(pod, st, true, metav1.Now())
	return podCondition(st, corev1.PodReady).Status == corev1.ConditionTrue
}

func isTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}
