package gctune

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestLevel(t *testing.T) {
	o := Options{Threshold: 100 << 20}
	cases := []struct {
		live    uint64
		current int
		want    int
	}{
		{10 << 20, 100, 100},
		{100 << 20, 100, 200}, // at the threshold: raise
		{90 << 20, 200, 200},  // between 3/4 and the threshold: keep
		{90 << 20, 100, 100},
		{74 << 20, 200, 100}, // below 3/4: back to the default
	}
	for _, c := range cases {
		if got := o.Level(c.live, c.current); got != c.want {
			t.Errorf("Level(%d MiB, %d) = %d, want %d", c.live>>20, c.current, got, c.want)
		}
	}
}

// Run raises GOGC while a big live heap exists and restores it once the heap is gone.
func TestRunFollowsTheLiveHeap(t *testing.T) {
	t.Setenv("GOGC", "") // restored after the test
	os.Unsetenv("GOGC")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Run(ctx, Options{Threshold: 32 << 20, High: 300, Interval: 10 * time.Millisecond}, nil)
	big := make([][]byte, 48)
	for i := range big {
		big[i] = make([]byte, 1<<20)
	}
	waitGC(t, 300)
	runtime.KeepAlive(big)
	big = nil
	waitGC(t, 100)
}

func waitGC(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		if int(s[0].Value.Uint64()) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GOGC did not become %d", want)
}
