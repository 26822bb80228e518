package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// CRI log streams.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// Record is one line of a CRI container log file:
//
//	<RFC3339Nano time> <stdout|stderr> <tags> <message>
//
// where the first tag is P (partial: the message continues in the stream's next record) or
// F (full: the message ends a line). Further tags, separated by ':', are ignored.
type Record struct {
	Time    time.Time
	RawTime []byte // the time as written, for timestamps=true output
	Stream  string
	Partial bool
	Msg     []byte // without the line's newline
}

// ParseRecord parses one CRI log line (with or without its trailing newline). The returned
// record's RawTime and Msg alias line.
func ParseRecord(line []byte) (Record, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	var r Record
	i := bytes.IndexByte(line, ' ')
	if i <= 0 {
		return r, fmt.Errorf("cri log: no timestamp in %q", truncate(line))
	}
	t, err := time.Parse(time.RFC3339Nano, string(line[:i]))
	if err != nil {
		return r, fmt.Errorf("cri log: bad timestamp: %w", err)
	}
	r.Time, r.RawTime = t, line[:i]
	rest := line[i+1:]
	j := bytes.IndexByte(rest, ' ')
	if j < 0 {
		return r, fmt.Errorf("cri log: no stream in %q", truncate(line))
	}
	switch s := string(rest[:j]); s {
	case StreamStdout, StreamStderr:
		r.Stream = s
	default:
		return r, fmt.Errorf("cri log: unknown stream %q", s)
	}
	rest = rest[j+1:]
	// Tags end at the next space; a line with an empty message may lack that space.
	k := bytes.IndexByte(rest, ' ')
	tags := rest
	if k >= 0 {
		tags, r.Msg = rest[:k], rest[k+1:]
	} else {
		r.Msg = rest[len(rest):]
	}
	if c := bytes.IndexByte(tags, ':'); c >= 0 {
		tags = tags[:c]
	}
	switch string(tags) {
	case "P":
		r.Partial = true
	case "F":
	default:
		return r, fmt.Errorf("cri log: unknown tag %q", tags)
	}
	return r, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// LogOptions select and format what WriteLogs writes, as the kubelet's containerLogs does.
type LogOptions struct {
	// TailLines keeps only the last lines of the existing log (negative: all).
	TailLines int64
	// Since drops lines written before it (zero: none dropped).
	Since time.Time
	// LimitBytes stops after writing that many bytes (0 or less: no limit).
	LimitBytes int64
	// Timestamps prefixes each line with the time the runtime recorded.
	Timestamps bool
	// Stream keeps one stream only: "stdout", "stderr" or "" for both.
	Stream string
	// Follow keeps writing what the container logs after the end of the file, across log
	// rotation, until ctx ends or Running reports false at the end of the log.
	Follow bool
	// Running tells a follower whether the container may still write (nil: always).
	Running func() bool
	// PollInterval paces the follower (default 100ms); RunningCheck how often it asks
	// Running while idle (default 1s).
	PollInterval, RunningCheck time.Duration
}

// errLimit ends writing once LimitBytes is reached.
var errLimit = errors.New("log byte limit reached")

// line is one logical log line: the records of a stream from the first P up to its F.
type line struct {
	time     time.Time
	rawTime  []byte
	stream   string
	msg      []byte
	complete bool
}

// assembler joins partial records per stream (stdout and stderr interleave independently).
type assembler struct {
	pending map[string]*line
}

// add takes a record and returns the line it completes, if any.
func (a *assembler) add(r Record) *line {
	if a.pending == nil {
		a.pending = map[string]*line{}
	}
	l := a.pending[r.Stream]
	if l == nil {
		l = &line{time: r.Time, rawTime: append([]byte(nil), r.RawTime...), stream: r.Stream}
	}
	l.msg = append(l.msg, r.Msg...)
	if r.Partial {
		a.pending[r.Stream] = l
		return nil
	}
	delete(a.pending, r.Stream)
	l.complete = true
	return l
}

// flush returns the unfinished lines, oldest first.
func (a *assembler) flush() []*line {
	var out []*line
	for _, s := range []string{StreamStdout, StreamStderr} {
		if l := a.pending[s]; l != nil {
			out = append(out, l)
			delete(a.pending, s)
		}
	}
	if len(out) == 2 && out[1].time.Before(out[0].time) {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

// logWriter renders lines, filtering by stream and time and enforcing the byte limit.
type logWriter struct {
	w     io.Writer
	opts  *LogOptions
	left  int64 // bytes left under LimitBytes; <0 unlimited
	flush func()
}

func (lw *logWriter) keep(l *line) bool {
	if lw.opts.Stream != "" && l.stream != lw.opts.Stream {
		return false
	}
	return lw.opts.Since.IsZero() || !l.time.Before(lw.opts.Since)
}

func (lw *logWriter) render(l *line) []byte {
	var b []byte
	if lw.opts.Timestamps {
		b = append(b, l.rawTime...)
		b = append(b, ' ')
	}
	b = append(b, l.msg...)
	if l.complete {
		b = append(b, '\n')
	}
	return b
}

func (lw *logWriter) write(b []byte) error {
	if lw.left >= 0 {
		if int64(len(b)) >= lw.left {
			b = b[:lw.left]
			lw.left = 0
			if _, err := lw.w.Write(b); err != nil {
				return err
			}
			return errLimit
		}
		lw.left -= int64(len(b))
	}
	_, err := lw.w.Write(b)
	return err
}

// WriteLogs writes the CRI log file at path to w as the kubelet does for containerLogs:
// messages only (optionally with timestamps), partial records joined into lines. With
// Follow it keeps tailing the file, reopening it when it is rotated (renamed and recreated)
// or truncated. A missing file with Follow is waited for; without Follow it is an error.
func WriteLogs(ctx context.Context, path string, opts LogOptions, w io.Writer) error {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.RunningCheck <= 0 {
		opts.RunningCheck = time.Second
	}
	lw := &logWriter{w: w, opts: &opts, left: -1, flush: func() {}}
	if opts.LimitBytes > 0 {
		lw.left = opts.LimitBytes
	}
	if f, ok := w.(interface{ Flush() }); ok {
		lw.flush = f.Flush
	}
	err := writeLogs(ctx, path, &opts, lw)
	lw.flush()
	if errors.Is(err, errLimit) {
		return nil
	}
	return err
}

func writeLogs(ctx context.Context, path string, opts *LogOptions, lw *logWriter) error {
	f, err := os.Open(path)
	if err != nil {
		if !opts.Follow || !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if f, err = waitForFile(ctx, path, opts); err != nil || f == nil {
			return err
		}
	}
	t := &tailer{f: f, path: path}
	// t.f is the file open at the end (rotation switches it).
	defer func() { t.f.Close() }()

	var asm assembler
	// The existing content: everything, or only the last TailLines lines.
	if opts.TailLines >= 0 {
		if err := writeTail(f, opts, lw, &asm); err != nil {
			return err
		}
	}
	t.r = bufio.NewReaderSize(f, 64<<10)
	if opts.TailLines >= 0 {
		// writeTail read to the end; follow from there.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		t.off = off
	}
	emit := func(raw []byte) error {
		rec, err := ParseRecord(raw)
		if err != nil {
			return nil // a corrupt line is skipped, as the kubelet does
		}
		if l := asm.add(rec); l != nil && lw.keep(l) {
			return lw.write(lw.render(l))
		}
		return nil
	}
	lastRunningCheck := time.Now()
	for {
		raw, err := t.next()
		if err == nil {
			if err := emit(raw); err != nil {
				return err
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !opts.Follow {
			// An unterminated last line is written as it is.
			if len(t.pending) > 0 {
				if err := emit(t.pending); err != nil {
					return err
				}
			}
			for _, l := range asm.flush() {
				if lw.keep(l) {
					if err := lw.write(lw.render(l)); err != nil {
						return err
					}
				}
			}
			return nil
		}
		lw.flush()
		rotated, err := t.checkRotation()
		if err != nil {
			return err
		}
		if rotated {
			continue
		}
		if opts.Running != nil && time.Since(lastRunningCheck) >= opts.RunningCheck {
			lastRunningCheck = time.Now()
			if !opts.Running() {
				// The container is gone: write what it wrote last, then stop.
				for {
					raw, err := t.next()
					if err != nil {
						break
					}
					if err := emit(raw); err != nil {
						return err
					}
				}
				for _, l := range asm.flush() {
					if lw.keep(l) {
						if err := lw.write(lw.render(l)); err != nil {
							return err
						}
					}
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.PollInterval):
		}
	}
}

// waitForFile waits for a log file to appear (a container that has not written yet, or a
// rotation in progress); nil when ctx ends or the container stops first.
func waitForFile(ctx context.Context, path string, opts *LogOptions) (*os.File, error) {
	last := time.Now()
	for {
		f, err := os.Open(path)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if opts.Running != nil && time.Since(last) >= opts.RunningCheck {
			last = time.Now()
			if !opts.Running() {
				return nil, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(opts.PollInterval):
		}
	}
}

// tailer reads complete lines from a log file that may grow, be rotated or be truncated.
type tailer struct {
	f       *os.File
	r       *bufio.Reader
	path    string
	off     int64  // offset of the next byte r returns
	pending []byte // an unterminated last line, waiting for its newline
}

// next returns the next complete line (with its newline), or io.EOF.
func (t *tailer) next() ([]byte, error) {
	b, err := t.r.ReadBytes('\n')
	t.off += int64(len(b))
	if err != nil {
		t.pending = append(t.pending, b...)
		return nil, err
	}
	if len(t.pending) > 0 {
		b = append(t.pending, b...)
		t.pending = nil
	}
	return b, nil
}

// checkRotation handles what happened to the file since the last read: it grew (read on),
// it was truncated (start over), or it was renamed away and a new one created at path (switch
// to it once the old one is read to its end). It reports whether there may be more to read.
func (t *tailer) checkRotation() (bool, error) {
	cur, err := t.f.Stat()
	if err != nil {
		return false, err
	}
	switch {
	case cur.Size() > t.off:
		return true, nil
	case cur.Size() < t.off:
		// Truncated in place (copytruncate).
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		t.off, t.pending = 0, nil
		t.r.Reset(t.f)
		return true, nil
	}
	st, err := os.Stat(t.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil // renamed, the new one not there yet
		}
		return false, err
	}
	if os.SameFile(cur, st) {
		return false, nil
	}
	nf, err := os.Open(t.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	t.f.Close()
	t.f, t.off, t.pending = nf, 0, nil
	t.r.Reset(nf)
	return true, nil
}

// writeTail writes the last TailLines lines (after the stream and time filters) of the
// existing file and leaves f at its end. Partial lines still open at the end stay in asm
// (so a follower completes them).
func writeTail(f *os.File, opts *LogOptions, lw *logWriter, asm *assembler) error {
	n := opts.TailLines
	var ring [][]byte
	next := 0
	r := bufio.NewReaderSize(f, 64<<10)
	var off int64
	for {
		raw, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if err != nil {
			// An unterminated last line is left for the follower (or dropped without follow:
			// the runtime is still writing it).
			if !opts.Follow && len(raw) > 0 {
				if rec, perr := ParseRecord(raw); perr == nil {
					off += int64(len(raw))
					if l := asm.add(rec); l != nil && lw.keep(l) && n > 0 {
						ring, next = pushRing(ring, next, n, lw.render(l))
					}
				}
			}
			break
		}
		off += int64(len(raw))
		rec, perr := ParseRecord(raw)
		if perr != nil {
			continue
		}
		if l := asm.add(rec); l != nil && lw.keep(l) && n > 0 {
			ring, next = pushRing(ring, next, n, lw.render(l))
		}
	}
	if !opts.Follow {
		for _, l := range asm.flush() {
			if lw.keep(l) && n > 0 {
				ring, next = pushRing(ring, next, n, lw.render(l))
			}
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	// ring is in insertion order from next once it is full.
	for i := 0; i < len(ring); i++ {
		b := ring[(next+i)%len(ring)]
		if err := lw.write(b); err != nil {
			return err
		}
	}
	return nil
}

func pushRing(ring [][]byte, next int, n int64, b []byte) ([][]byte, int) {
	if int64(len(ring)) < n {
		return append(ring, b), 0
	}
	ring[next] = b
	return ring, (next + 1) % len(ring)
}
