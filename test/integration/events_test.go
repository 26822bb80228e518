package integration

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// core/v1 and events.k8s.io/v1 events are one resource in two versions, as in Kubernetes: what
// a kube-scheduler-style recorder writes through events.k8s.io is what `kubectl describe`
// reads through core/v1, and the other way round, with each API's field selectors.
func TestEventsOneStorageTwoVersions(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	now := metav1.NowMicro()
	w, err := c.Client.EventsV1().Events("default").Watch(ctx, metav1.ListOptions{FieldSelector: "regarding.name=web-0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	// Written as events.k8s.io/v1 (as kube-scheduler does), read as core/v1.
	_, err = c.Client.EventsV1().Events("default").Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0.sched"}, EventTime: now,
		ReportingController: "default-scheduler", ReportingInstance: "default-scheduler-vm", Action: "Binding",
		Reason: "Scheduled", Note: "Successfully assigned default/web-0 to n1", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0", UID: "u1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web-0,reason=Scheduled"})
	if err != nil || len(core.Items) != 1 {
		t.Fatalf("core list: %v %+v", err, core)
	}
	ce := core.Items[0]
	if ce.Message != "Successfully assigned default/web-0 to n1" || ce.ReportingController != "default-scheduler" ||
		ce.InvolvedObject.UID != "u1" || ce.Action != "Binding" || ce.EventTime.IsZero() {
		t.Errorf("as core/v1: %+v", ce)
	}

	// Written as core/v1 (as client-go's record package does), read as events.k8s.io/v1.
	_, err = c.Client.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web-0.pulled"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0"},
		Reason:         "Pulled", Message: "Container image already present", Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "kubelet", Host: "n1"}, Count: 3,
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.Client.EventsV1().Events("default").Get(ctx, "web-0.pulled", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Note != "Container image already present" || ev.Regarding.Name != "web-0" || ev.DeprecatedCount != 3 ||
		ev.DeprecatedSource.Component != "kubelet" || ev.APIVersion != "" && ev.APIVersion != "events.k8s.io/v1" {
		t.Errorf("as events.k8s.io/v1: %+v", ev)
	}
	l, err := c.Client.EventsV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=web-0,reportingController=default-scheduler"})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "web-0.sched" {
		t.Fatalf("events.k8s.io list by reportingController: %v %+v", err, l)
	}
	if _, err := c.Client.EventsV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web-0"}); !apierrors.IsBadRequest(err) {
		t.Errorf("core field label on events.k8s.io: %v, want BadRequest", err)
	}

	// The events.k8s.io watch saw both, whichever API wrote them.
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for len(seen) < 2 {
		select {
		case e := <-w.ResultChan():
			if e.Type == watch.Added {
				seen[e.Object.(*eventsv1.Event).Name] = true
			}
		case <-deadline:
			t.Fatalf("watch saw only %v", seen)
		}
	}

	// Deleting through one API removes it from the other.
	if err := c.Client.CoreV1().Events("default").Delete(ctx, "web-0.sched", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.EventsV1().Events("default").Get(ctx, "web-0.sched", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after delete through core/v1: %v", err)
	}
}
