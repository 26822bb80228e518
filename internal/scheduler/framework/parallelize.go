package framework

import (
	"context"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Parallelizer runs independent pieces of work (one per node) on several goroutines.
type Parallelizer struct {
	workers int
}

// NewParallelizer returns a Parallelizer with n workers (GOMAXPROCS when n <= 0).
func NewParallelizer(n int) Parallelizer {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return Parallelizer{workers: n}
}

// Workers returns the number of goroutines used.
func (p Parallelizer) Workers() int { return max(p.workers, 1) }

// chunkSize hands out pieces in chunks so per-piece overhead stays small while the last
// chunks still balance across workers.
func chunkSize(pieces, workers int) int {
	s := int(math.Sqrt(float64(pieces)))
	if r := pieces/workers + 1; s > r {
		s = r
	}
	return max(s, 1)
}

// Until calls fn(i) for i in [0, pieces), stopping early (between pieces) once ctx is
// done. Small jobs run on the calling goroutine: starting goroutines costs more than
// checking a few dozen nodes.
func (p Parallelizer) Until(ctx context.Context, pieces int, fn func(i int)) {
	workers := min(p.Workers(), pieces)
	if workers <= 1 || pieces < 32 {
		for i := range pieces {
			if ctx.Err() != nil {
				return
			}
			fn(i)
		}
		return
	}
	chunk := chunkSize(pieces, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := int(next.Add(int64(chunk))) - chunk
				if start >= pieces {
					return
				}
				end := min(start+chunk, pieces)
				for i := start; i < end; i++ {
					fn(i)
				}
			}
		}()
	}
	wg.Wait()
}
