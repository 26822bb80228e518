package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// zoneState is how much of a zone is down.
type zoneState int

const (
	zoneNormal zoneState = iota
	// zonePartialDisruption: most of the zone is down; evictions slow down or stop.
	zonePartialDisruption
	// zoneFullDisruption: no node of the zone is ready.
	zoneFullDisruption
)

func (s zoneState) String() string {
	switch s {
	case zonePartialDisruption:
		return "PartialDisruption"
	case zoneFullDisruption:
		return "FullDisruption"
	}
	return "Normal"
}

// zoneOf is a node's failure domain: its region and zone labels.
func zoneOf(n *corev1.Node) string {
	return n.Labels[corev1.LabelTopologyRegion] + "/" + n.Labels[corev1.LabelTopologyZone]
}

// computeZoneState classifies a zone from its ready and not-ready node counts.
func computeZoneState(ready, notReady int, unhealthyThreshold float64) zoneState {
	switch {
	case ready == 0 && notReady > 0:
		return zoneFullDisruption
	case notReady > 2 && float64(notReady)/float64(ready+notReady) >= unhealthyThreshold:
		return zonePartialDisruption
	}
	return zoneNormal
}

// zone is a failure domain's state and the rate at which its nodes may get NoExecute taints.
type zone struct {
	state zoneState
	size  int
	limit bucket
}

// bucket is a token bucket with a burst of one.
type bucket struct {
	rate   float64 // tokens per second; 0 stops
	tokens float64
	last   time.Time
}

func newBucket(rate float64, now time.Time) bucket {
	return bucket{rate: rate, tokens: 1, last: now}
}

// setRate changes the rate; like swapping in a new limiter, a stopped bucket is empty and a
// restarted one full.
func (b *bucket) setRate(rate float64, now time.Time) {
	if rate == b.rate {
		return
	}
	b.refill(now)
	switch {
	case rate <= 0:
		b.tokens = 0
	case b.rate <= 0:
		b.tokens = 1
	}
	b.rate, b.last = rate, now
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > 1 {
			b.tokens = 1
		}
		b.last = now
	}
}

// take takes a token; without one it says how long until the next (negative: never, at the
// current rate).
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if b.rate <= 0 {
		return false, -1
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
