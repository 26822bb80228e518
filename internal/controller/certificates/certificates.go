// Package certificates is the CSR signing controller: it issues certificates from the cluster
// CA for approved CertificateSigningRequests to Kubernetes' built-in signers
// (kube-apiserver-client, kube-apiserver-client-kubelet, kubelet-serving) and marks a request
// it cannot sign Failed, as kube-controller-manager's csrsigning controller does.
package certificates

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
	regcert "github.com/skiff-sh/skiff/internal/registry/certificates"
)

// Name is the component's name.
const Name = "csrsigning-controller"

// Controller signs approved requests.
type Controller struct {
	log    *slog.Logger
	client kubernetes.Interface
	lister certlisters.CertificateSigningRequestLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	sign   controller.CSRSigner
}

// New builds the controller; it needs the context's CSR signer (the cluster CA).
func New(cc *controller.Context) (controller.Component, error) {
	if cc.Client == nil || cc.Informers == nil || cc.SignCSR == nil {
		return nil, errors.New("csr signing controller: needs a client, informers and the cluster CA's signer")
	}
	log := cc.Logger
	if log == nil {
		log = slog.Default()
	}
	inf := cc.Informers.Certificates().V1().CertificateSigningRequests()
	c := &Controller{log: log.With("controller", Name), client: cc.Client, lister: inf.Lister(), synced: inf.Informer().HasSynced,
		sign: cc.SignCSR,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "csrsigning"})}
	enqueue := func(obj interface{}) {
		if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok {
			c.queue.Add(csr.Name)
		}
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
	})
	return c, nil
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

// Run implements controller.Component.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return nil
	}
	controllerutil.RunWorkers(ctx, c.queue, 1, func(ctx context.Context) {
		for controllerutil.ProcessNext(ctx, c.queue, c.log, c.sync) {
		}
	})
	return nil
}

func (c *Controller) sync(ctx context.Context, name string) error {
	shared, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(shared.Status.Certificate) > 0 || !regcert.Approved(shared) {
		return nil
	}
	usages, keyUsage, known := signerUsages(shared.Spec.SignerName)
	if !known {
		return nil // another signer's request
	}
	csr := shared.DeepCopy()
	var validity time.Duration
	if s := csr.Spec.ExpirationSeconds; s != nil {
		validity = time.Duration(*s) * time.Second
	}
	for _, u := range csr.Spec.Usages {
		if !allowedUsage(csr.Spec.SignerName, u) {
			return c.fail(ctx, csr, "SignerValidationFailure", fmt.Sprintf("invalid usage for signer %q: %s", csr.Spec.SignerName, u))
		}
	}
	cert, err := c.sign(csr.Spec.Request, usages, keyUsage, validity)
	if err != nil {
		return c.fail(ctx, csr, "SignerValidationFailure", err.Error())
	}
	csr.Status.Certificate = cert
	_, err = c.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{})
	if err == nil {
		c.log.Info("signed certificate", "csr", name, "signer", csr.Spec.SignerName, "user", csr.Spec.Username)
	}
	return err
}

func (c *Controller) fail(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, reason, msg string) error {
	now := metav1.Now()
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
		LastUpdateTime: now, LastTransitionTime: now})
	_, err := c.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{})
	return err
}

// signerUsages returns the extended and key usages of a built-in signer's certificates.
func signerUsages(signer string) ([]x509.ExtKeyUsage, x509.KeyUsage, bool) {
	switch signer {
	case regcert.SignerAPIServerClient, regcert.SignerAPIServerClientKubelet:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, true
	case regcert.SignerKubeletServing:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, true
	}
	return nil, 0, false
}

// allowedUsage: client signers issue client auth (with digital signature, key encipherment);
// the kubelet-serving signer issues server auth.
func allowedUsage(signer string, u certificatesv1.KeyUsage) bool {
	switch u {
	case certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment:
		return true
	case certificatesv1.UsageClientAuth:
		return signer != regcert.SignerKubeletServing
	case certificatesv1.UsageServerAuth:
		return signer == regcert.SignerKubeletServing
	}
	return false
}
