package loopback

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackgroundLane: background requests (marked by context or picked by the classifier) run
// at most the lane's width at a time, others and watches pass beside them, and a background
// request whose context ends while it waits fails without reaching the handler.
func TestBackgroundLane(t *testing.T) {
	var running, peak, served atomic.Int32
	gate := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Path == "/slow" {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-gate
			running.Add(-1)
		}
		_, _ = io.WriteString(w, "ok")
	})
	c := &http.Client{Transport: &Transport{Handler: h, BackgroundLane: NewLane(2),
		BackgroundRequest: func(r *http.Request) bool { return r.URL.Path == "/slow" }}}
	get := func(ctx context.Context, path string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x"+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		return err
	}

	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = get(context.Background(), "/slow") }()
	}
	waitFor(t, func() bool { return running.Load() == 2 })
	// Others are not held back, nor are watches, even when marked as background.
	if err := get(context.Background(), "/fast"); err != nil {
		t.Fatal(err)
	}
	if err := get(Background(context.Background()), "/fast?watch=true"); err != nil {
		t.Fatal(err)
	}
	// A marked request waits for the lane; it gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	before := served.Load()
	if err := get(Background(ctx), "/fast"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("background request with a full lane: %v", err)
	}
	if served.Load() != before {
		t.Fatal("a request that gave up reached the handler")
	}
	close(gate)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak background concurrency %d, want 2", p)
	}
	if err := get(Background(context.Background()), "/fast"); err != nil {
		t.Fatalf("lane not released: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
	}
}
