package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	httpstreamspdy "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// The v5.channel.k8s.io WebSocket protocol for exec and attach (what kubectl 1.30+ tries
// first). Container runtimes such as containerd 1.6 only speak SPDY and the older WebSocket
// protocols, so the agent terminates v5 itself and talks SPDY to the runtime, as Kubernetes'
// API server does.
const (
	wsProtocolV5 = "v5.channel.k8s.io"

	chanStdin  = 0
	chanStdout = 1
	chanStderr = 2
	chanError  = 3
	chanResize = 4
	chanClose  = 255

	wsWriteTimeout = 60 * time.Second
	wsBufferSize   = 32*1024 + 1
)

// wantsWebSocketV5 tells whether r is a WebSocket upgrade offering v5.channel.k8s.io.
func wantsWebSocketV5(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if strings.TrimSpace(p) == wsProtocolV5 {
				return true
			}
		}
	}
	return false
}

// wsConn serializes writes to a WebSocket connection (one writer at a time).
type wsConn struct {
	*websocket.Conn
	mu sync.Mutex
}

func (c *wsConn) send(channel byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.SetWriteDeadline(time.Now().Add(wsWriteTimeout)); err != nil {
		return err
	}
	w, err := c.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte{channel}); err != nil {
		w.Close()
		return err
	}
	if _, err := w.Write(p); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// channelWriter writes to one channel of the connection.
type channelWriter struct {
	c  *wsConn
	ch byte
}

func (w channelWriter) Write(p []byte) (int, error) {
	if err := w.c.send(w.ch, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// sizeQueue hands terminal resizes from the client to the runtime.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}

// translateStream serves a v5 WebSocket client by running the stream against the runtime's
// streaming URL over SPDY.
func (s *Server) translateStream(w http.ResponseWriter, r *http.Request, streamURL string, opts streamOptions) {
	target, err := url.Parse(streamURL)
	if err != nil || target.Host == "" {
		writeStatusError(w, errorf(http.StatusInternalServerError, "runtime returned an unusable streaming URL %q", streamURL))
		return
	}
	rt, err := httpstreamspdy.NewRoundTripperWithConfig(httpstreamspdy.RoundTripperConfig{
		TLS:        &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the runtime's own loopback server
		PingPeriod: 5 * time.Second,
	})
	if err != nil {
		writeStatusError(w, errorf(http.StatusInternalServerError, "streaming: %v", err))
		return
	}
	exec, err := remotecommand.NewSPDYExecutorForTransports(rt, rt, http.MethodPost, target)
	if err != nil {
		writeStatusError(w, errorf(http.StatusInternalServerError, "streaming: %v", err))
		return
	}
	up := websocket.Upgrader{
		Subprotocols:    []string{wsProtocolV5},
		ReadBufferSize:  wsBufferSize,
		WriteBufferSize: wsBufferSize,
		// The caller is authenticated by its client certificate, not by a browser origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	raw, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	conn := &wsConn{Conn: raw}
	defer conn.Close()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	so := remotecommand.StreamOptions{Tty: opts.tty}
	if opts.stdout {
		so.Stdout = channelWriter{conn, chanStdout}
	}
	if opts.stderr {
		so.Stderr = channelWriter{conn, chanStderr}
	}
	var stdinW *io.PipeWriter
	if opts.stdin {
		var stdinR *io.PipeReader
		stdinR, stdinW = io.Pipe()
		so.Stdin = stdinR
	}
	sizes := make(sizeQueue, 4)
	if opts.tty {
		so.TerminalSizeQueue = sizes
	}

	// Client → runtime: stdin, resizes, and the close signal for stdin.
	go func() {
		defer cancel()
		defer close(sizes)
		defer func() {
			if stdinW != nil {
				stdinW.Close()
			}
		}()
		for {
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if typ != websocket.BinaryMessage || len(msg) == 0 {
				continue
			}
			switch msg[0] {
			case chanStdin:
				if stdinW != nil {
					if _, err := stdinW.Write(msg[1:]); err != nil {
						stdinW = nil
					}
				}
			case chanResize:
				var ts remotecommand.TerminalSize
				if opts.tty && json.Unmarshal(msg[1:], &ts) == nil {
					select {
					case sizes <- ts:
					default: // the runtime is behind: drop a resize rather than block stdin
					}
				}
			case chanClose:
				if len(msg) > 1 && msg[1] == chanStdin && stdinW != nil {
					stdinW.Close()
					stdinW = nil
				}
			}
		}
	}()

	err = exec.StreamWithContext(ctx, so)
	if ctx.Err() != nil && err != nil && errors.Is(err, context.Canceled) {
		return // the client went away
	}
	st := streamStatus(err)
	b, _ := json.Marshal(&st)
	_ = conn.send(chanError, b)
	conn.mu.Lock()
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
	conn.mu.Unlock()
}

// streamStatus is the status written on the error channel at the end of a stream.
func streamStatus(err error) metav1.Status {
	if err == nil {
		return metav1.Status{Status: metav1.StatusSuccess}
	}
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", ce.Err),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: fmt.Sprint(ce.Code)}}},
		}
	}
	return metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Message: err.Error()}
}
