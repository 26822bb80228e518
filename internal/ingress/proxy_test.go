package ingress

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

// env is a controller on a fake clientset with its listeners on loopback.
type env struct {
	t      testing.TB
	ctx    context.Context
	client *fake.Clientset
	c      *Controller
	http   string
	https  string
}

func testLogger() *slog.Logger {
	if os.Getenv("SKIFF_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startEnv(t testing.TB, objs ...runtime.Object) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{ListenHTTP: []string{"127.0.0.1:0"}, ListenHTTPS: []string{"127.0.0.1:0"},
		NodeIP: "10.0.0.5", Logger: testLogger()}, client, f)
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Shutdown()
	})
	select {
	case <-c.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("controller not ready")
	}
	h, s := c.Addrs()
	if len(h) != 1 || len(s) != 1 {
		t.Fatalf("addrs %v %v", h, s)
	}
	return &env{t: t, ctx: ctx, client: client, c: c, http: h[0], https: s[0]}
}

// backendServer answers "<name> host=<Host> xff=<X-Forwarded-For> proto=<X-Forwarded-Proto> fhost=<X-Forwarded-Host> path=<path>".
func backendServer(t testing.TB, name string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s host=%s xff=%s proto=%s fhost=%s path=%s", name, r.Host, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

func serverPort(t testing.TB, addr string) int32 {
	_, p, err := net.SplitHostPort(strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// service returns a Service "name" (port 80 "http" → target 8080) and its EndpointSlice whose
// endpoints are 127.0.0.1 on the given ports.
func service(name string, ports ...int32) []runtime.Object {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	out := []runtime.Object{svc}
	for i, p := range ports {
		out = append(out, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Namespace: "default",
				Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(p)}},
		})
	}
	return out
}

func (e *env) create(objs ...runtime.Object) {
	e.t.Helper()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Service:
			_, err = e.client.CoreV1().Services(o.Namespace).Create(e.ctx, o, metav1.CreateOptions{})
		case *discoveryv1.EndpointSlice:
			_, err = e.client.DiscoveryV1().EndpointSlices(o.Namespace).Create(e.ctx, o, metav1.CreateOptions{})
		case *corev1.Secret:
			_, err = e.client.CoreV1().Secrets(o.Namespace).Create(e.ctx, o, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			_, err = e.client.NetworkingV1().Ingresses(o.Namespace).Create(e.ctx, o, metav1.CreateOptions{})
		default:
			e.t.Fatalf("create %T", o)
		}
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

// get sends GET http(s)://host/path to the proxy and returns the status and body.
func (e *env) get(host, p string, https bool, roots *x509.CertPool) (int, string, error) {
	addr, scheme := e.http, "http"
	if https {
		addr, scheme = e.https, "https"
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{ServerName: host, RootCAs: roots, InsecureSkipVerify: roots == nil},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(scheme + "://" + host + p)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expect polls until GET answers code with a body starting with prefix.
func (e *env) expect(host, p string, code int, prefix string) string {
	e.t.Helper()
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, body, err := e.get(host, p, false, nil)
		if err == nil && c == code && strings.HasPrefix(body, prefix) {
			return body
		}
		last = fmt.Sprintf("%d %q %v", c, body, err)
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("GET %s%s: want %d %q, last got %s", host, p, code, prefix, last)
	return ""
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestProxyRoutingEndToEnd(t *testing.T) {
	a, b, api := backendServer(t, "A"), backendServer(t, "B"), backendServer(t, "API")
	e := startEnv(t)
	e.expect("a.com", "/", http.StatusNotFound, "404")

	e.create(service("a", serverPort(t, a.URL))...)
	e.create(service("b", serverPort(t, b.URL))...)
	e.create(service("api", serverPort(t, api.URL))...)
	e.create(service("empty")...)
	web := ing("web", 0,
		rule("a.com", path("/", prefix, "a"), path("/api", prefix, "api")),
		rule("b.com", path("/", prefix, "b")),
		rule("down.com", path("/missing", prefix, "missing"), path("/empty", prefix, "empty")),
	)
	e.create(web)

	body := e.expect("a.com", "/index.html", 200, "A ")
	for _, want := range []string{"host=a.com ", "xff=127.0.0.1 ", "proto=http ", "fhost=a.com ", "path=/index.html"} {
		if !strings.Contains(body, want) {
			t.Errorf("backend saw %q, want it to contain %q", body, want)
		}
	}
	e.expect("a.com", "/api/v1", 200, "API ")
	e.expect("a.com", "/apix", 200, "A ")
	e.expect("b.com:80", "/x", 200, "B ")
	e.expect("down.com", "/missing", http.StatusServiceUnavailable, "503")
	e.expect("down.com", "/empty", http.StatusServiceUnavailable, "503")
	e.expect("c.com", "/", http.StatusNotFound, "404")

	// A default backend takes what no rule matches.
	dflt := ing("fallback", 0)
	dflt.Spec.DefaultBackend = new(svcBackend("b", 80))
	e.create(dflt)
	e.expect("c.com", "/", 200, "B ")
	e.expect("down.com", "/other", 200, "B ")

	// Endpoints going away → 503; coming back → 200.
	if err := e.client.DiscoveryV1().EndpointSlices("default").Delete(e.ctx, "api-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("a.com", "/api", http.StatusServiceUnavailable, "503")
	e.create(service("api", serverPort(t, api.URL))[1])
	e.expect("a.com", "/api", 200, "API ")

	// Ingress deleted → its routes go.
	if err := e.client.NetworkingV1().Ingresses("default").Delete(e.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("a.com", "/api", 200, "B ")

	if n := counterValue(e.c.proxy.metrics.requests.WithLabelValues("default/web", "200")); n < 3 {
		t.Errorf("requests_total{ingress=default/web,code=200} = %v, want >= 3", n)
	}
	if n := counterValue(e.c.proxy.metrics.requests.WithLabelValues("", "404")); n < 1 {
		t.Errorf("requests_total{code=404} = %v, want >= 1", n)
	}
	mfs, err := e.c.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var samples uint64
	for _, mf := range mfs {
		if mf.GetName() == "skiff_ingress_upstream_latency_seconds" {
			for _, m := range mf.GetMetric() {
				samples += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if samples < 3 {
		t.Errorf("upstream latency histogram has %d samples, want >= 3", samples)
	}
}

func TestProxyRetriesRefusedEndpoint(t *testing.T) {
	live := backendServer(t, "LIVE")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := serverPort(t, l.Addr().String())
	l.Close()
	objs := append(service("svc", serverPort(t, live.URL), deadPort), ing("web", 0, rule("", path("/", prefix, "svc"))))
	e := startEnv(t, objs...)
	e.expect("x.com", "/", 200, "LIVE")
	for i := range 20 {
		if code, body, err := e.get("x.com", "/", false, nil); err != nil || code != 200 {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	// With the only endpoint refusing, the answer is 502.
	if err := e.client.DiscoveryV1().EndpointSlices("default").Delete(e.ctx, "svc-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("x.com", "/", http.StatusBadGateway, "Bad Gateway")
}

func TestProxyUpgrade(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	}))
	t.Cleanup(echo.Close)
	e := startEnv(t, append(service("echo", serverPort(t, echo.URL)), ing("ws", 0, rule("ws.com", path("/", prefix, "echo"))))...)
	e.expect("ws.com", "/", 400, "want upgrade")

	conn, err := net.Dial("tcp", e.http)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: ws.com\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	fmt.Fprint(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
}

func TestProxyTLSBySNI(t *testing.T) {
	_, crt, key, err := selfSigned("secure.com", "secure.com")
	if err != nil {
		t.Fatal(err)
	}
	_, wcrt, wkey, err := selfSigned("*.wild.com", "*.wild.com")
	if err != nil {
		t.Fatal(err)
	}
	secret := func(name string, crt, key []byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(crt)
	roots.AppendCertsFromPEM(wcrt)

	srv := backendServer(t, "S")
	e := startEnv(t, service("s", serverPort(t, srv.URL))...)
	sec := ing("secure", 0, rule("secure.com", path("/", prefix, "s")), rule("a.wild.com", path("/", prefix, "s")))
	sec.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"secure.com"}, SecretName: "secure-tls"},
		{Hosts: []string{"*.wild.com"}, SecretName: "wild-tls"}}
	e.create(secret("secure-tls", crt, key), secret("wild-tls", wcrt, wkey), sec)

	var body string
	eventually(t, "certificate served for secure.com", func() bool {
		code, b, err := e.get("secure.com", "/x", true, roots)
		body = b
		return err == nil && code == 200
	})
	if !strings.HasPrefix(body, "S ") || !strings.Contains(body, "proto=https ") {
		t.Errorf("backend saw %q, want S with proto=https", body)
	}
	if code, _, err := e.get("a.wild.com", "/", true, roots); err != nil || code != 200 {
		t.Errorf("wildcard certificate: %d %v", code, err)
	}
	// Plain HTTP serves the same rules.
	e.expect("secure.com", "/", 200, "S ")

	// An unknown name gets the self-signed fallback.
	conn, err := tls.Dial("tcp", e.https, &tls.Config{ServerName: "other.org", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	conn.Close()
	if cn != "skiff ingress default certificate" {
		t.Errorf("fallback certificate CN %q", cn)
	}
	// And verifying secure.com's certificate for another name fails.
	if _, _, err := e.get("b.wild.com.evil", "/", true, roots); err == nil {
		t.Error("a name without certificate verified")
	}
}

func TestClassFilteringAndStatus(t *testing.T) {
	srv := backendServer(t, "S")
	e := startEnv(t, service("s", serverPort(t, srv.URL))...)

	// The controller creates its default IngressClass.
	var class *networkingv1.IngressClass
	eventually(t, "IngressClass skiff", func() bool {
		ic, err := e.client.NetworkingV1().IngressClasses().Get(e.ctx, "skiff", metav1.GetOptions{})
		class = ic
		return err == nil
	})
	if class.Spec.Controller != ControllerName || class.Annotations[networkingv1.AnnotationIsDefaultIngressClass] != "true" {
		t.Fatalf("class %+v", class)
	}

	mk := func(name, className, legacy string) *networkingv1.Ingress {
		i := ing(name, 0, rule(name+".com", path("/", prefix, "s")))
		if className != "" {
			i.Spec.IngressClassName = new(className)
		}
		if legacy != "" {
			i.Annotations = map[string]string{LegacyClassAnnotation: legacy}
		}
		return i
	}
	e.create(mk("ours", "skiff", ""), mk("theirs", "nginx", ""), mk("unset", "", ""),
		mk("legacy-ours", "", "skiff"), mk("legacy-theirs", "", "nginx"))
	served := map[string]bool{"ours": true, "theirs": false, "unset": true, "legacy-ours": true, "legacy-theirs": false}
	status := func(name string) []networkingv1.IngressLoadBalancerIngress {
		i, err := e.client.NetworkingV1().Ingresses("default").Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return i.Status.LoadBalancer.Ingress
	}
	for name, ok := range served {
		if ok {
			e.expect(name+".com", "/", 200, "S ")
			eventually(t, "status of "+name, func() bool {
				s := status(name)
				return len(s) == 1 && s[0].IP == "10.0.0.5"
			})
		}
	}
	for name, ok := range served {
		if !ok {
			e.expect(name+".com", "/", 404, "404")
			if s := status(name); len(s) != 0 {
				t.Errorf("%s: status %v, want none", name, s)
			}
		}
	}

	// skiff no longer the default class: the Ingress without class is no longer served and
	// loses its address; the leftover address of another controller is kept.
	i, _ := e.client.NetworkingV1().Ingresses("default").Get(e.ctx, "unset", metav1.GetOptions{})
	i.Status.LoadBalancer.Ingress = append(i.Status.LoadBalancer.Ingress, networkingv1.IngressLoadBalancerIngress{IP: "10.9.9.9"})
	if _, err := e.client.NetworkingV1().Ingresses("default").UpdateStatus(e.ctx, i, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	class.Annotations[networkingv1.AnnotationIsDefaultIngressClass] = "false"
	if _, err := e.client.NetworkingV1().IngressClasses().Update(e.ctx, class, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("unset.com", "/", 404, "404")
	eventually(t, "address removed from unset", func() bool {
		s := status("unset")
		return len(s) == 1 && s[0].IP == "10.9.9.9"
	})
	e.expect("ours.com", "/", 200, "S ")

	// Switching an Ingress to another class also removes it.
	o, _ := e.client.NetworkingV1().Ingresses("default").Get(e.ctx, "ours", metav1.GetOptions{})
	o.Spec.IngressClassName = new("nginx")
	if _, err := e.client.NetworkingV1().Ingresses("default").Update(e.ctx, o, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("ours.com", "/", 404, "404")
	eventually(t, "address removed from ours", func() bool { return len(status("ours")) == 0 })
}

func TestExistingClassLeftAlone(t *testing.T) {
	existing := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "skiff"},
		Spec: networkingv1.IngressClassSpec{Controller: "example.com/other"}}
	srv := backendServer(t, "S")
	e := startEnv(t, append(service("s", serverPort(t, srv.URL)), existing,
		ing("unset", 0, rule("unset.com", path("/", prefix, "s"))))...)
	// Not the default class: an Ingress without class is not served.
	e.expect("unset.com", "/", 404, "404")
	ic, err := e.client.NetworkingV1().IngressClasses().Get(e.ctx, "skiff", metav1.GetOptions{})
	if err != nil || ic.Spec.Controller != "example.com/other" || len(ic.Annotations) != 0 {
		t.Fatalf("class changed: %+v %v", ic, err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
