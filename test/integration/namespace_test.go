package integration

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func nsCreate(t *testing.T, c *skifftest.Cluster, name string) {
	t.Helper()
	if _, err := c.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func nsPod(name, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

// nsDelete deletes a namespace as kubectl does (background propagation).
func nsDelete(t *testing.T, c *skifftest.Cluster, name string) {
	t.Helper()
	bg := metav1.DeletePropagationBackground
	if err := c.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
}

func nsGone(c *skifftest.Cluster, name string) func() bool {
	return func() bool {
		_, err := c.Client.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
}

func nsCondition(ns *corev1.Namespace, t corev1.NamespaceConditionType) corev1.NamespaceCondition {
	for _, c := range ns.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.NamespaceCondition{}
}

func TestNamespaceDeletionEmptiesAndRemoves(t *testing.T) {
	c := gcStart(t)
	ctx := context.Background()
	nsCreate(t, c, "doomed")
	for _, n := range []string{"a", "b"} {
		if _, err := c.Client.CoreV1().ConfigMaps("doomed").Create(ctx, cm(n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client.CoreV1().Secrets("doomed").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Unscheduled pods go at once.
		if _, err := c.Client.CoreV1().Pods("doomed").Create(ctx, nsPod(n, ""), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	nsDelete(t, c, "doomed")
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Status.Phase != corev1.NamespaceTerminating || ns.DeletionTimestamp == nil {
		t.Fatalf("not terminating: %+v", ns.Status)
	}
	// Nothing new goes into a terminating namespace. (The API server's admission reads its
	// watch cache, which may lag the deletion by a moment: retry until it has caught up.)
	gcEventually(t, 5*time.Second, "create in a terminating namespace forbidden", func() bool {
		_, err := c.Client.CoreV1().ConfigMaps("doomed").Create(ctx, cm("late"), metav1.CreateOptions{})
		if err == nil {
			t.Logf("create in namespace %s admitted right after its deletion (stale admission cache)", "doomed")
			_ = c.Client.CoreV1().ConfigMaps("doomed").Delete(ctx, "late", metav1.DeleteOptions{})
			return false
		}
		if !apierrors.IsForbidden(err) || !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			t.Fatalf("create in a terminating namespace: %v", err)
		}
		return true
	})
	gcEventually(t, 30*time.Second, "namespace emptied and removed", nsGone(c, "doomed"))
	cms, _ := c.Client.CoreV1().ConfigMaps("doomed").List(ctx, metav1.ListOptions{})
	secs, _ := c.Client.CoreV1().Secrets("doomed").List(ctx, metav1.ListOptions{})
	pods, _ := c.Client.CoreV1().Pods("doomed").List(ctx, metav1.ListOptions{})
	sas, _ := c.Client.CoreV1().ServiceAccounts("doomed").List(ctx, metav1.ListOptions{})
	if len(cms.Items)+len(secs.Items)+len(pods.Items)+len(sas.Items) != 0 {
		t.Fatalf("left behind: %d configmaps, %d secrets, %d pods, %d serviceaccounts", len(cms.Items), len(secs.Items), len(pods.Items), len(sas.Items))
	}
	// The name is free again.
	nsCreate(t, c, "doomed")
}

func TestNamespaceDeletionWaitsForFinalizers(t *testing.T) {
	c := gcStart(t)
	ctx := context.Background()
	nsCreate(t, c, "held")
	held := cm("held")
	held.Finalizers = []string{"example.com/hold"}
	if _, err := c.Client.CoreV1().ConfigMaps("held").Create(ctx, held, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nsDelete(t, c, "held")
	gcEventually(t, 30*time.Second, "conditions report the remaining content", func() bool {
		ns, err := c.Client.CoreV1().Namespaces().Get(ctx, "held", metav1.GetOptions{})
		if err != nil {
			return false
		}
		rem := nsCondition(ns, corev1.NamespaceContentRemaining)
		fin := nsCondition(ns, corev1.NamespaceFinalizersRemaining)
		return rem.Status == corev1.ConditionTrue && rem.Reason == "SomeResourcesRemain" &&
			rem.Message == "Some resources are remaining: configmaps. has 1 resource instances" &&
			fin.Status == corev1.ConditionTrue && fin.Reason == "SomeFinalizersRemain" &&
			fin.Message == "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances" &&
			nsCondition(ns, corev1.NamespaceDeletionDiscoveryFailure).Status == corev1.ConditionFalse &&
			nsCondition(ns, corev1.NamespaceDeletionContentFailure).Status == corev1.ConditionFalse
	})
	ns, _ := c.Client.CoreV1().Namespaces().Get(ctx, "held", metav1.GetOptions{})
	if len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != corev1.FinalizerKubernetes {
		t.Fatalf("finalized with content left: %v", ns.Spec.Finalizers)
	}
	if _, err := c.Client.CoreV1().ConfigMaps("held").Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	gcEventually(t, 30*time.Second, "namespace removed once its content is gone", nsGone(c, "held"))
}

func TestNamespaceDeletionWaitsForGracefulPods(t *testing.T) {
	c := gcStart(t)
	ctx := context.Background()
	nsCreate(t, c, "graceful")
	// A pod on a node terminates gracefully: it stays until its node confirms (here: the test).
	if _, err := c.Client.CoreV1().Pods("graceful").Create(ctx, nsPod("running", "node-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ConfigMaps("graceful").Create(ctx, cm("config"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nsDelete(t, c, "graceful")
	gcEventually(t, 30*time.Second, "pod terminating", func() bool {
		p, err := c.Client.CoreV1().Pods("graceful").Get(ctx, "running", metav1.GetOptions{})
		return err == nil && p.DeletionTimestamp != nil
	})
	// Pods go first: the rest stays while the pod terminates.
	gcConsistently(t, 1500*time.Millisecond, "namespace and its other content wait for the pod", func() bool {
		cfg, err := c.Client.CoreV1().ConfigMaps("graceful").Get(ctx, "config", metav1.GetOptions{})
		return err == nil && cfg.DeletionTimestamp == nil && !nsGone(c, "graceful")()
	})
	zero := int64(0)
	if err := c.Client.CoreV1().Pods("graceful").Delete(ctx, "running", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	gcEventually(t, 30*time.Second, "namespace removed after the pod", nsGone(c, "graceful"))
}
