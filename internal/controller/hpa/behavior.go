package hpa

import (
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// recommendation is one computed (pre-normalization) desired count.
type recommendation struct {
	at       time.Time
	replicas int32
}

// scaleEvent is one rescale, for the rate policies' periods.
type scaleEvent struct {
	at     time.Time
	change int32 // positive: added; negative: removed
}

// history is what the behavior rules remember of one autoscaler.
type history struct {
	recommendations []recommendation
	events          []scaleEvent
}

// limitReason explains a limited recommendation, for the conditions.
type limitReason struct {
	condType        autoscalingv2.HorizontalPodAutoscalerConditionType
	reason, message string
}

// defaultScaleUp and defaultScaleDown are the rules of an autoscaler without behavior.
func defaultScaleUp() *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: new(int32(0)),
		SelectPolicy:               new(autoscalingv2.MaxChangePolicySelect),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
}

func defaultScaleDown() *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{
		SelectPolicy: new(autoscalingv2.MaxChangePolicySelect),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
}

// rules returns the effective scale-up and scale-down rules of an autoscaler: its own,
// with the defaults for what it leaves out; downWindow is the scale-down stabilization
// window when the autoscaler sets none.
func rules(b *autoscalingv2.HorizontalPodAutoscalerBehavior, downWindow time.Duration) (up, down *autoscalingv2.HPAScalingRules) {
	up, down = defaultScaleUp(), defaultScaleDown()
	if b != nil {
		up = merge(b.ScaleUp, up)
		down = merge(b.ScaleDown, down)
	}
	if down.StabilizationWindowSeconds == nil {
		down.StabilizationWindowSeconds = new(int32(downWindow / time.Second))
	}
	return up, down
}

func merge(given, def *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	if given == nil {
		return def
	}
	out := *def
	if given.StabilizationWindowSeconds != nil {
		out.StabilizationWindowSeconds = given.StabilizationWindowSeconds
	}
	if given.SelectPolicy != nil {
		out.SelectPolicy = given.SelectPolicy
	}
	if given.Policies != nil {
		out.Policies = given.Policies
	}
	return &out
}

func window(r *autoscalingv2.HPAScalingRules) time.Duration {
	if r.StabilizationWindowSeconds == nil {
		return 0
	}
	return time.Duration(*r.StabilizationWindowSeconds) * time.Second
}

// stabilize records the new recommendation and returns the stabilized one: no higher than
// the lowest recommendation within the scale-up window (so a brief spike does not scale up
// when the window is set), no lower than the highest within the scale-down window (so the
// count does not flap down).
func (h *history) stabilize(now time.Time, current, desired int32, up, down *autoscalingv2.HPAScalingRules) (int32, limitReason) {
	upWin, downWin := window(up), window(down)
	upRec, downRec := desired, desired
	keep := h.recommendations[:0]
	longest := max(upWin, downWin)
	for _, r := range h.recommendations {
		age := now.Sub(r.at)
		if age > longest {
			continue
		}
		keep = append(keep, r)
		if age <= upWin {
			upRec = min(upRec, r.replicas)
		}
		if age <= downWin {
			downRec = max(downRec, r.replicas)
		}
	}
	h.recommendations = append(keep, recommendation{at: now, replicas: desired})
	out := current
	if out < upRec {
		out = upRec
	}
	if out > downRec {
		out = downRec
	}
	switch {
	case out != desired && desired < current:
		return out, limitReason{autoscalingv2.AbleToScale, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"}
	case out != desired && desired > current:
		return out, limitReason{autoscalingv2.AbleToScale, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"}
	}
	return out, limitReason{autoscalingv2.AbleToScale, "ReadyForNewScale", "recommended size matches current size"}
}

// changedWithin sums the replicas added and removed in the last period.
func (h *history) changedWithin(now time.Time, period time.Duration) (added, removed int32) {
	for _, e := range h.events {
		if now.Sub(e.at) > period {
			continue
		}
		if e.change > 0 {
			added += e.change
		} else {
			removed -= e.change
		}
	}
	return added, removed
}

// record remembers a rescale and forgets events older than any period could look back.
func (h *history) record(now time.Time, change int32, longest time.Duration) {
	keep := h.events[:0]
	for _, e := range h.events {
		if now.Sub(e.at) <= longest {
			keep = append(keep, e)
		}
	}
	h.events = append(keep, scaleEvent{at: now, change: change})
}

// scaleUpLimit is the most replicas the scale-up policies allow now.
func (h *history) scaleUpLimit(now time.Time, current int32, r *autoscalingv2.HPAScalingRules) int32 {
	sel := autoscalingv2.MaxChangePolicySelect
	if r.SelectPolicy != nil {
		sel = *r.SelectPolicy
	}
	if sel == autoscalingv2.DisabledPolicySelect {
		return current
	}
	limit := int32(math.MinInt32)
	if sel == autoscalingv2.MinChangePolicySelect {
		limit = math.MaxInt32
	}
	for _, p := range r.Policies {
		added, removed := h.changedWithin(now, time.Duration(p.PeriodSeconds)*time.Second)
		start := current - added + removed
		var proposed int32
		if p.Type == autoscalingv2.PodsScalingPolicy {
			proposed = start + p.Value
		} else {
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		if sel == autoscalingv2.MinChangePolicySelect {
			limit = min(limit, proposed)
		} else {
			limit = max(limit, proposed)
		}
	}
	if len(r.Policies) == 0 {
		return math.MaxInt32
	}
	return limit
}

// scaleDownLimit is the fewest replicas the scale-down policies allow now.
func (h *history) scaleDownLimit(now time.Time, current int32, r *autoscalingv2.HPAScalingRules) int32 {
	sel := autoscalingv2.MaxChangePolicySelect
	if r.SelectPolicy != nil {
		sel = *r.SelectPolicy
	}
	if sel == autoscalingv2.DisabledPolicySelect {
		return current
	}
	limit := int32(math.MaxInt32)
	if sel == autoscalingv2.MinChangePolicySelect {
		limit = math.MinInt32
	}
	for _, p := range r.Policies {
		added, removed := h.changedWithin(now, time.Duration(p.PeriodSeconds)*time.Second)
		start := current + removed - added
		var proposed int32
		if p.Type == autoscalingv2.PodsScalingPolicy {
			proposed = start - p.Value
		} else {
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		if sel == autoscalingv2.MinChangePolicySelect {
			limit = max(limit, proposed)
		} else {
			limit = min(limit, proposed)
		}
	}
	if len(r.Policies) == 0 {
		return math.MinInt32
	}
	return limit
}

// longestPeriod is how far back the rate policies look.
func longestPeriod(up, down *autoscalingv2.HPAScalingRules) time.Duration {
	var d time.Duration
	for _, r := range []*autoscalingv2.HPAScalingRules{up, down} {
		for _, p := range r.Policies {
			d = max(d, time.Duration(p.PeriodSeconds)*time.Second)
		}
	}
	return d
}

// normalize applies the behavior to a metrics recommendation: stabilization, then the rate
// policies, then min/max. It returns the count to scale to, why it was stabilized (for
// AbleToScale) and why it was limited (ScalingLimited; empty reason when it was not).
func (h *history) normalize(now time.Time, current, desired, minReplicas, maxReplicas int32, up, down *autoscalingv2.HPAScalingRules) (int32, limitReason, limitReason) {
	stabilized, able := h.stabilize(now, current, desired, up, down)
	out := stabilized
	limited := limitReason{autoscalingv2.ScalingLimited, "DesiredWithinRange", "the desired count is within the acceptable range"}
	switch {
	case out > current:
		limit := max(h.scaleUpLimit(now, current, up), current)
		allowed := min(maxReplicas, limit)
		if out > allowed {
			if allowed == maxReplicas {
				limited = limitReason{autoscalingv2.ScalingLimited, "TooManyReplicas", "the desired replica count is more than the maximum replica count"}
			} else {
				limited = limitReason{autoscalingv2.ScalingLimited, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"}
			}
			out = allowed
		}
	case out < current:
		limit := min(h.scaleDownLimit(now, current, down), current)
		allowed := max(minReplicas, limit)
		if out < allowed {
			if allowed == minReplicas {
				limited = limitReason{autoscalingv2.ScalingLimited, "TooFewReplicas", "the desired replica count is less than the minimum replica count"}
			} else {
				limited = limitReason{autoscalingv2.ScalingLimited, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"}
			}
			out = allowed
		}
	}
	// min/max bound even an unchanged count (e.g. after the autoscaler's limits moved).
	if out > maxReplicas {
		out = maxReplicas
		limited = limitReason{autoscalingv2.ScalingLimited, "TooManyReplicas", "the desired replica count is more than the maximum replica count"}
	}
	if out < minReplicas {
		out = minReplicas
		limited = limitReason{autoscalingv2.ScalingLimited, "TooFewReplicas", "the desired replica count is less than the minimum replica count"}
	}
	return out, able, limited
}
