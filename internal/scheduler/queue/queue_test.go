package queue

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time       { return c.now }
func (c *clock) Step(d time.Duration) { c.now = c.now.Add(d) }
func newQueue(c *clock) *PriorityQueue {
	return New(Options{
		Now: c.Now,
		Events: map[string][]framework.ClusterEvent{
			"Fit":      {{Resource: framework.Pod, ActionType: framework.Delete}, {Resource: framework.Node, ActionType: framework.Add}},
			"Affinity": {{Resource: framework.Pod, ActionType: framework.Add}},
		},
		PreEnqueue: func(_ context.Context, p *v1.Pod) *framework.Status {
			if len(p.Spec.SchedulingGates) > 0 {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, "gated").WithPlugin("SchedulingGates")
			}
			return nil
		},
	})
}

func pop(t *testing.T, q *PriorityQueue) *QueuedPodInfo {
	t.Helper()
	a, _, _, _ := q.Counts()
	if a == 0 {
		t.Fatal("nothing active")
	}
	p, err := q.Pop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func created(p *v1.Pod, sec int) *v1.Pod {
	p.CreationTimestamp = metav1.NewTime(time.Unix(int64(sec), 0))
	return p
}

func TestOrder(t *testing.T) {
	q := newQueue(&clock{now: time.Unix(1000, 0)})
	q.Add(created(st.MakePod("old-low").Obj(), 1))
	q.Add(created(st.MakePod("new-high").Priority(10).Obj(), 3))
	q.Add(created(st.MakePod("older-high").Priority(10).Obj(), 2))
	q.Add(created(st.MakePod("new-low").Obj(), 4))
	for _, want := range []string{"older-high", "new-high", "old-low", "new-low"} {
		if got := pop(t, q).Pod.Name; got != want {
			t.Fatalf("popped %s, want %s", got, want)
		}
	}
}

func TestBackoffDuration(t *testing.T) {
	q := newQueue(&clock{})
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 9: 10 * time.Second} {
		if got := q.backoffDuration(&QueuedPodInfo{Attempts: attempts}); got != want {
			t.Errorf("attempts %d: %v, want %v", attempts, got, want)
		}
	}
}

func TestUnschedulableWaitsForARelevantEvent(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	q := newQueue(c)
	q.Add(st.MakePod("p").Obj())
	p := pop(t, q)
	p.UnschedulablePlugins = sets.New("Fit")
	p.Unschedulable = true
	if err := q.AddUnschedulableIfNotPresent(p); err != nil {
		t.Fatal(err)
	}
	if w := q.Has(p.Pod); w != "unschedulable" {
		t.Fatalf("in %q", w)
	}
	q.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodAdd, nil)
	if w := q.Has(p.Pod); w != "unschedulable" {
		t.Fatalf("moved by an unrelated event: %q", w)
	}
	q.MoveAllToActiveOrBackoffQueue(framework.EventNodeAdd, func(*v1.Pod) bool { return false })
	if w := q.Has(p.Pod); w != "unschedulable" {
		t.Fatalf("moved despite the pre-check: %q", w)
	}
	q.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodDelete, nil)
	if w := q.Has(p.Pod); w != "backoff" {
		t.Fatalf("after a pod deletion: %q", w)
	}
	c.Step(500 * time.Millisecond)
	q.Flush()
	if w := q.Has(p.Pod); w != "backoff" {
		t.Fatalf("backoff ended early: %q", w)
	}
	c.Step(600 * time.Millisecond)
	q.Flush()
	if w := q.Has(p.Pod); w != "active" {
		t.Fatalf("after backoff: %q", w)
	}
}

func TestEventDuringAttemptMeansBackoff(t *testing.T) {
	q := newQueue(&clock{now: time.Unix(1000, 0)})
	q.Add(st.MakePod("p").Obj())
	p := pop(t, q)
	q.MoveAllToActiveOrBackoffQueue(framework.EventNodeAdd, nil) // while in flight
	p.UnschedulablePlugins = sets.New("Fit")
	p.Unschedulable = true
	_ = q.AddUnschedulableIfNotPresent(p)
	if w := q.Has(p.Pod); w != "backoff" {
		t.Fatalf("in %q", w)
	}
	// An unrelated event during the attempt does not.
	q.Add(st.MakePod("r").Obj())
	r := pop(t, q)
	q.MoveAllToActiveOrBackoffQueue(framework.EventAssignedPodAdd, nil)
	r.UnschedulablePlugins = sets.New("Fit")
	r.Unschedulable = true
	_ = q.AddUnschedulableIfNotPresent(r)
	if w := q.Has(r.Pod); w != "unschedulable" {
		t.Fatalf("in %q", w)
	}
}

func TestErrorsBackOffAndTimeoutsRetry(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	q := newQueue(c)
	q.Add(st.MakePod("err").Obj())
	p := pop(t, q)
	_ = q.AddUnschedulableIfNotPresent(p) // no plugin: an error
	if w := q.Has(p.Pod); w != "backoff" {
		t.Fatalf("error in %q", w)
	}
	q.Add(st.MakePod("stuck").Obj())
	s := pop(t, q)
	s.UnschedulablePlugins = sets.New("Affinity")
	s.Unschedulable = true
	_ = q.AddUnschedulableIfNotPresent(s)
	c.Step(4 * time.Minute)
	q.Flush()
	if w := q.Has(s.Pod); w != "unschedulable" {
		t.Fatalf("after 4m: %q", w)
	}
	c.Step(2 * time.Minute)
	q.Flush()
	if w := q.Has(s.Pod); w != "active" {
		t.Fatalf("after 6m: %q", w)
	}
}

func TestUpdatesAndGates(t *testing.T) {
	q := newQueue(&clock{now: time.Unix(1000, 0)})
	gated := st.MakePod("g").Obj()
	gated.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "wait"}}
	q.Add(gated)
	if w := q.Has(gated); w != "gated" {
		t.Fatalf("gated pod in %q", w)
	}
	q.MoveAllToActiveOrBackoffQueue(framework.EventForceActivate, nil)
	if w := q.Has(gated); w != "gated" {
		t.Fatalf("events released a gated pod: %q", w)
	}
	open := gated.DeepCopy()
	open.Spec.SchedulingGates = nil
	q.Update(gated, open)
	if w := q.Has(open); w != "active" {
		t.Fatalf("ungated pod in %q", w)
	}

	q.Add(st.MakePod("u").Obj())
	for q.Has(st.MakePod("u").Obj()) != "" {
		p := pop(t, q)
		p.UnschedulablePlugins = sets.New("Fit")
		p.Unschedulable = true
		_ = q.AddUnschedulableIfNotPresent(p)
		if p.Pod.Name == "u" {
			break
		}
	}
	u := st.MakePod("u").Obj()
	status := u.DeepCopy()
	status.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse}}
	q.Update(u, status)
	if w := q.Has(u); w != "unschedulable" {
		t.Fatalf("status update moved the pod: %q", w)
	}
	relabelled := status.DeepCopy()
	relabelled.Labels = map[string]string{"new": "label"}
	q.Update(status, relabelled)
	if w := q.Has(u); w != "backoff" && w != "active" {
		t.Fatalf("spec/label update did not move the pod: %q", w)
	}
	q.Delete(relabelled)
	if w := q.Has(u); w != "" {
		t.Fatalf("deleted pod in %q", w)
	}
}

func TestDeletedWhileInFlight(t *testing.T) {
	q := newQueue(&clock{now: time.Unix(1000, 0)})
	q.Add(st.MakePod("p").Obj())
	p := pop(t, q)
	q.Delete(p.Pod)
	p.UnschedulablePlugins = sets.New("Fit")
	p.Unschedulable = true
	_ = q.AddUnschedulableIfNotPresent(p)
	if w := q.Has(p.Pod); w != "" {
		t.Fatalf("deleted pod requeued in %q", w)
	}
}

func TestNominator(t *testing.T) {
	q := newQueue(&clock{})
	n := q.Nominator()
	p := st.MakePod("p").Obj()
	n.AddNominatedPod(framework.NewPodInfo(p), &framework.NominatingInfo{NominatedNodeName: "n1", NominatingMode: framework.ModeOverride})
	if got := n.NominatedPodsForNode("n1"); len(got) != 1 || got[0].Pod.Name != "p" {
		t.Fatalf("nominated %v", got)
	}
	// A later update without status.nominatedNodeName keeps the scheduler's nomination.
	n.UpdateNominatedPod(p, framework.NewPodInfo(p.DeepCopy()))
	if got := n.NominatedPodsForNode("n1"); len(got) != 1 {
		t.Fatalf("nomination lost on update")
	}
	n.AddNominatedPod(framework.NewPodInfo(p), &framework.NominatingInfo{NominatedNodeName: "n2", NominatingMode: framework.ModeOverride})
	if len(n.NominatedPodsForNode("n1")) != 0 || len(n.NominatedPodsForNode("n2")) != 1 {
		t.Fatal("re-nomination kept the old node")
	}
	n.DeleteNominatedPodIfExists(p)
	if len(n.NominatedPodsForNode("n2")) != 0 {
		t.Fatal("delete kept the nomination")
	}
}

func TestPopBlocksUntilClosed(t *testing.T) {
	q := newQueue(&clock{})
	done := make(chan error)
	go func() {
		_, err := q.Pop(context.Background())
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("Pop returned on an empty queue")
	case <-time.After(50 * time.Millisecond):
	}
	q.Close()
	if err := <-done; err == nil {
		t.Fatal("Pop on a closed queue returned no error")
	}
}

func TestNoNodesWaitsForAnyEvent(t *testing.T) {
	q := newQueue(&clock{now: time.Unix(1000, 0)})
	q.Add(st.MakePod("p").Obj())
	p := pop(t, q)
	p.Unschedulable = true // no plugin rejected it: the cluster had no nodes
	_ = q.AddUnschedulableIfNotPresent(p)
	if w := q.Has(p.Pod); w != "unschedulable" {
		t.Fatalf("in %q", w)
	}
	q.MoveAllToActiveOrBackoffQueue(framework.EventNodeAdd, nil)
	if w := q.Has(p.Pod); w != "backoff" && w != "active" {
		t.Fatalf("node added, pod in %q", w)
	}
}
