package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func priorityPod(name, class string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{PriorityClassName: class,
		Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

// PriorityClasses and Priority admission as in Kubernetes: the system classes exist, a pod's
// class gives its priority, an unknown class or a hand-set priority is refused, one global
// default applies to pods that name none, and user classes stay below the system range.
func TestPriorityClasses(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	pcs := c.Client.SchedulingV1().PriorityClasses()
	pods := c.Client.CoreV1().Pods("default")

	for name, value := range map[string]int32{"system-node-critical": 2000001000, "system-cluster-critical": 2000000000} {
		pc, err := pcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil || pc.Value != value {
			t.Fatalf("%s: %v %+v", name, err, pc)
		}
	}
	p, err := pods.Create(ctx, priorityPod("critical", "system-cluster-critical"), metav1.CreateOptions{})
	if err != nil || *p.Spec.Priority != 2000000000 || *p.Spec.PreemptionPolicy != corev1.PreemptLowerPriority {
		t.Fatalf("system class pod: %v %+v", err, p.Spec)
	}
	p, err = pods.Create(ctx, priorityPod("plain", ""), metav1.CreateOptions{})
	if err != nil || *p.Spec.Priority != 0 || p.Spec.PriorityClassName != "" {
		t.Fatalf("no class: %v %+v", err, p.Spec)
	}
	_, err = pods.Create(ctx, priorityPod("unknown", "gold"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "no PriorityClass with name gold was found") {
		t.Fatalf("unknown class: %v", err)
	}

	never := corev1.PreemptNever
	if _, err := pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "gold"}, Value: 1000, PreemptionPolicy: &never}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = pods.Create(ctx, priorityPod("golden", "gold"), metav1.CreateOptions{})
	if err != nil || *p.Spec.Priority != 1000 || *p.Spec.PreemptionPolicy != corev1.PreemptNever {
		t.Fatalf("gold pod: %v %+v", err, p.Spec)
	}
	hand := priorityPod("hand", "gold")
	hand.Spec.Priority = new(int32(5))
	if _, err := pods.Create(ctx, hand, metav1.CreateOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "must not be provided in pod spec") {
		t.Fatalf("hand-set priority: %v", err)
	}

	// One global default, used by pods that name no class.
	if _, err := pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "standard"}, Value: 100, GlobalDefault: true}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Value: 50, GlobalDefault: true}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "Only one default can exist") {
		t.Fatalf("second default: %v", err)
	}
	p, err = pods.Create(ctx, priorityPod("defaulted", ""), metav1.CreateOptions{})
	if err != nil || *p.Spec.Priority != 100 || p.Spec.PriorityClassName != "standard" {
		t.Fatalf("global default: %v %+v", err, p.Spec)
	}

	// Bad classes: above the user range, a reserved name, a changed value.
	for _, pc := range []*schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "huge"}, Value: 1000000001},
		{ObjectMeta: metav1.ObjectMeta{Name: "system-mine"}, Value: 1},
	} {
		if _, err := pcs.Create(ctx, pc, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("%s: %v, want Invalid", pc.Name, err)
		}
	}
	gold, _ := pcs.Get(ctx, "gold", metav1.GetOptions{})
	gold.Value = 2000
	if _, err := pcs.Update(ctx, gold, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("value change: %v, want Invalid", err)
	}
}
