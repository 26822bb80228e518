// Package controllerutil holds helpers shared by the workload controllers: expectations that
// keep a controller from acting twice on a stale cache, adoption and release of dependents by
// controller ownerReferences, pod helpers, and slow-start batching of API calls.
package controllerutil

import (
	"sync"
	"time"
)

// ExpectationsTimeout is how long unfulfilled expectations block a controller before it syncs
// anyway: a lost watch event must not wedge it forever.
const ExpectationsTimeout = 5 * time.Minute

// Expectations remembers, per controller key, how many creations and which deletions a
// controller has asked for and not yet seen in its informer cache. While some are pending the
// controller must not compute a new diff from the cache: it would count the same pods twice
// (or not at all) and over- or under-shoot.
//
// Deletions are tracked by dependent key, so a pod that is first seen terminating and then
// seen deleted lowers the count once.
type Expectations struct {
	mu      sync.Mutex
	records map[string]*expectation
	// Now is the clock (tests replace it).
	Now func() time.Time
	// Timeout overrides ExpectationsTimeout when positive.
	Timeout time.Duration
}

type expectation struct {
	adds     int64
	dels     int64
	deleting map[string]struct{}
	setAt    time.Time
}

// NewExpectations returns an empty cache.
func NewExpectations() *Expectations {
	return &Expectations{records: map[string]*expectation{}, Now: time.Now}
}

func (e *Expectations) timeout() time.Duration {
	if e.Timeout > 0 {
		return e.Timeout
	}
	return ExpectationsTimeout
}

// Satisfied reports whether the controller may sync key: nothing is expected, everything
// expected has been observed, or the expectations are older than the timeout.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.records[key]
	if !ok {
		return true
	}
	if r.adds <= 0 && r.dels <= 0 {
		return true
	}
	return e.Now().Sub(r.setAt) > e.timeout()
}

// ExpectCreations records that n creations are on their way for key, replacing what was
// recorded before.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records[key] = &expectation{adds: int64(n), setAt: e.Now()}
}

// ExpectDeletions records that the dependents with the given keys are being deleted,
// replacing what was recorded before.
func (e *Expectations) ExpectDeletions(key string, dependents []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &expectation{deleting: make(map[string]struct{}, len(dependents)), setAt: e.Now()}
	for _, d := range dependents {
		if _, dup := r.deleting[d]; !dup {
			r.deleting[d] = struct{}{}
			r.dels++
		}
	}
	e.records[key] = r
}

// CreationObserved lowers the pending creations of key by one (an informer saw a new
// dependent, or a create call failed and no event will come).
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok && r.adds > 0 {
		r.adds--
	}
}

// DeletionObserved lowers the pending deletions of key when dependent is one of those
// expected to go; a dependent seen twice (terminating, then gone) counts once.
func (e *Expectations) DeletionObserved(key, dependent string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.records[key]
	if !ok {
		return
	}
	if _, pending := r.deleting[dependent]; pending {
		delete(r.deleting, dependent)
		r.dels--
	}
}

// Pending returns the outstanding creations and deletions of key (for tests and logs).
func (e *Expectations) Pending(key string) (adds, dels int64, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.records[key]
	if !ok {
		return 0, 0, false
	}
	return r.adds, r.dels, true
}

// Forget drops everything recorded for key (the controller was deleted).
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.records, key)
}
