package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func genStatus(pod *corev1.Pod, st *podState, mod func(*statusInput)) corev1.PodStatus {
	in := statusInput{Pod: pod, State: st, HostIPs: []string{"192.168.1.10"}, RuntimeName: "containerd",
		Waiting: map[string]waitingReason{}, Now: t0.Add(time.Hour)}
	if mod != nil {
		mod(&in)
	}
	return generatePodStatus(in)
}

func cond(st corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

func TestPodPhase(t *testing.T) {
	tests := []struct {
		name  string
		pod   *corev1.Pod
		state *fakeState
		mod   func(*statusInput)
		want  corev1.PodPhase
	}{
		{"nothing yet", testPod(always(), nil, "a"), newState(), nil, corev1.PodPending},
		{"one of two running", testPod(always(), nil, "a", "b"), newState().sandbox("s", 0, true).container("s", "a", running, 0, 0), nil, corev1.PodPending},
		{"all running", testPod(always(), nil, "a", "b"), newState().sandbox("s", 0, true).container("s", "a", running, 0, 0).container("s", "b", running, 0, 0), nil, corev1.PodRunning},
		{"init running", testPod(always(), []string{"i"}, "a"), newState().sandbox("s", 0, true).container("s", "i", running, 0, 0), nil, corev1.PodPending},
		{"init failed, Never", testPod(corev1.RestartPolicyNever, []string{"i"}, "a"), newState().sandbox("s", 0, true).container("s", "i", exited, 1, 0), nil, corev1.PodFailed},
		{"init failed, Always", testPod(always(), []string{"i"}, "a"), newState().sandbox("s", 0, true).container("s", "i", exited, 1, 0), nil, corev1.PodPending},
		{"succeeded, Never", testPod(corev1.RestartPolicyNever, nil, "a"), newState().sandbox("s", 0, false).container("s", "a", exited, 0, 0), nil, corev1.PodSucceeded},
		{"failed, Never", testPod(corev1.RestartPolicyNever, nil, "a", "b"), newState().sandbox("s", 0, false).container("s", "a", exited, 0, 0).container("s", "b", exited, 2, 0), nil, corev1.PodFailed},
		{"succeeded, OnFailure", testPod(corev1.RestartPolicyOnFailure, nil, "a"), newState().sandbox("s", 0, false).container("s", "a", exited, 0, 0), nil, corev1.PodSucceeded},
		{"failed, OnFailure: will restart", testPod(corev1.RestartPolicyOnFailure, nil, "a"), newState().sandbox("s", 0, true).container("s", "a", exited, 1, 0), nil, corev1.PodRunning},
		{"exited, Always: will restart", testPod(always(), nil, "a"), newState().sandbox("s", 0, true).container("s", "a", exited, 0, 0), nil, corev1.PodRunning},
		{"crash loop", testPod(always(), nil, "a"), newState().sandbox("s", 0, true).container("s", "a", exited, 3, 4),
			func(in *statusInput) { in.Waiting["a"] = waitingReason{Reason: "CrashLoopBackOff"} }, corev1.PodRunning},
		{"terminating: settles as Never", testPod(always(), nil, "a"), newState().sandbox("s", 0, false).container("s", "a", exited, 0, 0),
			func(in *statusInput) { in.Terminating = true }, corev1.PodSucceeded},
		{"deadline exceeded", testPod(always(), nil, "a"), newState().sandbox("s", 0, false).container("s", "a", exited, 137, 0),
			func(in *statusInput) { in.Reason, in.Message = "DeadlineExceeded", "too long" }, corev1.PodFailed},
		{"a finished pod stays finished", func() *corev1.Pod { p := testPod(always(), nil, "a"); p.Status.Phase = corev1.PodSucceeded; return p }(),
			newState().sandbox("s", 0, true).container("s", "a", running, 0, 0), nil, corev1.PodSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := genStatus(tt.pod, tt.state.st, tt.mod).Phase; got != tt.want {
				t.Errorf("phase %s, want %s", got, tt.want)
			}
		})
	}
}

func TestContainerStatuses(t *testing.T) {
	pod := testPod(always(), []string{"init"}, "web", "side")
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{}
	st := newState().sandbox("s", 0, true).
		container("s", "init", exited, 0, 0).
		container("s", "web", exited, 2, 0).
		container("s", "web", running, 0, 1).
		container("s", "side", exited, 3, 5)
	web := st.st.latest("web")
	web.ImageRef = "sha256:abc"
	web.Image = "skiff.local/web:v1"
	status := genStatus(pod, st.st, func(in *statusInput) {
		in.Waiting["side"] = waitingReason{Reason: "CrashLoopBackOff", Message: "back-off 40s"}
		in.Ready = func(id string) bool { return id == web.ID }
	})

	ic := status.InitContainerStatuses[0]
	if ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" || !ic.Ready {
		t.Errorf("init container: %+v", ic)
	}
	w := status.ContainerStatuses[0]
	if w.State.Running == nil || !w.Ready || w.Started == nil || !*w.Started || w.RestartCount != 1 {
		t.Errorf("web: %+v", w)
	}
	if w.LastTerminationState.Terminated == nil || w.LastTerminationState.Terminated.ExitCode != 2 || w.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("web lastState: %+v", w.LastTerminationState)
	}
	if w.ContainerID != "containerd://"+web.ID || w.ImageID != "sha256:abc" || w.Image != "skiff.local/web:v1" {
		t.Errorf("web IDs: %q %q %q", w.ContainerID, w.ImageID, w.Image)
	}
	s := status.ContainerStatuses[1]
	if s.State.Waiting == nil || s.State.Waiting.Reason != "CrashLoopBackOff" || s.LastTerminationState.Terminated == nil ||
		s.LastTerminationState.Terminated.ExitCode != 3 || s.RestartCount != 5 || s.Ready {
		t.Errorf("side: %+v", s)
	}
	if c := cond(status, corev1.ContainersReady); c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotReady" ||
		c.Message != "containers with unready status: [side]" {
		t.Errorf("ContainersReady: %+v", c)
	}
	if c := cond(status, corev1.PodInitialized); c.Status != corev1.ConditionTrue {
		t.Errorf("Initialized: %+v", c)
	}
	if status.PodIP != "10.0.0.2" || status.HostIP != "192.168.1.10" || status.StartTime == nil || status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("pod-level fields: %+v", status)
	}
}

func TestWaitingReasons(t *testing.T) {
	pod := testPod(always(), []string{"init"}, "web")
	status := genStatus(pod, newState().st, nil)
	if r := status.InitContainerStatuses[0].State.Waiting.Reason; r != "PodInitializing" {
		t.Errorf("init waiting %q", r)
	}
	if r := status.ContainerStatuses[0].State.Waiting.Reason; r != "PodInitializing" {
		t.Errorf("web waiting before init %q", r)
	}
	c := cond(status, corev1.PodInitialized)
	if c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotInitialized" || c.Message != "containers with incomplete status: [init]" {
		t.Errorf("Initialized: %+v", c)
	}

	pod = testPod(always(), nil, "web")
	status = genStatus(pod, newState().sandbox("s", 0, true).st, func(in *statusInput) {
		in.Waiting["web"] = waitingReason{Reason: "ImagePullBackOff", Message: `Back-off pulling image "x"`}
	})
	if w := status.ContainerStatuses[0].State.Waiting; w.Reason != "ImagePullBackOff" || w.Message != `Back-off pulling image "x"` {
		t.Errorf("waiting %+v", w)
	}
	status = genStatus(pod, newState().sandbox("s", 0, true).st, nil)
	if w := status.ContainerStatuses[0].State.Waiting; w.Reason != "ContainerCreating" {
		t.Errorf("waiting %+v", w)
	}
}

func TestOOMKilledReported(t *testing.T) {
	pod := testPod(corev1.RestartPolicyNever, nil, "web")
	st := newState().sandbox("s", 0, false).container("s", "web", exited, 137, 0)
	st.st.Containers[0].Reason = "OOMKilled"
	status := genStatus(pod, st.st, nil)
	term := status.ContainerStatuses[0].State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 || status.Phase != corev1.PodFailed {
		t.Errorf("status %+v", status)
	}
}

func TestConditionTransitionTimesStay(t *testing.T) {
	pod := testPod(always(), nil, "web")
	st := newState().sandbox("s", 0, true).container("s", "web", running, 0, 0).st
	first := genStatus(pod, st, nil)
	pod.Status = first
	later := genStatus(pod, st, func(in *statusInput) { in.Now = in.Now.Add(time.Hour) })
	for _, c := range later.Conditions {
		if o := cond(first, c.Type); o == nil || !o.LastTransitionTime.Equal(&c.LastTransitionTime) {
			t.Errorf("%s moved from %v to %v", c.Type, o, c.LastTransitionTime)
		}
	}
	// A change moves only that condition's time.
	pod.Status = later
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{}
	unready := genStatus(pod, st, func(in *statusInput) {
		in.Now = in.Now.Add(2 * time.Hour)
		in.Ready = func(string) bool { return false }
	})
	if c := cond(unready, corev1.PodReady); c.Status != corev1.ConditionFalse || c.LastTransitionTime.Time.Equal(cond(later, corev1.PodReady).LastTransitionTime.Time) {
		t.Errorf("Ready after readiness failure: %+v", c)
	}
	if c := cond(unready, corev1.PodScheduled); !c.LastTransitionTime.Equal(&cond(first, corev1.PodScheduled).LastTransitionTime) {
		t.Errorf("PodScheduled moved: %+v", c)
	}
}

func TestReadinessGatesAndForeignConditions(t *testing.T) {
	pod := testPod(always(), nil, "web")
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0)}}
	st := newState().sandbox("s", 0, true).container("s", "web", running, 0, 0).st
	status := genStatus(pod, st, nil)
	if c := cond(status, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" {
		t.Errorf("Ready without the gate's condition: %+v", c)
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: "example.com/lb", Status: corev1.ConditionTrue})
	status = genStatus(pod, st, nil)
	if c := cond(status, corev1.PodReady); c.Status != corev1.ConditionTrue {
		t.Errorf("Ready with the gate true: %+v", c)
	}
	if c := cond(status, "example.com/lb"); c == nil {
		t.Error("a condition someone else owns was dropped")
	}
	if c := cond(status, corev1.PodScheduled); !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("PodScheduled replaced: %+v", c)
	}
}

func TestQOSClass(t *testing.T) {
	res := func(req, lim corev1.ResourceList) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: req, Limits: lim}
	}
	cpu := func(s string) corev1.ResourceList { return corev1.ResourceList{corev1.ResourceCPU: mustQ(s)} }
	both := corev1.ResourceList{corev1.ResourceCPU: mustQ("1"), corev1.ResourceMemory: mustQ("1Gi")}
	tests := []struct {
		name string
		r    corev1.ResourceRequirements
		want corev1.PodQOSClass
	}{
		{"none", res(nil, nil), corev1.PodQOSBestEffort},
		{"requests only", res(cpu("100m"), nil), corev1.PodQOSBurstable},
		{"limits equal requests for cpu and memory", res(both, both), corev1.PodQOSGuaranteed},
		{"limits without memory", res(cpu("1"), cpu("1")), corev1.PodQOSBurstable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod(always(), nil, "a")
			p.Spec.Containers[0].Resources = tt.r
			if got := qosClass(p); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFinishedPodKeepsStatusesWithoutContainers(t *testing.T) {
	pod := testPod(corev1.RestartPolicyNever, nil, "job")
	st := newState().sandbox("s", 0, false).container("s", "job", exited, 0, 0)
	pod.Status = genStatus(pod, st.st, nil)
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s", pod.Status.Phase)
	}
	// The runtime lost everything (a reboot): the final status stays.
	again := genStatus(pod, newState().st, nil)
	if again.Phase != corev1.PodSucceeded || again.ContainerStatuses[0].State.Terminated == nil ||
		again.ContainerStatuses[0].State.Terminated.Reason != "Completed" {
		t.Errorf("status after the containers went: %+v", again)
	}
}
