// Command web is skiff's demo and test workload, standing in for nginx (no registry is
// reachable, so images are built here from source).
//
// Server mode (no arguments, or "serve"): HTTP on :80 (PORT or -listen to change it).
//
//	GET /              "skiff web v1 hostname=<hostname>"
//	GET /healthz       200 "ok", or 503 after /fail until /recover
//	GET /readyz        200 "ready", or 503 while not ready (after /unready, until /ready)
//	GET /fail          make /healthz fail; /recover makes it pass again
//	GET /unready       make /readyz fail; /ready makes it pass again
//	GET /burn?seconds=N&cores=N   spin N cores for N seconds (in the background)
//	GET /alloc?mb=N    allocate and touch N MiB more (kept until /free)
//	GET /free          drop what /alloc kept
//	GET /env           the environment, sorted
//	GET /file?path=P   the contents of a file (volumes, ConfigMaps, Secrets)
//	GET /exit?code=N   exit the process with code N (after answering)
//	GET /version       "v1"
//
// The version is set at build time (-ldflags "-X main.version=v2") and overridden by the
// WEB_VERSION environment variable. WEB_START_DELAY (a Go duration) delays listening.
//
// Client mode, a stand-in for wget/nslookup/nc inside pods (busybox's wget crashes here):
//
//	web get [-t timeout] URL       print the body; exit 0 on a 2xx status, else 1
//	web resolve NAME               print the addresses NAME resolves to (the pod's resolv.conf)
//	web tcp [-t timeout] HOST:PORT exit 0 if a TCP connection opens
//	web version                    print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var version = "v1"

func main() {
	if v := os.Getenv("WEB_VERSION"); v != "" {
		version = v
	}
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var code int
	switch cmd {
	case "serve":
		code = serve(args)
	case "get":
		code = get(args)
	case "resolve":
		code = resolve(args)
	case "tcp":
		code = tcp(args)
	case "version", "-v", "--version":
		fmt.Println("skiff web " + version)
	default:
		fmt.Fprintf(os.Stderr, "usage: web [serve [-listen ADDR]] | get URL | resolve NAME | tcp HOST:PORT | version\n")
		code = 2
	}
	os.Exit(code)
}

type server struct {
	failing  atomic.Bool
	unready  atomic.Bool
	mu       sync.Mutex
	held     [][]byte
	heldMB   int
	hostname string
}

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := ":80"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	listen := fs.String("listen", addr, "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if d, err := time.ParseDuration(os.Getenv("WEB_START_DELAY")); err == nil && d > 0 {
		fmt.Printf("skiff web %s: waiting %s before listening\n", version, d)
		time.Sleep(d)
	}
	s := &server{}
	s.hostname, _ = os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.root)
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, version) })
	mux.HandleFunc("/healthz", toggleCheck(&s.failing, "ok", "failing"))
	mux.HandleFunc("/readyz", toggleCheck(&s.unready, "ready", "not ready"))
	mux.HandleFunc("/fail", toggle(&s.failing, true, "healthz now fails"))
	mux.HandleFunc("/recover", toggle(&s.failing, false, "healthz now passes"))
	mux.HandleFunc("/unready", toggle(&s.unready, true, "readyz now fails"))
	mux.HandleFunc("/ready", toggle(&s.unready, false, "readyz now passes"))
	mux.HandleFunc("/burn", s.burn)
	mux.HandleFunc("/alloc", s.alloc)
	mux.HandleFunc("/free", s.free)
	mux.HandleFunc("/env", envHandler)
	mux.HandleFunc("/file", fileHandler)
	mux.HandleFunc("/exit", exitHandler)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("skiff web %s listening on %s (hostname %s)\n", version, ln.Addr(), s.hostname)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case sig := <-sigs:
		fmt.Printf("skiff web %s: %s, shutting down\n", version, sig)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		return 0
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "web:", err)
		return 1
	}
}

func (s *server) root(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	fmt.Fprintf(w, "skiff web %s hostname=%s\n", version, s.hostname)
}

func toggleCheck(bad *atomic.Bool, okMsg, badMsg string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if bad.Load() {
			http.Error(w, badMsg, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, okMsg)
	}
}

func toggle(flag *atomic.Bool, v bool, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		flag.Store(v)
		fmt.Fprintln(w, msg)
	}
}

func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad %s %q", name, v)
	}
	return n, nil
}

func (s *server) burn(w http.ResponseWriter, r *http.Request) {
	secs, err := intParam(r, "seconds", 10)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cores, err := intParam(r, "cores", 1)
	if err != nil || cores == 0 || cores > 64 {
		http.Error(w, "bad cores", http.StatusBadRequest)
		return
	}
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for i := 0; i < cores; i++ {
		go func() {
			runtime.LockOSThread()
			x := uint64(1)
			for time.Now().Before(deadline) {
				for j := 0; j < 100000; j++ {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			_ = x
		}()
	}
	fmt.Fprintf(w, "burning %d cores for %ds\n", cores, secs)
}

func (s *server) alloc(w http.ResponseWriter, r *http.Request) {
	mb, err := intParam(r, "mb", 10)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		s.held = append(s.held, b)
		s.heldMB++
	}
	fmt.Fprintf(w, "allocated %d MiB, holding %d MiB\n", mb, s.heldMB)
}

func (s *server) free(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.held, s.heldMB = nil, 0
	s.mu.Unlock()
	runtime.GC()
	fmt.Fprintln(w, "freed")
}

func envHandler(w http.ResponseWriter, _ *http.Request) {
	env := os.Environ()
	sort.Strings(env)
	for _, kv := range env {
		fmt.Fprintln(w, kv)
	}
}

func fileHandler(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	b, err := os.ReadFile(p)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, os.ErrNotExist) {
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	_, _ = w.Write(b)
}

func exitHandler(w http.ResponseWriter, r *http.Request) {
	code, err := intParam(r, "code", 1)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "exiting with code %d\n", code)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.Exit(code)
	}()
}

func timeoutFlags(name string, args []string) (*flag.FlagSet, *time.Duration, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	t := fs.Duration("t", 5*time.Second, "timeout")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintf(os.Stderr, "usage: web %s [-t timeout] ARG\n", name)
		return nil, nil, false
	}
	return fs, t, true
}

func get(args []string) int {
	fs, t, ok := timeoutFlags("get", args)
	if !ok {
		return 2
	}
	client := &http.Client{Timeout: *t}
	resp, err := client.Get(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "web get:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintln(os.Stderr, "web get:", resp.Status)
		return 1
	}
	return 0
}

func resolve(args []string) int {
	fs, t, ok := timeoutFlags("resolve", args)
	if !ok {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *t)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "web resolve:", err)
		return 1
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
	return 0
}

func tcp(args []string) int {
	fs, t, ok := timeoutFlags("tcp", args)
	if !ok {
		return 2
	}
	c, err := net.DialTimeout("tcp", fs.Arg(0), *t)
	if err != nil {
		fmt.Fprintln(os.Stderr, "web tcp:", err)
		return 1
	}
	fmt.Println("connected to", c.RemoteAddr())
	_ = c.Close()
	return 0
}
