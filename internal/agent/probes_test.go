package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestHTTPCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Probe") != "yes" || r.Host != "example.test" || !strings.HasPrefix(r.UserAgent(), "kube-probe/") || r.URL.RawQuery != "a=b" {
				http.Error(w, "bad request shape", http.StatusTeapot)
				return
			}
			w.Write([]byte("fine"))
		case "/redirect-here":
			http.Redirect(w, r, "/ok2", http.StatusFound)
		case "/ok2":
			w.Write([]byte("ok2"))
		case "/redirect-away":
			http.Redirect(w, r, "http://other.invalid/", http.StatusFound)
		default:
			http.Error(w, "nope", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	host, portStr, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(portStr)
	c := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	ctx := context.Background()

	ok := &corev1.HTTPGetAction{Path: "/ok?a=b", Port: intstr.FromString("http"),
		HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "example.test"}}}
	if body, err := httpCheck(ctx, ok, host, c, "kube-probe/1.37"); err != nil || body != "fine" {
		t.Errorf("ok: %q %v", body, err)
	}
	if _, err := httpCheck(ctx, &corev1.HTTPGetAction{Path: "/redirect-here", Port: intstr.FromInt32(int32(port))}, host, c, "kube-probe/1.37"); err != nil {
		t.Errorf("same-host redirect: %v", err)
	}
	if _, err := httpCheck(ctx, &corev1.HTTPGetAction{Path: "/redirect-away", Port: intstr.FromInt32(int32(port))}, host, c, "kube-probe/1.37"); err != nil {
		t.Errorf("a redirect elsewhere counts as success: %v", err)
	}
	_, err := httpCheck(ctx, &corev1.HTTPGetAction{Path: "fail", Port: intstr.FromInt32(int32(port))}, host, c, "kube-probe/1.37")
	if err == nil || err.Error() != "HTTP probe failed with statuscode: 503" {
		t.Errorf("failing: %v", err)
	}
	if _, err := httpCheck(ctx, &corev1.HTTPGetAction{Port: intstr.FromString("nope")}, host, c, "kube-probe/1.37"); err == nil {
		t.Error("unknown named port accepted")
	}
}

func TestRunProbeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	a := &Agent{}
	pod := testPod(always(), nil, "a")
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}, TimeoutSeconds: 1}
	if ok, out := a.runProbe(context.Background(), pod, &pod.Spec.Containers[0], "id", []string{"127.0.0.1"}, p); !ok {
		t.Errorf("open port: %s", out)
	}
	ln.Close()
	if ok, out := a.runProbe(context.Background(), pod, &pod.Spec.Containers[0], "id", []string{"127.0.0.1"}, p); ok || !strings.Contains(out, "connection refused") {
		t.Errorf("closed port: %v %q", ok, out)
	}
}

func TestProbeThresholds(t *testing.T) {
	var changes int
	m := newProbeManager(&Agent{}, func(types.UID) { changes++ })
	c := &corev1.Container{Name: "web"}
	worker := func(k probeKind) *probeWorker {
		return &probeWorker{m: m, key: probeKey{uid: "u", container: "web", kind: k}, container: c, containerID: "c1"}
	}

	r := worker(readiness)
	// successThreshold 2: ready after the second success.
	if changed, _ := r.record(true, 1, 0, 2, 3); changed || m.Ready("c1") {
		t.Error("ready after one success")
	}
	if changed, _ := r.record(true, 2, 0, 2, 3); !changed || !m.Ready("c1") {
		t.Error("not ready after two successes")
	}
	// failureThreshold 3: unready after the third failure.
	r.record(false, 0, 1, 2, 3)
	r.record(false, 0, 2, 2, 3)
	if !m.Ready("c1") {
		t.Error("unready before the threshold")
	}
	if changed, _ := r.record(false, 0, 3, 2, 3); !changed || m.Ready("c1") {
		t.Error("still ready after three failures")
	}

	l := worker(liveness)
	if _, done := l.record(false, 0, 1, 1, 2); done {
		t.Error("liveness gave up after one failure of two")
	}
	if bad, _ := m.Unhealthy("c1"); bad {
		t.Error("unhealthy too early")
	}
	if _, done := l.record(false, 0, 2, 1, 2); !done {
		t.Error("liveness worker goes on after the threshold")
	}
	if bad, msg := m.Unhealthy("c1"); !bad || msg != "Container web failed liveness probe, will be restarted" {
		t.Errorf("unhealthy %v %q", bad, msg)
	}

	s := worker(startup)
	if _, done := s.record(true, 1, 0, 1, 3); !done || !m.Started("c1") {
		t.Error("startup success not recorded")
	}

	m.forgetContainer("c1")
	if m.Ready("c1") || m.Started("c1") {
		t.Error("results kept after forgetContainer")
	}
	m.seed("c2", true, true)
	if !m.Ready("c2") || !m.Started("c2") {
		t.Error("seed ignored")
	}
	_ = changes
}

func TestProbeWorkerRuns(t *testing.T) {
	// A readiness probe against a real server flips the result and wakes the pod.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	host, portStr, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(portStr)
	woken := make(chan types.UID, 10)
	a := &Agent{}
	m := newProbeManager(a, func(uid types.UID) { woken <- uid })
	a.probes = m
	pod := testPod(always(), nil, "web")
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(int32(port))}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1}
	st := newState().sandbox("s", 0, true).container("s", "web", running, 0, 0).st
	st.Containers[0].StartedAt = time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.syncPod(ctx, pod, st, []string{host})
	select {
	case <-woken:
	case <-time.After(5 * time.Second):
		t.Fatal("no readiness result")
	}
	if !m.Ready(st.Containers[0].ID) {
		t.Error("not ready")
	}
	m.removePod(pod.UID)
	if m.Ready(st.Containers[0].ID) {
		t.Error("results kept after removePod")
	}
}

func TestPullPolicy(t *testing.T) {
	tests := map[string]corev1.PullPolicy{
		"busybox":                 corev1.PullAlways,
		"busybox:latest":          corev1.PullAlways,
		"skiff.local/web:v1":      corev1.PullIfNotPresent,
		"localhost:5000/app":      corev1.PullAlways,
		"localhost:5000/app:1.0":  corev1.PullIfNotPresent,
		"repo/app@sha256:abcdef0": corev1.PullIfNotPresent,
	}
	for img, want := range tests {
		if got := pullPolicy(&corev1.Container{Image: img}); got != want {
			t.Errorf("%s: %s, want %s", img, got, want)
		}
	}
	if got := pullPolicy(&corev1.Container{Image: "busybox", ImagePullPolicy: corev1.PullNever}); got != corev1.PullNever {
		t.Errorf("explicit policy ignored: %s", got)
	}
}

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	port := ln.Addr().(*net.TCPAddr).Port

	a := &Agent{}
	pod := testPod(always(), nil, "a")
	svc := "app"
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port), Service: &svc}}, TimeoutSeconds: 2}
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_SERVING)
	if ok, out := a.runProbe(context.Background(), pod, &pod.Spec.Containers[0], "id", []string{"127.0.0.1"}, p); !ok {
		t.Errorf("serving: %s", out)
	}
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_NOT_SERVING)
	if ok, out := a.runProbe(context.Background(), pod, &pod.Spec.Containers[0], "id", []string{"127.0.0.1"}, p); ok || !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("not serving: %v %q", ok, out)
	}
}
