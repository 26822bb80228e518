package agent

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Node lease: renewed every 10 s and valid 40 s, in kube-node-lease, as the kubelet.
const (
	leaseNamespace     = "kube-node-lease"
	leaseRenewInterval = 10 * time.Second
	leaseDuration      = 40 * time.Second
)

// leaseLoop renews the lease (Run creates it before the loops start).
func (a *Agent) leaseLoop(ctx context.Context) {
	wait := leaseRenewInterval
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = leaseRenewInterval
		if err := a.renewLease(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("renewing node lease", "err", err)
			wait = time.Second
		}
	}
}

// renewLease creates or renews the node's Lease, owned by the Node so that deleting the
// Node deletes it.
func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.client.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(leaseDuration / time.Second)
	l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		holder := a.cfg.NodeName
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: leaseNamespace},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now},
		}
		if n, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{}); err == nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	holder := a.cfg.NodeName
	l.Spec.HolderIdentity = &holder
	l.Spec.LeaseDurationSeconds = &secs
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}
