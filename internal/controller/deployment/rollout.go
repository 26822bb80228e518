package deployment

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// splitReplicaSets returns the new ReplicaSet (template equal to the deployment's) and the
// others.
func splitReplicaSets(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet) {
	newRS := FindNewReplicaSet(d, rsList)
	var old []*appsv1.ReplicaSet
	for _, rs := range rsList {
		if newRS != nil && rs.UID == newRS.UID {
			continue
		}
		old = append(old, rs)
	}
	return newRS, old
}

// getAllReplicaSetsAndSyncRevision returns the new and old ReplicaSets, bringing the new
// one's revision (and the deployment's) up to date, and creating it when create is set and
// there is none.
func (c *Controller) getAllReplicaSetsAndSyncRevision(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	_, old := splitReplicaSets(d, rsList)
	newRS, err := c.getNewReplicaSet(ctx, d, rsList, old, create)
	if err != nil {
		return nil, nil, err
	}
	return newRS, old, nil
}

func (c *Controller) getNewReplicaSet(ctx context.Context, d *appsv1.Deployment, rsList, old []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	existing := FindNewReplicaSet(d, rsList)
	newRevision := strconv.FormatInt(maxRevision(old)+1, 10)

	if existing != nil {
		rs := existing.DeepCopy()
		annotationsChanged := setNewRSAnnotations(d, rs, newRevision, true)
		if annotationsChanged || rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			return c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
		}
		if err := c.setDeploymentRevision(ctx, d, rs.Annotations[RevisionAnnotation]); err != nil {
			return nil, err
		}
		if hasProgressDeadline(d) && getCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS,
				fmt.Sprintf("Found new replica set %q", rs.Name), c.now()))
			if err := c.writeStatus(ctx, d); err != nil {
				return nil, err
			}
		}
		return rs, nil
	}
	if !create {
		return nil, nil
	}

	// A new ReplicaSet: the template with the hash label, selected by it too.
	hash := TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
	template := *d.Spec.Template.DeepCopy()
	template.Labels = cloneAndAddLabel(template.Labels, PodTemplateHashLabel, hash)
	zero := int32(0)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*controllerutil.ControllerRef(d, deploymentKind)},
			Labels:          template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        &zero,
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        cloneSelectorAndAddLabel(d.Spec.Selector, PodTemplateHashLabel, hash),
			Template:        template,
		},
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), rs)
	size := NewRSNewReplicas(d, all, rs)
	rs.Spec.Replicas = &size
	setNewRSAnnotations(d, rs, newRevision, false)

	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	alreadyExists := false
	switch {
	case apierrors.IsAlreadyExists(err):
		alreadyExists = true
		cur, gerr := c.rsLister.ReplicaSets(d.Namespace).Get(rs.Name)
		if gerr != nil {
			return nil, err // the cache has not seen it yet: retry later
		}
		if ref := metav1.GetControllerOf(cur); ref != nil && ref.UID == d.UID && EqualIgnoreHash(&d.Spec.Template, &cur.Spec.Template) {
			// Ours, created by an earlier sync the cache had not shown us.
			created, err = cur, nil
			break
		}
		// A hash collision: another template (or another owner) has the name. Bump the
		// collision count so the next hash differs.
		var cc int32
		if d.Status.CollisionCount != nil {
			cc = *d.Status.CollisionCount
		}
		cc++
		d.Status.CollisionCount = &cc
		if uerr := c.writeStatus(ctx, d); uerr != nil {
			return nil, uerr
		}
		c.log.Debug("pod template hash collision", "deployment", d.Namespace+"/"+d.Name, "collisionCount", cc)
		return nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedRSCreate, msg, c.now()))
			_ = c.writeStatus(ctx, d)
		}
		c.recorder.Eventf(d, corev1.EventTypeWarning, eventFailedCreate, "%s", msg)
		return nil, err
	}
	if !alreadyExists && size > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, eventScalingReplicaSet, "Scaled up replica set %s from 0 to %d", created.Name, size)
	}
	if err := c.setDeploymentRevision(ctx, d, newRevision); err != nil {
		return nil, err
	}
	if !alreadyExists && hasProgressDeadline(d) {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSCreated,
			fmt.Sprintf("Created new replica set %q", created.Name), c.now()))
		if err := c.writeStatus(ctx, d); err != nil {
			return nil, err
		}
	}
	return created, nil
}

// setDeploymentRevision records revision on the deployment's revision annotation. Only the
// metadata is patched (the spec, and so the generation, stay as they are).
func (c *Controller) setDeploymentRevision(ctx context.Context, d *appsv1.Deployment, revision string) error {
	if revision == "" || d.Annotations[RevisionAnnotation] == revision {
		return nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{RevisionAnnotation: revision},
	}})
	if err != nil {
		return err
	}
	out, err := c.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, body, metav1.PatchOptions{})
	if err != nil {
		return err
	}
	if out.Generation != d.Generation {
		return fmt.Errorf("deployment %s/%s changed while syncing", d.Namespace, d.Name)
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = revision
	d.ResourceVersion = out.ResourceVersion
	return nil
}

// writeStatus stores d.Status, keeping d's resourceVersion current for later writes.
func (c *Controller) writeStatus(ctx context.Context, d *appsv1.Deployment) error {
	out, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	d.ResourceVersion = out.ResourceVersion
	return nil
}

// --- scaling ---

// scaleReplicaSet sets rs to size, with the replica annotations of the deployment's current
// size, and records a ScalingReplicaSet event when the size changed.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, size int32, d *appsv1.Deployment) (bool, *appsv1.ReplicaSet, error) {
	oldSize := replicas(rs.Spec.Replicas)
	sizeChanged := oldSize != size
	maxReplicas := replicas(d.Spec.Replicas) + MaxSurge(d)
	if !sizeChanged && !replicasAnnotationsNeedUpdate(rs, replicas(d.Spec.Replicas), maxReplicas) {
		return false, rs, nil
	}
	cp := rs.DeepCopy()
	cp.Spec.Replicas = &size
	setReplicasAnnotations(cp, replicas(d.Spec.Replicas), maxReplicas)
	out, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return false, rs, err
	}
	if sizeChanged {
		op := "up"
		if size < oldSize {
			op = "down"
		}
		c.recorder.Eventf(d, corev1.EventTypeNormal, eventScalingReplicaSet, "Scaled %s replica set %s from %d to %d", op, out.Name, oldSize, size)
	}
	return sizeChanged, out, nil
}

// scaleIfNeeded scales rs to size when its size differs.
func (c *Controller) scaleIfNeeded(ctx context.Context, rs *appsv1.ReplicaSet, size int32, d *appsv1.Deployment) (bool, *appsv1.ReplicaSet, error) {
	if replicas(rs.Spec.Replicas) == size {
		return false, rs, nil
	}
	return c.scaleReplicaSet(ctx, rs, size, d)
}

// isScalingEvent reports whether spec.replicas differs from the size an active ReplicaSet
// was last scaled for: then the deployment is resized, not rolled out.
func (c *Controller) isScalingEvent(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (bool, error) {
	newRS, old, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return false, err
	}
	for _, rs := range activeSets(append(old, newRS)) {
		desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
		if ok && desired != replicas(d.Spec.Replicas) {
			return true, nil
		}
	}
	return false, nil
}

// syncScale handles a resize (and a paused deployment): scale without rolling out, then
// report status.
func (c *Controller) syncScale(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	if err := c.scale(ctx, d, newRS, old); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncStatus(ctx, d, append(old, newRS), newRS)
}

// scale resizes the ReplicaSets to spec.replicas: all of it to the only active one, old ones
// to zero once the new one is saturated, otherwise in proportion to their sizes.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	if rs := findActiveOrLatest(newRS, old); rs != nil {
		if replicas(rs.Spec.Replicas) == replicas(d.Spec.Replicas) {
			return nil
		}
		_, _, err := c.scaleIfNeeded(ctx, rs, replicas(d.Spec.Replicas), d)
		return err
	}
	if isSaturated(d, newRS) {
		for _, rs := range activeSets(old) {
			if _, _, err := c.scaleIfNeeded(ctx, rs, 0, d); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRollingUpdate(d) {
		return nil
	}
	sets, sizes, _ := proportionalSizes(d, activeSets(append(append([]*appsv1.ReplicaSet(nil), old...), newRS)))
	for _, rs := range sets {
		if _, _, err := c.scaleReplicaSet(ctx, rs, sizes[rs.Name], d); err != nil {
			return err
		}
	}
	return nil
}

// cleanup deletes the oldest ReplicaSets with no replicas beyond revisionHistoryLimit.
func (c *Controller) cleanup(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var cleanable []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs != nil && rs.DeletionTimestamp == nil {
			cleanable = append(cleanable, rs)
		}
	}
	diff := len(cleanable) - int(*d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return nil
	}
	sort.Sort(byRevision(cleanable))
	for _, rs := range cleanable[:diff] {
		if rs.Status.Replicas != 0 || replicas(rs.Spec.Replicas) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &rs.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// syncStatusOnly reports status without changing anything (a deployment being deleted).
func (c *Controller) syncStatusOnly(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	return c.syncStatus(ctx, d, append(old, newRS), newRS)
}

// syncStatus writes the status the ReplicaSets amount to, when it changed.
func (c *Controller) syncStatus(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	st := calculateStatus(d, all, newRS, c.now())
	if apiequality.Semantic.DeepEqual(d.Status, st) {
		return nil
	}
	d.Status = st
	return ignoreNotFound(c.writeStatus(ctx, d))
}

// checkPausedConditions switches the Progressing condition to DeploymentPaused when the
// deployment is paused and to DeploymentResumed when it is resumed.
func (c *Controller) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) error {
	if !hasProgressDeadline(d) {
		return nil
	}
	cond := getCondition(d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == ReasonTimedOut {
		return nil // keep reporting the lack of progress
	}
	pausedCond := cond != nil && cond.Reason == ReasonPaused
	switch {
	case d.Spec.Paused && !pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", c.now()))
	case !d.Spec.Paused && pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", c.now()))
	default:
		return nil
	}
	return c.writeStatus(ctx, d)
}

// syncRolloutStatus writes status during a rollout, including the Progressing condition
// (progress, completion, or the progress deadline passing) and replica failures.
func (c *Controller) syncRolloutStatus(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	now := c.now()
	st := calculateStatus(d, all, newRS, now)
	if !hasProgressDeadline(d) {
		removeCondition(&st, appsv1.DeploymentProgressing)
	}
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	complete := st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == ReasonNewRSAvailable
	if hasProgressDeadline(d) && !complete {
		switch {
		case deploymentComplete(d, &st):
			msg := fmt.Sprintf("Deployment %q has successfully progressed.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q has successfully progressed.", newRS.Name)
			}
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSAvailable, msg, now))
		case deploymentProgressing(d, &st):
			msg := fmt.Sprintf("Deployment %q is progressing.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q is progressing.", newRS.Name)
			}
			cond := newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, msg, now)
			// Progress refreshes lastUpdateTime even with the same reason (that is what the
			// deadline is measured from); the transition time stays while it stays True.
			if cur != nil {
				if cur.Status == corev1.ConditionTrue {
					cond.LastTransitionTime = cur.LastTransitionTime
				}
				removeCondition(&st, appsv1.DeploymentProgressing)
			}
			setCondition(&st, cond)
		case deploymentTimedOut(d, &st, now):
			msg := fmt.Sprintf("Deployment %q has timed out progressing.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q has timed out progressing.", newRS.Name)
			}
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonTimedOut, msg, now))
		}
	}
	if f := replicaFailure(all, newRS); f != nil {
		setCondition(&st, *f)
	} else {
		removeCondition(&st, appsv1.DeploymentReplicaFailure)
	}
	if apiequality.Semantic.DeepEqual(d.Status, st) {
		c.requeueStuck(d, st)
		return nil
	}
	d.Status = st
	return ignoreNotFound(c.writeStatus(ctx, d))
}

// requeueStuck makes sure a deployment that is not progressing is looked at again when its
// progress deadline passes.
func (c *Controller) requeueStuck(d *appsv1.Deployment, st appsv1.DeploymentStatus) {
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || cur == nil || deploymentComplete(d, &st) || cur.Reason == ReasonTimedOut {
		return
	}
	after := cur.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(c.now())
	if after < time.Second {
		c.queue.AddRateLimited(d.Namespace + "/" + d.Name)
		return
	}
	c.enqueueAfter(d, after)
}

// replicaFailure turns the ReplicaFailure condition of the new (else any) ReplicaSet into a
// deployment condition.
func replicaFailure(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) *appsv1.DeploymentCondition {
	conv := func(rs *appsv1.ReplicaSet) *appsv1.DeploymentCondition {
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				return &appsv1.DeploymentCondition{
					Type: appsv1.DeploymentReplicaFailure, Status: c.Status, Reason: c.Reason, Message: c.Message,
					LastUpdateTime: c.LastTransitionTime, LastTransitionTime: c.LastTransitionTime,
				}
			}
		}
		return nil
	}
	if newRS != nil {
		if f := conv(newRS); f != nil {
			return f
		}
	}
	for _, rs := range all {
		if rs == nil || (newRS != nil && rs.UID == newRS.UID) {
			continue
		}
		if f := conv(rs); f != nil {
			return f
		}
	}
	return nil
}

// --- Recreate ---

// rolloutRecreate scales every old ReplicaSet to zero, waits until none of their pods is
// left, and only then creates (or scales up) the new one.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, podMap map[types.UID][]*corev1.Pod) error {
	newRS, old, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)

	scaledDown := false
	for _, rs := range activeSets(old) {
		scaled, updated, err := c.scaleIfNeeded(ctx, rs, 0, d)
		if err != nil {
			return err
		}
		if scaled {
			scaledDown = true
			for j := range old {
				if old[j].UID == updated.UID {
					old[j] = updated
				}
			}
		}
	}
	if scaledDown {
		return c.syncRolloutStatus(ctx, d, append(append([]*appsv1.ReplicaSet(nil), old...), newRS), newRS)
	}
	if oldPodsRunning(newRS, old, podMap) {
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if newRS == nil {
		newRS, old, err = c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, true)
		if err != nil {
			return err
		}
		all = append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	}
	if _, _, err := c.scaleIfNeeded(ctx, newRS, replicas(d.Spec.Replicas), d); err != nil {
		return err
	}
	if deploymentComplete(d, &d.Status) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

// oldPodsRunning reports whether any pod of an old ReplicaSet may still be running: the old
// ReplicaSets still report replicas, or a pod of theirs is not finished (a terminating pod
// still runs; a pod in Unknown phase may).
func oldPodsRunning(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, podMap map[types.UID][]*corev1.Pod) bool {
	if statusReplicaCount(old) > 0 {
		return true
	}
	for uid, pods := range podMap {
		if newRS != nil && newRS.UID == uid {
			continue
		}
		for _, p := range pods {
			switch p.Status.Phase {
			case corev1.PodSucceeded, corev1.PodFailed:
				continue
			default:
				return true
			}
		}
	}
	return false
}

// --- RollingUpdate ---

// rolloutRolling moves one step: grow the new ReplicaSet within maxSurge, else shrink old
// ones within maxUnavailable, else (all done) clean up; status is written each time.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, true)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)

	scaledUp, newRS, err := c.reconcileNewReplicaSet(ctx, d, all, newRS)
	if err != nil {
		return err
	}
	if scaledUp {
		return c.syncRolloutStatus(ctx, d, append(append([]*appsv1.ReplicaSet(nil), old...), newRS), newRS)
	}
	scaledDown, old, err := c.reconcileOldReplicaSets(ctx, d, all, old, newRS)
	if err != nil {
		return err
	}
	all = append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	if scaledDown {
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if deploymentComplete(d, &d.Status) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

func (c *Controller) reconcileNewReplicaSet(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, *appsv1.ReplicaSet, error) {
	want := replicas(d.Spec.Replicas)
	have := replicas(newRS.Spec.Replicas)
	if have == want {
		return false, newRS, nil
	}
	if have > want {
		return c.scaleIfNeeded(ctx, newRS, want, d)
	}
	return c.scaleIfNeeded(ctx, newRS, NewRSNewReplicas(d, all, newRS), d)
}

// reconcileOldReplicaSets shrinks old ReplicaSets as far as availability allows: first their
// unavailable pods (which cost no availability), then available ones down to
// spec.replicas - maxUnavailable available pods overall. It returns the updated old sets.
func (c *Controller) reconcileOldReplicaSets(ctx context.Context, d *appsv1.Deployment, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, []*appsv1.ReplicaSet, error) {
	old = append([]*appsv1.ReplicaSet(nil), old...)
	plan := planScaleDown(d, all, old, newRS)
	if len(plan.cleanup) == 0 && len(plan.scaleDown) == 0 {
		return false, old, nil
	}
	index := map[types.UID]int{}
	for i, rs := range old {
		index[rs.UID] = i
	}
	scaled := false
	for _, step := range []map[types.UID]int32{plan.cleanup, plan.scaleDown} {
		for i, rs := range old {
			size, ok := step[rs.UID]
			if !ok {
				continue
			}
			did, updated, err := c.scaleIfNeeded(ctx, rs, size, d)
			if err != nil {
				return scaled, old, err
			}
			scaled = scaled || did
			old[i] = updated
		}
	}
	return scaled, old, nil
}

// scaleDownPlan holds new sizes for old ReplicaSets, by UID: cleanup removes unavailable
// pods, scaleDown then available ones.
type scaleDownPlan struct {
	cleanup   map[types.UID]int32
	scaleDown map[types.UID]int32
}

// planScaleDown computes how far the old ReplicaSets may shrink now (pure; see
// reconcileOldReplicaSets).
func planScaleDown(d *appsv1.Deployment, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) scaleDownPlan {
	plan := scaleDownPlan{cleanup: map[types.UID]int32{}, scaleDown: map[types.UID]int32{}}
	if specReplicaCount(old) == 0 {
		return plan
	}
	minAvailable := replicas(d.Spec.Replicas) - MaxUnavailable(d)
	newUnavailable := replicas(newRS.Spec.Replicas) - newRS.Status.AvailableReplicas
	maxScaledDown := specReplicaCount(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return plan
	}
	sorted := append([]*appsv1.ReplicaSet(nil), old...)
	sort.Sort(byCreation(sorted))

	// Step 1: unhealthy replicas, oldest ReplicaSets first.
	size := map[types.UID]int32{}
	for _, rs := range sorted {
		size[rs.UID] = replicas(rs.Spec.Replicas)
	}
	var cleaned int32
	for _, rs := range sorted {
		if cleaned >= maxScaledDown {
			break
		}
		cur := size[rs.UID]
		if cur == 0 || cur == rs.Status.AvailableReplicas {
			continue
		}
		n := min(maxScaledDown-cleaned, cur-rs.Status.AvailableReplicas)
		if n <= 0 {
			continue
		}
		size[rs.UID] = cur - n
		plan.cleanup[rs.UID] = cur - n
		cleaned += n
	}

	// Step 2: available replicas, keeping minAvailable available overall.
	available := availableReplicaCount(all)
	if available <= minAvailable {
		return plan
	}
	total := available - minAvailable
	var done int32
	for _, rs := range sorted {
		if done >= total {
			break
		}
		cur := size[rs.UID]
		if cur == 0 {
			continue
		}
		n := min(cur, total-done)
		size[rs.UID] = cur - n
		plan.scaleDown[rs.UID] = cur - n
		done += n
	}
	return plan
}
