package ingress

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// benchEnv is a controller routing bench.local/ to one in-process backend answering "ok".
func benchEnv(t testing.TB) (proxyAddr, backendAddr string) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	e := startEnv(t, append(service("bench", serverPort(t, backend.URL)),
		ing("bench", 0, rule("", path("/", prefix, "bench"))))...)
	e.expect("bench.local", "/", 200, "ok")
	return e.http, backend.Listener.Addr().String()
}

// BenchmarkProxy compares requests through the proxy with requests straight to the backend,
// from parallel keep-alive clients; it reports requests/s.
//
//	go test -run '^$' -bench Proxy -benchtime 5s ./internal/ingress
func BenchmarkProxy(b *testing.B) {
	proxyAddr, backendAddr := benchEnv(b)
	for _, tc := range []struct{ name, addr string }{{"direct", backendAddr}, {"proxy", proxyAddr}} {
		b.Run(tc.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 256, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return net.Dial(network, tc.addr)
			}}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.SetParallelism(16)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get("http://bench.local/")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

// TestBenchHold keeps a proxy and its backend up for wrk when SKIFF_INGRESS_BENCH_HOLD is a
// duration; it writes "proxy=ADDR backend=ADDR" to SKIFF_INGRESS_BENCH_ADDRS (a file path).
func TestBenchHold(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SKIFF_INGRESS_BENCH_HOLD"))
	if err != nil {
		t.Skip("set SKIFF_INGRESS_BENCH_HOLD=60s (and SKIFF_INGRESS_BENCH_ADDRS=file) to hold a proxy for wrk")
	}
	proxyAddr, backendAddr := benchEnv(t)
	if f := os.Getenv("SKIFF_INGRESS_BENCH_ADDRS"); f != "" {
		if err := os.WriteFile(f, fmt.Appendf(nil, "proxy=%s backend=%s\n", proxyAddr, backendAddr), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(d) // holding the servers up is the point here, not an assertion
}
