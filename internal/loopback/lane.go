package loopback

import (
	"context"
	"net/http"
)

// Lane bounds how many requests of one kind the in-process clients run at once. The API
// server serves its own components and remote clients from the same CPUs; work that may lag
// (event writes, status that only reports a failure) goes through a narrow lane so that a
// burst of it cannot crowd out requests that someone waits for — the part of API Priority and
// Fairness that matters inside one process.
type Lane struct {
	slots chan struct{}
}

// NewLane returns a lane that runs at most n requests at a time (n < 1 counts as 1).
func NewLane(n int) *Lane {
	return &Lane{slots: make(chan struct{}, max(n, 1))}
}

// acquire waits for a slot; it fails only when ctx ends first.
func (l *Lane) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Lane) release() { <-l.slots }

type backgroundKey struct{}

// Background marks the requests made with ctx as background work: a Transport with a
// Background lane runs them through it.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackground reports whether ctx was marked by Background.
func IsBackground(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}

// laneFor picks the lane of req: the Background lane for requests marked by Background or
// chosen by the BackgroundRequest classifier; none otherwise. Watches never take a slot, as
// they would hold it for as long as they stream.
func (t *Transport) laneFor(req *http.Request) *Lane {
	if t.BackgroundLane == nil || req.URL.Query().Get("watch") == "true" {
		return nil
	}
	if IsBackground(req.Context()) || (t.BackgroundRequest != nil && t.BackgroundRequest(req)) {
		return t.BackgroundLane
	}
	return nil
}
