package controlplane

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/promutil"
)

// The client-go event broadcaster writes one event at a time and drops what arrives while
// 1,000 are queued. A burst (a Scheduled event per pod while thousands of pods are bound,
// SuccessfulCreate per pod of a big ReplicaSet) then loses most of its events, which
// `kubectl describe` users miss. kube-scheduler's events.k8s.io broadcaster writes each event
// from its own goroutine instead. asyncSink gets the same effect for the core broadcaster:
// it accepts each write at once and leaves it to a pool of workers. An event's writes (create,
// then patches that count repeats) hash to one worker, so they stay in order.
type asyncSink struct {
	inner  record.EventSink
	queues []chan sinkOp
	log    *slog.Logger
}

type sinkVerb int

const (
	sinkCreate sinkVerb = iota
	sinkUpdate
	sinkPatch
)

type sinkOp struct {
	verb  sinkVerb
	event *corev1.Event
	patch []byte
}

var (
	eventSinkWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "skiff_event_sink_writes_total",
		Help: "Event writes of the control plane's recorders, by result (written, rejected, failed after retries, dropped with a full queue).",
	}, []string{"result"})
	eventSinkOnce sync.Once
)

const (
	sinkWorkers    = 16
	sinkQueueDepth = 1024 // per worker
	sinkTries      = 3
)

func newAsyncSink(ctx context.Context, inner record.EventSink, log *slog.Logger) *asyncSink {
	eventSinkOnce.Do(func() { eventSinkWrites, _ = promutil.Register(prometheus.DefaultRegisterer, eventSinkWrites) })
	s := &asyncSink{inner: inner, log: log}
	for range sinkWorkers {
		q := make(chan sinkOp, sinkQueueDepth)
		s.queues = append(s.queues, q)
		go s.work(ctx, q)
	}
	return s
}

func (s *asyncSink) Create(e *corev1.Event) (*corev1.Event, error) {
	return s.enqueue(sinkOp{verb: sinkCreate, event: e.DeepCopy()})
}

func (s *asyncSink) Update(e *corev1.Event) (*corev1.Event, error) {
	return s.enqueue(sinkOp{verb: sinkUpdate, event: e.DeepCopy()})
}

func (s *asyncSink) Patch(e *corev1.Event, patch []byte) (*corev1.Event, error) {
	return s.enqueue(sinkOp{verb: sinkPatch, event: e.DeepCopy(), patch: patch})
}

// enqueue reports success at once: the correlator only needs the event back to count
// repeats. A full queue drops the write, as the broadcaster itself would.
func (s *asyncSink) enqueue(op sinkOp) (*corev1.Event, error) {
	h := fnv.New32a()
	h.Write([]byte(op.event.Namespace))
	h.Write([]byte{0})
	h.Write([]byte(op.event.Name))
	select {
	case s.queues[h.Sum32()%uint32(len(s.queues))] <- op:
	default:
		eventSinkWrites.WithLabelValues("dropped").Inc()
	}
	return op.event, nil
}

func (s *asyncSink) work(ctx context.Context, q chan sinkOp) {
	for {
		select {
		case <-ctx.Done():
			return
		case op := <-q:
			s.write(ctx, op)
		}
	}
}

func (s *asyncSink) write(ctx context.Context, op sinkOp) {
	for try := 1; ; try++ {
		err := s.writeOnce(op)
		var status apierrors.APIStatus
		switch {
		case err == nil:
			eventSinkWrites.WithLabelValues("written").Inc()
			return
		case errors.As(err, &status):
			// Malformed, a duplicate, or its namespace is going: retrying cannot help.
			eventSinkWrites.WithLabelValues("rejected").Inc()
			s.log.Debug("event rejected", "reason", op.event.Reason, "object", op.event.InvolvedObject.Name, "err", err)
			return
		case try >= sinkTries:
			eventSinkWrites.WithLabelValues("failed").Inc()
			s.log.Warn("could not write event", "reason", op.event.Reason, "object", op.event.InvolvedObject.Name, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(try) * time.Second):
		}
	}
}

// writeOnce does what client-go's recordEvent does: a patch of an event that is gone becomes
// a create.
func (s *asyncSink) writeOnce(op sinkOp) error {
	var err error
	switch op.verb {
	case sinkPatch:
		if _, err = s.inner.Patch(op.event, op.patch); apierrors.IsNotFound(err) {
			e := op.event.DeepCopy()
			e.ResourceVersion = ""
			_, err = s.inner.Create(e)
		}
	case sinkUpdate:
		_, err = s.inner.Update(op.event)
	default:
		e := op.event
		e.ResourceVersion = ""
		_, err = s.inner.Create(e)
	}
	return err
}
