package statefulset

import (
	"context"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-sh/skiff/internal/controller/controllerutil"
)

// round is one sync of one StatefulSet.
type round struct {
	c           *Controller
	set         *appsv1.StatefulSet
	current     *appsv1.ControllerRevision
	update      *appsv1.ControllerRevision
	currentTmpl *corev1.PodTemplateSpec
	now         time.Time
}

func (r *round) monotonic() bool {
	return r.set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
}

func (r *round) healthy(p *corev1.Pod) bool {
	return isHealthy(p, r.set.Spec.MinReadySeconds, r.now) && !r.c.deleting.has(p.UID)
}

// terminating: being deleted, or deleted by this controller and not yet seen so.
func (r *round) terminating(p *corev1.Pod) bool { return isTerminating(p) || r.c.deleting.has(p.UID) }

// partition is the rolling update's partition (0 when unset or not rolling).
func (r *round) partition() int {
	ru := r.set.Spec.UpdateStrategy.RollingUpdate
	if r.set.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || ru == nil || ru.Partition == nil {
		return 0
	}
	return int(*ru.Partition)
}

// manage moves the pods one step towards spec: create missing ordinals (PVCs first), replace
// failed pods, delete ordinals beyond the replicas (highest first), then roll out the update
// revision. Under OrderedReady it stops at the first pod that is not yet healthy.
func (r *round) manage(ctx context.Context, pods []*corev1.Pod) error {
	set := r.set
	start, replicas := startOrdinal(set), replicasOf(set)
	byOrdinal := map[int]*corev1.Pod{}
	var condemned []*corev1.Pod
	for _, p := range pods {
		o := ordinalOf(set, p)
		if o >= start && o < start+replicas {
			if prev := byOrdinal[o]; prev == nil || r.terminating(prev) {
				byOrdinal[o] = p
			}
		} else {
			condemned = append(condemned, p)
		}
	}
	sort.Slice(condemned, func(i, j int) bool { return ordinalOf(set, condemned[i]) > ordinalOf(set, condemned[j]) })
	monotonic := r.monotonic()

	// Every unhealthy pod in range, for the condemned and rolling update checks.
	unhealthy := 0
	for o := start; o < start+replicas; o++ {
		if p := byOrdinal[o]; p == nil || !r.healthy(p) {
			unhealthy++
		}
	}

	for o := start; o < start+replicas; o++ {
		pod := byOrdinal[o]
		switch {
		case pod == nil:
			tmpl, rev := r.currentTmpl, r.current.Name
			if set.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || o-start >= r.partition() {
				tmpl, rev = &set.Spec.Template, r.update.Name
			}
			if err := r.createPod(ctx, tmpl, rev, o); err != nil {
				return err
			}
			if monotonic {
				return nil
			}
		case r.terminating(pod):
			if monotonic {
				return nil // wait for it to go before recreating it
			}
		case isFinished(pod):
			if err := r.deletePod(ctx, pod); err != nil {
				return err
			}
			if monotonic {
				return nil
			}
		default:
			if err := r.ensureClaims(ctx, o, pod.Name); err != nil {
				return err
			}
			if monotonic && !r.healthy(pod) {
				return nil
			}
		}
	}

	for _, pod := range condemned {
		if r.terminating(pod) {
			if monotonic {
				return nil
			}
			continue
		}
		// Under OrderedReady, only the highest pod is removed, and only once every other pod
		// is healthy (the condemned pod itself may be unhealthy).
		if monotonic {
			others := unhealthy
			for _, q := range condemned {
				if q != pod && !r.healthy(q) {
					others++
				}
			}
			if others > 0 {
				return nil
			}
		}
		if err := r.deletePod(ctx, pod); err != nil {
			return err
		}
		if monotonic {
			return nil
		}
	}

	if set.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		return nil
	}
	maxUnavailable := 1
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, replicas, true); err == nil {
			maxUnavailable = max(n, 1)
		}
	}
	room := maxUnavailable - unhealthy
	for o := start + replicas - 1; o >= start+r.partition(); o-- {
		pod := byOrdinal[o]
		if pod == nil || r.terminating(pod) || revisionOf(pod) == r.update.Name {
			continue
		}
		if !r.healthy(pod) {
			// Already unavailable: replacing it costs nothing more.
			if err := r.deletePod(ctx, pod); err != nil {
				return err
			}
			continue
		}
		if room <= 0 {
			break
		}
		if err := r.deletePod(ctx, pod); err != nil {
			return err
		}
		room--
	}
	return nil
}

// ensureClaims creates the ordinal's missing PersistentVolumeClaims.
func (r *round) ensureClaims(ctx context.Context, ordinal int, pod string) error {
	set := r.set
	for i := range set.Spec.VolumeClaimTemplates {
		claim := newClaim(set, &set.Spec.VolumeClaimTemplates[i], ordinal)
		if _, err := r.c.claims.PersistentVolumeClaims(set.Namespace).Get(claim.Name); err == nil {
			continue
		}
		_, err := r.c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(ctx, claim, metav1.CreateOptions{})
		switch {
		case err == nil:
			r.c.recorder.Eventf(set, corev1.EventTypeNormal, controllerutil.SuccessfulCreate,
				"create Claim %s Pod %s in StatefulSet %s success", claim.Name, pod, set.Name)
		case apierrors.IsAlreadyExists(err):
		default:
			r.c.recorder.Eventf(set, corev1.EventTypeWarning, controllerutil.FailedCreate,
				"create Claim %s for Pod %s in StatefulSet %s failed error: %s", claim.Name, pod, set.Name, err)
			return err
		}
	}
	return nil
}

func (r *round) createPod(ctx context.Context, tmpl *corev1.PodTemplateSpec, revision string, ordinal int) error {
	set := r.set
	pod, err := newPod(set, tmpl, revision, ordinal)
	if err != nil {
		return err
	}
	if err := r.ensureClaims(ctx, ordinal, pod.Name); err != nil {
		return err
	}
	_, err = r.c.client.CoreV1().Pods(set.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	switch {
	case err == nil:
		r.c.recorder.Eventf(set, corev1.EventTypeNormal, controllerutil.SuccessfulCreate,
			"create Pod %s in StatefulSet %s successful", pod.Name, set.Name)
		return nil
	case apierrors.IsAlreadyExists(err):
		return nil // the cache is behind
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil
	default:
		r.c.recorder.Eventf(set, corev1.EventTypeWarning, controllerutil.FailedCreate,
			"create Pod %s in StatefulSet %s failed error: %s", pod.Name, set.Name, err)
		return err
	}
}

// deletePod deletes a pod; when scaling down with whenScaled=Delete its claims get the pod
// as owner first, so that the garbage collector removes them after it.
func (r *round) deletePod(ctx context.Context, pod *corev1.Pod) error {
	set := r.set
	o := ordinalOf(set, pod)
	condemned := o < startOrdinal(set) || o >= startOrdinal(set)+replicasOf(set)
	if p := set.Spec.PersistentVolumeClaimRetentionPolicy; condemned && p != nil && p.WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		if err := r.ownClaimsByPod(ctx, pod, o); err != nil {
			return err
		}
	}
	err := r.c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &pod.UID},
	})
	switch {
	case err == nil:
		r.c.deleting.add(pod.UID)
		r.c.recorder.Eventf(set, corev1.EventTypeNormal, controllerutil.SuccessfulDelete,
			"delete Pod %s in StatefulSet %s successful", pod.Name, set.Name)
		return nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return nil
	default:
		r.c.recorder.Eventf(set, corev1.EventTypeWarning, controllerutil.FailedDelete,
			"delete Pod %s in StatefulSet %s failed error: %s", pod.Name, set.Name, err)
		return err
	}
}

func (r *round) ownClaimsByPod(ctx context.Context, pod *corev1.Pod, ordinal int) error {
	set := r.set
	for i := range set.Spec.VolumeClaimTemplates {
		name := claimName(&set.Spec.VolumeClaimTemplates[i], set, ordinal)
		claim, err := r.c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		owned := false
		for _, ref := range claim.OwnerReferences {
			if ref.UID == pod.UID {
				owned = true
			}
		}
		if owned {
			continue
		}
		claim.OwnerReferences = append(claim.OwnerReferences, metav1.OwnerReference{
			APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
		})
		if _, err := r.c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Update(ctx, claim, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("set owner of claim %s: %w", name, err)
		}
	}
	return nil
}

// status computes the StatefulSet's status from its pods.
func (r *round) status(pods []*corev1.Pod, collisions *int32) appsv1.StatefulSetStatus {
	set := r.set
	st := *set.Status.DeepCopy()
	st.ObservedGeneration = set.Generation
	st.CollisionCount = collisions
	st.CurrentRevision = r.current.Name
	st.UpdateRevision = r.update.Name
	var replicas, ready, available, current, updated int32
	for _, p := range pods {
		replicas++
		if isRunningAndReady(p) {
			ready++
			if controllerutil.IsPodAvailable(p, set.Spec.MinReadySeconds, r.now) {
				available++
			}
		}
		if r.terminating(p) {
			continue
		}
		if revisionOf(p) == r.current.Name {
			current++
		}
		if revisionOf(p) == r.update.Name {
			updated++
		}
	}
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas = replicas, ready, available
	st.CurrentReplicas, st.UpdatedReplicas = current, updated
	// The update is complete once every pod runs it and is ready: it becomes current.
	if st.CurrentRevision != st.UpdateRevision && updated == replicas && ready == replicas && int(replicas) == replicasOf(set) {
		st.CurrentRevision = st.UpdateRevision
		st.CurrentReplicas = updated
	}
	return st
}
