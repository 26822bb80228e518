package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeSink records writes in order; slow makes each write take that long.
type fakeSink struct {
	mu      sync.Mutex
	writes  []string
	stored  map[string]bool
	slow    time.Duration
	failFor int // transport errors before the first success
}

func (f *fakeSink) do(verb string, e *corev1.Event) (*corev1.Event, error) {
	time.Sleep(f.slow)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failFor > 0 {
		f.failFor--
		return nil, errors.New("connection refused")
	}
	switch verb {
	case "patch":
		if !f.stored[e.Name] {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "events"}, e.Name)
		}
	case "create":
		if f.stored[e.Name] {
			return nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "events"}, e.Name)
		}
		f.stored[e.Name] = true
	}
	f.writes = append(f.writes, verb+" "+e.Name)
	return e, nil
}

func (f *fakeSink) Create(e *corev1.Event) (*corev1.Event, error) { return f.do("create", e) }
func (f *fakeSink) Update(e *corev1.Event) (*corev1.Event, error) { return f.do("update", e) }
func (f *fakeSink) Patch(e *corev1.Event, _ []byte) (*corev1.Event, error) {
	return f.do("patch", e)
}

func (f *fakeSink) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

func ev(name string) *corev1.Event {
	return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, ResourceVersion: "7"}}
}

func waitWrites(t *testing.T, f *fakeSink, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if w := f.snapshot(); len(w) >= n {
			return w
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("only %d of %d writes: %v", len(f.snapshot()), n, f.snapshot())
	return nil
}

// Writes return at once and happen concurrently: 64 events of 50 ms each take far less than
// 64 × 50 ms.
func TestAsyncSinkWritesConcurrently(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeSink{stored: map[string]bool{}, slow: 50 * time.Millisecond}
	s := newAsyncSink(ctx, f, slog.Default())
	start := time.Now()
	for i := range 64 {
		if _, err := s.Create(ev("e" + string(rune('A'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Fatalf("enqueueing 64 events took %v: the sink blocked on writes", d)
	}
	waitWrites(t, f, 64)
	if d := time.Since(start); d > 64*50*time.Millisecond/2 {
		t.Fatalf("64 writes took %v: not concurrent", d)
	}
}

// One event's create and later patches stay in order; a patch of an event that is gone
// becomes a create; the create does not carry the caller's resourceVersion.
func TestAsyncSinkOrderAndPatchFallback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeSink{stored: map[string]bool{}, slow: time.Millisecond}
	s := newAsyncSink(ctx, f, slog.Default())
	_, _ = s.Create(ev("a"))
	_, _ = s.Patch(ev("a"), []byte(`{"count":2}`))
	_, _ = s.Patch(ev("a"), []byte(`{"count":3}`))
	_, _ = s.Patch(ev("gone"), []byte(`{"count":2}`))
	w := waitWrites(t, f, 4)
	var a []string
	for _, x := range w {
		if x == "create a" || x == "patch a" {
			a = append(a, x)
		}
	}
	if len(a) != 3 || a[0] != "create a" || a[1] != "patch a" || a[2] != "patch a" {
		t.Fatalf("writes of a: %v", a)
	}
	found := false
	for _, x := range w {
		found = found || x == "create gone"
	}
	if !found {
		t.Fatalf("patch of a missing event did not become a create: %v", w)
	}
}

// Transport errors are retried; API rejections are not.
func TestAsyncSinkRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeSink{stored: map[string]bool{"dup": true}, failFor: 1}
	s := newAsyncSink(ctx, f, slog.Default())
	_, _ = s.Create(ev("x"))
	if w := waitWrites(t, f, 1); w[0] != "create x" {
		t.Fatalf("writes %v", w)
	}
	_, _ = s.Create(ev("dup")) // AlreadyExists: dropped, not retried
	time.Sleep(50 * time.Millisecond)
	if w := f.snapshot(); len(w) != 1 {
		t.Fatalf("rejected event was retried: %v", w)
	}
}
