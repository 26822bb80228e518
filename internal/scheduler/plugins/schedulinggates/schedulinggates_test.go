package schedulinggates

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestPreEnqueue(t *testing.T) {
	p := &SchedulingGates{}
	if s := p.PreEnqueue(context.Background(), st.MakePod("p").Obj()); !s.IsSuccess() {
		t.Fatalf("ungated pod rejected: %v", s.Message())
	}
	gated := st.MakePod("p").Obj()
	gated.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "a"}, {Name: "b"}}
	s := p.PreEnqueue(context.Background(), gated)
	if s.IsSuccess() || s.Message() != "waiting for scheduling gates: [a b]" {
		t.Fatalf("gated pod: %v %q", s.Code(), s.Message())
	}
}
