package loopback

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type ctxKey struct{}

func client(h http.Handler, max int) *http.Client {
	return &http.Client{Transport: &Transport{Handler: h, MaxBuffered: max,
		Context: func(ctx context.Context) context.Context { return context.WithValue(ctx, ctxKey{}, "in-process") }}}
}

func TestRequestAndResponse(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Host != "" || r.URL.Scheme != "" {
			t.Errorf("server saw client URL %q", r.URL)
		}
		if r.RequestURI != "/apis/x/v1/things?limit=5" {
			t.Errorf("RequestURI = %q", r.RequestURI)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Who", r.Context().Value(ctxKey{}).(string))
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(r.Method + " " + r.Host + " " + r.Header.Get("X-A") + " " + string(body)))
	})
	req, _ := http.NewRequest(http.MethodPost, "https://example:6443/apis/x/v1/things?limit=5", strings.NewReader("payload"))
	req.Header.Set("X-A", "b")
	resp, err := client(h, 0).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Who") != "in-process" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if string(got) != "POST example:6443 b payload" {
		t.Fatalf("body %q", got)
	}
}

func TestImplicitStatusAndContentType(t *testing.T) {
	resp, err := client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html></html>"))
	}), 0).Get("http://x/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp2, err := client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), 0).Get("http://x/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	if resp2.StatusCode != 200 || len(b) != 0 {
		t.Fatalf("empty handler: %d %q", resp2.StatusCode, b)
	}
}

// A watch-like handler streams lines until the client closes the body, which must end the
// handler's context.
func TestStreamingAndClose(t *testing.T) {
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for i := 0; ; i++ {
			if _, err := w.Write([]byte("event\n")); err != nil {
				done <- err
				return
			}
			select {
			case <-r.Context().Done():
				done <- r.Context().Err()
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	resp, err := client(h, 0).Get("http://x/watch")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for i := 0; i < 5; i++ {
		if !sc.Scan() || sc.Text() != "event" {
			t.Fatalf("line %d: %q %v", i, sc.Text(), sc.Err())
		}
	}
	resp.Body.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("handler ended without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running after the body was closed")
	}
}

// A handler writing faster than the client reads blocks at MaxBuffered instead of growing
// the buffer without bound, and loses nothing.
func TestBackpressure(t *testing.T) {
	const max, total = 64, 10_000
	wrote := make(chan int, total)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < total/10; i++ {
			n, _ := w.Write([]byte("0123456789"))
			wrote <- n
		}
	})
	resp, err := client(h, max).Get("http://x/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(50 * time.Millisecond)
	if n := len(wrote) * 10; n > max+10 {
		t.Fatalf("handler wrote %d bytes with nobody reading (bound %d)", n, max)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || len(b) != total || string(b[:10]) != "0123456789" {
		t.Fatalf("read %d bytes, err %v", len(b), err)
	}
	rt := resp.Body.(*pipe)
	if c := cap(rt.buf); c > 4*max {
		t.Fatalf("buffer grew to %d bytes", c)
	}
}

func TestClientContextCancel(t *testing.T) {
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x/", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := client(h, 0).Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
		}
		errc <- err
	}()
	<-started
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request did not end after its context was cancelled")
	}
}

func TestHandlerPanic(t *testing.T) {
	resp, err := client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("partial"))
		panic("boom")
	}), 0).Get("http://x/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil || string(b) != "partial" {
		t.Fatalf("read %q, err %v: a panicking handler must end the body with an error", b, err)
	}
}
