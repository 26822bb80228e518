package policy

import (
	"reflect"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPodDisruptionBudget(t *testing.T) {
	r := Resources()[0]
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "zk"}}
	tests := []struct {
		name string
		spec policyv1.PodDisruptionBudgetSpec
		want []string
	}{
		{"minAvailable", policyv1.PodDisruptionBudgetSpec{Selector: sel, MinAvailable: new(intstr.FromInt32(2))}, nil},
		{"both", policyv1.PodDisruptionBudgetSpec{Selector: sel, MinAvailable: new(intstr.FromInt32(2)), MaxUnavailable: new(intstr.FromString("10%"))},
			[]string{"minAvailable and maxUnavailable cannot be both set"}},
		{"over 100%", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: new(intstr.FromString("120%"))}, []string{"must not be greater than 100%"}},
		{"negative", policyv1.PodDisruptionBudgetSpec{MinAvailable: new(intstr.FromInt32(-1))}, []string{"must be greater than or equal to 0"}},
		{"eviction policy", policyv1.PodDisruptionBudgetSpec{UnhealthyPodEvictionPolicy: new(policyv1.UnhealthyPodEvictionPolicyType("Never"))},
			[]string{`supported values: "AlwaysAllow", "IfHealthyBudget"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range r.Validate(&policyv1.PodDisruptionBudget{Spec: tt.spec}) {
				got = append(got, e.Detail)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors %q, want %q", got, tt.want)
			}
		})
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "zk", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: new(intstr.FromString("50%"))}, Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1}}
	if got, want := r.Row(pdb, now), []interface{}{"zk", "50%", "N/A", int64(1), "60m"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row %v, want %v", got, want)
	}
}
