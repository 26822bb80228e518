package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamOptions are the parameters of exec and attach, from the kubelet's query parameters
// (input/output/error/tty set to 1, as the API server sends them) or the PodExecOptions
// names (stdin/stdout/stderr/tty set to true).
type streamOptions struct {
	command                    []string
	stdin, stdout, stderr, tty bool
}

func truthy(q url.Values, names ...string) bool {
	for _, n := range names {
		switch strings.ToLower(q.Get(n)) {
		case "1", "true", "yes":
			return true
		}
	}
	return false
}

func parseStreamOptions(q url.Values, exec bool) (streamOptions, error) {
	o := streamOptions{
		command: q["command"],
		stdin:   truthy(q, "input", "stdin"),
		stdout:  truthy(q, "output", "stdout"),
		stderr:  truthy(q, "error", "stderr"),
		tty:     truthy(q, "tty"),
	}
	if exec && len(o.command) == 0 {
		return o, errorf(http.StatusBadRequest, "you must specify at least one command for the container")
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, errorf(http.StatusBadRequest, "you must specify at least 1 of stdin, stdout, stderr")
	}
	if o.tty && o.stderr {
		// A terminal merges stderr into stdout.
		o.stderr = false
	}
	return o, nil
}

// containerPath splits /{verb}/{ns}/{pod}/{container} or /{verb}/{ns}/{pod}/{uid}/{container}.
func containerPath(p, verb string) (podRef, string, bool) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(p, "/"+verb+"/"), "/"), "/")
	switch len(parts) {
	case 3:
		if parts[0] != "" && parts[1] != "" && parts[2] != "" {
			return podRef{Namespace: parts[0], Name: parts[1]}, parts[2], true
		}
	case 4:
		if parts[0] != "" && parts[1] != "" && parts[2] != "" && parts[3] != "" {
			return podRef{Namespace: parts[0], Name: parts[1], UID: parts[2]}, parts[3], true
		}
	}
	return podRef{}, "", false
}

// podPath splits /{verb}/{ns}/{pod} or /{verb}/{ns}/{pod}/{uid}.
func podPath(p, verb string) (podRef, bool) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(p, "/"+verb+"/"), "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return podRef{Namespace: parts[0], Name: parts[1]}, true
	case len(parts) == 3 && parts[0] != "" && parts[1] != "" && parts[2] != "":
		return podRef{Namespace: parts[0], Name: parts[1], UID: parts[2]}, true
	}
	return podRef{}, false
}

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	s.handleContainerStream(w, r, "exec")
}

func (s *Server) handleAttach(w http.ResponseWriter, r *http.Request) {
	s.handleContainerStream(w, r, "attach")
}

func (s *Server) handleContainerStream(w http.ResponseWriter, r *http.Request, verb string) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeStatusError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
		return
	}
	pod, name, ok := containerPath(r.URL.Path, verb)
	if !ok {
		writeStatusError(w, errorf(http.StatusNotFound, "expected /%s/{namespace}/{pod}/{container}", verb))
		return
	}
	opts, err := parseStreamOptions(r.URL.Query(), verb == "exec")
	if err != nil {
		writeStatusError(w, err)
		return
	}
	ctx := r.Context()
	c, err := runningContainer(ctx, s.rt, pod, name)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	var streamURL string
	if verb == "exec" {
		streamURL, err = s.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: c.Id, Cmd: opts.command,
			Tty: opts.tty, Stdin: opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr})
	} else {
		streamURL, err = s.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: c.Id,
			Tty: opts.tty, Stdin: opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr})
	}
	if err != nil {
		writeStatusError(w, errorf(http.StatusInternalServerError, "%s in container %q of pod %q: %v", verb, name, pod.Name, err))
		return
	}
	if wantsWebSocketV5(r) {
		s.translateStream(w, r, streamURL, opts)
		return
	}
	s.proxyStream(w, r, streamURL)
}

func (s *Server) handlePortForward(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeStatusError(w, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
		return
	}
	pod, ok := podPath(r.URL.Path, "portForward")
	if !ok {
		writeStatusError(w, errorf(http.StatusNotFound, "expected /portForward/{namespace}/{pod}"))
		return
	}
	var ports []int32
	q := r.URL.Query()
	for _, v := range append(q["port"], q["ports"]...) {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n == 0 {
				writeStatusError(w, errorf(http.StatusBadRequest, "invalid port %q", p))
				return
			}
			ports = append(ports, int32(n))
		}
	}
	ctx := r.Context()
	sel := map[string]string{LabelPodNamespace: pod.Namespace, LabelPodName: pod.Name}
	if pod.UID != "" {
		sel[LabelPodUID] = pod.UID
	}
	sbs, err := s.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel,
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		writeStatusError(w, errorf(http.StatusInternalServerError, "listing pod sandboxes: %v", err))
		return
	}
	if len(sbs) == 0 {
		writeStatusError(w, errorf(http.StatusNotFound, "pod %q not found", pod.String()))
		return
	}
	sb := sbs[0]
	for _, x := range sbs[1:] {
		if x.CreatedAt > sb.CreatedAt {
			sb = x
		}
	}
	streamURL, err := s.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb.Id, Port: ports})
	if err != nil {
		writeStatusError(w, errorf(http.StatusInternalServerError, "port-forward to pod %q: %v", pod.Name, err))
		return
	}
	s.proxyStream(w, r, streamURL)
}

// newStreamTransport reaches the runtime's streaming server (plain HTTP on loopback, or
// HTTPS with the runtime's self-signed certificate).
func newStreamTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the runtime's own loopback server
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
}

// proxyStream hands the client's request (an upgrade to SPDY or WebSocket) to the runtime's
// streaming URL and relays the connection both ways until either side closes it.
func (s *Server) proxyStream(w http.ResponseWriter, r *http.Request, streamURL string) {
	target, err := url.Parse(streamURL)
	if err != nil || target.Host == "" {
		writeStatusError(w, errorf(http.StatusInternalServerError, "runtime returned an unusable streaming URL %q", streamURL))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *target
			pr.Out.URL = &u
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
		},
		Transport:     s.streamTransport,
		FlushInterval: -1,
		ErrorLog:      s.errorLog,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Debug("streaming proxy", "url", r.URL.Path, "err", err)
			writeStatusError(w, errorf(http.StatusBadGateway, "error reaching the runtime's streaming server: %v", err))
		},
	}
	rp.ServeHTTP(w, r)
}
