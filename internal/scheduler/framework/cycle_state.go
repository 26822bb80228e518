package framework

import "k8s.io/apimachinery/pkg/util/sets"

// StateData is what plugins keep in CycleState between extension points.
type StateData interface {
	// Clone copies the data; preemption's dry runs mutate clones, never the original.
	Clone() StateData
}

// StateKey names a piece of CycleState ("PreFilterNodeResourcesFit", ...).
type StateKey string

// CycleState carries plugin data through one scheduling cycle. Writes happen in the
// sequential phases (PreFilter, PreScore, AddPod/RemovePod on a clone), reads in the
// parallel ones (Filter, Score), so a plain map needs no lock.
type CycleState struct {
	storage map[StateKey]StateData
	// SkipFilterPlugins are plugins whose PreFilter returned Skip.
	SkipFilterPlugins sets.Set[string]
	// SkipScorePlugins are plugins whose PreScore returned Skip.
	SkipScorePlugins sets.Set[string]
	// FilterPlugins, when PreFilter has run, are the Filter plugins not skipped, in order:
	// filtering thousands of nodes reads this list instead of looking every plugin up in
	// SkipFilterPlugins for every node.
	FilterPlugins []FilterPlugin
}

// NewCycleState returns an empty state.
func NewCycleState() *CycleState {
	return &CycleState{storage: make(map[StateKey]StateData, 8)}
}

// Read returns the data stored under key.
func (c *CycleState) Read(key StateKey) (StateData, bool) {
	d, ok := c.storage[key]
	return d, ok
}

// Write stores data under key.
func (c *CycleState) Write(key StateKey, val StateData) { c.storage[key] = val }

// Delete removes key.
func (c *CycleState) Delete(key StateKey) { delete(c.storage, key) }

// Clone deep-copies the state through each datum's Clone.
func (c *CycleState) Clone() *CycleState {
	if c == nil {
		return nil
	}
	out := &CycleState{storage: make(map[StateKey]StateData, len(c.storage)),
		SkipFilterPlugins: c.SkipFilterPlugins, SkipScorePlugins: c.SkipScorePlugins, FilterPlugins: c.FilterPlugins}
	for k, v := range c.storage {
		if v != nil {
			out.storage[k] = v.Clone()
		}
	}
	return out
}
