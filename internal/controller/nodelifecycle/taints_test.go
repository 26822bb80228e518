package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func nodeWith(ready corev1.ConditionStatus, taints ...corev1.Taint) *corev1.Node {
	n := &corev1.Node{Spec: corev1.NodeSpec{Taints: taints}}
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	}
	return n
}

func keys(ts []corev1.Taint) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Key+":"+string(t.Effect))
	}
	return out
}

func TestDesiredTaints(t *testing.T) {
	t0 := time.Unix(1000, 0)
	other := corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
	n := nodeWith(corev1.ConditionUnknown, other)
	got := desiredTaints(n.Spec.Taints, noScheduleTaints(n), noExecuteTaint(n), t0)
	want := []string{"dedicated:NoSchedule", corev1.TaintNodeUnreachable + ":NoSchedule", corev1.TaintNodeUnreachable + ":NoExecute"}
	if len(got) != 3 || keys(got)[0] != want[0] || keys(got)[1] != want[1] || keys(got)[2] != want[2] {
		t.Fatalf("unknown node: %v", keys(got))
	}
	if got[1].TimeAdded != nil || got[2].TimeAdded == nil || !got[2].TimeAdded.Time.Equal(t0) {
		t.Fatalf("timeAdded: %+v", got)
	}
	// Stable: applying again changes nothing and keeps timeAdded.
	n.Spec.Taints = got
	again := desiredTaints(n.Spec.Taints, noScheduleTaints(n), noExecuteTaint(n), t0.Add(time.Minute))
	if !taintsEqual(got, again) {
		t.Fatalf("not stable: %v vs %v", got, again)
	}
	// Ready=False swaps unreachable for not-ready.
	n.Status.Conditions[0].Status = corev1.ConditionFalse
	swapped := desiredTaints(n.Spec.Taints, noScheduleTaints(n), noExecuteTaint(n), t0.Add(time.Minute))
	if ks := keys(swapped); len(ks) != 3 || ks[1] != corev1.TaintNodeNotReady+":NoSchedule" || ks[2] != corev1.TaintNodeNotReady+":NoExecute" {
		t.Fatalf("swap: %v", ks)
	}
	if !swapped[2].TimeAdded.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("swapped taint keeps old time: %v", swapped[2].TimeAdded)
	}
	// Recovery removes the managed taints only.
	n.Spec.Taints = swapped
	n.Status.Conditions[0].Status = corev1.ConditionTrue
	healed := desiredTaints(n.Spec.Taints, noScheduleTaints(n), noExecuteTaint(n), t0)
	if ks := keys(healed); len(ks) != 1 || ks[0] != "dedicated:NoSchedule" {
		t.Fatalf("recovered: %v", ks)
	}
	// Pressure conditions and cordoning add their NoSchedule taints.
	n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeDiskPressure, Status: corev1.ConditionTrue})
	n.Spec.Unschedulable = true
	ns := noScheduleTaints(n)
	if !ns[corev1.TaintNodeDiskPressure] || !ns[corev1.TaintNodeUnschedulable] || len(ns) != 2 {
		t.Fatalf("noSchedule: %v", ns)
	}
	// A node that never posted Ready gets no NoExecute taint yet.
	if noExecuteTaint(nodeWith("")) != "" {
		t.Fatal("NoExecute for a node without Ready")
	}
}

func secs(n int64) *int64 { return &n }

func TestEvictionTime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	noticed := t0.Add(5 * time.Second)
	added := metav1.NewTime(t0)
	unreach := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added}
	custom := corev1.Taint{Key: "maintenance", Value: "yes", Effect: corev1.TaintEffectNoExecute}
	tolUnreach := func(s *int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: s}
	}
	for _, c := range []struct {
		name   string
		tols   []corev1.Toleration
		taints []corev1.Taint
		ok     bool
		at     time.Time
	}{
		{"untolerated", nil, []corev1.Taint{unreach}, true, time.Time{}},
		{"forever", []corev1.Toleration{tolUnreach(nil)}, []corev1.Taint{unreach}, false, time.Time{}},
		{"seconds from timeAdded", []corev1.Toleration{tolUnreach(secs(30))}, []corev1.Taint{unreach}, true, t0.Add(30 * time.Second)},
		{"negative is zero", []corev1.Toleration{tolUnreach(secs(-5))}, []corev1.Taint{unreach}, true, t0},
		{"tolerate all", []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, []corev1.Taint{unreach, custom}, false, time.Time{}},
		{"one untolerated of two", []corev1.Toleration{tolUnreach(secs(30))}, []corev1.Taint{unreach, custom}, true, time.Time{}},
		{"earliest wins; no timeAdded uses noticed", []corev1.Toleration{
			tolUnreach(secs(300)),
			{Key: "maintenance", Operator: corev1.TolerationOpEqual, Value: "yes", TolerationSeconds: secs(10)},
		}, []corev1.Taint{unreach, custom}, true, noticed.Add(10 * time.Second)},
		{"first matching toleration counts", []corev1.Toleration{tolUnreach(secs(20)), tolUnreach(nil)}, []corev1.Taint{unreach}, true, t0.Add(20 * time.Second)},
		{"wrong value", []corev1.Toleration{{Key: "maintenance", Operator: corev1.TolerationOpEqual, Value: "no"}}, []corev1.Taint{custom}, true, time.Time{}},
		{"NoSchedule toleration does not cover NoExecute", []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, []corev1.Taint{unreach}, true, time.Time{}},
	} {
		at, ok := evictionTime(c.tols, c.taints, noticed)
		if ok != c.ok || !at.Equal(c.at) {
			t.Errorf("%s: got %v %v, want %v %v", c.name, at, ok, c.at, c.ok)
		}
	}
}

func TestTolerationOperators(t *testing.T) {
	taint := &corev1.Taint{Key: "level", Value: "5", Effect: corev1.TaintEffectNoExecute}
	if !tolerates(&corev1.Toleration{Key: "level", Operator: corev1.TolerationOpGt, Value: "3"}, taint) {
		t.Error("5 > 3")
	}
	if tolerates(&corev1.Toleration{Key: "level", Operator: corev1.TolerationOpLt, Value: "3"}, taint) {
		t.Error("5 < 3")
	}
	if !tolerates(&corev1.Toleration{Key: "level", Value: "5"}, taint) {
		t.Error("default operator is Equal")
	}
}

func TestUnknownConditions(t *testing.T) {
	created := metav1.NewTime(time.Unix(500, 0))
	now := metav1.NewTime(time.Unix(1000, 0))
	beat := metav1.NewTime(time.Unix(900, 0))
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: created}}
	n.Status.Conditions = []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: beat},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: beat},
		{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse},
	}
	conds, changed := unknownConditions(n, now)
	if !changed || len(conds) != 5 {
		t.Fatalf("changed=%v conds=%d", changed, len(conds))
	}
	for _, c := range conds {
		switch c.Type {
		case corev1.NodeReady:
			if c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown" || c.Message != "Kubelet stopped posting node status." ||
				!c.LastTransitionTime.Equal(&now) || !c.LastHeartbeatTime.Equal(&beat) {
				t.Errorf("ready: %+v", c)
			}
		case corev1.NodeDiskPressure, corev1.NodePIDPressure:
			if c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusNeverUpdated" || !c.LastHeartbeatTime.Equal(&created) {
				t.Errorf("never posted %s: %+v", c.Type, c)
			}
		case corev1.NodeNetworkUnavailable:
			if c.Status != corev1.ConditionFalse {
				t.Errorf("network condition touched: %+v", c)
			}
		}
	}
	n.Status.Conditions = conds
	if _, changed := unknownConditions(n, now); changed {
		t.Fatal("second pass changed conditions")
	}
}

func TestZoneStateAndBucket(t *testing.T) {
	for _, c := range []struct {
		ready, notReady int
		want            zoneState
	}{
		{10, 0, zoneNormal}, {0, 1, zoneFullDisruption}, {1, 2, zoneNormal}, {2, 3, zonePartialDisruption}, {5, 3, zoneNormal}, {0, 0, zoneNormal},
	} {
		if got := computeZoneState(c.ready, c.notReady, 0.55); got != c.want {
			t.Errorf("%d/%d: %s, want %s", c.ready, c.notReady, got, c.want)
		}
	}
	t0 := time.Unix(1000, 0)
	b := newBucket(0.1, t0)
	if ok, _ := b.take(t0); !ok {
		t.Fatal("burst of one")
	}
	if ok, wait := b.take(t0.Add(time.Second)); ok || wait != 9*time.Second {
		t.Fatalf("second token: %v %v", ok, wait)
	}
	if ok, _ := b.take(t0.Add(10 * time.Second)); !ok {
		t.Fatal("token after 10s")
	}
	b.setRate(0, t0.Add(100*time.Second))
	if ok, wait := b.take(t0.Add(200 * time.Second)); ok || wait >= 0 {
		t.Fatalf("stopped bucket: %v %v", ok, wait)
	}
	b.setRate(0.1, t0.Add(300*time.Second))
	if ok, _ := b.take(t0.Add(300 * time.Second)); !ok {
		t.Fatal("restarted bucket starts full")
	}
}
