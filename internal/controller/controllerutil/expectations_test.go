package controllerutil

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestExpectations(t *testing.T) {
	now := time.Unix(1000, 0)
	e := NewExpectations()
	e.Now = func() time.Time { return now }

	if !e.Satisfied("ns/a") {
		t.Fatal("nothing recorded must be satisfied")
	}
	e.ExpectCreations("ns/a", 3)
	for i := 0; i < 2; i++ {
		e.CreationObserved("ns/a")
		if e.Satisfied("ns/a") {
			t.Fatalf("satisfied after %d of 3 creations", i+1)
		}
	}
	e.CreationObserved("ns/a")
	if !e.Satisfied("ns/a") {
		t.Fatal("not satisfied after all creations")
	}
	// Extra observations (pods of other rounds) never go negative in a way that lets a later
	// round through early.
	e.CreationObserved("ns/a")
	e.ExpectCreations("ns/a", 1)
	if e.Satisfied("ns/a") {
		t.Fatal("new round must not be satisfied")
	}

	// Deletions count each pod once, however often it is seen going.
	e.ExpectDeletions("ns/b", []string{"ns/p1", "ns/p2"})
	e.DeletionObserved("ns/b", "ns/p1")
	e.DeletionObserved("ns/b", "ns/p1")
	e.DeletionObserved("ns/b", "ns/other")
	if e.Satisfied("ns/b") {
		t.Fatal("one pod still expected to go")
	}
	if _, dels, _ := e.Pending("ns/b"); dels != 1 {
		t.Fatalf("pending deletions = %d, want 1", dels)
	}
	e.DeletionObserved("ns/b", "ns/p2")
	if !e.Satisfied("ns/b") {
		t.Fatal("all deletions seen")
	}

	// Expectations expire so that a lost event cannot wedge a controller.
	e.ExpectCreations("ns/c", 5)
	now = now.Add(ExpectationsTimeout - time.Second)
	if e.Satisfied("ns/c") {
		t.Fatal("expired too early")
	}
	now = now.Add(2 * time.Second)
	if !e.Satisfied("ns/c") {
		t.Fatal("not expired after timeout")
	}
	e.Forget("ns/c")
	if _, _, ok := e.Pending("ns/c"); ok {
		t.Fatal("forget kept the record")
	}
}

func TestSlowStartBatch(t *testing.T) {
	for _, tc := range []struct {
		count, failAt, wantOK, wantCalls int
	}{
		{count: 10, failAt: -1, wantOK: 10, wantCalls: 10},
		{count: 0, failAt: -1, wantOK: 0, wantCalls: 0},
		// batches 1,2,4: the 4th call fails → batch of 2 (calls 2-3) has one failure
		{count: 10, failAt: 2, wantOK: 2, wantCalls: 3},
		{count: 10, failAt: 0, wantOK: 0, wantCalls: 1},
	} {
		var calls atomic.Int32
		ok, err := SlowStartBatch(tc.count, 1, func() error {
			n := int(calls.Add(1)) - 1
			if n == tc.failAt {
				return errors.New("quota")
			}
			return nil
		})
		if ok != tc.wantOK || int(calls.Load()) != tc.wantCalls || (tc.failAt >= 0) != (err != nil) {
			t.Errorf("count %d fail at %d: ok=%d calls=%d err=%v; want ok=%d calls=%d", tc.count, tc.failAt, ok, calls.Load(), err, tc.wantOK, tc.wantCalls)
		}
	}
}
