package deployment

import (
	"regexp"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestResolveFenceposts(t *testing.T) {
	for _, tc := range []struct {
		surge, unavailable intstr.IntOrString
		desired            int32
		wantS, wantU       int32
	}{
		{intstr.FromString("25%"), intstr.FromString("25%"), 3, 1, 0},
		{intstr.FromString("25%"), intstr.FromString("25%"), 4, 1, 1},
		{intstr.FromString("25%"), intstr.FromString("25%"), 10, 3, 2},
		{intstr.FromString("25%"), intstr.FromString("25%"), 1, 1, 0},
		{intstr.FromString("0%"), intstr.FromString("0%"), 10, 0, 1}, // both zero → one may be unavailable
		{intstr.FromInt32(0), intstr.FromInt32(0), 3, 0, 1},
		{intstr.FromString("50%"), intstr.FromString("50%"), 5, 3, 2},
		{intstr.FromString("100%"), intstr.FromInt32(0), 7, 7, 0},
		{intstr.FromInt32(2), intstr.FromInt32(1), 10, 2, 1},
		{intstr.FromString("1%"), intstr.FromString("1%"), 10, 1, 0},
		{intstr.FromString("30%"), intstr.FromString("30%"), 0, 0, 1},
	} {
		s, u, err := ResolveFenceposts(&tc.surge, &tc.unavailable, tc.desired)
		if err != nil || s != tc.wantS || u != tc.wantU {
			t.Errorf("surge %s unavailable %s of %d: got %d/%d (%v), want %d/%d", tc.surge.String(), tc.unavailable.String(), tc.desired, s, u, err, tc.wantS, tc.wantU)
		}
	}
	bad := intstr.FromString("abc%")
	if _, _, err := ResolveFenceposts(&bad, &bad, 3); err == nil {
		t.Error("invalid percentage accepted")
	}
}

func TestMaxUnavailableCapped(t *testing.T) {
	d := newDeployment("d", 2, "10", "10")
	if got := MaxUnavailable(d); got != 2 {
		t.Fatalf("MaxUnavailable = %d, want capped at replicas 2", got)
	}
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if MaxSurge(d) != 0 || MaxUnavailable(d) != 0 {
		t.Fatal("Recreate has no surge or unavailability")
	}
}

func TestTemplateHash(t *testing.T) {
	d := newDeployment("d", 3, "25%", "25%")
	h1 := TemplateHash(&d.Spec.Template, nil)
	if h1 != TemplateHash(d.Spec.Template.DeepCopy(), nil) {
		t.Fatal("hash not stable")
	}
	if !regexp.MustCompile(`^[bcdfghjklmnpqrstvwxz2456789]{1,10}$`).MatchString(h1) {
		t.Fatalf("hash %q is not a short safe string", h1)
	}
	one := int32(1)
	if TemplateHash(&d.Spec.Template, &one) == h1 {
		t.Fatal("collision count does not change the hash")
	}
	other := d.Spec.Template.DeepCopy()
	other.Spec.Containers[0].Image = "web:v2"
	if TemplateHash(other, nil) == h1 {
		t.Fatal("different templates hash the same")
	}
	withHash := d.Spec.Template.DeepCopy()
	withHash.Labels[PodTemplateHashLabel] = h1
	if !EqualIgnoreHash(withHash, &d.Spec.Template) || EqualIgnoreHash(other, &d.Spec.Template) {
		t.Fatal("EqualIgnoreHash")
	}
}

func TestNewRSAnnotations(t *testing.T) {
	d := newDeployment("d", 3, "25%", "25%")
	d.Annotations = map[string]string{
		ChangeCauseAnnotation: "kubectl set image deployment/d web=web:v2 --record=true",
		LastAppliedAnnotation: "{}",
		RevisionAnnotation:    "4",
	}
	rs := &appsv1.ReplicaSet{}
	if !setNewRSAnnotations(d, rs, "5", false) {
		t.Fatal("no change reported")
	}
	a := rs.Annotations
	if a[RevisionAnnotation] != "5" || a[ChangeCauseAnnotation] == "" || a[LastAppliedAnnotation] != "" ||
		a[DesiredReplicasAnnotation] != "3" || a[MaxReplicasAnnotation] != "4" || a[RevisionHistoryAnnotation] != "" {
		t.Fatalf("annotations %v", a)
	}
	// The template of revision 5 comes back as revision 8 (rollout undo): history remembers 5.
	if !setNewRSAnnotations(d, rs, "8", true) || rs.Annotations[RevisionAnnotation] != "8" || rs.Annotations[RevisionHistoryAnnotation] != "5" {
		t.Fatalf("annotations %v", rs.Annotations)
	}
	setNewRSAnnotations(d, rs, "10", true)
	if rs.Annotations[RevisionHistoryAnnotation] != "5,8" {
		t.Fatalf("history %q", rs.Annotations[RevisionHistoryAnnotation])
	}
	if setNewRSAnnotations(d, rs, "10", true) {
		t.Fatal("no-op reported a change")
	}
	// A lower revision never replaces a higher one.
	setNewRSAnnotations(d, rs, "3", true)
	if rs.Annotations[RevisionAnnotation] != "10" {
		t.Fatal("revision went backwards")
	}
}

func rsOf(name string, size int32, maxAnn string, created int64) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name),
		CreationTimestamp: metav1.Unix(created, 0), Annotations: map[string]string{}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &size}}
	if maxAnn != "" {
		rs.Annotations[MaxReplicasAnnotation] = maxAnn
	}
	return rs
}

func TestProportionalScaling(t *testing.T) {
	for _, tc := range []struct {
		name           string
		replicas       int32
		surge, unavail string
		statusReplicas int32
		sets           []*appsv1.ReplicaSet
		want           map[string]int32
		wantOp         string
	}{
		{
			// 10 → 15 mid-rollout (8 old + 5 new at 10+3 surge): 13 → 18 (15+3) shared 8:5.
			name: "scale up", replicas: 15, surge: "3", unavail: "2",
			sets: []*appsv1.ReplicaSet{rsOf("old", 8, "13", 1), rsOf("new", 5, "13", 2)},
			want: map[string]int32{"old": 11, "new": 7}, wantOp: "up",
		},
		{
			name: "scale down", replicas: 5, surge: "1", unavail: "0",
			sets: []*appsv1.ReplicaSet{rsOf("old", 6, "11", 1), rsOf("new", 5, "11", 2)},
			want: map[string]int32{"old": 3, "new": 3}, wantOp: "down",
		},
		{
			// Leftovers from rounding go to the largest (newest among equals when growing).
			name: "leftover to largest", replicas: 4, surge: "0", unavail: "1",
			sets: []*appsv1.ReplicaSet{rsOf("a", 1, "3", 1), rsOf("b", 1, "3", 2), rsOf("c", 1, "3", 3)},
			want: map[string]int32{"a": 1, "b": 1, "c": 2}, wantOp: "up",
		},
		{
			name: "to zero", replicas: 0, surge: "25%", unavail: "25%",
			sets: []*appsv1.ReplicaSet{rsOf("old", 3, "5", 1), rsOf("new", 2, "5", 2)},
			want: map[string]int32{"old": 0, "new": 0}, wantOp: "down",
		},
		{
			name: "no annotation uses status.replicas", replicas: 20, surge: "0", unavail: "1", statusReplicas: 10,
			sets: []*appsv1.ReplicaSet{rsOf("old", 5, "", 1), rsOf("new", 5, "", 2)},
			want: map[string]int32{"old": 10, "new": 10}, wantOp: "up",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDeployment("d", tc.replicas, tc.surge, tc.unavail)
			d.Status.Replicas = tc.statusReplicas
			_, sizes, op := proportionalSizes(d, tc.sets)
			if op != tc.wantOp {
				t.Errorf("op %q, want %q", op, tc.wantOp)
			}
			var total, want int32
			for name, n := range tc.want {
				if sizes[name] != n {
					t.Errorf("%s: %d, want %d (all %v)", name, sizes[name], n, sizes)
				}
				want += n
				total += sizes[name]
			}
			if allowed := tc.replicas + MaxSurge(d); tc.replicas > 0 && total != allowed {
				t.Errorf("total %d, want %d", total, allowed)
			}
		})
	}
}

func TestPlanScaleDown(t *testing.T) {
	d := newDeployment("d", 10, "3", "2")
	old := rsOf("old", 10, "", 1)
	old.Status.AvailableReplicas = 8 // two pods not available: removed first, freely
	newRS := rsOf("new", 3, "", 2)
	plan := planScaleDown(d, []*appsv1.ReplicaSet{old, newRS}, []*appsv1.ReplicaSet{old}, newRS)
	// maxScaledDown = 13 - 8 - 3 = 2 → cleanup 2 unhealthy; available 8 = minAvailable → no more.
	if plan.cleanup["old"] != 8 || len(plan.scaleDown) != 0 {
		t.Fatalf("plan %+v", plan)
	}
	old.Status.AvailableReplicas = 10
	newRS.Status.AvailableReplicas = 3
	plan = planScaleDown(d, []*appsv1.ReplicaSet{old, newRS}, []*appsv1.ReplicaSet{old}, newRS)
	// 13 available, 8 must stay → 5 may go.
	if len(plan.cleanup) != 0 || plan.scaleDown["old"] != 5 {
		t.Fatalf("plan %+v", plan)
	}
}

func TestConditions(t *testing.T) {
	var st appsv1.DeploymentStatus
	t0 := metav1.Unix(100, 0).Time
	setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSCreated, "a", t0))
	setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, "b", t0.Add(10e9)))
	c := getCondition(st, appsv1.DeploymentProgressing)
	if len(st.Conditions) != 1 || c.Reason != ReasonRSUpdated || !c.LastTransitionTime.Time.Equal(t0) {
		t.Fatalf("conditions %+v", st.Conditions)
	}
	setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, "c", t0.Add(20e9)))
	if getCondition(st, appsv1.DeploymentProgressing).Message != "b" {
		t.Fatal("same status and reason must not rewrite the condition")
	}
	d := newDeployment("d", 3, "25%", "25%")
	d.Status.Conditions = st.Conditions
	pds := int32(600)
	d.Spec.ProgressDeadlineSeconds = &pds
	if deploymentTimedOut(d, &st, t0.Add(100e9)) {
		t.Fatal("timed out early")
	}
	if !deploymentTimedOut(d, &st, t0.Add(700e9)) {
		t.Fatal("not timed out after the deadline")
	}
}
