// Package volume is the persistent volume controller: it binds PersistentVolumeClaims to
// PersistentVolumes (class, access modes, capacity, selector, pre-binding by volumeName or
// claimRef), keeps both phases (Available/Bound/Released/Lost), reclaims released volumes
// (Retain or Delete), and provisions volumes for claims of classes whose provisioner is the
// built-in local-path one — at once for Immediate classes, and once a pod using the claim
// is scheduled for WaitForFirstConsumer ones. At start it creates the default StorageClass
// "local-path" when it is missing.
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Name is the component's name.
const Name = "persistentvolume-binder-controller"

// Config tunes the controller. The zero value means the defaults.
type Config struct {
	// BaseDir holds local-path volumes, one directory per volume (default /var/lib/skiff/storage).
	BaseDir string
	// DefaultClass is the StorageClass created at start when missing (default: LocalPathClass();
	// set NoDefaultClass to create none).
	DefaultClass   *storagev1.StorageClass
	NoDefaultClass bool
	// LocalNode reports whether a node's disk is this machine's, where the controller can
	// create and remove volume directories itself (default: the node named after this host,
	// as the server's own agent names it). Directories of other nodes are created by their
	// agent (hostPath type DirectoryOrCreate) and left behind on delete; simulated nodes
	// get none.
	LocalNode func(node *corev1.Node) bool
}

// DefaultBaseDir is where local-path volumes live unless configured.
const DefaultBaseDir = "/var/lib/skiff/storage"

// LocalPathClassName is the default StorageClass's name.
const LocalPathClassName = "local-path"

// LocalPathClass is the default StorageClass: local-path, WaitForFirstConsumer, Delete.
func LocalPathClass() *storagev1.StorageClass {
	reclaim := corev1.PersistentVolumeReclaimDelete
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: LocalPathClassName, Annotations: map[string]string{AnnDefaultClass: "true"}},
		Provisioner:       LocalPathProvisioner,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &mode,
	}
}

// New builds the controller with the default Config.
func New(cc *controller.Context) (controller.Component, error) { return NewFactory(Config{})(cc) }

// NewFactory returns a component factory building the controller with cfg.
func NewFactory(cfg Config) func(cc *controller.Context) (controller.Component, error) {
	return func(cc *controller.Context) (controller.Component, error) {
		if cc.Client == nil || cc.Informers == nil {
			return nil, errors.New("volume controller: needs a client and informers")
		}
		var rec record.EventRecorder
		if cc.Recorder != nil {
			rec = cc.Recorder("persistentvolume-controller") // the "From" Kubernetes shows
		} else {
			rec = &record.FakeRecorder{}
		}
		log := cc.Logger
		if log == nil {
			log = slog.Default()
		}
		cfg := cfg
		if cfg.BaseDir == "" {
			cfg.BaseDir = cc.Options.LocalStorageDir
		}
		if name := cc.Options.LocalNodeName; cfg.LocalNode == nil && name != "" {
			cfg.LocalNode = func(n *corev1.Node) bool { return n != nil && n.Name == name }
		}
		return NewController(log, cc.Client, cc.Informers, rec, cfg), nil
	}
}

// Controller binds claims to volumes and provisions local-path volumes.
type Controller struct {
	log      *slog.Logger
	client   kubernetes.Interface
	recorder record.EventRecorder
	cfg      Config
	prov     *LocalPath

	pvLister    corelisters.PersistentVolumeLister
	pvcLister   corelisters.PersistentVolumeClaimLister
	classLister storagelisters.StorageClassLister
	podLister   corelisters.PodLister
	nodeLister  corelisters.NodeLister
	synced      []cache.InformerSynced

	queue workqueue.TypedRateLimitingInterface[string]
}

// NewController builds the controller on the given informer factory.
func NewController(log *slog.Logger, client kubernetes.Interface, inf informers.SharedInformerFactory, rec record.EventRecorder, cfg Config) *Controller {
	if cfg.BaseDir == "" {
		cfg.BaseDir = DefaultBaseDir
	}
	if cfg.DefaultClass == nil && !cfg.NoDefaultClass {
		cfg.DefaultClass = LocalPathClass()
	}
	if cfg.LocalNode == nil {
		host, _ := os.Hostname()
		host = strings.ToLower(host)
		cfg.LocalNode = func(n *corev1.Node) bool {
			return n != nil && n.Name == host
		}
	}
	pvs := inf.Core().V1().PersistentVolumes()
	pvcs := inf.Core().V1().PersistentVolumeClaims()
	classes := inf.Storage().V1().StorageClasses()
	pods := inf.Core().V1().Pods()
	nodes := inf.Core().V1().Nodes()
	c := &Controller{
		log: log.With("controller", Name), client: client, recorder: rec, cfg: cfg,
		prov:     &LocalPath{BaseDir: cfg.BaseDir},
		pvLister: pvs.Lister(), pvcLister: pvcs.Lister(), classLister: classes.Lister(),
		podLister: pods.Lister(), nodeLister: nodes.Lister(),
		synced: []cache.InformerSynced{pvs.Informer().HasSynced, pvcs.Informer().HasSynced,
			classes.Informer().HasSynced, pods.Informer().HasSynced, nodes.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "volumes"}),
	}
	_, _ = pvs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.volumeChanged,
		UpdateFunc: func(_, obj interface{}) { c.volumeChanged(obj) },
		DeleteFunc: c.volumeChanged,
	})
	_, _ = pvcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.claimChanged,
		UpdateFunc: func(_, obj interface{}) { c.claimChanged(obj) },
		DeleteFunc: c.claimChanged,
	})
	_, _ = classes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { c.requeuePendingClaims() },
		UpdateFunc: func(_, _ interface{}) { c.requeuePendingClaims() },
	})
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.podChanged,
		UpdateFunc: func(old, obj interface{}) {
			o, ok1 := old.(*corev1.Pod)
			n, ok2 := obj.(*corev1.Pod)
			if ok1 && ok2 && o.Spec.NodeName == n.Spec.NodeName {
				return
			}
			c.podChanged(obj)
		},
	})
	return c
}

// Name implements controller.Component.
func (c *Controller) Name() string { return Name }

func claimKey(ns, name string) string { return "pvc/" + ns + "/" + name }
func volumeKey(name string) string    { return "pv/" + name }

func (c *Controller) volumeChanged(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok {
		return
	}
	c.queue.Add(volumeKey(pv.Name))
	if ref := pv.Spec.ClaimRef; ref != nil {
		c.queue.Add(claimKey(ref.Namespace, ref.Name))
	} else {
		// A volume became available: pending claims may fit it now.
		c.requeuePendingClaims()
	}
}

func (c *Controller) claimChanged(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	c.queue.Add(claimKey(pvc.Namespace, pvc.Name))
	if pvc.Spec.VolumeName != "" {
		c.queue.Add(volumeKey(pvc.Spec.VolumeName))
	}
	// A deleted claim releases the volumes bound to it.
	if pvs, err := c.pvLister.List(labels.Everything()); err == nil {
		for _, pv := range pvs {
			if ref := pv.Spec.ClaimRef; ref != nil && ref.Namespace == pvc.Namespace && ref.Name == pvc.Name && pv.Name != pvc.Spec.VolumeName {
				c.queue.Add(volumeKey(pv.Name))
			}
		}
	}
}

func (c *Controller) podChanged(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	for _, name := range podClaims(pod) {
		c.queue.Add(claimKey(pod.Namespace, name))
	}
}

func (c *Controller) requeuePendingClaims() {
	pvcs, err := c.pvcLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, pvc := range pvcs {
		if pvc.Spec.VolumeName == "" && pvc.DeletionTimestamp == nil {
			c.queue.Add(claimKey(pvc.Namespace, pvc.Name))
		}
	}
}

// Run works the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("starting")
	defer c.log.Info("stopped")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil
	}
	c.ensureDefaultClass(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			for c.processNext(ctx) {
			}
		}, time.Second)
	}()
	// A periodic resync catches what events miss (claims deleted while we were down, ...).
	go wait.UntilWithContext(ctx, func(context.Context) {
		pvs, _ := c.pvLister.List(labels.Everything())
		for _, pv := range pvs {
			c.queue.Add(volumeKey(pv.Name))
		}
		c.requeuePendingClaims()
	}, 15*time.Second)
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// ensureDefaultClass creates the configured default StorageClass when it does not exist.
func (c *Controller) ensureDefaultClass(ctx context.Context) {
	sc := c.cfg.DefaultClass
	if sc == nil {
		return
	}
	if _, err := c.classLister.Get(sc.Name); err == nil {
		return
	}
	for ctx.Err() == nil {
		_, err := c.client.StorageV1().StorageClasses().Create(ctx, sc.DeepCopy(), metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return
		}
		c.log.Warn("creating the default storage class", "class", sc.Name, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	var err error
	switch {
	case strings.HasPrefix(key, "pv/"):
		err = c.syncVolume(ctx, strings.TrimPrefix(key, "pv/"))
	case strings.HasPrefix(key, "pvc/"):
		ns, name, _ := strings.Cut(strings.TrimPrefix(key, "pvc/"), "/")
		err = c.syncClaim(ctx, ns, name)
	}
	if err != nil {
		if ctx.Err() == nil {
			c.log.Debug("retrying", "key", key, "err", err)
		}
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// ---- claims ----

func (c *Controller) syncClaim(ctx context.Context, ns, name string) error {
	pvc, err := c.pvcLister.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pvc.DeletionTimestamp != nil {
		return nil
	}
	if pvc.Spec.VolumeName == "" {
		return c.syncUnboundClaim(ctx, pvc)
	}
	return c.syncBoundClaim(ctx, pvc)
}

func (c *Controller) syncUnboundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	// Retroactive default class: a claim created before any default class existed gets it.
	if pvc.Spec.StorageClassName == nil && pvc.Annotations[AnnBetaStorageClass] == "" {
		classes, _ := c.classLister.List(labels.Everything())
		if def := DefaultClass(classes); def != nil {
			cp := pvc.DeepCopy()
			cp.Spec.StorageClassName = &def.Name
			_, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
			switch {
			case err == nil:
				return nil // the update's event syncs the claim again
			case apierrors.IsNotFound(err):
				return nil
			case !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err):
				return err
			}
			// An API server that keeps the class immutable: the claim stays classless.
		}
	}
	className := claimClass(pvc)
	var class *storagev1.StorageClass
	if className != "" {
		sc, err := c.classLister.Get(className)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		class = sc
	}
	pvs, err := c.pvLister.List(labels.Everything())
	if err != nil {
		return err
	}
	// A volume provisioned for (or pre-bound by UID to) this claim binds whatever the mode.
	for _, pv := range pvs {
		if ref := pv.Spec.ClaimRef; ref != nil && ref.UID == pvc.UID && ref.Namespace == pvc.Namespace && ref.Name == pvc.Name {
			return c.bind(ctx, pv, pvc)
		}
	}
	waitForConsumer := class != nil && class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
	node := ""
	if waitForConsumer {
		node = pvc.Annotations[AnnSelectedNode]
		if node == "" {
			node = c.consumerNode(pvc)
		}
		if node == "" {
			return c.setClaimPending(ctx, pvc, corev1.EventTypeNormal, "WaitForFirstConsumer",
				"waiting for first consumer to be created before binding")
		}
	}
	if pv := FindMatch(pvc, pvs); pv != nil && (node == "" || volumeFitsNode(pv, c.node(node))) {
		return c.bind(ctx, pv, pvc)
	}
	switch {
	case className == "":
		return c.setClaimPending(ctx, pvc, corev1.EventTypeNormal, "FailedBinding",
			"no persistent volumes available for this claim and no storage class is set")
	case class == nil:
		return c.setClaimPending(ctx, pvc, corev1.EventTypeWarning, "ProvisioningFailed",
			fmt.Sprintf("storageclass.storage.k8s.io %q not found", className))
	case class.Provisioner == LocalPathProvisioner:
		return c.provision(ctx, pvc, class, node)
	case class.Provisioner == "kubernetes.io/no-provisioner":
		return c.setClaimPending(ctx, pvc, corev1.EventTypeNormal, "FailedBinding",
			"no persistent volumes available for this claim and no storage class is set")
	default:
		if changed, err := c.annotateProvisioner(ctx, pvc, class.Provisioner); err != nil || changed {
			return err // a change comes back as an update event
		}
		return c.setClaimPending(ctx, pvc, corev1.EventTypeNormal, "ExternalProvisioning",
			fmt.Sprintf("Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", class.Provisioner))
	}
}

// consumerNode is the node of a scheduled, live pod that uses the claim, "" when none.
func (c *Controller) consumerNode(pvc *corev1.PersistentVolumeClaim) string {
	pods, err := c.podLister.Pods(pvc.Namespace).List(labels.Everything())
	if err != nil {
		return ""
	}
	for _, pod := range pods {
		if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, name := range podClaims(pod) {
			if name == pvc.Name {
				return pod.Spec.NodeName
			}
		}
	}
	return ""
}

func (c *Controller) node(name string) *corev1.Node {
	n, err := c.nodeLister.Get(name)
	if err != nil {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}
	}
	return n
}

// volumeFitsNode reports whether the volume's node affinity admits the node.
func volumeFitsNode(pv *corev1.PersistentVolume, node *corev1.Node) bool {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return true
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		if termMatches(term, node) {
			return true
		}
	}
	return false
}

func termMatches(term corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for _, e := range term.MatchExpressions {
		v, has := node.Labels[e.Key]
		if !requirementMatches(e.Operator, e.Values, v, has) {
			return false
		}
	}
	for _, e := range term.MatchFields {
		if e.Key != "metadata.name" || !requirementMatches(e.Operator, e.Values, node.Name, true) {
			return false
		}
	}
	return true
}

func requirementMatches(op corev1.NodeSelectorOperator, values []string, v string, has bool) bool {
	in := false
	for _, x := range values {
		if x == v {
			in = true
		}
	}
	switch op {
	case corev1.NodeSelectorOpIn:
		return has && in
	case corev1.NodeSelectorOpNotIn:
		return !has || !in
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	}
	return false
}

// setClaimPending records why the claim waits (an event, once per distinct reason thanks to
// the recorder's aggregation) and keeps its phase Pending.
func (c *Controller) setClaimPending(ctx context.Context, pvc *corev1.PersistentVolumeClaim, typ, reason, msg string) error {
	c.recorder.Event(pvc, typ, reason, msg)
	if pvc.Status.Phase == corev1.ClaimPending {
		return nil
	}
	cp := pvc.DeepCopy()
	cp.Status.Phase = corev1.ClaimPending
	_, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// annotateProvisioner names the claim's provisioner in its annotations, as Kubernetes does;
// changed when it had to update the claim.
func (c *Controller) annotateProvisioner(ctx context.Context, pvc *corev1.PersistentVolumeClaim, provisioner string) (changed bool, err error) {
	if pvc.Annotations[AnnStorageProvisioner] == provisioner && pvc.Annotations[AnnBetaProvisioner] == provisioner {
		return false, nil
	}
	cp := pvc.DeepCopy()
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[AnnStorageProvisioner] = provisioner
	cp.Annotations[AnnBetaProvisioner] = provisioner
	_, err = c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// provision creates the claim's local-path volume, pre-bound to it; binding follows when the
// volume shows up in the informer.
func (c *Controller) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node string) error {
	if changed, err := c.annotateProvisioner(ctx, pvc, class.Provisioner); err != nil || changed {
		return err // the claim's update event brings it back
	}
	if node == "" {
		node = c.anyNode()
		if node == "" {
			if err := c.setClaimPending(ctx, pvc, corev1.EventTypeWarning, "ProvisioningFailed",
				"failed to provision volume with StorageClass \""+class.Name+"\": no ready node to place a local volume on"); err != nil {
				return err
			}
			return errors.New("no ready node for a local volume") // retried with backoff
		}
	}
	name := "pvc-" + string(pvc.UID)
	if _, err := c.pvLister.Get(name); err == nil {
		return nil // provisioned already; its events bind it
	}
	c.recorder.Event(pvc, corev1.EventTypeNormal, "Provisioning",
		fmt.Sprintf("External provisioner is provisioning volume for claim \"%s/%s\"", pvc.Namespace, pvc.Name))
	pv := c.prov.Volume(name, pvc, class, node)
	if c.cfg.LocalNode(c.node(node)) {
		if err := c.prov.MakeDir(name); err != nil {
			c.recorder.Event(pvc, corev1.EventTypeWarning, "ProvisioningFailed",
				fmt.Sprintf("failed to provision volume with StorageClass %q: %v", class.Name, err))
			return err
		}
	}
	_, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		c.recorder.Event(pvc, corev1.EventTypeWarning, "ProvisioningFailed",
			fmt.Sprintf("failed to provision volume with StorageClass %q: %v", class.Name, err))
		return err
	}
	c.recorder.Event(pvc, corev1.EventTypeNormal, "ProvisioningSucceeded",
		fmt.Sprintf("Successfully provisioned volume %s", name))
	return nil
}

// anyNode picks a ready node by name order for Immediate local-path claims.
func (c *Controller) anyNode() string {
	nodes, _ := c.nodeLister.List(labels.Everything())
	best := ""
	for _, n := range nodes {
		if n.Spec.Unschedulable || !nodeReady(n) {
			continue
		}
		if best == "" || n.Name < best {
			best = n.Name
		}
	}
	return best
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// bind binds volume and claim: the volume's claimRef first (so that no other claim takes
// it), then the claim's volumeName, then both statuses.
func (c *Controller) bind(ctx context.Context, pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) error {
	pv, err := c.bindVolume(ctx, pv, pvc)
	if err != nil {
		return err
	}
	if pv == nil {
		return nil
	}
	return c.bindClaim(ctx, pv, pvc)
}

// bindVolume points the volume at the claim and marks it Bound. nil, nil when the volume
// is gone.
func (c *Controller) bindVolume(ctx context.Context, pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) (*corev1.PersistentVolume, error) {
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.UID != pvc.UID || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name {
		cp := pv.DeepCopy()
		cp.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
			Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion}
		if ref == nil {
			if cp.Annotations == nil {
				cp.Annotations = map[string]string{}
			}
			cp.Annotations[AnnBoundByController] = "yes"
		}
		updated, err := c.client.CoreV1().PersistentVolumes().Update(ctx, cp, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		pv = updated
	}
	if pv.Status.Phase != corev1.VolumeBound {
		cp := pv.DeepCopy()
		cp.Status.Phase = corev1.VolumeBound
		cp.Status.Message, cp.Status.Reason = "", ""
		updated, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		pv = updated
	}
	return pv, nil
}

// bindClaim sets the claim's volumeName and annotations, then its status Bound with the
// volume's capacity and access modes.
func (c *Controller) bindClaim(ctx context.Context, pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Spec.VolumeName != pv.Name || pvc.Annotations[AnnBindCompleted] != "yes" {
		cp := pvc.DeepCopy()
		if cp.Annotations == nil {
			cp.Annotations = map[string]string{}
		}
		if cp.Spec.VolumeName == "" {
			cp.Annotations[AnnBoundByController] = "yes"
		}
		cp.Spec.VolumeName = pv.Name
		cp.Annotations[AnnBindCompleted] = "yes"
		updated, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		pvc = updated
	}
	capacity := pv.Spec.Capacity[corev1.ResourceStorage]
	cur := pvc.Status.Capacity[corev1.ResourceStorage]
	if pvc.Status.Phase == corev1.ClaimBound && cur.Cmp(capacity) == 0 && len(pvc.Status.AccessModes) == len(pv.Spec.AccessModes) {
		return nil
	}
	cp := pvc.DeepCopy()
	cp.Status.Phase = corev1.ClaimBound
	cp.Status.AccessModes = append([]corev1.PersistentVolumeAccessMode(nil), pv.Spec.AccessModes...)
	cp.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: capacity}
	_, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// syncBoundClaim handles a claim naming a volume: binds the volume to it if the volume is
// free (pre-bound claim), finishes a half-done binding, or marks the claim Lost.
func (c *Controller) syncBoundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	pv, err := c.pvLister.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		// The informer may lag behind a just-created volume: ask the server.
		pv, err = c.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		if pvc.Status.Phase == corev1.ClaimBound {
			c.recorder.Event(pvc, corev1.EventTypeWarning, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
			return c.setClaimPhase(ctx, pvc, corev1.ClaimLost)
		}
		return c.setClaimPending(ctx, pvc, corev1.EventTypeNormal, "FailedBinding",
			fmt.Sprintf("volume %q not found", pvc.Spec.VolumeName))
	}
	if err != nil {
		return err
	}
	ref := pv.Spec.ClaimRef
	switch {
	case ref == nil:
		if !matchesForPrebound(pv, pvc) {
			return c.setClaimPending(ctx, pvc, corev1.EventTypeWarning, "VolumeMismatch",
				"Cannot bind to requested volume \""+pv.Name+"\": requested PV is too small or its class or access modes do not match")
		}
		return c.bind(ctx, pv, pvc)
	case ref.Namespace == pvc.Namespace && ref.Name == pvc.Name && (ref.UID == "" || ref.UID == pvc.UID):
		return c.bind(ctx, pv, pvc)
	default:
		if pvc.Status.Phase == corev1.ClaimBound {
			c.recorder.Event(pvc, corev1.EventTypeWarning, "ClaimMisbound", "Two claims are bound to the same volume, this one is bound incorrectly")
			return c.setClaimPhase(ctx, pvc, corev1.ClaimLost)
		}
		return c.setClaimPending(ctx, pvc, corev1.EventTypeNormal, "FailedBinding",
			fmt.Sprintf("volume %q already bound to a different claim.", pv.Name))
	}
}

// matchesForPrebound: a claim naming a volume skips the phase check but still needs a fit.
func matchesForPrebound(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	if pv.DeletionTimestamp != nil {
		return false
	}
	capacity := pv.Spec.Capacity[corev1.ResourceStorage]
	req := claimRequest(pvc)
	return volumeClass(pv) == claimClass(pvc) && hasAccessModes(pv, pvc.Spec.AccessModes) && capacity.Cmp(req) >= 0
}

func (c *Controller) setClaimPhase(ctx context.Context, pvc *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase) error {
	if pvc.Status.Phase == phase {
		return nil
	}
	cp := pvc.DeepCopy()
	cp.Status.Phase = phase
	_, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// ---- volumes ----

func (c *Controller) syncVolume(ctx context.Context, name string) error {
	pv, err := c.pvLister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ref := pv.Spec.ClaimRef
	if ref == nil {
		if pv.Status.Phase == corev1.VolumeAvailable || pv.Status.Phase == corev1.VolumeFailed {
			return nil
		}
		return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "", "")
	}
	pvc, err := c.pvcLister.PersistentVolumeClaims(ref.Namespace).Get(ref.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if pvc == nil || (ref.UID != "" && pvc.UID != ref.UID) {
		if ref.UID == "" {
			// Pre-bound to a claim that does not exist yet: it stays Available for it.
			if pv.Status.Phase == corev1.VolumeAvailable {
				return nil
			}
			return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "", "")
		}
		// Make sure with the server: the informer may not have seen a new claim yet.
		live, err := c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if err == nil && live.UID == ref.UID {
			c.queue.AddAfter(volumeKey(pv.Name), time.Second)
			return nil
		}
		return c.release(ctx, pv)
	}
	switch {
	case pvc.Spec.VolumeName == pv.Name:
		if pv.Status.Phase != corev1.VolumeBound {
			return c.setVolumePhase(ctx, pv, corev1.VolumeBound, "", "")
		}
	case pvc.Spec.VolumeName == "":
		// Binding in progress, or a volume pre-bound to a claim: the claim's sync binds.
		c.queue.Add(claimKey(pvc.Namespace, pvc.Name))
		if pv.Status.Phase == "" || pv.Status.Phase == corev1.VolumePending {
			return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "", "")
		}
	default:
		// The claim went to another volume. Undo our own binding; keep an admin's.
		if pv.Annotations[AnnBoundByController] == "yes" {
			cp := pv.DeepCopy()
			cp.Spec.ClaimRef = nil
			delete(cp.Annotations, AnnBoundByController)
			if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// release marks a volume whose claim is gone Released and applies its reclaim policy.
func (c *Controller) release(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed {
		if err := c.setVolumePhase(ctx, pv, corev1.VolumeReleased, "", ""); err != nil {
			return err
		}
		pv = pv.DeepCopy()
		pv.Status.Phase = corev1.VolumeReleased
	}
	if pv.Status.Phase != corev1.VolumeReleased {
		return nil
	}
	switch pv.Spec.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimDelete:
		if pv.Annotations[AnnProvisionedBy] != LocalPathProvisioner {
			msg := "error getting deleter volume plugin for volume \"" + pv.Name + "\": no deletable volume plugin matched"
			c.recorder.Event(pv, corev1.EventTypeWarning, "VolumeFailedDelete", msg)
			return c.setVolumePhase(ctx, pv, corev1.VolumeFailed, "", msg)
		}
		if node := pv.Annotations[AnnLocalPathNode]; node != "" && c.cfg.LocalNode(c.node(node)) {
			if err := c.prov.RemoveDir(pv); err != nil {
				c.recorder.Event(pv, corev1.EventTypeWarning, "VolumeFailedDelete", err.Error())
				return err
			}
		}
		err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &pv.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
		return nil
	case corev1.PersistentVolumeReclaimRecycle:
		msg := "Recycle is not supported: use Retain or Delete"
		c.recorder.Event(pv, corev1.EventTypeWarning, "VolumeFailedRecycle", msg)
		return c.setVolumePhase(ctx, pv, corev1.VolumeFailed, "", msg)
	}
	return nil // Retain: the volume stays Released until an administrator acts
}

func (c *Controller) setVolumePhase(ctx context.Context, pv *corev1.PersistentVolume, phase corev1.PersistentVolumePhase, reason, msg string) error {
	if pv.Status.Phase == phase && pv.Status.Message == msg {
		return nil
	}
	cp := pv.DeepCopy()
	cp.Status.Phase = phase
	cp.Status.Reason = reason
	cp.Status.Message = msg
	_, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
