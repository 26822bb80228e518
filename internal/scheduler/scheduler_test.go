package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

var podsGVR = v1.SchemeGroupVersion.WithResource("pods")

type harness struct {
	t      *testing.T
	client *fake.Clientset
	events *record.FakeRecorder
	sched  *Scheduler
	mu     sync.Mutex
	log    []string
}

// start runs a scheduler against a fake API whose pods/binding sets spec.nodeName, as the
// API server does.
func start(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{t: t, client: fake.NewClientset(objs...), events: record.NewFakeRecorder(1000)}
	h.client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := a.(clienttesting.CreateAction).GetObject().(*v1.Binding)
		obj, err := h.client.Tracker().Get(podsGVR, b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*v1.Pod).DeepCopy()
		if pod.Spec.NodeName != "" {
			return true, nil, fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName)
		}
		pod.Spec.NodeName = b.Target.Name
		pod.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}}
		return true, b, h.client.Tracker().Update(podsGVR, pod, b.Namespace)
	})
	factory := informers.NewSharedInformerFactory(h.client, 0)
	cctx := &controller.Context{Client: h.client, Informers: factory,
		Recorder: func(string) record.EventRecorder { return h.events }}
	s, err := NewWithOptions(cctx, Options{InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.sched = s
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
	return h
}

func (h *harness) drainEvents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		select {
		case e := <-h.events.Events:
			h.log = append(h.log, e)
		default:
			return append([]string(nil), h.log...)
		}
	}
}

func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; events: %q", what, h.drainEvents())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) pod(name string) *v1.Pod {
	p, err := h.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) create(p *v1.Pod) {
	if _, err := h.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func TestSchedulerBindsAndSpreads(t *testing.T) {
	h := start(t,
		st.MakeNode("n1").Alloc("cpu", "4", "memory", "8Gi").Obj(),
		st.MakeNode("n2").Alloc("cpu", "4", "memory", "8Gi").Obj(),
		st.MakeNode("n3").Alloc("cpu", "4", "memory", "8Gi").Obj())
	for i := range 6 {
		h.create(st.MakePod(fmt.Sprint("p", i)).Req("cpu", "1", "memory", "1Gi").Obj())
	}
	perNode := map[string]int{}
	h.eventually("all pods bound", func() bool {
		clear(perNode)
		for i := range 6 {
			if n := h.pod(fmt.Sprint("p", i)).Spec.NodeName; n != "" {
				perNode[n]++
			}
		}
		return perNode["n1"]+perNode["n2"]+perNode["n3"] == 6
	})
	if perNode["n1"] != 2 || perNode["n2"] != 2 || perNode["n3"] != 2 {
		t.Fatalf("least-allocated spreading: %v", perNode)
	}
	h.eventually("Scheduled events", func() bool {
		n := 0
		for _, e := range h.drainEvents() {
			if strings.HasPrefix(e, "Normal Scheduled Successfully assigned default/p") {
				n++
			}
		}
		return n == 6
	})
	if s := h.sched.Stats(); s.Scheduled != 6 || s.Errors != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSchedulerUnschedulableThenNodeAdded(t *testing.T) {
	h := start(t,
		st.MakeNode("cp").Alloc("cpu", "8").Taint("node-role.kubernetes.io/control-plane", "", v1.TaintEffectNoSchedule).Obj(),
		st.MakeNode("small").Alloc("cpu", "1").Obj())
	h.create(st.MakePod("big").Req("cpu", "2").Obj())
	want := "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. " +
		"preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
	h.eventually("Unschedulable condition", func() bool {
		for _, c := range h.pod("big").Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
				if c.Message != want {
					t.Fatalf("message %q\nwant    %q", c.Message, want)
				}
				return true
			}
		}
		return false
	})
	h.eventually("FailedScheduling event", func() bool {
		for _, e := range h.drainEvents() {
			if e == "Warning FailedScheduling "+want {
				return true
			}
		}
		return false
	})
	if _, err := h.client.CoreV1().Nodes().Create(context.Background(), st.MakeNode("large").Alloc("cpu", "4").Obj(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("pending pod scheduled on the new node", func() bool { return h.pod("big").Spec.NodeName == "large" })
}

func TestSchedulerPreempts(t *testing.T) {
	low := st.MakePod("low").Node("n1").Req("cpu", "2").Obj()
	h := start(t, st.MakeNode("n1").Alloc("cpu", "2").Obj(), low)
	h.create(st.MakePod("high").Priority(100).Req("cpu", "2").Obj())
	h.eventually("victim deleted", func() bool {
		_, err := h.client.CoreV1().Pods("default").Get(context.Background(), "low", metav1.GetOptions{})
		return err != nil
	})
	h.eventually("preemptor bound", func() bool { return h.pod("high").Spec.NodeName == "n1" })
	found := false
	for _, e := range h.drainEvents() {
		found = found || strings.HasPrefix(e, "Normal Preempted Preempted by pod uid-high on node n1")
	}
	if !found {
		t.Fatalf("no Preempted event: %q", h.drainEvents())
	}
}

func TestSchedulerRetriesAfterBindFailure(t *testing.T) {
	h := start(t, st.MakeNode("n1").Alloc("cpu", "2").Obj())
	var failed sync.Once
	h.client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		handled := false
		if a.GetSubresource() == "binding" {
			failed.Do(func() { handled = true })
		}
		if handled {
			return true, nil, fmt.Errorf("etcd is down")
		}
		return false, nil, nil
	})
	h.create(st.MakePod("p").Req("cpu", "1").Obj())
	h.eventually("bound after a retry", func() bool { return h.pod("p").Spec.NodeName == "n1" })
	if s := h.sched.Stats(); s.BindErrors != 1 {
		t.Fatalf("stats %+v", s)
	}
	if ni := h.sched.cache.NodeInfo("n1"); len(ni.Pods) != 1 {
		t.Fatalf("cache holds %d pods after the failed binding", len(ni.Pods))
	}
}
