package dns

import (
	"context"
	"errors"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// Names and labels of the objects that make the DNS server reachable in the cluster.
const (
	ServiceNamespace = "kube-system"
	ServiceName      = "kube-dns"
	// ManagedBy is the endpointslice.kubernetes.io/managed-by value of the slices we own.
	ManagedBy = "skiff-dns"
	// SliceResync is how often the slice is checked even without events.
	SliceResync = time.Minute
)

// SliceName is the EndpointSlice a node's DNS server maintains.
func SliceName(nodeName string) string { return ServiceName + "-" + nodeName }

// clusterHandler pokes the cluster loop when kube-dns or our slice changes or goes away.
func (s *Server) clusterHandler() cache.ResourceEventHandler {
	poke := func(obj interface{}) {
		m, err := metaOf(unwrap(obj))
		if err != nil || m.GetNamespace() != ServiceNamespace {
			return
		}
		if n := m.GetName(); n == ServiceName || n == SliceName(s.cfg.NodeName) {
			select {
			case s.trigger <- struct{}{}:
			default:
			}
		}
	}
	return cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj interface{}) { poke(obj) },
		DeleteFunc: poke,
	}
}

func metaOf(obj interface{}) (metav1.Object, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		return o, nil
	case *discoveryv1.EndpointSlice:
		return o, nil
	}
	return nil, errNotOurs
}

var errNotOurs = errors.New("not a service or endpoint slice")

// runCluster ensures kube-dns and this node's slice until ctx ends, then removes the slice.
func (s *Server) runCluster(ctx context.Context) {
	backoff := 200 * time.Millisecond
	ticker := time.NewTicker(SliceResync)
	defer ticker.Stop()
	sliceMade := false
	defer func() {
		if !sliceMade {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err := s.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Delete(dctx, SliceName(s.cfg.NodeName), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			s.log.Warn("removing endpoint slice on stop", "slice", SliceName(s.cfg.NodeName), "err", err)
		} else {
			s.log.Info("removed endpoint slice", "slice", SliceName(s.cfg.NodeName))
		}
	}()
	warned := false
	publish := s.cfg.NodeIP != ""
	if a, err := netip.ParseAddr(s.cfg.NodeIP); err == nil && (a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified()) {
		// The API refuses such endpoint addresses, as Kubernetes does.
		s.log.Warn("node IP cannot be an endpoint address; not publishing an endpoint slice", "nodeIP", s.cfg.NodeIP)
		publish = false
	}
	for {
		err := s.ensureService(ctx, &warned)
		if err == nil && publish {
			err = s.ensureSlice(ctx)
			if err == nil {
				sliceMade = true
			}
		}
		wait := SliceResync
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("ensuring kube-dns", "err", err, "retry", backoff)
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		} else {
			backoff = 200 * time.Millisecond
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.trigger:
		case <-ticker.C:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// ensureService creates kube-system/kube-dns when missing. One that exists with another
// cluster IP is left alone (logged once).
func (s *Server) ensureService(ctx context.Context, warned *bool) error {
	svcs := s.client.CoreV1().Services(ServiceNamespace)
	cur, err := svcs.Get(ctx, ServiceName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur, err = svcs.Create(ctx, s.desiredService(), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cur, err = svcs.Get(ctx, ServiceName, metav1.GetOptions{})
		} else if err == nil {
			s.log.Info("created service", "service", ServiceNamespace+"/"+ServiceName, "clusterIP", cur.Spec.ClusterIP)
		}
	}
	if err != nil {
		return err
	}
	if cur.Spec.ClusterIP != s.cfg.ServiceIP && !*warned {
		*warned = true
		s.log.Warn("kube-dns exists with another cluster IP; leaving it", "clusterIP", cur.Spec.ClusterIP, "want", s.cfg.ServiceIP)
	}
	return nil
}

func (s *Server) desiredService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace, Labels: map[string]string{
			"k8s-app": "kube-dns", "kubernetes.io/name": ManagedBy, "kubernetes.io/cluster-service": "true",
		}},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: s.cfg.ServiceIP,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
			},
		},
	}
}

// slicePort is the port this server answers on at NodeIP.
func (s *Server) slicePort() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	nodeIP, _ := netip.ParseAddr(s.cfg.NodeIP)
	for _, b := range s.bound {
		if b.Addr() == nodeIP.Unmap() {
			return int32(b.Port())
		}
	}
	for _, b := range s.bound {
		if b.Addr().IsUnspecified() {
			return int32(b.Port())
		}
	}
	if len(s.bound) > 0 {
		return int32(s.bound[0].Port())
	}
	return 53
}

func (s *Server) desiredSlice() *discoveryv1.EndpointSlice {
	nodeIP, _ := netip.ParseAddr(s.cfg.NodeIP)
	at := discoveryv1.AddressTypeIPv4
	if !nodeIP.Unmap().Is4() {
		at = discoveryv1.AddressTypeIPv6
	}
	port := s.slicePort()
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: SliceName(s.cfg.NodeName), Namespace: ServiceNamespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: ServiceName,
			discoveryv1.LabelManagedBy:   ManagedBy,
		}},
		AddressType: at,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{nodeIP.Unmap().String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(s.cfg.NodeName),
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(port)},
			{Name: ptr.To("dns-tcp"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(port)},
		},
	}
}

func (s *Server) ensureSlice(ctx context.Context) error {
	slices := s.client.DiscoveryV1().EndpointSlices(ServiceNamespace)
	want := s.desiredSlice()
	cur, err := slices.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = slices.Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			s.log.Info("created endpoint slice", "slice", want.Name, "address", want.Endpoints[0].Addresses[0], "port", *want.Ports[0].Port)
		}
		return err
	}
	if err != nil {
		return err
	}
	if sliceMatches(cur, want) {
		return nil
	}
	upd := cur.DeepCopy()
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	for k, v := range want.Labels {
		upd.Labels[k] = v
	}
	upd.AddressType, upd.Endpoints, upd.Ports = want.AddressType, want.Endpoints, want.Ports
	_, err = slices.Update(ctx, upd, metav1.UpdateOptions{})
	if err == nil {
		s.log.Info("updated endpoint slice", "slice", want.Name)
	}
	return err
}

func sliceMatches(cur, want *discoveryv1.EndpointSlice) bool {
	for k, v := range want.Labels {
		if cur.Labels[k] != v {
			return false
		}
	}
	if cur.AddressType != want.AddressType || len(cur.Endpoints) != 1 || len(cur.Ports) != len(want.Ports) {
		return false
	}
	ce, we := cur.Endpoints[0], want.Endpoints[0]
	if len(ce.Addresses) != 1 || ce.Addresses[0] != we.Addresses[0] || ce.Conditions.Ready == nil || !*ce.Conditions.Ready ||
		ce.NodeName == nil || *ce.NodeName != *we.NodeName {
		return false
	}
	for i := range want.Ports {
		cp, wp := cur.Ports[i], want.Ports[i]
		if cp.Name == nil || *cp.Name != *wp.Name || cp.Protocol == nil || *cp.Protocol != *wp.Protocol ||
			cp.Port == nil || *cp.Port != *wp.Port {
			return false
		}
	}
	return true
}
