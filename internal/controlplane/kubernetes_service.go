package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/apiserver/podproxy"
)

// bootstrapKubernetesService keeps default/kubernetes pointing at this API server, with the
// service CIDR's first address, as every Kubernetes cluster has it.
func (cp *ControlPlane) bootstrapKubernetesService(ctx context.Context, cs kubernetes.Interface) error {
	u, err := url.Parse(cp.URL)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(u.Port())
	host := cp.advertiseAddress()
	labels := map[string]string{"component": "apiserver", "provider": "kubernetes"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: labels},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: cp.API.ServiceIP(1), SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(int32(port))}},
		},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create kubernetes service: %w", err)
	}
	if host == "" {
		// Endpoints may not be loopback addresses; a machine with no other address has none.
		cp.log.Warn("no non-loopback address to advertise: the kubernetes service has no endpoints")
		return nil
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: host}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(port), Protocol: corev1.ProtocolTCP}},
		}},
	}
	if err := upsert(ctx, func() error {
		_, err := cs.CoreV1().Endpoints("default").Create(ctx, ep, metav1.CreateOptions{})
		return err
	}, func() error {
		cur, err := cs.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Subsets = ep.Subsets
		_, err = cs.CoreV1().Endpoints("default").Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("kubernetes endpoints: %w", err)
	}
	ready := true
	name, proto, p := "https", corev1.ProtocolTCP, int32(port)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "skiff-apiserver"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &proto, Port: &p}},
	}
	return upsert(ctx, func() error {
		_, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{})
		return err
	}, func() error {
		cur, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Endpoints, cur.Ports = slice.Endpoints, slice.Ports
		_, err = cs.DiscoveryV1().EndpointSlices("default").Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func upsert(ctx context.Context, create, update func() error) error {
	err := create()
	if apierrors.IsAlreadyExists(err) {
		return update()
	}
	return err
}

// advertiseAddress is the address pods and other nodes use for the API server: the bind
// address, or the machine's first non-loopback IPv4 address when bound to all interfaces.
func (cp *ControlPlane) advertiseAddress() string {
	if cp.cfg.AdvertiseAddress != "" {
		return cp.cfg.AdvertiseAddress
	}
	if ip := net.ParseIP(cp.cfg.BindAddress); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		return ip.String()
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// podProxy builds the API server's client to node agents (pods/log, exec, attach,
// port-forward, metrics.k8s.io), authenticating with a certificate from the cluster CA.
func (cp *ControlPlane) podProxy() (*podproxy.Proxy, error) {
	certPEM, keyPEM, err := cp.PKI.SignClientCert("skiff-apiserver-agent-client", []string{"system:masters"})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	// The kubeconfig is not written yet: build the loopback client from the PKI directly.
	rc := &rest.Config{Host: cp.URL, QPS: 100, Burst: 200, TLSClientConfig: rest.TLSClientConfig{
		CAData: cp.PKI.CAPEM, CertData: cp.PKI.AdminCertPEM, KeyData: cp.PKI.AdminKeyPEM}}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	// Agents that joined with a token serve self-signed certificates: like Kubernetes without
	// --kubelet-certificate-authority, the API server does not verify them.
	return podproxy.New(podproxy.Config{Client: cs, ClientCert: cert, RootCAs: cp.PKI.CAPool, InsecureSkipVerify: true, Logger: cp.log}), nil
}
