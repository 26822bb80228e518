package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// Sync pacing.
const (
	resyncPeriod         = 10 * time.Second // an active pod is looked at least this often
	terminalResyncPeriod = time.Minute
	retryPeriod          = 2 * time.Second
)

// podWorkers holds one worker goroutine per pod UID.
type podWorkers struct {
	a  *Agent
	mu sync.Mutex
	m  map[types.UID]*podWorker
	wg sync.WaitGroup
}

func newPodWorkers(a *Agent) *podWorkers {
	return &podWorkers{a: a, m: map[types.UID]*podWorker{}}
}

// ensure starts the worker of a pod unless it runs, and wakes it.
func (p *podWorkers) ensure(uid types.UID, ns, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.m[uid]; w != nil {
		w.poke()
		return
	}
	w := &podWorker{a: p.a, uid: uid, ns: ns, name: name, wake: make(chan struct{}, 1),
		waiting: map[string]waitingReason{},
		log:     p.a.log.With("pod", ns+"/"+name, "uid", string(uid))}
	p.m[uid] = w
	w.poke()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		w.loop(p.a.runCtx, p)
	}()
}

// poke wakes the worker of uid if there is one.
func (p *podWorkers) poke(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.m[uid]; w != nil {
		w.poke()
	}
}

func (p *podWorkers) has(uid types.UID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[uid] != nil
}

// finish removes w unless it was woken meanwhile; it tells whether w may exit.
func (p *podWorkers) finish(w *podWorker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(w.wake) > 0 {
		return false
	}
	delete(p.m, w.uid)
	return true
}

// wait waits for the workers to return (after the run context ended).
func (p *podWorkers) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// addPodHandlers wires the pod informer to the workers.
func (a *Agent) addPodHandlers() {
	_, _ = a.podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				a.workers.ensure(p.UID, p.Namespace, p.Name)
			}
		},
		UpdateFunc: func(_, obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				a.workers.ensure(p.UID, p.Namespace, p.Name)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				a.workers.poke(p.UID)
			}
		},
	})
}

// podWorker syncs one pod: its goroutine is the only one that acts on the pod's
// containers, so syncs never overlap.
type podWorker struct {
	a        *Agent
	uid      types.UID
	ns, name string
	log      *slog.Logger
	wake     chan struct{}

	// Owned by the worker goroutine.
	waiting       map[string]waitingReason
	lastStatus    *corev1.PodStatus
	lastRV        uint64
	seeded        bool
	failReason    string
	failMessage   string
	mountFailures int
	runningLogged bool
}

func (w *podWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) loop(ctx context.Context, p *podWorkers) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		next, done := w.sync(ctx)
		if done && p.finish(w) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if next <= 0 {
			next = resyncPeriod
		}
		timer.Reset(next)
	}
}

// sync does one round for the pod and returns when to come back; done means the pod is
// gone and everything of it was removed.
func (w *podWorker) sync(ctx context.Context) (time.Duration, bool) {
	a := w.a
	pod := a.podOf(w.ns, w.name, w.uid)
	st, err := a.states.podState(ctx, w.uid)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("reading runtime state", "err", err)
		}
		return retryPeriod, false
	}
	switch {
	case pod == nil:
		if err := w.cleanup(ctx, st); err != nil {
			w.log.Warn("cleaning up a removed pod", "err", err)
			return retryPeriod, false
		}
		return 0, true
	case pod.DeletionTimestamp != nil:
		return w.terminate(ctx, pod, st)
	}
	return w.syncPod(ctx, pod, st), false
}

// syncPod brings a live pod's containers in line with its spec, then writes its status.
func (w *podWorker) syncPod(ctx context.Context, pod *corev1.Pod, st *podState) time.Duration {
	a := w.a
	now := time.Now()
	next := resyncPeriod
	if !w.seeded {
		w.seedProbes(pod, st)
	}
	terminal := isTerminalPhase(pod.Status.Phase)
	if terminal {
		next = terminalResyncPeriod
	}

	if ads := pod.Spec.ActiveDeadlineSeconds; ads != nil && !terminal && w.failReason == "" && pod.Status.StartTime != nil {
		left := pod.Status.StartTime.Add(time.Duration(*ads) * time.Second).Sub(now)
		if left <= 0 {
			w.failReason, w.failMessage = "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
			a.podEvent(pod, corev1.EventTypeNormal, "DeadlineExceeded", "%s", w.failMessage)
		} else if left < next {
			next = left
		}
	}
	if w.failReason != "" {
		w.killPod(ctx, pod, st, podGracePeriod(pod))
		st = w.reread(ctx, st)
		w.writeStatus(ctx, pod, st, false)
		return terminalResyncPeriod
	}

	if !terminal {
		if due, at := a.volumes.due(pod.UID, now); due {
			if err := a.volumes.setup(ctx, pod); err != nil {
				w.mountFailures++
				a.podEvent(pod, corev1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed: %v", err)
				w.log.Info("volumes not ready", "err", err)
				if sb := st.sandbox(); sb == nil || !sb.Ready {
					// Nothing starts before its volumes are there.
					w.writeStatus(ctx, pod, st, false)
					return mountRetry(w.mountFailures)
				}
				next = min(next, mountRetry(w.mountFailures))
			} else {
				w.mountFailures = 0
				if _, at2 := a.volumes.due(pod.UID, time.Now()); at2.Sub(now) < next {
					next = max(at2.Sub(now), time.Second)
				}
			}
		} else if at.Sub(now) < next {
			next = max(at.Sub(now), time.Second)
		}
	}

	actions := computePodActions(pod, st, a.probes.Unhealthy)
	if wait, acted := w.execute(ctx, pod, st, actions); acted {
		st = w.reread(ctx, st)
		if wait > 0 && wait < next {
			next = wait
		}
	}
	if actions.Done {
		a.probes.removePod(pod.UID)
	} else {
		var ips []string
		if sb := st.sandbox(); sb != nil {
			ips = sb.IPs
		}
		a.probes.syncPod(a.runCtx, pod, st, ips)
	}
	w.writeStatus(ctx, pod, st, false)
	return next
}

func mountRetry(failures int) time.Duration {
	d := retryPeriod << min(failures, 5)
	return min(d, time.Minute)
}

func (w *podWorker) reread(ctx context.Context, old *podState) *podState {
	st, err := w.a.states.podState(ctx, w.uid)
	if err != nil {
		return old
	}
	return st
}

// seedProbes carries readiness and startup over from the API's status for containers
// that are still the same, so that restarting the agent does not flap pods' readiness.
func (w *podWorker) seedProbes(pod *corev1.Pod, st *podState) {
	w.seeded = true
	statuses := append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		ci := st.latest(cs.Name)
		if ci == nil || !ci.running() || cs.ContainerID != containerID(w.a.runtimeName, ci.ID) {
			continue
		}
		w.a.probes.seed(ci.ID, cs.Ready, cs.Started != nil && *cs.Started)
	}
}

// execute carries out a plan. It reports whether it did anything (the state must be read
// again) and how soon to come back (a back-off ending).
func (w *podWorker) execute(ctx context.Context, pod *corev1.Pod, st *podState, act podActions) (time.Duration, bool) {
	a := w.a
	acted := false
	if act.KillPod {
		acted = true
		if !act.Done {
			a.podEvent(pod, corev1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
		}
		w.killPod(ctx, pod, st, podGracePeriod(pod))
		if !act.CreateSandbox {
			return 0, true
		}
	}
	for _, k := range act.Kill {
		acted = true
		ci := findByID(st, k.ID)
		if ci == nil {
			continue
		}
		if err := a.killContainer(ctx, pod, ci, podGracePeriod(pod), k.Reason); err != nil {
			w.log.Warn("killing container", "container", k.Name, "err", err)
		}
	}
	for _, id := range act.Remove {
		acted = true
		if err := a.removeContainer(ctx, id); err != nil {
			w.log.Warn("removing container", "id", id, "err", err)
		}
	}

	var sb *sandboxRef
	if act.CreateSandbox {
		acted = true
		t := time.Now()
		id, err := a.createSandbox(ctx, pod, act.Attempt)
		if err != nil {
			msg := grpcMessage(err)
			a.podEvent(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %s", msg)
			w.log.Warn("creating sandbox", "err", msg)
			return retryPeriod, true
		}
		ips, err := a.states.sandboxIPs(ctx, id)
		if err != nil {
			w.log.Warn("sandbox status", "err", err)
		}
		w.log.Debug("sandbox created", "id", id, "ips", ips, "elapsed", time.Since(t).Round(time.Millisecond))
		sb = &sandboxRef{ID: id, Config: a.sandboxConfig(pod, act.Attempt), IPs: ips}
	} else if act.SandboxID != "" {
		cur := st.sandbox()
		sb = &sandboxRef{ID: cur.ID, Config: a.sandboxConfig(pod, cur.Attempt), IPs: cur.IPs}
	}
	if sb == nil {
		return 0, acted
	}

	var wait time.Duration
	note := func(d time.Duration) {
		if d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	for _, i := range act.InitStart {
		acted = true
		c := &pod.Spec.InitContainers[i]
		kind := kindInit
		if isSidecar(c) {
			kind = kindSidecar
		}
		note(w.startContainer(ctx, pod, c, kind, st, sb))
	}
	for _, i := range act.Start {
		acted = true
		note(w.startContainer(ctx, pod, &pod.Spec.Containers[i], kindRegular, st, sb))
	}
	return wait, acted
}

func findByID(st *podState, id string) *containerInfo {
	for _, c := range st.Containers {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// startContainer starts one container unless it is backing off; it returns how long
// until it may be tried again (0 when it started).
func (w *podWorker) startContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, kind string, st *podState, sb *sandboxRef) time.Duration {
	a := w.a
	prev := st.latest(c.Name)
	var restartCount int32
	if prev != nil {
		restartCount = prev.RestartCount + 1
	}
	key := string(pod.UID) + "/" + c.Name
	if prev != nil && prev.exited() {
		if in, left := a.crashBackoff.InBackoff(key, prev.FinishedAt); in {
			delay := a.crashBackoff.Delay(key)
			w.waiting[c.Name] = waitingReason{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, pod.Name, pod.Namespace, pod.UID)}
			a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
			return left
		}
		a.crashBackoff.Next(key)
	}
	t := time.Now()
	wr, err := a.runContainer(ctx, pod, c, kind, restartCount, sb)
	if err != nil {
		if wr != nil {
			w.waiting[c.Name] = *wr
		}
		w.log.Info("container did not start", "container", c.Name, "err", err)
		if wr != nil && wr.Reason == "ImagePullBackOff" {
			if left, ok := a.pullBackoff.inBackoffSinceLast("image/" + c.Image); ok {
				return left
			}
		}
		return retryPeriod * 2
	}
	delete(w.waiting, c.Name)
	w.log.Debug("container started", "container", c.Name, "restartCount", restartCount, "elapsed", time.Since(t).Round(time.Millisecond))
	return 0
}

// killPod stops every running container of the pod (in parallel, each with its preStop
// hook and the grace period) and then its ready sandboxes.
func (w *podWorker) killPod(ctx context.Context, pod *corev1.Pod, st *podState, grace int64) {
	a := w.a
	var wg sync.WaitGroup
	for _, ci := range st.running() {
		wg.Add(1)
		go func(ci *containerInfo) {
			defer wg.Done()
			msg := ""
			if pod == nil {
				msg = "Stopping container " + ci.Name
			}
			if err := a.killContainer(ctx, pod, ci, grace, msg); err != nil {
				w.log.Warn("killing container", "container", ci.Name, "err", err)
			}
		}(ci)
	}
	wg.Wait()
	for _, sb := range st.Sandboxes {
		if sb.Ready {
			if err := a.stopSandbox(ctx, sb.ID); err != nil {
				w.log.Warn("stopping sandbox", "sandbox", sb.ID, "err", err)
			}
		}
	}
}

// terminate ends a pod being deleted: containers get their grace period, the final
// status is written, everything is removed, and then the pod object is deleted for good.
func (w *podWorker) terminate(ctx context.Context, pod *corev1.Pod, st *podState) (time.Duration, bool) {
	a := w.a
	// What is left of the grace period: the API set deletionTimestamp to the deletion
	// time plus the grace period (rounded down to the second); an agent that noticed late
	// or restarted meanwhile does not start it over.
	grace := podGracePeriod(pod)
	if dt := pod.DeletionTimestamp; dt != nil {
		if left := int64(time.Until(dt.Time)/time.Second) + 1; left < grace {
			grace = max(left, minGracePeriod)
		}
	}
	if len(st.running()) > 0 {
		w.log.Info("terminating pod", "gracePeriod", grace)
	}
	w.killPod(ctx, pod, st, grace)
	a.probes.removePod(pod.UID)
	st = w.reread(ctx, st)
	w.writeStatus(ctx, pod, st, true)
	if err := w.release(ctx, st); err != nil {
		w.log.Warn("releasing pod resources", "err", err)
		return retryPeriod, false
	}
	uid := pod.UID
	zero := int64(0)
	err := a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.log.Warn("deleting pod", "err", err)
		return retryPeriod, false
	}
	w.log.Info("pod terminated and deleted")
	return 0, true
}

// cleanup removes what is left of a pod the API no longer has.
func (w *podWorker) cleanup(ctx context.Context, st *podState) error {
	if !st.empty() {
		w.log.Info("removing containers of a pod that is gone")
	}
	// The pod object is gone: no grace period left to honour, as for a force deletion.
	w.killPod(ctx, nil, st, minGracePeriod)
	w.a.probes.removePod(w.uid)
	return w.release(ctx, st)
}

// release removes the pod's sandboxes (and containers), volumes, directory and cgroup.
func (w *podWorker) release(ctx context.Context, st *podState) error {
	a := w.a
	for _, sb := range st.Sandboxes {
		if err := a.stopSandbox(ctx, sb.ID); err != nil {
			return fmt.Errorf("stop sandbox: %w", err)
		}
		if err := a.removeSandbox(ctx, sb.ID); err != nil {
			return fmt.Errorf("remove sandbox: %w", err)
		}
	}
	for _, c := range st.Containers {
		if err := a.removeContainer(ctx, c.ID); err != nil {
			return fmt.Errorf("remove container: %w", err)
		}
	}
	if err := a.volumes.teardown(w.uid); err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	removePodCgroups(w.uid)
	a.crashBackoff.ForgetPrefix(string(w.uid) + "/")
	return nil
}

// writeStatus computes the pod's status and writes it when it changed.
func (w *podWorker) writeStatus(ctx context.Context, pod *corev1.Pod, st *podState, terminating bool) {
	a := w.a
	base := pod
	if w.lastStatus != nil && w.lastRV > parseRV(pod.ResourceVersion) {
		// The informer has not caught up with our last write yet.
		base = pod.DeepCopy()
		base.Status = *w.lastStatus.DeepCopy()
		base.ResourceVersion = strconv.FormatUint(w.lastRV, 10)
	}
	for attempt := 0; attempt < 2; attempt++ {
		status := generatePodStatus(statusInput{
			Pod: base, State: st, HostIPs: a.nodeIPs, RuntimeName: a.runtimeName, Waiting: w.waiting,
			Ready: a.probes.Ready, Started: a.probes.Started, Terminating: terminating,
			Reason: w.failReason, Message: w.failMessage, Now: time.Now(),
		})
		if equality.Semantic.DeepEqual(base.Status, status) {
			return
		}
		upd := base.DeepCopy()
		upd.Status = status
		res, err := a.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
		switch {
		case err == nil:
			w.lastStatus = res.Status.DeepCopy()
			w.lastRV = parseRV(res.ResourceVersion)
			w.noteStatus(res)
			return
		case apierrors.IsConflict(err):
			fresh, gerr := a.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if gerr != nil || fresh.UID != pod.UID {
				return
			}
			base = fresh
		case apierrors.IsNotFound(err):
			return
		default:
			if ctx.Err() == nil {
				w.log.Warn("updating pod status", "err", err)
			}
			return
		}
	}
}

// noteStatus logs phase changes, with the time from creation to Running.
func (w *podWorker) noteStatus(pod *corev1.Pod) {
	if pod.Status.Phase == corev1.PodRunning && !w.runningLogged {
		w.runningLogged = true
		w.log.Info("pod running", "sinceCreation", time.Since(pod.CreationTimestamp.Time).Round(time.Millisecond), "podIP", pod.Status.PodIP)
	}
}

func parseRV(rv string) uint64 {
	n, _ := strconv.ParseUint(rv, 10, 64)
	return n
}
