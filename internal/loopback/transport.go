// Package loopback lets clients in the same process as the API server reach it without a
// socket: an http.RoundTripper that hands each request straight to the server's handler. The
// controllers, the scheduler and the node components of `skiff server` use it; they skip TLS,
// HTTP/2 framing and two system calls per message, which under load were a tenth of the
// control plane's CPU. Watches stream: the handler writes into a bounded buffer the client
// reads from, and closing the response body cancels the request as a closed connection would.
package loopback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
)

// DefaultMaxBuffered is how many bytes a response may hold unread before the handler's writes
// block, the in-process counterpart of a socket's buffers.
const DefaultMaxBuffered = 1 << 20

// Transport serves requests by calling Handler in this process.
type Transport struct {
	// Handler is the server side, e.g. the API server's whole handler chain.
	Handler http.Handler
	// Context, if set, derives the server-side context of each request, for example to carry
	// the identity of the in-process client: a context value cannot cross a socket, so a
	// handler may trust it.
	Context func(context.Context) context.Context
	// MaxBuffered bounds unread response bytes (DefaultMaxBuffered when zero).
	MaxBuffered int
	// Logger receives panics of the handler (slog.Default when nil).
	Logger *slog.Logger
	// BackgroundLane, if set, bounds the requests that are background work: those whose
	// context was marked by Background, and those BackgroundRequest (if set) picks.
	BackgroundLane    *Lane
	BackgroundRequest func(*http.Request) bool
}

// RoundTrip runs the handler for req and returns once it has sent its status line; the body
// streams until the handler returns.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("loopback: request without URL")
	}
	var lane *Lane
	if lane = t.laneFor(req); lane != nil {
		if err := lane.acquire(req.Context()); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(req.Context())
	sctx := ctx
	if t.Context != nil {
		sctx = t.Context(ctx)
	}
	sreq := req.Clone(sctx)
	// What a server sees: the request target only, never the client's scheme and host.
	sreq.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	sreq.RequestURI = req.URL.RequestURI()
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}
	sreq.RemoteAddr = "127.0.0.1:0"
	sreq.Proto, sreq.ProtoMajor, sreq.ProtoMinor = "HTTP/1.1", 1, 1
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	max := t.MaxBuffered
	if max <= 0 {
		max = DefaultMaxBuffered
	}
	rw := &responseWriter{header: http.Header{}, headerSent: make(chan struct{}), pipe: newPipe(max, cancel)}
	go t.serve(rw, sreq, req.Context(), lane)
	<-rw.headerSent
	return &http.Response{
		Status:     strconv.Itoa(rw.code) + " " + http.StatusText(rw.code),
		StatusCode: rw.code,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        rw.sent,
		Body:          rw.pipe,
		ContentLength: -1,
		Request:       req,
	}, nil
}

func (t *Transport) serve(rw *responseWriter, r *http.Request, clientCtx context.Context, lane *Lane) {
	var err error
	defer func() {
		if lane != nil {
			lane.release()
		}
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				log := t.Logger
				if log == nil {
					log = slog.Default()
				}
				log.Error("loopback: handler panicked", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			}
			err = fmt.Errorf("loopback: handler aborted: %v", p)
		}
		if err == nil && clientCtx.Err() != nil {
			err = clientCtx.Err()
		}
		rw.finish(err)
		// Like net/http, the request's context ends and the body is closed when the handler
		// returns; what it wrote stays readable.
		rw.pipe.onClose()
		_ = r.Body.Close()
	}()
	t.Handler.ServeHTTP(rw, r)
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}

// responseWriter is the handler's side of one exchange.
type responseWriter struct {
	header     http.Header
	sent       http.Header // snapshot taken when the status line went out
	code       int
	headerSent chan struct{}
	wroteHead  bool
	pipe       *pipe
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHead {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		return // informational responses are not delivered, as with net/http's client
	}
	w.wroteHead = true
	w.code = code
	w.sent = w.header.Clone()
	close(w.headerSent)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHead {
		if w.header.Get("Content-Type") == "" && len(p) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
	}
	return w.pipe.Write(p)
}

// Flush is a no-op: what the handler wrote is readable at once.
func (w *responseWriter) Flush() {}

func (w *responseWriter) finish(err error) {
	if !w.wroteHead {
		w.WriteHeader(http.StatusOK)
	}
	w.pipe.closeWrite(err)
}

// pipe is a bounded in-memory byte stream from the handler to the client.
type pipe struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	off     int
	max     int
	werr    error // set when the handler is done: io.EOF or why it stopped
	closed  bool  // the client closed the body
	onClose context.CancelFunc
}

func newPipe(max int, onClose context.CancelFunc) *pipe {
	p := &pipe{max: max, onClose: onClose}
	p.cond.L = &p.mu
	return p
}

var errClosedBody = errors.New("loopback: response body closed")

func (p *pipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		if p.closed {
			return n, errClosedBody
		}
		free := p.max - (len(p.buf) - p.off)
		if free <= 0 {
			p.cond.Wait()
			continue
		}
		if p.off > 0 && p.off == len(p.buf) {
			p.buf, p.off = p.buf[:0], 0
		}
		c := min(free, len(b))
		p.buf = append(p.buf, b[:c]...)
		b = b[c:]
		n += c
		p.cond.Broadcast()
	}
	return n, nil
}

func (p *pipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.off == len(p.buf) {
		if p.closed {
			return 0, errClosedBody
		}
		if p.werr != nil {
			return 0, p.werr
		}
		p.cond.Wait()
	}
	n := copy(b, p.buf[p.off:])
	p.off += n
	if p.off == len(p.buf) {
		p.buf, p.off = p.buf[:0], 0
	}
	p.cond.Broadcast()
	return n, nil
}

// Close ends the exchange from the client's side: the handler's context is cancelled and its
// further writes fail, as when a client closes its connection.
func (p *pipe) Close() error {
	p.mu.Lock()
	p.closed = true
	p.buf, p.off = nil, 0
	p.cond.Broadcast()
	p.mu.Unlock()
	p.onClose()
	return nil
}

func (p *pipe) closeWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	if p.werr == nil {
		p.werr = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}
