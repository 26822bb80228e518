package controlplane

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

// ComponentFactory builds one component from the shared context.
type ComponentFactory func(ctx *controller.Context) (controller.Component, error)

// startComponents builds the leader-elected components (controllers, scheduler) and the
// always-on ones (simulated nodes), starts the shared informers, and runs them until ctx ends.
func (cp *ControlPlane) startComponents(ctx context.Context, elected, always []ComponentFactory) error {
	if len(elected) == 0 && len(always) == 0 {
		return nil
	}
	// Components stop before the HTTP server drains, so their own watches do not hold the
	// shutdown up.
	ctx, cancel := context.WithCancel(ctx)
	cp.stopComponents = cancel
	rc := cp.LoopbackConfig()
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	md, err := metadata.NewForConfig(rc)
	if err != nil {
		return err
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(newAsyncSink(ctx, &typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")}, cp.log))
	cctx := &controller.Context{
		Config: rc, CAData: cp.PKI.CAPEM, Client: cs, Metadata: md,
		Informers:         informers.NewSharedInformerFactory(cs, 0),
		MetadataInformers: metadatainformer.NewSharedInformerFactory(md, 0),
		Recorder: func(component string) record.EventRecorder {
			return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
		},
		Logger:  cp.log,
		SignCSR: cp.PKI.SignCSR,
		Options: cp.cfg.ControllerOptions,
	}
	build := func(fs []ComponentFactory) ([]controller.Component, error) {
		var out []controller.Component
		for _, f := range fs {
			c, err := f(cctx)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	electedC, err := build(elected)
	if err != nil {
		return err
	}
	alwaysC, err := build(always)
	if err != nil {
		return err
	}
	run := func(ctx context.Context, cs []controller.Component) {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func(c controller.Component) {
				defer wg.Done()
				if err := c.Run(ctx); err != nil && ctx.Err() == nil {
					cp.log.Error("component failed", "component", c.Name(), "err", err)
				}
			}(c)
		}
		wg.Wait()
	}
	start := func(ctx context.Context) {
		cctx.Informers.Start(ctx.Done())
		cctx.MetadataInformers.Start(ctx.Done())
	}
	go func() {
		start(ctx)
		run(ctx, alwaysC)
	}()
	if len(electedC) == 0 {
		return nil
	}
	id, _ := os.Hostname()
	id = fmt.Sprintf("%s_%d", id, time.Now().UnixNano())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1ObjectMeta("kube-system", "skiff-controller-manager"),
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	go leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock: lock, ReleaseOnCancel: true,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				cp.log.Info("leading: starting controllers and scheduler", "identity", id)
				start(ctx)
				run(ctx, electedC)
			},
			OnStoppedLeading: func() { cp.log.Info("stopped leading", "identity", id) },
		},
	})
	return nil
}
