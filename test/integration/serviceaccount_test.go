package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func saExists(c *skifftest.Cluster, ns, name string) func() bool {
	return func() bool {
		_, err := c.Client.CoreV1().ServiceAccounts(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil
	}
}

func TestServiceAccountDefaultInEveryNamespace(t *testing.T) {
	c := gcStart(t)
	ctx := context.Background()
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		gcEventually(t, 15*time.Second, "default service account in "+ns, saExists(c, ns, "default"))
	}
	nsCreate(t, c, "fresh")
	gcEventually(t, 15*time.Second, "default service account in a new namespace", saExists(c, "fresh", "default"))
	sa, _ := c.Client.CoreV1().ServiceAccounts("fresh").Get(ctx, "default", metav1.GetOptions{})
	if err := c.Client.CoreV1().ServiceAccounts("fresh").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gcEventually(t, 15*time.Second, "default service account recreated", func() bool {
		got, err := c.Client.CoreV1().ServiceAccounts("fresh").Get(ctx, "default", metav1.GetOptions{})
		return err == nil && got.UID != sa.UID
	})
}
