package simnode

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNormalizeImage(t *testing.T) {
	for _, c := range []struct{ in, ref, idPrefix string }{
		{"nginx", "docker.io/library/nginx:latest", "docker.io/library/nginx@sha256:"},
		{"nginx:1.27", "docker.io/library/nginx:1.27", "docker.io/library/nginx@sha256:"},
		{"bitnami/redis:7", "docker.io/bitnami/redis:7", "docker.io/bitnami/redis@sha256:"},
		{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10", "registry.k8s.io/pause@sha256:"},
		{"localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app@sha256:"},
		{"busybox@sha256:abc", "docker.io/library/busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"},
	} {
		ref, id := normalizeImage(c.in)
		if ref != c.ref || len(id) < len(c.idPrefix) || id[:len(c.idPrefix)] != c.idPrefix {
			t.Errorf("%s: got %s %s", c.in, ref, id)
		}
	}
}

func TestParseExit(t *testing.T) {
	pod := func(a map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: a}}
	}
	if _, ok, _ := parseExit(pod(nil)); ok {
		t.Fatal("no annotations: scripted")
	}
	p, ok, err := parseExit(pod(map[string]string{AnnotationExitCode: "3", AnnotationExitAfter: "2s"}))
	if !ok || err != nil || p.code != 3 || p.after != 2*time.Second {
		t.Fatalf("got %+v %v %v", p, ok, err)
	}
	p, ok, _ = parseExit(pod(map[string]string{AnnotationExitAfter: "1.5"}))
	if !ok || p.code != 0 || p.after != 1500*time.Millisecond {
		t.Fatalf("seconds form: %+v", p)
	}
	if _, ok, err := parseExit(pod(map[string]string{AnnotationExitCode: "300"})); ok || err == nil {
		t.Fatal("exit code 300 accepted")
	}
}

func testPod(policy corev1.RestartPolicy) *corev1.Pod {
	sidecar := corev1.ContainerRestartPolicyAlways
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"},
		Spec: corev1.PodSpec{
			NodeName:      "sim-0",
			RestartPolicy: policy,
			InitContainers: []corev1.Container{
				{Name: "init", Image: "busybox"},
				{Name: "sidecar", Image: "envoy:1", RestartPolicy: &sidecar},
			},
			Containers:     []corev1.Container{{Name: "a", Image: "nginx"}, {Name: "b", Image: "redis:7"}},
			ReadinessGates: nil,
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Unix(100, 0))}}},
	}
}

func cond(st *corev1.PodStatus, t corev1.PodConditionType) corev1.ConditionStatus {
	if c := podCondition(st, t); c != nil {
		return c.Status
	}
	return ""
}

func TestRunningStatus(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways)
	now := metav1.NewTime(time.Unix(200, 0))
	st := runningStatus(pod, "10.64.0.1", "10.128.0.2", now)
	if st.Phase != corev1.PodRunning || st.PodIP != "10.128.0.2" || st.HostIP != "10.64.0.1" || len(st.PodIPs) != 1 || st.StartTime == nil {
		t.Fatalf("status: %+v", st)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
		if cond(st, ct) != corev1.ConditionTrue {
			t.Errorf("condition %s = %s", ct, cond(st, ct))
		}
	}
	if c := podCondition(st, corev1.PodScheduled); !c.LastTransitionTime.Equal(&metav1.Time{Time: time.Unix(100, 0)}) {
		t.Errorf("PodScheduled transition time changed: %v", c.LastTransitionTime)
	}
	if len(st.ContainerStatuses) != 2 || len(st.InitContainerStatuses) != 2 {
		t.Fatalf("statuses: %d %d", len(st.ContainerStatuses), len(st.InitContainerStatuses))
	}
	cs := st.ContainerStatuses[0]
	if !cs.Ready || cs.Started == nil || !*cs.Started || cs.State.Running == nil || cs.ContainerID[:len(runtimeScheme)] != runtimeScheme ||
		cs.Image != "docker.io/library/nginx:latest" || cs.ImageID == "" {
		t.Fatalf("container status: %+v", cs)
	}
	if st.InitContainerStatuses[0].State.Terminated == nil || st.InitContainerStatuses[0].State.Terminated.Reason != "Completed" {
		t.Fatalf("init container: %+v", st.InitContainerStatuses[0])
	}
	if st.InitContainerStatuses[1].State.Running == nil {
		t.Fatalf("sidecar not running: %+v", st.InitContainerStatuses[1])
	}
}

func TestReadinessGates(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways)
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
	now := metav1.NewTime(time.Unix(200, 0))
	st := runningStatus(pod, "10.64.0.1", "10.128.0.2", now)
	if cond(st, corev1.ContainersReady) != corev1.ConditionTrue || cond(st, corev1.PodReady) != corev1.ConditionFalse {
		t.Fatalf("gate unmet but ready: %+v", st.Conditions)
	}
	pod.Status = *st
	if needsReadyRepair(pod) {
		t.Fatal("repair wanted for an unmet gate")
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: "example.com/lb", Status: corev1.ConditionTrue})
	if !needsReadyRepair(pod) {
		t.Fatal("gate met: repair not wanted")
	}
}

func TestExitedStatus(t *testing.T) {
	start := metav1.NewTime(time.Unix(200, 0))
	end := metav1.NewTime(time.Unix(260, 0))
	for _, c := range []struct {
		policy   corev1.RestartPolicy
		code     int32
		terminal bool
		phase    corev1.PodPhase
	}{
		{corev1.RestartPolicyNever, 0, true, corev1.PodSucceeded},
		{corev1.RestartPolicyNever, 1, true, corev1.PodFailed},
		{corev1.RestartPolicyOnFailure, 0, true, corev1.PodSucceeded},
		{corev1.RestartPolicyOnFailure, 2, false, corev1.PodRunning},
		{corev1.RestartPolicyAlways, 0, false, corev1.PodRunning},
	} {
		pod := testPod(c.policy)
		pod.Status = *runningStatus(pod, "10.64.0.1", "10.128.0.2", start)
		st, terminal := exitedStatus(pod, c.code, end)
		if terminal != c.terminal || st.Phase != c.phase {
			t.Errorf("%s/%d: terminal=%v phase=%s", c.policy, c.code, terminal, st.Phase)
			continue
		}
		cs := st.ContainerStatuses[0]
		if terminal {
			if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != c.code || cs.Ready ||
				cond(st, corev1.PodReady) != corev1.ConditionFalse || st.InitContainerStatuses[1].State.Terminated == nil {
				t.Errorf("%s/%d: %+v", c.policy, c.code, cs)
			}
			continue
		}
		if cs.RestartCount != 1 || cs.State.Running == nil || !cs.State.Running.StartedAt.Equal(&end) ||
			cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != c.code ||
			cs.ContainerID == pod.Status.ContainerStatuses[0].ContainerID {
			t.Errorf("%s/%d restart: %+v", c.policy, c.code, cs)
		}
		if cond(st, corev1.PodReady) != corev1.ConditionTrue {
			t.Errorf("%s/%d: not ready after restart", c.policy, c.code)
		}
	}
}

func TestStoppedStatus(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways)
	pod.Status = *runningStatus(pod, "10.64.0.1", "10.128.0.2", metav1.NewTime(time.Unix(200, 0)))
	st := stoppedStatus(pod, metav1.NewTime(time.Unix(230, 0)))
	if st.Phase != corev1.PodFailed || st.ContainerStatuses[0].State.Terminated == nil || st.ContainerStatuses[0].State.Terminated.ExitCode != 143 {
		t.Fatalf("stopped: %s %+v", st.Phase, st.ContainerStatuses[0].State)
	}
}
