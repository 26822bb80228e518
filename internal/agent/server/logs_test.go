package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		in      string
		stream  string
		partial bool
		msg     string
		bad     bool
	}{
		{in: "2016-10-06T00:17:09.669794202Z stdout F log content 1\n", stream: "stdout", msg: "log content 1"},
		{in: "2016-10-06T00:17:09.669794203Z stderr P partial ", stream: "stderr", partial: true, msg: "partial "},
		{in: "2016-10-06T00:17:09.669794203+02:00 stdout F:x:y tagged", stream: "stdout", msg: "tagged"},
		{in: "2016-10-06T00:17:09Z stdout F ", stream: "stdout", msg: ""},
		{in: "2016-10-06T00:17:09Z stdout F", stream: "stdout", msg: ""},
		{in: "2016-10-06T00:17:09Z stdout F  two  spaces ", stream: "stdout", msg: " two  spaces "},
		{in: "not-a-time stdout F x", bad: true},
		{in: "2016-10-06T00:17:09Z stdin F x", bad: true},
		{in: "2016-10-06T00:17:09Z stdout X x", bad: true},
		{in: "2016-10-06T00:17:09Z", bad: true},
		{in: "", bad: true},
	} {
		r, err := ParseRecord([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("ParseRecord(%q) = %+v, want an error", tc.in, r)
			}
			continue
		}
		if err != nil || r.Stream != tc.stream || r.Partial != tc.partial || string(r.Msg) != tc.msg {
			t.Errorf("ParseRecord(%q) = %+v (msg %q), %v", tc.in, r, r.Msg, err)
		}
	}
	r, _ := ParseRecord([]byte("2016-10-06T00:17:09.5Z stdout F x"))
	if !r.Time.Equal(time.Date(2016, 10, 6, 0, 17, 9, 500000000, time.UTC)) || string(r.RawTime) != "2016-10-06T00:17:09.5Z" {
		t.Errorf("time %v raw %q", r.Time, r.RawTime)
	}
}

// base is the time of the first line written by logLines.
var base = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// crilog renders records: each entry is "stream tag msg", at one second intervals.
func crilog(entries ...string) string {
	var b strings.Builder
	for i, e := range entries {
		fmt.Fprintf(&b, "%s %s\n", base.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), e)
	}
	return b.String()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readLogs(t *testing.T, path string, opts LogOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteLogs(context.Background(), path, opts, &b); err != nil {
		t.Fatalf("WriteLogs: %v", err)
	}
	return b.String()
}

func TestWriteLogs(t *testing.T) {
	content := crilog(
		"stdout F one",                   // 0s
		"stderr F err one",               // 1s
		"stdout P par",                   // 2s
		"stderr P e-par",                 // 3s
		"stdout P t",                     // 4s
		"stderr F t-end",                 // 5s
		"stdout F ial",                   // 6s
		"garbage that is not a cri line", // skipped
		"stdout F last",                  // 8s
	)
	path := writeFile(t, content)
	all := "one\nerr one\ne-part-end\npartial\nlast\n"
	for _, tc := range []struct {
		name string
		opts LogOptions
		want string
	}{
		{"all", LogOptions{TailLines: -1}, all},
		{"tail 2", LogOptions{TailLines: 2}, "partial\nlast\n"},
		{"tail 0", LogOptions{TailLines: 0}, ""},
		{"tail more than there is", LogOptions{TailLines: 100}, all},
		{"since", LogOptions{TailLines: -1, Since: base.Add(2 * time.Second)}, "e-part-end\npartial\nlast\n"},
		{"since and tail", LogOptions{TailLines: 1, Since: base.Add(2 * time.Second)}, "last\n"},
		{"since after the end", LogOptions{TailLines: -1, Since: base.Add(time.Hour)}, ""},
		{"limit", LogOptions{TailLines: -1, LimitBytes: 6}, "one\ner"},
		{"limit exact", LogOptions{TailLines: -1, LimitBytes: 4}, "one\n"},
		{"limit with tail", LogOptions{TailLines: 2, LimitBytes: 3}, "par"},
		{"stdout", LogOptions{TailLines: -1, Stream: StreamStdout}, "one\npartial\nlast\n"},
		{"stderr", LogOptions{TailLines: -1, Stream: StreamStderr}, "err one\ne-part-end\n"},
		{"timestamps", LogOptions{TailLines: 2, Timestamps: true},
			base.Add(2*time.Second).Format(time.RFC3339Nano) + " partial\n" + base.Add(8*time.Second).Format(time.RFC3339Nano) + " last\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readLogs(t, path, tc.opts); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWriteLogsUnfinished(t *testing.T) {
	// A partial line at the end (the container died mid-line) and an unterminated last
	// record are written as they are.
	path := writeFile(t, crilog("stdout F a", "stdout P b")+base.Format(time.RFC3339Nano)+" stderr F c")
	if got := readLogs(t, path, LogOptions{TailLines: -1}); got != "a\nc\nb" {
		t.Errorf("got %q", got)
	}
	if got := readLogs(t, path, LogOptions{TailLines: 1}); got != "b" {
		t.Errorf("tail 1: got %q", got)
	}
	var b bytes.Buffer
	if err := WriteLogs(context.Background(), filepath.Join(t.TempDir(), "missing.log"), LogOptions{TailLines: -1}, &b); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

// syncBuffer is a buffer written by the follower and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestWriteLogsFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	appendFile(t, path, crilog("stdout F old", "stdout F kept"))
	var running atomic.Bool
	running.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- WriteLogs(ctx, path, LogOptions{TailLines: 1, Follow: true, Running: running.Load,
			PollInterval: 5 * time.Millisecond, RunningCheck: 20 * time.Millisecond}, out)
	}()
	waitFor(t, "the tail", func() bool { return out.String() == "kept\n" })

	// Appended lines, one written in two pieces and one in partial records.
	appendFile(t, path, crilog("stdout F new"))
	waitFor(t, "an appended line", func() bool { return out.String() == "kept\nnew\n" })
	line := crilog("stdout F split")
	appendFile(t, path, line[:10])
	time.Sleep(30 * time.Millisecond)
	appendFile(t, path, line[10:])
	appendFile(t, path, crilog("stdout P joi"))
	time.Sleep(20 * time.Millisecond)
	appendFile(t, path, crilog("stdout F ned"))
	waitFor(t, "split and partial lines", func() bool { return out.String() == "kept\nnew\nsplit\njoined\n" })

	// Rotation: the file is renamed, more is written to the old one (the runtime still has
	// it open), then a new file appears.
	if err := os.Rename(path, path+".20240101-000000"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".20240101-000000", crilog("stdout F before reopen"))
	time.Sleep(30 * time.Millisecond)
	appendFile(t, path, crilog("stdout F after rotation"))
	waitFor(t, "lines across rotation", func() bool {
		return strings.HasSuffix(out.String(), "joined\nbefore reopen\nafter rotation\n")
	})

	// Truncation (copytruncate): reading starts over.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	appendFile(t, path, crilog("stdout F after truncation"))
	waitFor(t, "lines after truncation", func() bool { return strings.HasSuffix(out.String(), "after rotation\nafter truncation\n") })

	// The container stops: what it wrote last comes out, then the stream ends.
	appendFile(t, path, crilog("stdout F goodbye"))
	running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("following did not end when the container stopped")
	}
	if !strings.HasSuffix(out.String(), "after truncation\ngoodbye\n") {
		t.Errorf("output %q", out.String())
	}
}

func TestWriteLogsFollowCancelAndLimit(t *testing.T) {
	path := writeFile(t, crilog("stdout F a"))
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- WriteLogs(ctx, path, LogOptions{TailLines: -1, Follow: true, PollInterval: 5 * time.Millisecond}, out)
	}()
	waitFor(t, "the log", func() bool { return out.String() == "a\n" })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("following did not end with its context")
	}

	// The byte limit ends following too.
	out = &syncBuffer{}
	done = make(chan error, 1)
	go func() {
		done <- WriteLogs(context.Background(), path, LogOptions{TailLines: -1, Follow: true, LimitBytes: 4, PollInterval: 5 * time.Millisecond}, out)
	}()
	appendFile(t, path, crilog("stdout F bcdef"))
	select {
	case err := <-done:
		if err != nil || out.String() != "a\nbc" {
			t.Fatalf("got %q, %v", out.String(), err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("following did not end at the byte limit")
	}
}

func TestWriteLogsFollowWaitsForFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- WriteLogs(context.Background(), path, LogOptions{TailLines: -1, Follow: true, PollInterval: 5 * time.Millisecond,
			RunningCheck: time.Hour}, out)
	}()
	time.Sleep(20 * time.Millisecond)
	appendFile(t, path, crilog("stdout F hello"))
	waitFor(t, "the new file", func() bool { return out.String() == "hello\n" })

	// A container that never writes and stops: following ends.
	var calls atomic.Int32
	err := WriteLogs(context.Background(), filepath.Join(t.TempDir(), "never.log"), LogOptions{TailLines: -1, Follow: true,
		PollInterval: time.Millisecond, RunningCheck: time.Millisecond, Running: func() bool { return calls.Add(1) < 3 }}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseLogOptions(t *testing.T) {
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	q := func(s string) map[string][]string {
		m := map[string][]string{}
		for _, kv := range strings.Split(s, "&") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = append(m[k], v)
			}
		}
		return m
	}
	o, prev, err := parseLogOptions(q("follow=true&previous=1&timestamps=true&tailLines=5&limitBytes=10&sinceSeconds=60"), now)
	if err != nil || !o.Follow || !prev || !o.Timestamps || o.TailLines != 5 || o.LimitBytes != 10 || !o.Since.Equal(now.Add(-time.Minute)) {
		t.Errorf("parsed %+v prev=%v, %v", o, prev, err)
	}
	o, _, err = parseLogOptions(q("sinceTime=2024-01-01T11:00:00Z&stream=Stderr"), now)
	if err != nil || !o.Since.Equal(now.Add(-time.Hour)) || o.Stream != StreamStderr || o.TailLines != -1 {
		t.Errorf("parsed %+v, %v", o, err)
	}
	for _, bad := range []string{"tailLines=-1", "tailLines=x", "limitBytes=0", "sinceSeconds=0", "follow=maybe",
		"sinceSeconds=5&sinceTime=2024-01-01T11:00:00Z", "sinceTime=yesterday", "stream=stdin", "stream=Stdout&tailLines=1"} {
		if _, _, err := parseLogOptions(q(bad), now); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
