package agent

import (
	"sync"
	"time"
)

// backoff tracks restart delays per key (a container of a pod, an image): the first
// restart happens at once, then each one waits initial, 2×initial, ... up to max after the
// previous failure. A key left alone for reset (a container that kept running) starts
// over. This is the CrashLoopBackOff and ImagePullBackOff schedule of the kubelet.
type backoff struct {
	initial, max, reset time.Duration
	now                 func() time.Time

	mu      sync.Mutex
	entries map[string]*backoffEntry
}

type backoffEntry struct {
	delay time.Duration
	last  time.Time // when the delay was last raised
}

func newBackoff(initial, max, reset time.Duration) *backoff {
	return &backoff{initial: initial, max: max, reset: reset, now: time.Now, entries: map[string]*backoffEntry{}}
}

// newCrashBackoff is the container restart schedule: 10 s doubling to 5 min, forgotten
// after 10 min without a restart.
func newCrashBackoff() *backoff { return newBackoff(10*time.Second, 5*time.Minute, 10*time.Minute) }

// InBackoff tells whether key must still wait after a failure at failedAt, and how long.
func (b *backoff) InBackoff(key string, failedAt time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil {
		return false, 0
	}
	now := b.now()
	if now.Sub(e.last) > b.reset {
		return false, 0
	}
	if wait := failedAt.Add(e.delay).Sub(now); wait > 0 {
		return true, wait
	}
	return false, 0
}

// Next records a restart of key now and raises its delay for the next failure.
func (b *backoff) Next(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	e := b.entries[key]
	switch {
	case e == nil || now.Sub(e.last) > b.reset:
		e = &backoffEntry{delay: b.initial}
		b.entries[key] = e
	default:
		e.delay *= 2
		if e.delay > b.max {
			e.delay = b.max
		}
	}
	e.last = now
	return e.delay
}

// Delay returns key's current delay (0 when it has none).
func (b *backoff) Delay(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.entries[key]; e != nil && b.now().Sub(e.last) <= b.reset {
		return e.delay
	}
	return 0
}

// Forget drops key.
func (b *backoff) Forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, key)
}

// ForgetPrefix drops every key starting with prefix (a pod's containers).
func (b *backoff) ForgetPrefix(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.entries {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(b.entries, k)
		}
	}
}

// GC drops entries untouched for longer than reset.
func (b *backoff) GC() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for k, e := range b.entries {
		if now.Sub(e.last) > b.reset {
			delete(b.entries, k)
		}
	}
}

// inBackoffSinceLast tells whether key's last failure (the last Next) is less than its
// delay ago, and how long remains.
func (b *backoff) inBackoffSinceLast(key string) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil {
		return 0, false
	}
	if wait := e.last.Add(e.delay).Sub(b.now()); wait > 0 {
		return wait, true
	}
	return 0, false
}
