package controllerutil

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
)

// RunWorkers runs n copies of worker (each restarted a second after it returns, as
// wait.UntilWithContext does) until ctx ends, then shuts the queue down so that workers
// blocked in Get return, and waits for them.
func RunWorkers[T comparable](ctx context.Context, queue workqueue.TypedInterface[T], n int, worker func(context.Context)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, worker, time.Second)
		}()
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
}

// ProcessNext takes one key from queue and syncs it: success forgets the key's failures, an
// error puts it back rate-limited (logged at debug level, as the next try usually
// succeeds). It returns false once the queue has shut down.
func ProcessNext[T comparable](ctx context.Context, queue workqueue.TypedRateLimitingInterface[T], log *slog.Logger, sync func(context.Context, T) error) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	if err := sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			log.Debug("retrying", "key", key, "err", err)
		}
		queue.AddRateLimited(key)
		return true
	}
	queue.Forget(key)
	return true
}
