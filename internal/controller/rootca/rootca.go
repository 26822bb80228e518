// Package rootca is the root CA certificate publisher: every namespace holds a ConfigMap
// "kube-root-ca.crt" whose "ca.crt" is the cluster CA bundle, recreated when deleted and put
// back when changed (Kubernetes' root-ca-cert-publisher).
package rootca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

const (
	// Name is the component's name.
	Name = "root-ca-cert-publisher"
	// ConfigMapName is the published ConfigMap's name.
	ConfigMapName = "kube-root-ca.crt"
	// DataKey is the key holding the CA bundle.
	DataKey = "ca.crt"
	// DescriptionAnnotation is the annotation Kubernetes puts on the ConfigMap.
	DescriptionAnnotation = "kubernetes.io/description"
	description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Publisher keeps kube-root-ca.crt in every namespace.
type Publisher struct {
	log      *slog.Logger
	client   kubernetes.Interface
	ca       string
	nsLister corelisters.NamespaceLister
	cmLister corelisters.ConfigMapLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	workers  int
}

// New builds the publisher from the shared context; the CA is the context's cluster CA.
func New(cc *controller.Context) (controller.Component, error) {
	if cc.Client == nil || cc.Informers == nil {
		return nil, errors.New("root CA publisher: needs a client and informers")
	}
	ca, err := cc.ClusterCA()
	if err != nil {
		return nil, fmt.Errorf("root CA publisher: %w", err)
	}
	if len(ca) == 0 {
		return nil, errors.New("root CA publisher: no cluster CA")
	}
	log := cc.Logger
	if log == nil {
		log = slog.Default()
	}
	return NewPublisher(log, cc.Client, string(ca), cc.Informers.Core().V1().Namespaces(),
		cc.Informers.Core().V1().ConfigMaps(), cc.Options.WorkersOr(1)), nil
}

// NewPublisher builds the publisher from its parts (tests use fakes).
func NewPublisher(log *slog.Logger, client kubernetes.Interface, ca string, namespaces coreinformers.NamespaceInformer,
	configMaps coreinformers.ConfigMapInformer, workers int) *Publisher {
	if workers <= 0 {
		workers = 1
	}
	p := &Publisher{
		log: log.With("controller", Name), client: client, ca: ca,
		nsLister: namespaces.Lister(), cmLister: configMaps.Lister(),
		synced: []cache.InformerSynced{namespaces.Informer().HasSynced, configMaps.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "root_ca_cert_publisher"}),
		workers: workers,
	}
	_, _ = namespaces.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.namespaceChanged,
		UpdateFunc: func(_, obj interface{}) { p.namespaceChanged(obj) },
	})
	_, _ = configMaps.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj interface{}) { p.configMapChanged(obj) },
		DeleteFunc: p.configMapChanged,
	})
	return p
}

// Name implements controller.Component.
func (p *Publisher) Name() string { return Name }

func (p *Publisher) namespaceChanged(obj interface{}) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		p.queue.Add(ns.Name)
	}
}

func (p *Publisher) configMapChanged(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == ConfigMapName {
		p.queue.Add(cm.Namespace)
	}
}

// Run works the queue until ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer p.queue.ShutDown()
	p.log.Info("starting")
	defer p.log.Info("stopped")
	if !cache.WaitForCacheSync(ctx.Done(), p.synced...) {
		return nil
	}
	var wg sync.WaitGroup
	for i := 0; i < p.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for p.processNext(ctx) {
				}
			}, time.Second)
		}()
	}
	<-ctx.Done()
	p.queue.ShutDown()
	wg.Wait()
	return nil
}

func (p *Publisher) processNext(ctx context.Context) bool {
	ns, quit := p.queue.Get()
	if quit {
		return false
	}
	defer p.queue.Done(ns)
	if err := p.sync(ctx, ns); err != nil {
		if ctx.Err() == nil {
			p.log.Debug("retrying", "namespace", ns, "err", err)
		}
		p.queue.AddRateLimited(ns)
		return true
	}
	p.queue.Forget(ns)
	return true
}

func (p *Publisher) sync(ctx context.Context, name string) error {
	ns, err := p.nsLister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		return nil
	}
	cm, err := p.cmLister.ConfigMaps(name).Get(ConfigMapName)
	switch {
	case apierrors.IsNotFound(err):
		_, err = p.client.CoreV1().ConfigMaps(name).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Annotations: map[string]string{DescriptionAnnotation: description}},
			Data:       map[string]string{DataKey: p.ca},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return err
	case err != nil:
		return err
	}
	if cm.Data[DataKey] == p.ca && len(cm.Data) == 1 && len(cm.BinaryData) == 0 && cm.Annotations[DescriptionAnnotation] == description {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = map[string]string{DataKey: p.ca}
	cm.BinaryData = nil
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[DescriptionAnnotation] = description
	_, err = p.client.CoreV1().ConfigMaps(name).Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile: its delete event requeues the namespace
	}
	return err
}
