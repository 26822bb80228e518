// Package gctune trades memory for CPU once a cluster is big. Go's default GOGC=100 lets the
// heap grow to twice what is live before collecting; with thousands of nodes and pods the
// live heap of `skiff server` is hundreds of MB, and under a burst of writes background
// marking took a seventh of the control plane's CPU. Above a live-heap threshold the tuner
// raises GOGC (collections half as often), and lowers it again when the heap shrinks, so a
// small cluster keeps its small footprint. A GOGC set in the environment is left alone.
package gctune

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Options are the tuner's levels; zero values take the defaults.
type Options struct {
	// Low is GOGC while the live heap is small (default 100, Go's own default).
	Low int
	// High is GOGC once the live heap passes Threshold (default 200).
	High int
	// Threshold is the live heap at which High applies (default 128 MiB); Low applies again
	// below three quarters of it.
	Threshold uint64
	// Interval is how often the live heap is read (default 1 s).
	Interval time.Duration
}

func (o *Options) defaults() {
	if o.Low <= 0 {
		o.Low = 100
	}
	if o.High <= 0 {
		o.High = 200
	}
	if o.Threshold == 0 {
		o.Threshold = 128 << 20
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
}

// Level returns the GOGC for a live heap of live bytes, given the current one (hysteresis).
func (o Options) Level(live uint64, current int) int {
	o.defaults()
	switch {
	case live >= o.Threshold:
		return o.High
	case live < o.Threshold/4*3:
		return o.Low
	}
	return current
}

// Run adjusts GOGC until ctx ends. It returns at once when GOGC is set in the environment.
func Run(ctx context.Context, o Options, log *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	o.defaults()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := o.Low
	debug.SetGCPercent(current)
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		live := sample[0].Value.Uint64()
		if next := o.Level(live, current); next != current {
			debug.SetGCPercent(next)
			if log != nil {
				log.Info("GOGC adjusted to the live heap", "gogc", next, "liveHeapMB", live>>20)
			}
			current = next
		}
	}
}
