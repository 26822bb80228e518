package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Kubernetes' defaults.
const (
	DefaultInitialBackoff      = time.Second
	DefaultMaxBackoff          = 10 * time.Second
	DefaultMaxInUnschedulable  = 5 * time.Minute
	backoffFlushInterval       = time.Second
	unschedulableFlushInterval = 30 * time.Second
)

// QueuedPodInfo is a pod in the queue with its scheduling history.
type QueuedPodInfo struct {
	*framework.PodInfo
	key string
	// Timestamp is when the pod last entered the queue; backoff counts from it.
	Timestamp time.Time
	// InitialTimestamp is when the pod first entered the queue.
	InitialTimestamp time.Time
	// Attempts counts scheduling attempts.
	Attempts int
	// InitialAttemptTimestamp is the first time the pod was popped.
	InitialAttemptTimestamp *time.Time
	// UnschedulablePlugins rejected the pod in its last attempt.
	UnschedulablePlugins sets.Set[string]
	// Unschedulable says the last attempt found no room (rather than failing on an
	// error): the pod waits for a cluster event instead of merely backing off.
	Unschedulable bool
	// Gated pods wait for a PreEnqueue plugin (scheduling gates) to let them in.
	Gated bool
}

// Options tune the queue; zero values mean Kubernetes' defaults.
type Options struct {
	InitialBackoff     time.Duration
	MaxBackoff         time.Duration
	MaxInUnschedulable time.Duration
	// PreEnqueue may keep a pod out of the active queue (scheduling gates).
	PreEnqueue func(ctx context.Context, pod *v1.Pod) *framework.Status
	// Events are the cluster events each plugin registered interest in.
	Events map[string][]framework.ClusterEvent
	// Now is the clock (tests).
	Now func() time.Time
}

// inFlight tracks a popped pod until its attempt ends: the cluster events seen
// meanwhile decide whether a failure waits for another event or just backs off.
type inFlight struct {
	eventStart int
	latest     *v1.Pod // set when the pod was updated during the attempt
	updated    bool
	deleted    bool
}

// PriorityQueue is the scheduling queue. All methods are safe for concurrent use.
type PriorityQueue struct {
	opts Options
	*nominator

	mu            sync.Mutex
	cond          *sync.Cond
	active        *podHeap
	backoff       *podHeap
	unschedulable map[string]*QueuedPodInfo
	inFlight      map[string]*inFlight
	// events received while pods were in flight; eventBase is the index of events[0].
	events    []framework.ClusterEvent
	eventBase int
	cycle     int64
	closed    bool
}

// New returns an empty queue.
func New(opts Options) *PriorityQueue {
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = DefaultInitialBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxInUnschedulable <= 0 {
		opts.MaxInUnschedulable = DefaultMaxInUnschedulable
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	q := &PriorityQueue{opts: opts, nominator: newNominator(),
		unschedulable: map[string]*QueuedPodInfo{}, inFlight: map[string]*inFlight{}}
	q.cond = sync.NewCond(&q.mu)
	q.active = newPodHeap(activeLess)
	q.backoff = newPodHeap(func(a, b *QueuedPodInfo) bool {
		return q.backoffExpiry(a).Before(q.backoffExpiry(b))
	})
	return q
}

// activeLess orders by priority (higher first), then creation time, then time queued.
func activeLess(a, b *QueuedPodInfo) bool {
	pa, pb := framework.PodPriority(a.Pod), framework.PodPriority(b.Pod)
	if pa != pb {
		return pa > pb
	}
	ca, cb := a.Pod.CreationTimestamp.Time, b.Pod.CreationTimestamp.Time
	if !ca.Equal(cb) {
		return ca.Before(cb)
	}
	return a.Timestamp.Before(b.Timestamp)
}

func key(pod *v1.Pod) string { return framework.PodKey(pod) }

// backoffDuration doubles from the initial backoff per attempt, up to the maximum.
func (q *PriorityQueue) backoffDuration(p *QueuedPodInfo) time.Duration {
	d := q.opts.InitialBackoff
	for i := 1; i < p.Attempts; i++ {
		d *= 2
		if d >= q.opts.MaxBackoff {
			return q.opts.MaxBackoff
		}
	}
	return d
}

func (q *PriorityQueue) backoffExpiry(p *QueuedPodInfo) time.Time {
	return p.Timestamp.Add(q.backoffDuration(p))
}

func (q *PriorityQueue) isBackingOff(p *QueuedPodInfo) bool {
	return p.Attempts > 0 && q.backoffExpiry(p).After(q.opts.Now())
}

func (q *PriorityQueue) newQueued(pod *v1.Pod) *QueuedPodInfo {
	now := q.opts.Now()
	return &QueuedPodInfo{PodInfo: framework.NewPodInfo(pod), key: key(pod), Timestamp: now, InitialTimestamp: now}
}

// gate runs PreEnqueue; a rejected pod is parked as gated.
func (q *PriorityQueue) gate(p *QueuedPodInfo) bool {
	if q.opts.PreEnqueue == nil {
		p.Gated = false
		return false
	}
	s := q.opts.PreEnqueue(context.Background(), p.Pod)
	p.Gated = !s.IsSuccess()
	if p.Gated {
		p.UnschedulablePlugins = sets.New(s.Plugin())
	}
	return p.Gated
}

// moveLocked puts a waiting pod where it belongs now: gated, backing off, or active.
func (q *PriorityQueue) moveLocked(p *QueuedPodInfo) {
	delete(q.unschedulable, p.key)
	q.backoff.delete(p.key)
	if q.gate(p) {
		q.unschedulable[p.key] = p
		return
	}
	if q.isBackingOff(p) {
		q.backoff.add(p)
		return
	}
	q.active.add(p)
	q.cond.Broadcast()
}

// Add queues a new pending pod.
func (q *PriorityQueue) Add(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.newQueued(pod)
	q.moveLocked(p)
	q.nominator.AddNominatedPod(p.PodInfo, nil)
}

// isPodUpdated reports whether an update may change the scheduling outcome; status-only
// updates (including the scheduler's own condition writes) do not.
func isPodUpdated(oldPod, newPod *v1.Pod) bool {
	return !equality.Semantic.DeepEqual(oldPod.Spec, newPod.Spec) ||
		!equality.Semantic.DeepEqual(oldPod.Labels, newPod.Labels) ||
		!equality.Semantic.DeepEqual(oldPod.Annotations, newPod.Annotations) ||
		!equality.Semantic.DeepEqual(oldPod.OwnerReferences, newPod.OwnerReferences)
}

// Update replaces a pending pod. An unschedulable pod whose spec or labels changed gets
// another try.
func (q *PriorityQueue) Update(oldPod, newPod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := key(newPod)
	pi := framework.NewPodInfo(newPod)
	if oldPod != nil {
		q.nominator.UpdateNominatedPod(oldPod, pi)
	}
	if f, ok := q.inFlight[k]; ok {
		f.latest = newPod
		if oldPod == nil || isPodUpdated(oldPod, newPod) {
			f.updated = true
		}
		return
	}
	if p, ok := q.active.get(k); ok {
		p.PodInfo = pi
		q.active.add(p)
		return
	}
	if p, ok := q.backoff.get(k); ok {
		p.PodInfo = pi
		q.backoff.add(p)
		return
	}
	if p, ok := q.unschedulable[k]; ok {
		p.PodInfo = pi
		if oldPod == nil || isPodUpdated(oldPod, newPod) {
			q.moveLocked(p)
		}
		return
	}
	p := q.newQueued(newPod)
	p.PodInfo = pi
	q.moveLocked(p)
}

// Delete removes a pod from the queue.
func (q *PriorityQueue) Delete(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := key(pod)
	q.nominator.DeleteNominatedPodIfExists(pod)
	q.active.delete(k)
	q.backoff.delete(k)
	delete(q.unschedulable, k)
	if f, ok := q.inFlight[k]; ok {
		f.deleted = true
	}
}

// Pop blocks until a pod is active and returns it, or returns an error once the queue is
// closed.
func (q *PriorityQueue) Pop(ctx context.Context) (*QueuedPodInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, errors.New("scheduling queue is closed")
	}
	p := q.active.pop()
	q.cycle++
	p.Attempts++
	if p.InitialAttemptTimestamp == nil {
		now := q.opts.Now()
		p.InitialAttemptTimestamp = &now
	}
	q.inFlight[p.key] = &inFlight{eventStart: q.eventBase + len(q.events)}
	return p, nil
}

// SchedulingCycle counts pops.
func (q *PriorityQueue) SchedulingCycle() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cycle
}

func (q *PriorityQueue) doneLocked(k string) (*inFlight, bool) {
	f, ok := q.inFlight[k]
	if !ok {
		return nil, false
	}
	delete(q.inFlight, k)
	if len(q.inFlight) == 0 {
		q.eventBase += len(q.events)
		q.events = q.events[:0]
	}
	return f, true
}

// Done ends a successful attempt.
func (q *PriorityQueue) Done(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.doneLocked(key(pod))
}

// interested reports whether an event may help a pod rejected by plugins; a pod no
// plugin rejected (an error, no nodes) is interested in everything.
func (q *PriorityQueue) interested(plugins sets.Set[string], ev framework.ClusterEvent) bool {
	if ev.Resource == framework.WildCard || plugins.Len() == 0 {
		return true
	}
	for pl := range plugins {
		regs, ok := q.opts.Events[pl]
		if !ok {
			// A plugin that registered nothing gets retried on everything.
			return true
		}
		for _, r := range regs {
			if r.Match(ev) {
				return true
			}
		}
	}
	return false
}

// AddUnschedulableIfNotPresent ends a failed attempt and parks the pod: an
// unschedulable pod waits in the unschedulable set unless something that could help it
// happened during the attempt; otherwise (and after errors) it backs off.
func (q *PriorityQueue) AddUnschedulableIfNotPresent(p *QueuedPodInfo) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var missed []framework.ClusterEvent
	f, ok := q.inFlight[p.key]
	if ok {
		missed = append(missed, q.events[f.eventStart-q.eventBase:]...)
	}
	q.doneLocked(p.key)
	if f != nil && f.deleted {
		return nil
	}
	if _, ok := q.active.get(p.key); ok {
		return fmt.Errorf("pod %s is already in the active queue", p.key)
	}
	if _, ok := q.backoff.get(p.key); ok {
		return fmt.Errorf("pod %s is already in the backoff queue", p.key)
	}
	if _, ok := q.unschedulable[p.key]; ok {
		return fmt.Errorf("pod %s is already in the unschedulable queue", p.key)
	}
	p.Timestamp = q.opts.Now()
	moved := f != nil && f.updated
	if f != nil && f.latest != nil {
		p.PodInfo = framework.NewPodInfo(f.latest)
	}
	for _, ev := range missed {
		if q.interested(p.UnschedulablePlugins, ev) {
			moved = true
			break
		}
	}
	if q.gate(p) {
		q.unschedulable[p.key] = p
		return nil
	}
	if moved || !p.Unschedulable {
		q.backoff.add(p)
		return nil
	}
	q.unschedulable[p.key] = p
	return nil
}

// MoveAllToActiveOrBackoffQueue gives unschedulable pods another try after an event that
// may help them: pods rejected by plugins interested in the event and, when preCheck is
// set, passing it (a cheap "could it fit on this new node at all").
func (q *PriorityQueue) MoveAllToActiveOrBackoffQueue(ev framework.ClusterEvent, preCheck func(*v1.Pod) bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.inFlight) > 0 {
		q.events = append(q.events, ev)
	}
	for _, p := range q.unschedulable {
		if p.Gated || !q.interested(p.UnschedulablePlugins, ev) {
			continue
		}
		if preCheck != nil && !preCheck(p.Pod) {
			continue
		}
		q.moveLocked(p)
	}
}

// Activate moves the given pods (if waiting) to the active queue right away.
func (q *PriorityQueue) Activate(pods ...*v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, pod := range pods {
		k := key(pod)
		p, ok := q.unschedulable[k]
		if !ok {
			p, ok = q.backoff.get(k)
		}
		if !ok || q.gate(p) {
			continue
		}
		delete(q.unschedulable, k)
		q.backoff.delete(k)
		q.active.add(p)
		q.cond.Broadcast()
	}
}

func (q *PriorityQueue) flushBackoff() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.opts.Now()
	for {
		p := q.backoff.peek()
		if p == nil || q.backoffExpiry(p).After(now) {
			return
		}
		q.backoff.pop()
		q.active.add(p)
		q.cond.Broadcast()
	}
}

func (q *PriorityQueue) flushUnschedulable() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.opts.Now()
	for _, p := range q.unschedulable {
		if !p.Gated && now.Sub(p.Timestamp) > q.opts.MaxInUnschedulable {
			q.moveLocked(p)
		}
	}
}

// Flush runs the periodic moves once (tests).
func (q *PriorityQueue) Flush() {
	q.flushBackoff()
	q.flushUnschedulable()
}

// Run moves pods whose backoff expired every second and pods unschedulable for too long
// every 30 seconds, until ctx ends; then it closes the queue.
func (q *PriorityQueue) Run(ctx context.Context) {
	b := time.NewTicker(backoffFlushInterval)
	u := time.NewTicker(unschedulableFlushInterval)
	defer b.Stop()
	defer u.Stop()
	for {
		select {
		case <-ctx.Done():
			q.Close()
			return
		case <-b.C:
			q.flushBackoff()
		case <-u.C:
			q.flushUnschedulable()
		}
	}
}

// Close wakes Pop and makes it fail.
func (q *PriorityQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// Counts returns the numbers of active, backing-off, unschedulable and gated pods.
func (q *PriorityQueue) Counts() (active, backoff, unschedulable, gated int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range q.unschedulable {
		if p.Gated {
			gated++
		} else {
			unschedulable++
		}
	}
	return q.active.Len(), q.backoff.Len(), unschedulable, gated
}

// Nominator returns the queue's nominated-pod tracker.
func (q *PriorityQueue) Nominator() framework.PodNominator { return q.nominator }

// Has reports whether the pod waits in any part of the queue (tests).
func (q *PriorityQueue) Has(pod *v1.Pod) (where string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := key(pod)
	if _, ok := q.active.get(k); ok {
		return "active"
	}
	if _, ok := q.backoff.get(k); ok {
		return "backoff"
	}
	if p, ok := q.unschedulable[k]; ok {
		if p.Gated {
			return "gated"
		}
		return "unschedulable"
	}
	return ""
}
