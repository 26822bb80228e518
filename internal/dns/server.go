package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Name is the component's name.
const Name = "dns"

// advertisedUDPSize is the EDNS0 buffer size this server reads with and announces.
const advertisedUDPSize = 4096

// Server is the cluster DNS component.
type Server struct {
	cfg       Config
	log       *slog.Logger
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	idx       *index
	fwd       *forwarder
	zone      string // "cluster.local."
	ttl       uint32
	serial    uint32
	serviceIP netip.Addr
	podMode   PodMode

	hasSynced []cache.InformerSynced
	synced    atomic.Bool
	listening atomic.Bool
	trigger   chan struct{}

	mu      sync.Mutex
	bound   []netip.AddrPort // UDP and TCP share the port
	servers []*dns.Server

	reg      *prometheus.Registry
	queries  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewFactory returns the component factory for the control plane.
func NewFactory(cfg Config) func(*controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		if cc.Client == nil || cc.Informers == nil {
			return nil, errors.New("dns: needs a client and informers")
		}
		if cfg.Logger == nil {
			cfg.Logger = cc.Logger
		}
		return New(cfg, cc.Client, cc.Informers)
	}
}

// New builds the DNS server, registering its informers on factory. Run starts the factory
// itself (a no-op for informers already started), so it works outside the control plane.
func New(cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("component", Name), client: client, factory: factory,
		idx:     newIndex(cfg.Domain + "."),
		zone:    cfg.Domain + ".",
		ttl:     uint32(cfg.TTL / time.Second),
		serial:  uint32(time.Now().Unix()),
		podMode: cfg.PodRecords,
		trigger: make(chan struct{}, 1),
		fwd:     &forwarder{budget: cfg.ForwardTimeout},
		reg:     cfg.Registry,
	}
	if s.ttl == 0 {
		s.ttl = 1
	}
	s.serviceIP, _ = netip.ParseAddr(cfg.ServiceIP)
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.registerMetrics()

	svcInf := factory.Core().V1().Services().Informer()
	sliceInf := factory.Discovery().V1().EndpointSlices().Informer()
	if _, err := svcInf.AddEventHandler(s.idx.serviceHandler()); err != nil {
		return nil, err
	}
	if _, err := sliceInf.AddEventHandler(s.idx.sliceHandler()); err != nil {
		return nil, err
	}
	if _, err := svcInf.AddEventHandler(s.clusterHandler()); err != nil {
		return nil, err
	}
	if _, err := sliceInf.AddEventHandler(s.clusterHandler()); err != nil {
		return nil, err
	}
	s.hasSynced = []cache.InformerSynced{svcInf.HasSynced, sliceInf.HasSynced}
	if cfg.PodRecords == PodsVerified {
		podInf := factory.Core().V1().Pods().Informer()
		if _, err := podInf.AddEventHandler(s.idx.podHandler()); err != nil {
			return nil, err
		}
		s.hasSynced = append(s.hasSynced, podInf.HasSynced)
	}
	return s, nil
}

func (s *Server) registerMetrics() {
	f := promauto.With(s.reg)
	s.queries = f.NewCounterVec(prometheus.CounterOpts{
		Name: "skiff_dns_queries_total",
		Help: "DNS queries answered, by query type and response code.",
	}, []string{"type", "rcode"})
	s.duration = f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "skiff_dns_request_duration_seconds",
		Help:    "Time to answer a DNS query, by source of the answer (cluster or forward).",
		Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4},
	}, []string{"source"})
}

// Name implements controller.Component.
func (s *Server) Name() string { return Name }

// Registry holds the server's metrics (the one given in Config, or its own).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Addr is the first bound address (host:port, UDP and TCP), "" before Run has bound it.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bound) == 0 {
		return ""
	}
	return s.bound[0].String()
}

// Addrs are all bound addresses.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.bound))
	for i, b := range s.bound {
		out[i] = b.String()
	}
	return out
}

// Upstreams are the resolvers names outside the cluster domain go to (known once Run has bound).
func (s *Server) Upstreams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.fwd.upstreams...)
}

// Ready reports whether the server listens and its indexes are synced.
func (s *Server) Ready() bool { return s.listening.Load() && s.synced.Load() }

// WaitReady blocks until Ready or ctx ends.
func (s *Server) WaitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !s.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Run listens, serves until ctx ends, and keeps kube-dns and this node's slice in place.
func (s *Server) Run(ctx context.Context) error {
	if err := s.listen(); err != nil {
		return err
	}
	s.setUpstreams()
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		wg.Add(1)
		go func(srv *dns.Server) {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil && ctx.Err() == nil {
				s.log.Error("dns listener failed", "err", err)
			}
		}(srv)
	}
	s.listening.Store(true)
	s.log.Info("serving", "addresses", s.Addrs(), "domain", s.cfg.Domain, "upstreams", s.Upstreams())

	s.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.hasSynced...) {
		s.stop(&wg)
		return nil
	}
	s.synced.Store(true)
	s.log.Info("indexes synced", "services", s.idx.serviceCount())

	var cwg sync.WaitGroup
	if !s.cfg.DisableClusterIntegration {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			s.runCluster(ctx)
		}()
	}
	<-ctx.Done()
	cwg.Wait()
	s.stop(&wg)
	return nil
}

func (s *Server) stop(wg *sync.WaitGroup) {
	s.listening.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range s.servers {
		_ = srv.ShutdownContext(sctx)
	}
	wg.Wait()
}

// listen binds UDP and TCP on every listen address (the same port for both).
func (s *Server) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.servers) > 0 {
		return errors.New("dns: already running")
	}
	var pcs []net.PacketConn
	var ls []net.Listener
	closeAll := func() {
		for _, pc := range pcs {
			pc.Close()
		}
		for _, l := range ls {
			l.Close()
		}
	}
	for _, addr := range s.cfg.ListenAddresses {
		pc, l, err := listenBoth(addr)
		if err != nil {
			closeAll()
			return err
		}
		pcs, ls = append(pcs, pc), append(ls, l)
		ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		s.bound = append(s.bound, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	for i := range pcs {
		s.servers = append(s.servers,
			&dns.Server{PacketConn: pcs[i], Handler: s, UDPSize: advertisedUDPSize},
			&dns.Server{Listener: ls[i], Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	}
	return nil
}

func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen address %q: %w", addr, err)
	}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(p)))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break // a fixed port: no point retrying
		}
	}
	return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", addr, lastErr)
}

func (s *Server) setUpstreams() {
	ups := s.cfg.Upstreams
	if len(ups) == 0 {
		var err error
		ups, err = ReadResolvConf(s.cfg.ResolvConf)
		if err != nil {
			s.log.Warn("no upstream resolvers: cannot read resolv.conf; names outside the cluster get SERVFAIL",
				"path", s.cfg.ResolvConf, "err", err)
		}
	} else {
		var norm []string
		for _, u := range ups {
			if hp, ok := normalizeUpstream(u); ok {
				norm = append(norm, hp)
			} else {
				s.log.Warn("ignoring invalid upstream", "upstream", u)
			}
		}
		ups = norm
	}
	s.mu.Lock()
	kept, dropped := filterSelf(ups, s.bound, s.serviceIP)
	s.fwd.upstreams = kept
	s.mu.Unlock()
	if len(dropped) > 0 {
		s.log.Info("skipping upstreams that are this server", "upstreams", dropped)
	}
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	defer func() {
		// One bad query must not take the whole skiff process down.
		if p := recover(); p != nil {
			s.log.Error("panic answering a query", "panic", p, "question", r.Question)
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeServerFailure)
			_ = w.WriteMsg(m)
			s.queries.WithLabelValues("other", "SERVFAIL").Inc()
		}
	}()
	network := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	resp, source := s.handle(r, network)
	size := dns.MaxMsgSize
	if network == "udp" {
		size = dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
	}
	resp.Truncate(size)
	if network == "tcp" || len(resp.Answer)+len(resp.Ns)+len(resp.Extra) > 1 {
		resp.Compress = true
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("write answer", "err", err)
	}
	qtype := "none"
	if len(r.Question) > 0 {
		qtype = typeLabel(r.Question[0].Qtype)
	}
	s.queries.WithLabelValues(qtype, rcodeLabel(resp.Rcode)).Inc()
	s.duration.WithLabelValues(source).Observe(time.Since(start).Seconds())
}

// handle builds the response to r; source says where it came from, for metrics.
func (s *Server) handle(r *dns.Msg, network string) (*dns.Msg, string) {
	resp := new(dns.Msg)
	if r.Opcode != dns.OpcodeQuery {
		resp.SetRcode(r, dns.RcodeNotImplemented)
		return resp, "cluster"
	}
	if len(r.Question) != 1 {
		resp.SetRcode(r, dns.RcodeFormatError)
		return resp, "cluster"
	}
	q := r.Question[0]
	ctx := context.Background()
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		resp.SetRcode(r, dns.RcodeRefused)
		return resp, "cluster"
	}
	if q.Qclass == dns.ClassINET || q.Qclass == dns.ClassANY {
		if s.inZone(strings.ToLower(dns.Fqdn(q.Name))) && !s.synced.Load() {
			resp.SetRcode(r, dns.RcodeServerFailure)
			return resp, "cluster"
		}
		if za, ok := s.resolveQuestion(ctx, q, network); ok {
			resp.SetReply(r)
			resp.Authoritative = true
			resp.RecursionAvailable = true
			resp.Rcode = za.rcode
			resp.Answer = za.answer
			resp.Extra = za.extra
			if len(za.answer) == 0 || za.rcode == dns.RcodeNameError {
				resp.Ns = []dns.RR{s.soa()}
			}
			if opt := r.IsEdns0(); opt != nil {
				resp.SetEdns0(advertisedUDPSize, opt.Do())
			}
			return resp, "cluster"
		}
	} else if s.inZone(strings.ToLower(dns.Fqdn(q.Name))) {
		resp.SetRcode(r, dns.RcodeNotImplemented)
		return resp, "cluster"
	}
	up, err := s.fwd.exchange(ctx, r, network)
	if err != nil {
		s.log.Debug("forward failed", "name", q.Name, "err", err)
		resp.SetRcode(r, dns.RcodeServerFailure)
		resp.RecursionAvailable = true
		return resp, "forward"
	}
	up.Id = r.Id
	return up, "forward"
}

var knownTypes = map[uint16]bool{dns.TypeA: true, dns.TypeAAAA: true, dns.TypeSRV: true, dns.TypePTR: true,
	dns.TypeCNAME: true, dns.TypeTXT: true, dns.TypeSOA: true, dns.TypeNS: true, dns.TypeMX: true,
	dns.TypeANY: true, dns.TypeHTTPS: true, dns.TypeSVCB: true}

func typeLabel(t uint16) string {
	if knownTypes[t] {
		return dns.TypeToString[t]
	}
	return "other"
}

func rcodeLabel(c int) string {
	if s, ok := dns.RcodeToString[c]; ok {
		return s
	}
	return "other"
}
