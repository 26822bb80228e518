package agent

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Helpers that build a pod and a fake runtime state.

const (
	running = runtimeapi.ContainerState_CONTAINER_RUNNING
	exited  = runtimeapi.ContainerState_CONTAINER_EXITED
	created = runtimeapi.ContainerState_CONTAINER_CREATED
)

func testPod(policy corev1.RestartPolicy, inits []string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"},
		Spec: corev1.PodSpec{RestartPolicy: policy}}
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n, Image: "img"})
	}
	for _, n := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "img"})
	}
	return p
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeState builds a podState: sandboxes newest first, containers in creation order
// (each one later than the previous).
type fakeState struct {
	st *podState
	n  int
}

func newState() *fakeState { return &fakeState{st: &podState{}} }

func (f *fakeState) sandbox(id string, attempt uint32, ready bool) *fakeState {
	f.st.Sandboxes = append([]*sandboxInfo{{ID: id, Attempt: attempt, Ready: ready, IPs: []string{"10.0.0.2"}}}, f.st.Sandboxes...)
	return f
}

func (f *fakeState) container(sandbox, name string, state runtimeapi.ContainerState, exit int32, restarts int32) *fakeState {
	f.n++
	c := &containerInfo{ID: name + "-" + string(rune('a'+f.n)), SandboxID: sandbox, Name: name, State: state, ExitCode: exit,
		RestartCount: restarts, Hash: containerHash(&corev1.Container{Name: name, Image: "img"}),
		CreatedAt: t0.Add(time.Duration(f.n) * time.Second), StartedAt: t0.Add(time.Duration(f.n) * time.Second)}
	if state == exited {
		c.FinishedAt = c.StartedAt.Add(time.Second)
	}
	f.st.Containers = append([]*containerInfo{c}, f.st.Containers...)
	return f
}

func TestComputePodActions(t *testing.T) {
	never, onFailure, always := corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure, corev1.RestartPolicyAlways
	tests := []struct {
		name      string
		pod       *corev1.Pod
		state     *fakeState
		unhealthy map[string]bool // by container name
		want      podActions
	}{
		{
			name:  "new pod: sandbox and every container",
			pod:   testPod(always, nil, "a", "b"),
			state: newState(),
			want:  podActions{CreateSandbox: true, Start: []int{0, 1}},
		},
		{
			name:  "new pod with init containers: sandbox and the first init container",
			pod:   testPod(always, []string{"i1", "i2"}, "a"),
			state: newState(),
			want:  podActions{CreateSandbox: true, InitStart: []int{0}},
		},
		{
			name:  "everything running: nothing to do",
			pod:   testPod(always, nil, "a", "b"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", running, 0, 0).container("s1", "b", running, 0, 0),
			want:  podActions{SandboxID: "s1"},
		},
		{
			name:  "one container missing is started",
			pod:   testPod(always, nil, "a", "b"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", running, 0, 0),
			want:  podActions{SandboxID: "s1", Start: []int{1}},
		},
		{
			name:  "Always restarts a container that succeeded",
			pod:   testPod(always, nil, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", exited, 0, 0),
			want:  podActions{SandboxID: "s1", Start: []int{0}},
		},
		{
			name:  "OnFailure restarts a failed container",
			pod:   testPod(onFailure, nil, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", exited, 2, 0),
			want:  podActions{SandboxID: "s1", Start: []int{0}},
		},
		{
			name:  "OnFailure: every container succeeded, the pod is done",
			pod:   testPod(onFailure, nil, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", exited, 0, 0),
			want:  podActions{SandboxID: "s1", Done: true, KillPod: true},
		},
		{
			name:  "Never: a failed container stays failed and the pod is done",
			pod:   testPod(never, nil, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", exited, 1, 0),
			want:  podActions{SandboxID: "s1", Done: true, KillPod: true},
		},
		{
			name:  "Never: one container still running, nothing to do",
			pod:   testPod(never, nil, "a", "b"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", exited, 0, 0).container("s1", "b", running, 0, 0),
			want:  podActions{SandboxID: "s1"},
		},
		{
			name:  "dead sandbox: killed and re-created with the next attempt, every container started",
			pod:   testPod(always, nil, "a"),
			state: newState().sandbox("s1", 0, false).container("s1", "a", exited, 137, 0),
			want:  podActions{KillPod: true, CreateSandbox: true, Attempt: 1, Start: []int{0}},
		},
		{
			name:  "dead sandbox with init containers: they run again",
			pod:   testPod(always, []string{"i"}, "a"),
			state: newState().sandbox("s1", 2, false).container("s1", "i", exited, 0, 0).container("s1", "a", running, 0, 0),
			want:  podActions{KillPod: true, CreateSandbox: true, Attempt: 3, InitStart: []int{0}},
		},
		{
			name:  "dead sandbox, OnFailure: succeeded containers are not run again",
			pod:   testPod(onFailure, nil, "a", "b"),
			state: newState().sandbox("s1", 0, false).container("s1", "a", exited, 0, 0).container("s1", "b", exited, 1, 0),
			want:  podActions{KillPod: true, CreateSandbox: true, Attempt: 1, Start: []int{1}},
		},
		{
			name:  "dead sandbox, Never, containers ran: the pod is over",
			pod:   testPod(never, nil, "a"),
			state: newState().sandbox("s1", 0, false).container("s1", "a", exited, 0, 0),
			want:  podActions{Done: true},
		},
		{
			name:  "dead sandbox, Never, nothing ran yet: a new sandbox",
			pod:   testPod(never, nil, "a"),
			state: newState().sandbox("s1", 0, false),
			want:  podActions{KillPod: true, CreateSandbox: true, Attempt: 1, Start: []int{0}},
		},
		{
			name:  "first init container running: wait",
			pod:   testPod(always, []string{"i1", "i2"}, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "i1", running, 0, 0),
			want:  podActions{SandboxID: "s1"},
		},
		{
			name:  "first init container done: the second starts",
			pod:   testPod(always, []string{"i1", "i2"}, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "i1", exited, 0, 0),
			want:  podActions{SandboxID: "s1", InitStart: []int{1}},
		},
		{
			name:  "init containers done: the regular containers start",
			pod:   testPod(always, []string{"i1", "i2"}, "a", "b"),
			state: newState().sandbox("s1", 0, true).container("s1", "i1", exited, 0, 0).container("s1", "i2", exited, 0, 0),
			want:  podActions{SandboxID: "s1", Start: []int{0, 1}},
		},
		{
			name:  "failed init container is restarted (Always)",
			pod:   testPod(always, []string{"i1", "i2"}, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "i1", exited, 0, 0).container("s1", "i2", exited, 1, 0),
			want:  podActions{SandboxID: "s1", InitStart: []int{1}},
		},
		{
			name:  "failed init container with Never fails the pod",
			pod:   testPod(never, []string{"i1"}, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "i1", exited, 1, 0),
			want:  podActions{SandboxID: "s1", InitFailed: true, KillPod: true, Done: true},
		},
		{
			name:  "init containers removed after the pod ran do not run again",
			pod:   testPod(always, []string{"i1"}, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", running, 0, 0),
			want:  podActions{SandboxID: "s1"},
		},
		{
			name:      "liveness failure: killed and restarted",
			pod:       testPod(always, nil, "a"),
			state:     newState().sandbox("s1", 0, true).container("s1", "a", running, 0, 0),
			unhealthy: map[string]bool{"a": true},
			want:      podActions{SandboxID: "s1", Kill: []killAction{{Name: "a", Reason: "unhealthy"}}, Start: []int{0}},
		},
		{
			name:      "liveness failure with Never: killed, the pod is over",
			pod:       testPod(never, nil, "a"),
			state:     newState().sandbox("s1", 0, true).container("s1", "a", running, 0, 0),
			unhealthy: map[string]bool{"a": true},
			want:      podActions{SandboxID: "s1", KillPod: true, Done: true},
		},
		{
			name:  "created but never started: removed and started afresh",
			pod:   testPod(always, nil, "a"),
			state: newState().sandbox("s1", 0, true).container("s1", "a", created, 0, 0),
			want:  podActions{SandboxID: "s1", Remove: []string{"a"}, Start: []int{0}},
		},
		{
			name:  "a pod the API holds as finished is stopped and never restarted",
			pod:   func() *corev1.Pod { p := testPod(always, nil, "a"); p.Status.Phase = corev1.PodFailed; return p }(),
			state: newState().sandbox("s1", 0, true).container("s1", "a", running, 0, 0),
			want:  podActions{Done: true, KillPod: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.state.st
			names := map[string]string{}
			for _, c := range st.Containers {
				names[c.ID] = c.Name
			}
			health := func(id string) (bool, string) { return tt.unhealthy[names[id]], "unhealthy" }
			got := computePodActions(tt.pod, st, health)
			// IDs are generated: compare kill and remove lists by container name.
			for i := range got.Kill {
				got.Kill[i].ID = ""
			}
			for i, id := range got.Remove {
				got.Remove[i] = names[id]
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestComputePodActionsChangedImage(t *testing.T) {
	pod := testPod(always(), nil, "a")
	st := newState().sandbox("s1", 0, true).container("s1", "a", running, 0, 0).st
	pod.Spec.Containers[0].Image = "img:v2"
	got := computePodActions(pod, st, nil)
	if len(got.Kill) != 1 || !reflect.DeepEqual(got.Start, []int{0}) {
		t.Errorf("a changed image: %+v, want the container killed and started again", got)
	}
}

func always() corev1.RestartPolicy { return corev1.RestartPolicyAlways }

func TestComputePodActionsSidecar(t *testing.T) {
	pod := testPod(corev1.RestartPolicyNever, []string{"side", "i"}, "a")
	al := corev1.ContainerRestartPolicyAlways
	pod.Spec.InitContainers[0].RestartPolicy = &al

	// The sidecar runs: the next init container may start.
	st := newState().sandbox("s1", 0, true).container("s1", "side", running, 0, 0).st
	if got := computePodActions(pod, st, nil); !reflect.DeepEqual(got.InitStart, []int{1}) {
		t.Errorf("sidecar running: %+v, want init container 1 started", got)
	}
	// Initialized, and the sidecar exited: it is restarted even with restartPolicy Never.
	st = newState().sandbox("s1", 0, true).container("s1", "side", exited, 1, 0).container("s1", "i", exited, 0, 0).container("s1", "a", running, 0, 0).st
	if got := computePodActions(pod, st, nil); !reflect.DeepEqual(got.InitStart, []int{0}) || len(got.Start) != 0 {
		t.Errorf("sidecar exited: %+v, want it restarted", got)
	}
	// The main container finished: the pod is done, the sidecar goes with the sandbox.
	st = newState().sandbox("s1", 0, true).container("s1", "side", running, 0, 0).container("s1", "i", exited, 0, 0).container("s1", "a", exited, 0, 0).st
	if got := computePodActions(pod, st, nil); !got.Done || !got.KillPod {
		t.Errorf("main container done: %+v, want the pod done", got)
	}
}
