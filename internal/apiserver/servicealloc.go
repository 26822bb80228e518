package apiserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Service cluster IPs and node ports are allocated as etcd keys
// (/registry/allocations/serviceips/<ip>, /registry/allocations/nodeports/<port>) whose value
// names the owning service, created in a transaction only if absent: concurrent creates
// cannot take the same address, and an allocation survives restarts. A repair loop frees
// allocations whose service is gone or no longer uses them (after failed creates, deletes,
// type changes).
const (
	ipAllocPrefix   = "/registry/allocations/serviceips/"
	portAllocPrefix = "/registry/allocations/nodeports/"
)

// ServiceConfig sets the ranges services are allocated from.
type ServiceConfig struct {
	CIDR          string // default 10.43.0.0/16
	NodePortRange string // default 30000-32767
}

type serviceAllocator struct {
	client     *clientv3.Client
	base       uint32
	size       uint32
	portMin    int
	portMax    int
	cidrString string
}

func newServiceAllocator(c *clientv3.Client, cfg ServiceConfig) (*serviceAllocator, error) {
	if cfg.CIDR == "" {
		cfg.CIDR = "10.43.0.0/16"
	}
	if cfg.NodePortRange == "" {
		cfg.NodePortRange = "30000-32767"
	}
	_, n, err := net.ParseCIDR(cfg.CIDR)
	if err != nil || n.IP.To4() == nil {
		return nil, fmt.Errorf("service CIDR %q: must be an IPv4 CIDR", cfg.CIDR)
	}
	ones, bits := n.Mask.Size()
	lo, hi, ok := strings.Cut(cfg.NodePortRange, "-")
	pmin, err1 := strconv.Atoi(lo)
	pmax, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || pmin < 1 || pmax > 65535 || pmin > pmax {
		return nil, fmt.Errorf("node port range %q: want MIN-MAX", cfg.NodePortRange)
	}
	return &serviceAllocator{client: c, base: binary.BigEndian.Uint32(n.IP.To4()), size: 1 << (bits - ones),
		portMin: pmin, portMax: pmax, cidrString: cfg.CIDR}, nil
}

func (a *serviceAllocator) ipAt(i uint32) string {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, a.base+i)
	return net.IP(b).String()
}

func (a *serviceAllocator) contains(ip string) bool {
	p := net.ParseIP(ip).To4()
	if p == nil {
		return false
	}
	v := binary.BigEndian.Uint32(p)
	return v > a.base && v < a.base+a.size-1
}

// claim takes key for owner unless someone else holds it.
func (a *serviceAllocator) claim(ctx context.Context, key, owner string) (bool, error) {
	resp, err := a.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		return true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	return len(kvs) > 0 && string(kvs[0].Value) == owner, nil
}

// FirstIP is the service CIDR's first usable address (the kubernetes service's), and the
// cluster DNS address is the tenth.
func (a *serviceAllocator) FirstIP() string { return a.ipAt(1) }

// allocate fills in and claims the cluster IP and node ports of svc.
func (a *serviceAllocator) allocate(ctx context.Context, svc *corev1.Service) error {
	owner := svc.Namespace + "/" + svc.Name
	if svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		if svc.Spec.ClusterIP == "" {
			ip, err := a.allocateIP(ctx, owner)
			if err != nil {
				return err
			}
			svc.Spec.ClusterIP = ip
		} else {
			path := field.NewPath("spec", "clusterIPs").Index(0)
			if !a.contains(svc.Spec.ClusterIP) {
				return invalidService(svc, field.Invalid(path, svc.Spec.ClusterIP,
					fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", svc.Spec.ClusterIP, svc.Spec.ClusterIP, a.cidrString)))
			}
			ok, err := a.claim(ctx, ipAllocPrefix+svc.Spec.ClusterIP, owner)
			if err != nil {
				return err
			}
			if !ok {
				return invalidService(svc, field.Invalid(path, svc.Spec.ClusterIP,
					fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP)))
			}
		}
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	if svc.Spec.Type == corev1.ServiceTypeNodePort || (svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		(svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts)) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			path := field.NewPath("spec", "ports").Index(i).Child("nodePort")
			if p.NodePort == 0 {
				n, err := a.allocatePort(ctx, owner)
				if err != nil {
					return err
				}
				p.NodePort = n
				continue
			}
			if int(p.NodePort) < a.portMin || int(p.NodePort) > a.portMax {
				return invalidService(svc, field.Invalid(path, p.NodePort,
					fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.portMin, a.portMax)))
			}
			ok, err := a.claim(ctx, portAllocPrefix+strconv.Itoa(int(p.NodePort)), owner)
			if err != nil {
				return err
			}
			if !ok {
				return invalidService(svc, field.Invalid(path, p.NodePort, "provided port is already allocated"))
			}
		}
	}
	return nil
}

func invalidService(svc *corev1.Service, e *field.Error) error {
	return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, field.ErrorList{e})
}

func (a *serviceAllocator) allocateIP(ctx context.Context, owner string) (string, error) {
	// Random probing, like Kubernetes' allocator; the lower 1/16 of the range is kept for
	// static addresses when the range is large enough (the kubernetes and DNS services).
	usable := a.size - 2
	offset := uint32(0)
	if usable >= 256 {
		offset = usable / 16
	}
	for tries := 0; tries < 256; tries++ {
		i := 1 + offset + uint32(rand.IntN(int(usable-offset)))
		ok, err := a.claim(ctx, ipAllocPrefix+a.ipAt(i), owner)
		if err != nil {
			return "", err
		}
		if ok {
			return a.ipAt(i), nil
		}
	}
	return "", apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: range is full"))
}

func (a *serviceAllocator) allocatePort(ctx context.Context, owner string) (int32, error) {
	for tries := 0; tries < 256; tries++ {
		n := a.portMin + rand.IntN(a.portMax-a.portMin+1)
		ok, err := a.claim(ctx, portAllocPrefix+strconv.Itoa(n), owner)
		if err != nil {
			return 0, err
		}
		if ok {
			return int32(n), nil
		}
	}
	return 0, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: range is full"))
}

// release frees what svc holds (on delete); the repair loop catches anything missed.
func (a *serviceAllocator) release(ctx context.Context, svc *corev1.Service) {
	owner := svc.Namespace + "/" + svc.Name
	var keys []string
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			keys = append(keys, ipAllocPrefix+ip)
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			keys = append(keys, portAllocPrefix+strconv.Itoa(int(p.NodePort)))
		}
	}
	for _, k := range keys {
		_, _ = a.client.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", owner)).Then(clientv3.OpDelete(k)).Commit()
	}
}

// repair frees allocations whose service no longer exists or no longer uses them.
func (a *serviceAllocator) repair(ctx context.Context, services func(ctx context.Context) ([]corev1.Service, error)) {
	svcs, err := services(ctx)
	if err != nil {
		return
	}
	inUse := map[string]string{}
	for _, s := range svcs {
		owner := s.Namespace + "/" + s.Name
		for _, ip := range s.Spec.ClusterIPs {
			inUse[ipAllocPrefix+ip] = owner
		}
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				inUse[portAllocPrefix+strconv.Itoa(int(p.NodePort))] = owner
			}
		}
	}
	for _, prefix := range []string{ipAllocPrefix, portAllocPrefix} {
		resp, err := a.client.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return
		}
		for _, kv := range resp.Kvs {
			k := string(kv.Key)
			if inUse[k] == string(kv.Value) {
				continue
			}
			// Leave very young claims alone: their service may be being created right now.
			if resp.Header.Revision-kv.ModRevision < 50 {
				continue
			}
			_, _ = a.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).Then(clientv3.OpDelete(k)).Commit()
		}
	}
}

func (s *Server) runServiceRepair(ctx context.Context) {
	if s.svcAlloc == nil {
		return
	}
	list := func(ctx context.Context) ([]corev1.Service, error) {
		ep := s.endpoints[gvrKey("", "v1", "services")]
		l := &corev1.ServiceList{}
		if err := ep.store.GetList(ctx, ep.prefix, storageListAll(), l); err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		s.svcAlloc.repair(ctx, list)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
