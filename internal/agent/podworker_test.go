package agent

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// workerEnv is an agent wired to a fake runtime and a fake API, with the pod lister fed
// by hand (as the informer would).
type workerEnv struct {
	t       *testing.T
	a       *Agent
	rt      *fakeRuntime
	client  *fake.Clientset
	indexer cache.Indexer
}

func newWorkerEnv(t *testing.T, objs ...*corev1.Pod) *workerEnv {
	t.Helper()
	client := fake.NewClientset()
	rt := newFakeRuntime()
	a, err := New(Config{NodeName: "n1", DataDir: t.TempDir(), NodeIP: "192.168.1.10", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, client)
	if err != nil {
		t.Fatal(err)
	}
	a.rt, a.img = rt, rt
	a.runtimeName = "containerd"
	a.runCtx = context.Background()
	if err := a.machineFacts(); err != nil {
		t.Fatal(err)
	}
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	a.pods = corelisters.NewPodLister(indexer)
	a.objects = &fakeObjects{services: map[string][]*corev1.Service{}}
	a.states = newStateReader(rt)
	a.probes = newProbeManager(a, func(types.UID) {})
	a.volumes = newVolumeManager(a)
	a.workers = newPodWorkers(a)
	e := &workerEnv{t: t, a: a, rt: rt, client: client, indexer: indexer}
	for _, p := range objs {
		if _, err := client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.refresh(p.Namespace, p.Name)
	}
	return e
}

// refresh copies the API's pod into the lister (the informer's job).
func (e *workerEnv) refresh(ns, name string) *corev1.Pod {
	p, err := e.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		obj, ok, _ := e.indexer.GetByKey(ns + "/" + name)
		if ok {
			_ = e.indexer.Delete(obj)
		}
		return nil
	}
	_ = e.indexer.Update(p)
	return p
}

// sync runs one worker sync for the pod and returns the pod as the API then has it.
func (e *workerEnv) sync(w *podWorker) (*corev1.Pod, bool) {
	e.t.Helper()
	_, done := w.sync(context.Background())
	return e.refresh(w.ns, w.name), done
}

func (e *workerEnv) worker(p *corev1.Pod) *podWorker {
	return &podWorker{a: e.a, uid: p.UID, ns: p.Namespace, name: p.Name, wake: make(chan struct{}, 1),
		waiting: map[string]waitingReason{}, log: e.a.log}
}

func workerPod(name string) *corev1.Pod {
	grace := int64(5)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + types.UID(name)},
		Spec: corev1.PodSpec{NodeName: "n1", RestartPolicy: corev1.RestartPolicyAlways, TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "app", Image: "skiff.local/busybox:latest", ImagePullPolicy: corev1.PullIfNotPresent,
				TerminationMessagePath: "/dev/termination-log"}}},
	}
}

func TestWorkerRunsAndCrashLoops(t *testing.T) {
	pod := workerPod("crash")
	e := newWorkerEnv(t, pod)
	w := e.worker(pod)

	p, _ := e.sync(w)
	if all, running := e.rt.count("app"); all != 1 || running != 1 {
		t.Fatalf("after the first sync: %d containers, %d running (%v)", all, running, e.rt.calls)
	}
	s := p.Status.ContainerStatuses[0]
	if p.Status.Phase != corev1.PodRunning || s.State.Running == nil || p.Status.PodIP != "10.42.0.9" || !s.Ready {
		t.Fatalf("status after start: %+v", p.Status)
	}

	// The first crash restarts at once.
	e.rt.exit("app", 3, "Error")
	p, _ = e.sync(w)
	if all, running := e.rt.count("app"); all != 2 || running != 1 {
		t.Fatalf("after the first crash: %d containers, %d running", all, running)
	}
	s = p.Status.ContainerStatuses[0]
	if s.RestartCount != 1 || s.LastTerminationState.Terminated == nil || s.LastTerminationState.Terminated.ExitCode != 3 {
		t.Fatalf("after the restart: %+v", s)
	}

	// The second one backs off 10 s.
	e.rt.exit("app", 3, "Error")
	p, _ = e.sync(w)
	if all, running := e.rt.count("app"); all != 2 || running != 0 {
		t.Fatalf("in back-off: %d containers, %d running", all, running)
	}
	s = p.Status.ContainerStatuses[0]
	if s.State.Waiting == nil || s.State.Waiting.Reason != "CrashLoopBackOff" || !strings.HasPrefix(s.State.Waiting.Message, "back-off 10s restarting failed container=app pod=crash_default(") ||
		s.RestartCount != 1 || s.Ready || p.Status.Phase != corev1.PodRunning {
		t.Fatalf("in back-off: phase %s, %+v", p.Status.Phase, s)
	}
	if c := cond(p.Status, corev1.PodReady); c.Status != corev1.ConditionFalse {
		t.Errorf("Ready during back-off: %+v", c)
	}
}

func TestWorkerTerminatesDeletedPod(t *testing.T) {
	pod := workerPod("gone")
	e := newWorkerEnv(t, pod)
	w := e.worker(pod)
	e.sync(w)

	// The API marks the pod for deletion; the agent stops it and deletes it for good.
	p := e.refresh("default", "gone")
	now := metav1.NewTime(time.Now().Add(5 * time.Second))
	grace := int64(5)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	_ = e.indexer.Update(p)
	if _, done := e.sync(w); !done {
		t.Fatal("the worker goes on after terminating")
	}
	if _, err := e.client.CoreV1().Pods("default").Get(context.Background(), "gone", metav1.GetOptions{}); err == nil {
		t.Error("pod still in the API")
	}
	if all, _ := e.rt.count("app"); all != 0 || len(e.rt.sandboxes) != 0 {
		t.Errorf("left in the runtime: %d containers, %d sandboxes", all, len(e.rt.sandboxes))
	}
	stops := 0
	for _, c := range e.rt.calls {
		if strings.HasPrefix(c, "StopContainer app timeout=") {
			stops++
			if c != "StopContainer app timeout=5" && c != "StopContainer app timeout=4" {
				t.Errorf("stopped with %q, want the grace period", c)
			}
		}
	}
	if stops != 1 {
		t.Errorf("calls %v", e.rt.calls)
	}
}

func TestWorkerWaitsForVolumesAndImages(t *testing.T) {
	pod := workerPod("wait")
	pod.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}}}}}
	e := newWorkerEnv(t, pod)
	w := e.worker(pod)
	p, _ := e.sync(w)
	if len(e.rt.sandboxes) != 0 {
		t.Fatal("a sandbox was made before the volumes were ready")
	}
	if p.Status.Phase != corev1.PodPending || p.Status.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
		t.Errorf("status without volumes: %+v", p.Status)
	}

	img := workerPod("img")
	img.Spec.Containers[0].Image = "example.com/app:v1"
	e = newWorkerEnv(t, img)
	e.rt.missing["example.com/app:v1"] = true
	w = e.worker(img)
	p, _ = e.sync(w)
	if r := p.Status.ContainerStatuses[0].State.Waiting; r == nil || r.Reason != "ErrImagePull" {
		t.Fatalf("missing image: %+v", p.Status.ContainerStatuses[0].State)
	}
	p, _ = e.sync(w)
	if r := p.Status.ContainerStatuses[0].State.Waiting; r == nil || r.Reason != "ImagePullBackOff" || r.Message != `Back-off pulling image "example.com/app:v1"` {
		t.Fatalf("second try: %+v", p.Status.ContainerStatuses[0].State)
	}
	// The image shows up: the pod starts once the back-off is over.
	e.rt.missing = map[string]bool{}
	e.a.pullBackoff.Forget("image/example.com/app:v1")
	p, _ = e.sync(w)
	if p.Status.ContainerStatuses[0].State.Running == nil {
		t.Fatalf("after the image appeared: %+v", p.Status.ContainerStatuses[0].State)
	}
}

func TestWorkerRemovesOrphans(t *testing.T) {
	pod := workerPod("orphan")
	e := newWorkerEnv(t, pod)
	w := e.worker(pod)
	e.sync(w)
	// Force-deleted in the API: the containers go without the pod object.
	if err := e.client.CoreV1().Pods("default").Delete(context.Background(), "orphan", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.refresh("default", "orphan")
	if _, done := e.sync(w); !done {
		t.Fatal("worker of a gone pod goes on")
	}
	if all, _ := e.rt.count("app"); all != 0 || len(e.rt.sandboxes) != 0 {
		t.Errorf("left in the runtime: %d containers, %d sandboxes", all, len(e.rt.sandboxes))
	}
}
