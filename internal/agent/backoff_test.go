package agent

import (
	"testing"
	"time"
)

func TestCrashBackoff(t *testing.T) {
	now := t0
	b := newCrashBackoff()
	b.now = func() time.Time { return now }
	key := "uid/c"

	// First failure: no back-off, the restart happens at once.
	if in, _ := b.InBackoff(key, now); in {
		t.Fatal("first failure backs off")
	}
	if d := b.Next(key); d != 10*time.Second {
		t.Fatalf("first delay %s", d)
	}
	// Then 10 s, 20 s, 40 s ... counted from when the container failed.
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for i, w := range want {
		w *= time.Second
		failedAt := now.Add(time.Second)
		now = failedAt
		if in, left := b.InBackoff(key, failedAt); !in || left != w {
			t.Fatalf("failure %d: in back-off %v for %s, want %s", i+2, in, left, w)
		}
		now = failedAt.Add(w - time.Millisecond)
		if in, _ := b.InBackoff(key, failedAt); !in {
			t.Fatalf("failure %d: back-off over before %s", i+2, w)
		}
		now = failedAt.Add(w)
		if in, _ := b.InBackoff(key, failedAt); in {
			t.Fatalf("failure %d: still backing off after %s", i+2, w)
		}
		b.Next(key)
	}

	// Ten minutes without a restart: the schedule starts over.
	now = now.Add(10*time.Minute + time.Second)
	if in, _ := b.InBackoff(key, now.Add(-time.Second)); in {
		t.Error("back-off not reset after 10 min")
	}
	if d := b.Next(key); d != 10*time.Second {
		t.Errorf("delay after reset %s, want 10s", d)
	}
	b.ForgetPrefix("uid/")
	if b.Delay(key) != 0 {
		t.Error("ForgetPrefix kept the key")
	}
}

func TestPullBackoff(t *testing.T) {
	now := t0
	b := newBackoff(10*time.Second, 5*time.Minute, 10*time.Minute)
	b.now = func() time.Time { return now }
	if _, in := b.inBackoffSinceLast("image/x"); in {
		t.Fatal("no failure yet, but backing off")
	}
	b.Next("image/x") // failed pull
	now = now.Add(5 * time.Second)
	if left, in := b.inBackoffSinceLast("image/x"); !in || left != 5*time.Second {
		t.Fatalf("5 s after a failed pull: %v %s", in, left)
	}
	now = now.Add(5 * time.Second)
	if _, in := b.inBackoffSinceLast("image/x"); in {
		t.Fatal("still backing off after 10 s")
	}
	b.Next("image/x")
	if b.Delay("image/x") != 20*time.Second {
		t.Errorf("second delay %s", b.Delay("image/x"))
	}
	b.GC()
	now = now.Add(11 * time.Minute)
	b.GC()
	if b.Delay("image/x") != 0 {
		t.Error("GC kept an old entry")
	}
}
