package cacher

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/storage"
)

// cacheWatcher turns cache events into one client's watch events, applying its predicate: an
// object that stops matching is reported DELETED, one that starts matching ADDED, as in
// Kubernetes.
type cacheWatcher struct {
	prefix    string
	pred      storage.SelectionPredicate
	bookmarks bool

	input  chan *event
	result chan watch.Event
	done   chan struct{}
	once   sync.Once
	lastRV int64
	sent   atomic.Int64
}

func newCacheWatcher(prefix string, pred storage.SelectionPredicate, bookmarks bool) *cacheWatcher {
	return &cacheWatcher{prefix: prefix, pred: pred, bookmarks: bookmarks,
		input: make(chan *event, 1024), result: make(chan watch.Event), done: make(chan struct{})}
}

func (w *cacheWatcher) keyMatches(key string) bool {
	if strings.HasSuffix(w.prefix, "\x00") {
		return key == strings.TrimSuffix(w.prefix, "\x00")
	}
	return strings.HasPrefix(key, w.prefix)
}

// offer queues an event without blocking; false means the watcher is too far behind.
// Called with the cacher's lock held.
func (w *cacheWatcher) offer(e *event) bool {
	if e.typ != watch.Bookmark && !w.keyMatches(e.key) {
		return true
	}
	select {
	case <-w.done:
		return true
	default:
	}
	select {
	case w.input <- e:
		return true
	default:
		return false
	}
}

func (w *cacheWatcher) lastSentRV() int64 { return w.sent.Load() }

func (w *cacheWatcher) stopLocked() {
	w.once.Do(func() { close(w.done) })
}

// Stop ends the watch.
func (w *cacheWatcher) Stop() { w.stopLocked() }

// ResultChan delivers events until the watch ends.
func (w *cacheWatcher) ResultChan() <-chan watch.Event { return w.result }

func (w *cacheWatcher) run(ctx context.Context, initial []*event, unregister func()) {
	defer close(w.result)
	defer unregister()
	for _, e := range initial {
		if !w.send(ctx, e) {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
			// Drain what was queued before the stop so that nothing acknowledged is skipped.
			for {
				select {
				case e := <-w.input:
					if !w.send(ctx, e) {
						return
					}
				default:
					return
				}
			}
		case e := <-w.input:
			if !w.send(ctx, e) {
				return
			}
		}
	}
}

func (w *cacheWatcher) send(ctx context.Context, e *event) bool {
	if e.typ != watch.Bookmark && e.rv <= w.lastRV && e.typ != watch.Added {
		return true
	}
	ev, ok := w.convert(e)
	if !ok {
		return true
	}
	select {
	case <-ctx.Done():
		return false
	case w.result <- ev:
		if e.rv > w.sent.Load() {
			w.sent.Store(e.rv)
		}
		return true
	}
}

func (w *cacheWatcher) convert(e *event) (watch.Event, bool) {
	if e.typ == watch.Bookmark {
		if !w.bookmarks && e.key != "initial-events-end" {
			return watch.Event{}, false
		}
		return watch.Event{Type: watch.Bookmark, Object: e.obj}, true
	}
	if w.pred.Empty() {
		return watch.Event{Type: e.typ, Object: e.obj}, true
	}
	curOK := e.cur != nil && w.pred.MatchesAttrs(e.cur.labels, e.cur.fields)
	prevOK := e.prev != nil && w.pred.MatchesAttrs(e.prev.labels, e.prev.fields)
	switch e.typ {
	case watch.Added:
		return watch.Event{Type: watch.Added, Object: e.obj}, curOK
	case watch.Modified:
		switch {
		case curOK && prevOK:
			return watch.Event{Type: watch.Modified, Object: e.obj}, true
		case curOK:
			return watch.Event{Type: watch.Added, Object: e.obj}, true
		case prevOK:
			return watch.Event{Type: watch.Deleted, Object: e.obj}, true
		}
		return watch.Event{}, false
	case watch.Deleted:
		return watch.Event{Type: watch.Deleted, Object: e.obj}, prevOK
	}
	return watch.Event{}, false
}
