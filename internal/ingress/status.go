package ingress

import (
	"cmp"
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.syncStatus(ctx, key); err != nil {
		if ctx.Err() == nil {
			c.log.Debug("retrying status", "ingress", key, "err", err)
		}
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// syncStatus makes status.loadBalancer.ingress hold the node's IP while the Ingress is
// served, and not hold it once it is not (other addresses are left alone, so several nodes
// or controllers can each keep their own).
func (c *Controller) syncStatus(ctx context.Context, key string) error {
	if c.cfg.NodeIP == "" {
		return nil
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ing, err := c.ingLister.Ingresses(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	served := ing.DeletionTimestamp == nil && c.serves(ing, c.classIsDefault())
	want, changed := desiredStatus(ing.Status.LoadBalancer.Ingress, c.cfg.NodeIP, served)
	if !changed {
		return nil
	}
	up := ing.DeepCopy()
	up.Status.LoadBalancer.Ingress = want
	_, err = c.client.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, up, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.cfg.Recorder != nil {
		if served {
			c.cfg.Recorder.Eventf(ing, corev1.EventTypeNormal, "Sync", "Scheduled for sync: address %s", c.cfg.NodeIP)
		} else {
			c.cfg.Recorder.Eventf(ing, corev1.EventTypeNormal, "Sync", "No longer served by class %s: address %s removed", c.cfg.ClassName, c.cfg.NodeIP)
		}
	}
	c.log.Debug("status updated", "ingress", key, "served", served)
	return nil
}

// desiredStatus adds ip to (served) or removes it from (not served) the load balancer
// addresses, reporting whether anything changed.
func desiredStatus(cur []networkingv1.IngressLoadBalancerIngress, ip string, served bool) ([]networkingv1.IngressLoadBalancerIngress, bool) {
	has := slices.ContainsFunc(cur, func(l networkingv1.IngressLoadBalancerIngress) bool { return l.IP == ip })
	switch {
	case served && !has:
		out := append(slices.Clone(cur), networkingv1.IngressLoadBalancerIngress{IP: ip})
		slices.SortFunc(out, func(a, b networkingv1.IngressLoadBalancerIngress) int {
			return cmp.Or(cmp.Compare(a.IP, b.IP), cmp.Compare(a.Hostname, b.Hostname))
		})
		return out, true
	case !served && has:
		return slices.DeleteFunc(slices.Clone(cur), func(l networkingv1.IngressLoadBalancerIngress) bool { return l.IP == ip }), true
	}
	return cur, false
}
