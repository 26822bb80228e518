// Package ingress is skiff's ingress controller: it serves networking.k8s.io/v1 Ingresses of
// its IngressClass ("skiff", the default class) with an HTTP/HTTPS reverse proxy that sends
// requests straight to the ready endpoints of the backend Services (from EndpointSlices),
// picks TLS certificates from the Ingresses' Secrets by SNI, and reports the node's address
// in the Ingresses' status.
//
// Routing follows the Ingress API: paths of type Prefix match element-wise on "/"-separated
// segments, Exact matches the whole path, ImplementationSpecific is treated as Prefix; the
// longest path wins and Exact beats Prefix at equal length. Hosts are exact or "*.foo.com"
// (one label). A request is matched against the rules of its exact host, then of the
// wildcard host, then the rules without host, then the default backend; otherwise 404. A
// backend Service that is missing or has no ready endpoint answers 503.
package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-sh/skiff/internal/controller"
)

const (
	// Name is the component's name.
	Name = "ingress-controller"
	// DefaultClassName is the IngressClass skiff serves.
	DefaultClassName = "skiff"
	// ControllerName is the IngressClass spec.controller of skiff.
	ControllerName = "skiff.sh/ingress"
	// LegacyClassAnnotation selects a class before spec.ingressClassName existed.
	LegacyClassAnnotation = "kubernetes.io/ingress.class"
)

// Config configures the ingress controller.
type Config struct {
	// ListenHTTP and ListenHTTPS are the proxy's addresses. nil means ":80" and ":443"; an
	// empty non-nil slice disables that listener. Tests use "127.0.0.1:0".
	ListenHTTP  []string
	ListenHTTPS []string
	// NodeIP is reported in status.loadBalancer.ingress[].ip of served Ingresses ("" reports
	// nothing).
	NodeIP string
	// ClassName is the IngressClass served (default "skiff").
	ClassName string
	Logger    *slog.Logger
	// Registry receives the metrics (nil: a registry of the controller's own, see Gatherer).
	Registry prometheus.Registerer
	// Recorder, when set, records events on Ingresses (NewFactory uses the control plane's).
	Recorder record.EventRecorder
}

// Controller is the ingress controller component.
type Controller struct {
	cfg      Config
	log      *slog.Logger
	client   kubernetes.Interface
	gatherer prometheus.Gatherer

	ingLister   networkinglisters.IngressLister
	classLister networkinglisters.IngressClassLister
	svcLister   corelisters.ServiceLister
	sliceLister discoverylisters.EndpointSliceLister
	secLister   corelisters.SecretLister
	synced      []cache.InformerSynced

	table    atomic.Pointer[table]
	fallback *tls.Certificate
	proxy    *proxy
	rebuild  chan struct{}
	queue    workqueue.TypedRateLimitingInterface[string] // Ingress keys whose status to sync

	mu         sync.Mutex
	httpAddrs  []string
	httpsAddrs []string
	ready      chan struct{}
}

// NewFactory returns the control plane factory of the ingress controller.
func NewFactory(cfg Config) func(*controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		if cc.Client == nil || cc.Informers == nil {
			return nil, errors.New("ingress controller: needs a client and informers")
		}
		if cfg.Logger == nil {
			cfg.Logger = cc.Logger
		}
		if cfg.Recorder == nil && cc.Recorder != nil {
			cfg.Recorder = cc.Recorder(Name)
		}
		return New(cfg, cc.Client, cc.Informers)
	}
}

// New builds the controller; it asks f for its informers (start f after New).
func New(cfg Config, client kubernetes.Interface, f informers.SharedInformerFactory) (*Controller, error) {
	if cfg.ClassName == "" {
		cfg.ClassName = DefaultClassName
	}
	if cfg.ListenHTTP == nil {
		cfg.ListenHTTP = []string{":80"}
	}
	if cfg.ListenHTTPS == nil {
		cfg.ListenHTTPS = []string{":443"}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", Name)
	reg := cfg.Registry
	var gatherer prometheus.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	fallback, _, _, err := selfSigned("skiff ingress default certificate")
	if err != nil {
		return nil, fmt.Errorf("ingress: fallback certificate: %w", err)
	}
	c := &Controller{
		cfg: cfg, log: log, client: client, gatherer: gatherer, fallback: fallback,
		rebuild: make(chan struct{}, 1),
		ready:   make(chan struct{}),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ingress-status"}),
	}
	c.table.Store(buildTable(snapshot{}))
	c.proxy = newProxy(log, &c.table, newMetrics(reg))

	ings := f.Networking().V1().Ingresses()
	classes := f.Networking().V1().IngressClasses()
	svcs := f.Core().V1().Services()
	slices := f.Discovery().V1().EndpointSlices()
	secrets := f.Core().V1().Secrets()
	c.ingLister, c.classLister = ings.Lister(), classes.Lister()
	c.svcLister, c.sliceLister, c.secLister = svcs.Lister(), slices.Lister(), secrets.Lister()
	c.synced = []cache.InformerSynced{ings.Informer().HasSynced, classes.Informer().HasSynced,
		svcs.Informer().HasSynced, slices.Informer().HasSynced, secrets.Informer().HasSynced}

	trigger := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.triggerRebuild() },
		UpdateFunc: func(any, any) { c.triggerRebuild() },
		DeleteFunc: func(any) { c.triggerRebuild() },
	}
	_, _ = svcs.Informer().AddEventHandler(trigger)
	_, _ = slices.Informer().AddEventHandler(trigger)
	_, _ = secrets.Informer().AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			s, ok := obj.(*corev1.Secret)
			return ok && len(s.Data[corev1.TLSCertKey]) > 0
		},
		Handler: trigger,
	})
	ingChanged := func(obj any) {
		c.triggerRebuild()
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	_, _ = ings.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    ingChanged,
		UpdateFunc: func(_, obj any) { ingChanged(obj) },
		DeleteFunc: func(any) { c.triggerRebuild() },
	})
	classChanged := func(any) {
		c.triggerRebuild()
		c.enqueueAll()
	}
	_, _ = classes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: classChanged, UpdateFunc: func(_, o any) { classChanged(o) }, DeleteFunc: classChanged,
	})
	return c, nil
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

// Handler is the proxy's HTTP handler (both listeners serve it).
func (c *Controller) Handler() http.Handler { return c.proxy }

// Gatherer gathers the controller's metrics when they are on its own registry (or on a
// Registry that is also a Gatherer); nil otherwise.
func (c *Controller) Gatherer() prometheus.Gatherer { return c.gatherer }

// Ready is closed once the listeners are bound and the first route table is built.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Addrs returns the bound addresses of the HTTP and HTTPS listeners (after Ready).
func (c *Controller) Addrs() (httpAddrs, httpsAddrs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.httpAddrs...), append([]string(nil), c.httpsAddrs...)
}

func (c *Controller) triggerRebuild() {
	select {
	case c.rebuild <- struct{}{}:
	default:
	}
}

func (c *Controller) enqueueAll() {
	ings, err := c.ingLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ing := range ings {
		c.queue.Add(ing.Namespace + "/" + ing.Name)
	}
}

// Run binds the listeners, ensures the IngressClass, serves until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}
	var httpL, httpsL []net.Listener
	for _, a := range c.cfg.ListenHTTP {
		l, err := net.Listen("tcp", a)
		if err != nil {
			closeAll()
			return fmt.Errorf("ingress: listen http %s: %w", a, err)
		}
		listeners, httpL = append(listeners, l), append(httpL, l)
	}
	for _, a := range c.cfg.ListenHTTPS {
		l, err := net.Listen("tcp", a)
		if err != nil {
			closeAll()
			return fmt.Errorf("ingress: listen https %s: %w", a, err)
		}
		listeners, httpsL = append(listeners, l), append(httpsL, l)
	}
	c.mu.Lock()
	for _, l := range httpL {
		c.httpAddrs = append(c.httpAddrs, l.Addr().String())
	}
	for _, l := range httpsL {
		c.httpsAddrs = append(c.httpsAddrs, l.Addr().String())
	}
	c.mu.Unlock()
	c.log.Info("starting", "http", c.httpAddrs, "https", c.httpsAddrs, "class", c.cfg.ClassName)
	defer c.log.Info("stopped")

	go c.ensureClass(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		closeAll()
		return nil
	}
	c.build()

	srv := &http.Server{
		Handler:           c.proxy,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"h2", "http/1.1"},
			GetCertificate: c.getCertificate,
		},
	}
	var wg sync.WaitGroup
	serve := func(l net.Listener, tlsOn bool) {
		defer wg.Done()
		var err error
		if tlsOn {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("listener failed", "addr", l.Addr().String(), "err", err)
		}
	}
	for _, l := range httpL {
		wg.Add(1)
		go serve(l, false)
	}
	for _, l := range httpsL {
		wg.Add(1)
		go serve(l, true)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.rebuildLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			for c.processNext(ctx) {
			}
		}, time.Second)
	}()
	c.enqueueAll()
	close(c.ready)

	<-ctx.Done()
	c.queue.ShutDown()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	wg.Wait()
	return nil
}

func (c *Controller) rebuildLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.rebuild:
			c.build()
		}
	}
}

// build rebuilds the route table from the listers and swaps it in.
func (c *Controller) build() {
	all, err := c.ingLister.List(labels.Everything())
	if err != nil {
		c.log.Error("list ingresses", "err", err)
		return
	}
	isDefault := c.classIsDefault()
	var served []*networkingv1.Ingress
	for _, ing := range all {
		if ing.DeletionTimestamp == nil && c.serves(ing, isDefault) {
			served = append(served, ing)
		}
	}
	t := buildTable(snapshot{
		ingresses: served,
		services: func(ns, name string) (*corev1.Service, error) {
			return c.svcLister.Services(ns).Get(name)
		},
		slices: func(ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
			return c.sliceLister.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc}))
		},
		secrets: func(ns, name string) (*corev1.Secret, error) {
			return c.secLister.Secrets(ns).Get(name)
		},
		certErr: func(ing *networkingv1.Ingress, secret string, err error) {
			c.log.Warn("tls secret unusable", "ingress", ing.Namespace+"/"+ing.Name, "secret", secret, "err", err)
		},
	})
	c.table.Store(t)
	c.log.Debug("routes rebuilt", "ingresses", t.ingresses)
}

func (c *Controller) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.table.Load().certificate(hello.ServerName); cert != nil {
		return cert, nil
	}
	return c.fallback, nil
}

// classIsDefault reports whether our IngressClass exists and is marked the default class.
func (c *Controller) classIsDefault() bool {
	ic, err := c.classLister.Get(c.cfg.ClassName)
	return err == nil && ic.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true"
}

// serves reports whether the Ingress is ours: spec.ingressClassName is our class, or the
// legacy annotation names it, or neither is set and our class is the default.
func (c *Controller) serves(ing *networkingv1.Ingress, classIsDefault bool) bool {
	if ing.Spec.IngressClassName != nil {
		return *ing.Spec.IngressClassName == c.cfg.ClassName
	}
	if v, ok := ing.Annotations[LegacyClassAnnotation]; ok {
		return v == c.cfg.ClassName
	}
	return classIsDefault
}

// ensureClass creates our IngressClass (the default class) unless it exists, retrying until
// the API answers.
func (c *Controller) ensureClass(ctx context.Context) {
	ic := &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: c.cfg.ClassName,
			Annotations: map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}},
		Spec: networkingv1.IngressClassSpec{Controller: ControllerName},
	}
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 1 << 30, Cap: 10 * time.Second}
	_ = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		_, err := c.client.NetworkingV1().IngressClasses().Get(ctx, ic.Name, metav1.GetOptions{})
		if err == nil {
			return true, nil
		}
		if apierrors.IsNotFound(err) {
			_, err = c.client.NetworkingV1().IngressClasses().Create(ctx, ic, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				c.log.Info("ingress class created", "class", ic.Name)
				return true, nil
			}
		}
		c.log.Debug("ensuring ingress class", "err", err)
		return false, nil
	})
}
