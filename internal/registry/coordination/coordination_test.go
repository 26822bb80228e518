package coordination

import (
	"reflect"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLease(t *testing.T) {
	r := Resources()[0]
	tests := []struct {
		name string
		spec coordinationv1.LeaseSpec
		want []string
	}{
		{"valid", coordinationv1.LeaseSpec{HolderIdentity: new("node-1"), LeaseDurationSeconds: new(int32(40))}, nil},
		{"zero duration", coordinationv1.LeaseSpec{LeaseDurationSeconds: new(int32(0))}, []string{"spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"}},
		{"negative transitions", coordinationv1.LeaseSpec{LeaseTransitions: new(int32(-1))}, []string{"spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"}},
		{"unknown strategy", coordinationv1.LeaseSpec{Strategy: new(coordinationv1.CoordinatedLeaseStrategy("Youngest"))},
			[]string{`spec.strategy: Unsupported value: "Youngest": supported values: "OldestEmulationVersion"`}},
		{"custom strategy", coordinationv1.LeaseSpec{Strategy: new(coordinationv1.CoordinatedLeaseStrategy("example.com/mine"))}, nil},
		{"preferred holder without strategy", coordinationv1.LeaseSpec{PreferredHolder: new("a")},
			[]string{"spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range r.Validate(&coordinationv1.Lease{Spec: tt.spec}) {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors %q, want %q", got, tt.want)
			}
		})
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "kube-scheduler", CreationTimestamp: metav1.NewTime(now.Add(-3 * 24 * time.Hour))},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: new("node-1_abc")}}
	if got, want := r.Row(l, now), []interface{}{"kube-scheduler", "node-1_abc", "3d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row %v, want %v", got, want)
	}
}
