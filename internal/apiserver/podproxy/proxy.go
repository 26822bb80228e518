// Package podproxy connects the API server's pod subresources (log, exec, attach,
// portforward) to the node agents: it finds the pod's node and the agent's address, checks
// the container as Kubernetes does, and relays the request, upgrades included, to the agent's
// kubelet-style endpoint over mutual TLS. It also serves the metrics.k8s.io API from the
// agents' stats summaries.
package podproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

// DefaultAgentPort is the agent's port when the node does not report one (the kubelet's).
const DefaultAgentPort = 10250

// DefaultContainerAnnotation names the container that commands default to.
const DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// Config configures the proxy.
type Config struct {
	// Client reads nodes (and, for the metrics API, pods and nodes lists).
	Client kubernetes.Interface
	// GetNode, when set, looks nodes up instead of Client (e.g. from the API server's own
	// storage).
	GetNode func(ctx context.Context, name string) (*corev1.Node, error)
	// ClientCert is the API server's client certificate for the agents, issued by the
	// cluster CA.
	ClientCert tls.Certificate
	// RootCAs verifies the agents' serving certificates (the cluster CA).
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any agent serving certificate (Kubernetes' behaviour
	// without --kubelet-certificate-authority); the client certificate is still sent.
	InsecureSkipVerify bool
	// AddressTypes are the node address types to reach agents on, in order (default
	// InternalIP, InternalDNS, Hostname, ExternalIP, ExternalDNS).
	AddressTypes []corev1.NodeAddressType
	// DialTimeout bounds connecting to an agent (default 10s).
	DialTimeout time.Duration
	// MetricsTimeout bounds fetching one agent's stats for the metrics API (default 10s).
	MetricsTimeout time.Duration
	Logger         *slog.Logger
}

// Proxy relays pod subresources to node agents.
type Proxy struct {
	cfg       Config
	log       *slog.Logger
	errorLog  *log.Logger
	transport *http.Transport
}

// New builds a proxy.
func New(cfg Config) *Proxy {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.MetricsTimeout <= 0 {
		cfg.MetricsTimeout = 10 * time.Second
	}
	if len(cfg.AddressTypes) == 0 {
		cfg.AddressTypes = []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeInternalDNS, corev1.NodeHostName,
			corev1.NodeExternalIP, corev1.NodeExternalDNS}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger.With("component", "podproxy")}
	p.errorLog = slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)
	tlsCfg := &tls.Config{RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in
	if len(cfg.ClientCert.Certificate) > 0 {
		tlsCfg.Certificates = []tls.Certificate{cfg.ClientCert}
	}
	p.transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: cfg.DialTimeout,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return p
}

// Transport is the HTTP transport that reaches agents (mutual TLS).
func (p *Proxy) Transport() http.RoundTripper { return p.transport }

// Close drops idle connections to agents.
func (p *Proxy) Close() { p.transport.CloseIdleConnections() }

func (p *Proxy) getNode(ctx context.Context, name string) (*corev1.Node, error) {
	if p.cfg.GetNode != nil {
		return p.cfg.GetNode(ctx, name)
	}
	if p.cfg.Client == nil {
		return nil, fmt.Errorf("podproxy: no way to look nodes up")
	}
	return p.cfg.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
}

// NodeAgentURL returns the base URL of a node's agent: https://<address>:<port>.
func (p *Proxy) NodeAgentURL(node *corev1.Node) (*url.URL, error) {
	host := ""
	for _, t := range p.cfg.AddressTypes {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				host = a.Address
				break
			}
		}
		if host != "" {
			break
		}
	}
	if host == "" {
		return nil, fmt.Errorf("node %s has no address", node.Name)
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if port <= 0 {
		port = DefaultAgentPort
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(int(port)))}, nil
}

// AgentURL looks a node up and returns its agent's base URL.
func (p *Proxy) AgentURL(ctx context.Context, nodeName string) (*url.URL, error) {
	node, err := p.getNode(ctx, nodeName)
	if err != nil {
		return nil, err
	}
	return p.NodeAgentURL(node)
}

// containerNames lists a pod's containers as Kubernetes does in its messages: init
// containers, then containers, then ephemeral containers.
func containerNames(pod *corev1.Pod) []string {
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	return names
}

// ResolveContainer returns the container a request is about: the one named, else the one
// the kubectl.kubernetes.io/default-container annotation names, else the pod's only
// container. Errors are Kubernetes' BadRequest messages.
func ResolveContainer(pod *corev1.Pod, name string) (string, error) {
	names := containerNames(pod)
	has := func(n string) bool {
		for _, x := range names {
			if x == n {
				return true
			}
		}
		return false
	}
	if name != "" {
		if !has(name) {
			return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
		}
		return name, nil
	}
	if def := pod.Annotations[DefaultContainerAnnotation]; def != "" && has(def) {
		return def, nil
	}
	switch len(pod.Spec.Containers) {
	case 1:
		return pod.Spec.Containers[0].Name, nil
	case 0:
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", pod.Name))
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %s", pod.Name, names))
}

// ServePodSubresource serves pods/log, exec, attach and portforward (it has the signature of
// apiserver.SubresourceHandler).
func (p *Proxy) ServePodSubresource(w http.ResponseWriter, r *http.Request, pod *corev1.Pod, sub string) {
	switch sub {
	case "log":
		p.serveLog(w, r, pod)
	case "exec", "attach":
		p.serveStream(w, r, pod, sub)
	case "portforward":
		p.servePortForward(w, r, pod)
	default:
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Resource: "pods/" + sub}, pod.Name))
	}
}

// logParams are the PodLogOptions query parameters the agent understands.
var logParams = []string{"follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines", "limitBytes", "stream"}

func (p *Proxy) serveLog(w http.ResponseWriter, r *http.Request, pod *corev1.Pod) {
	if r.Method != http.MethodGet {
		writeStatus(w, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/log"}, strings.ToLower(r.Method)))
		return
	}
	q := r.URL.Query()
	container, err := ResolveContainer(pod, q.Get("container"))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := validateLogOptions(q); err != nil {
		writeError(w, err)
		return
	}
	if pod.Spec.NodeName == "" {
		// As Kubernetes: a pod without a node has no logs yet, and no error.
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		return
	}
	previous := q.Get("previous") == "true" || q.Get("previous") == "1"
	if err := checkLogStatus(pod, container, previous); err != nil {
		writeError(w, err)
		return
	}
	base, err := p.AgentURL(r.Context(), pod.Spec.NodeName)
	if err != nil {
		writeError(w, err)
		return
	}
	out := url.Values{}
	for _, k := range logParams {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	target := *base
	target.Path = "/containerLogs/" + pod.Namespace + "/" + pod.Name + "/" + container
	target.RawQuery = out.Encode()
	p.proxy(w, r, &target, "pods/log", pod.Name)
}

// validateLogOptions checks the numeric log options as the API validates PodLogOptions.
func validateLogOptions(q url.Values) error {
	var errs []string
	check := func(name string, min int64) {
		v := q.Get(name)
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: Invalid value: %q: must be an integer", name, v))
		} else if n < min {
			errs = append(errs, fmt.Sprintf("%s: Invalid value: %d: must be greater than or equal to %d", name, n, min))
		}
	}
	check("tailLines", 0)
	check("limitBytes", 1)
	check("sinceSeconds", 1)
	if q.Get("sinceSeconds") != "" && q.Get("sinceTime") != "" {
		errs = append(errs, "sinceSeconds: Forbidden: at most one of sinceTime or sinceSeconds may be specified")
	}
	if len(errs) > 0 {
		return apierrors.NewBadRequest("PodLogOptions is invalid: " + strings.Join(errs, ", "))
	}
	return nil
}

// checkLogStatus answers, as the kubelet does, when the pod's status says the container
// has no log to show yet.
func checkLogStatus(pod *corev1.Pod, container string, previous bool) error {
	var st *corev1.ContainerStatus
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == container {
				st = &list[i]
			}
		}
	}
	if st == nil {
		return nil // the agent decides
	}
	if previous {
		if st.LastTerminationState.Terminated == nil {
			return apierrors.NewBadRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod.Name))
		}
		return nil
	}
	if w := st.State.Waiting; w != nil && st.LastTerminationState.Terminated == nil {
		return apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, pod.Name, w.Reason))
	}
	return nil
}

func (p *Proxy) serveStream(w http.ResponseWriter, r *http.Request, pod *corev1.Pod, verb string) {
	gr := schema.GroupResource{Resource: "pods/" + verb}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeStatus(w, apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method)))
		return
	}
	q := r.URL.Query()
	container, err := ResolveContainer(pod, q.Get("container"))
	if err != nil {
		writeError(w, err)
		return
	}
	if pod.Spec.NodeName == "" {
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name)))
		return
	}
	base, err := p.AgentURL(r.Context(), pod.Spec.NodeName)
	if err != nil {
		writeError(w, err)
		return
	}
	// PodExecOptions (stdin=true) become the kubelet's parameters (input=1).
	out := url.Values{}
	if verb == "exec" {
		for _, c := range q["command"] {
			out.Add("command", c)
		}
	}
	for _, m := range [][2]string{{"stdin", "input"}, {"stdout", "output"}, {"stderr", "error"}, {"tty", "tty"}} {
		if isTrue(q.Get(m[0])) || isTrue(q.Get(m[1])) {
			out.Set(m[1], "1")
		}
	}
	target := *base
	target.Path = "/" + verb + "/" + pod.Namespace + "/" + pod.Name + "/" + string(pod.UID) + "/" + container
	if pod.UID == "" {
		target.Path = "/" + verb + "/" + pod.Namespace + "/" + pod.Name + "/" + container
	}
	target.RawQuery = out.Encode()
	p.proxy(w, r, &target, gr.Resource, pod.Name)
}

func (p *Proxy) servePortForward(w http.ResponseWriter, r *http.Request, pod *corev1.Pod) {
	gr := schema.GroupResource{Resource: "pods/portforward"}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeStatus(w, apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method)))
		return
	}
	if pod.Spec.NodeName == "" {
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name)))
		return
	}
	base, err := p.AgentURL(r.Context(), pod.Spec.NodeName)
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	out := url.Values{}
	for _, v := range append(q["ports"], q["port"]...) {
		for _, port := range strings.Split(v, ",") {
			if port = strings.TrimSpace(port); port != "" {
				out.Add("port", port)
			}
		}
	}
	target := *base
	target.Path = "/portForward/" + pod.Namespace + "/" + pod.Name
	if pod.UID != "" {
		target.Path += "/" + string(pod.UID)
	}
	target.RawQuery = out.Encode()
	p.proxy(w, r, &target, gr.Resource, pod.Name)
}

func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// proxy relays r to target: the response is streamed back as it comes, and a protocol
// upgrade (SPDY, WebSocket) becomes a relayed connection. Error answers from the agent
// become metav1.Status objects.
func (p *Proxy) proxy(w http.ResponseWriter, r *http.Request, target *url.URL, resource, name string) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			// The user's credentials stay here: the agent trusts the API server's own.
			for k := range pr.Out.Header {
				if k == "Authorization" || k == "Cookie" || strings.HasPrefix(k, "Impersonate-") {
					pr.Out.Header.Del(k)
				}
			}
		},
		Transport:     p.transport,
		FlushInterval: -1,
		ErrorLog:      p.errorLog,
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode < 300 || resp.StatusCode == http.StatusSwitchingProtocols {
				return nil
			}
			return toStatusResponse(resp, resource, name)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			p.log.Debug("proxy to agent", "url", target.String(), "err", err)
			writeStatus(w, apierrors.NewInternalError(fmt.Errorf("error dialing backend: %v", err)))
		},
	}
	rp.ServeHTTP(w, r)
}

// toStatusResponse rewrites an agent's error answer into a metav1.Status (unless it is one
// already), as Kubernetes does with the kubelet's answers.
func toStatusResponse(resp *http.Response, resource, name string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		var st metav1.Status
		if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		}
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	se := apierrors.NewGenericServerResponse(resp.StatusCode, "", schema.GroupResource{Resource: resource}, name, msg, 0, false)
	st := se.ErrStatus
	// The agent's message is the whole message, as the kubelet's is in Kubernetes.
	st.Message = msg
	st.Details = nil
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	out, _ := json.Marshal(&st)
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Set("Content-Type", "application/json")
	return nil
}

func writeError(w http.ResponseWriter, err error) {
	if se, ok := err.(apierrors.APIStatus); ok {
		st := se.Status()
		writeStatusObj(w, &st)
		return
	}
	writeStatus(w, apierrors.NewInternalError(err))
}

func writeStatus(w http.ResponseWriter, se *apierrors.StatusError) {
	st := se.ErrStatus
	writeStatusObj(w, &st)
}

func writeStatusObj(w http.ResponseWriter, st *metav1.Status) {
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
