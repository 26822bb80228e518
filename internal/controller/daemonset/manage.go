package daemonset

import (
	"context"
	"sort"
	"strconv"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// plan is what one sync does: pods to delete, nodes to create a pod on.
type plan struct {
	create []string
	delete []*corev1.Pod
}

// budgets resolves the rolling update's maxSurge and maxUnavailable against the number of
// nodes that should run the daemon (percentages round up); both zero means one unavailable.
func budgets(ds *appsv1.DaemonSet, desired int) (surge, unavailable int) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ru != nil {
		if ru.MaxSurge != nil {
			surge, _ = intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true)
		}
		if ru.MaxUnavailable != nil {
			unavailable, _ = intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, true)
		}
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

func rolling(ds *appsv1.DaemonSet) bool {
	return ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType
}

// planNodes decides creations and deletions that keep one daemon pod per eligible node.
// mayReplaceFailed says whether a node's failed pods may be deleted now (backoff).
func planNodes(ds *appsv1.DaemonSet, hash string, states map[string]*nodeState, orphaned []*corev1.Pod, mayReplaceFailed func(node string) bool) plan {
	var p plan
	gen, hasGen := templateGeneration(ds)
	surging := false
	if rolling(ds) {
		surge, _ := budgets(ds, len(states))
		surging = surge > 0
	}
	for name, s := range states {
		if len(s.failed) > 0 && (!s.place.shouldContinue || mayReplaceFailed(name)) {
			p.delete = append(p.delete, s.failed...)
		}
		switch {
		case !s.place.shouldContinue:
			p.delete = append(p.delete, s.pods...)
		case s.place.shouldRun && len(s.pods) == 0:
			// Wait for a terminating or failed pod to go before replacing it.
			if !s.finishing && len(s.failed) == 0 {
				p.create = append(p.create, name)
			}
		case len(s.pods) > 1:
			// Keep the oldest pod; while surging, the oldest updated and the oldest old one.
			var keptNew, keptOld bool
			for i, pod := range s.pods {
				switch {
				case i == 0 && !surging:
					keptOld = true
				case surging && isUpdated(pod, hash, gen, hasGen) && !keptNew:
					keptNew = true
				case surging && !isUpdated(pod, hash, gen, hasGen) && !keptOld:
					keptOld = true
				default:
					p.delete = append(p.delete, pod)
				}
			}
		}
	}
	p.delete = append(p.delete, orphaned...)
	sort.Strings(p.create)
	return p
}

// planRollingUpdate replaces old pods: with maxSurge 0 it deletes old pods while at most
// maxUnavailable daemon pods are unavailable (unavailable old pods are replaced at once); with
// maxSurge it starts a new pod beside an old one on up to maxSurge nodes and deletes the old
// pod once the new one is available.
func planRollingUpdate(ds *appsv1.DaemonSet, hash string, states map[string]*nodeState, available func(*corev1.Pod) bool) plan {
	var p plan
	gen, hasGen := templateGeneration(ds)
	desired := 0
	for _, s := range states {
		if s.place.shouldRun {
			desired++
		}
	}
	maxSurge, maxUnavailable := budgets(ds, desired)
	names := make([]string, 0, len(states))
	for name := range states {
		names = append(names, name)
	}
	sort.Strings(names)
	split := func(s *nodeState) (newPod, oldPod *corev1.Pod) {
		for _, pod := range s.pods {
			if isUpdated(pod, hash, gen, hasGen) {
				if newPod == nil {
					newPod = pod
				}
			} else if oldPod == nil {
				oldPod = pod
			}
		}
		return newPod, oldPod
	}

	if maxSurge == 0 {
		unavailable := 0
		var replace, candidates []*corev1.Pod
		for _, name := range names {
			s := states[name]
			if !s.place.shouldRun && len(s.pods) == 0 {
				continue
			}
			// Nodes that keep an old pod without being eligible any more (an untolerated
			// NoSchedule taint) are rolled too: their old pod goes and is not replaced.
			newPod, oldPod := split(s)
			switch {
			case oldPod == nil && newPod == nil, oldPod != nil && newPod != nil:
				unavailable++
			case newPod != nil:
				if !available(newPod) {
					unavailable++
				}
			case !available(oldPod):
				replace = append(replace, oldPod)
			default:
				candidates = append(candidates, oldPod)
			}
		}
		room := min(max(maxUnavailable-unavailable, 0), len(candidates))
		p.delete = append(replace, candidates[:room]...)
		return p
	}

	surged := 0
	for _, name := range names {
		s := states[name]
		if newPod, oldPod := split(s); s.place.shouldRun && newPod != nil && oldPod != nil {
			surged++
		}
	}
	for _, name := range names {
		s := states[name]
		newPod, oldPod := split(s)
		switch {
		case oldPod == nil:
		case !s.place.shouldRun:
			p.delete = append(p.delete, oldPod) // no new pod may go there: just remove the old one
		case newPod == nil:
			if !available(oldPod) {
				p.create = append(p.create, name) // nothing to keep serving: replace now
			} else if surged < maxSurge {
				surged++
				p.create = append(p.create, name)
			}
		case available(newPod):
			p.delete = append(p.delete, oldPod)
		}
	}
	return p
}

// manage carries out one round: deletions first (creations wait for them to be observed),
// then creations; the rolling update is planned only when nothing else is to be done.
func (c *Controller) manage(ctx context.Context, key string, ds *appsv1.DaemonSet, hash string, states map[string]*nodeState, orphaned []*corev1.Pod) error {
	p := planNodes(ds, hash, states, orphaned, func(node string) bool { return c.mayReplaceFailed(key, ds, states[node]) })
	if len(p.create) == 0 && len(p.delete) == 0 && rolling(ds) {
		now := c.now()
		p = planRollingUpdate(ds, hash, states, func(pod *corev1.Pod) bool {
			return controllerutil.IsPodAvailable(pod, ds.Spec.MinReadySeconds, now)
		})
	}
	if len(p.delete) > 0 {
		return c.deletePods(ctx, key, ds, p.delete)
	}
	if len(p.create) > 0 {
		return c.createPods(ctx, key, ds, hash, p.create)
	}
	return nil
}

// mayReplaceFailed applies an exponential backoff (1s doubling to 15m) per DaemonSet and node
// to deleting failed daemon pods, so that a pod that keeps failing is not replaced in a hot
// loop. It records FailedDaemonPod warnings as Kubernetes does.
func (c *Controller) mayReplaceFailed(key string, ds *appsv1.DaemonSet, s *nodeState) bool {
	id := string(ds.UID) + "/" + s.node.Name
	now := c.now()
	if c.failedBackoff.IsInBackOffSinceUpdate(id, now) {
		c.queue.AddAfter(key, c.failedBackoff.Get(id))
		return false
	}
	c.failedBackoff.Next(id, now)
	for _, p := range s.failed {
		c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try to kill it",
			p.Namespace, p.Name, s.node.Name)
	}
	return true
}

func (c *Controller) deletePods(ctx context.Context, key string, ds *appsv1.DaemonSet, victims []*corev1.Pod) error {
	keys := make([]string, len(victims))
	for i, p := range victims {
		keys[i] = p.Namespace + "/" + p.Name
	}
	c.exp.ExpectDeletions(key, keys)
	errCh := make(chan error, len(victims))
	var wg sync.WaitGroup
	for i, p := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.podCtl.Delete(ctx, p.Namespace, p.Name, ds); err != nil {
				c.exp.DeletionObserved(key, keys[i])
				if !apierrors.IsNotFound(err) {
					errCh <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errCh)
	if err, ok := <-errCh; ok {
		return err
	}
	return nil
}

// podTemplate is the template of the daemon pod for node.
func podTemplate(ds *appsv1.DaemonSet, hash, node string) *corev1.PodTemplateSpec {
	tmpl := ds.Spec.Template.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] = hash
	if gen, ok := templateGeneration(ds); ok {
		tmpl.Labels[templateGenerationLabel] = strconv.FormatInt(gen, 10)
	}
	addTolerations(&tmpl.Spec)
	pinToNode(&tmpl.Spec, node)
	return tmpl
}

func (c *Controller) createPods(ctx context.Context, key string, ds *appsv1.DaemonSet, hash string, nodes []string) error {
	if len(nodes) > BurstReplicas {
		nodes = nodes[:BurstReplicas]
	}
	c.exp.ExpectCreations(key, len(nodes))
	ref := controllerutil.ControllerRef(ds, gvk)
	var mu sync.Mutex
	next := 0
	created, err := controllerutil.SlowStartBatch(len(nodes), 1, func() error {
		mu.Lock()
		node := nodes[next]
		next++
		mu.Unlock()
		_, err := c.podCtl.Create(ctx, ds.Namespace, podTemplate(ds, hash, node), ds, ds.Name, ref)
		if err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return err
	})
	for i := 0; i < len(nodes)-created; i++ {
		c.exp.CreationObserved(key)
	}
	return err
}
