package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller/resourcequota"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// ResourceQuotas as in Kubernetes: the controller fills status; a pod that leaves a limited
// compute resource unset, or that would pass a limit, is refused with Kubernetes' messages;
// admission charges at once, and deleting gives the usage back; object counts are limited too.
func TestResourceQuotas(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{resourcequota.New}})
	ctx := context.Background()
	q := resource.MustParse
	quotas := c.Client.CoreV1().ResourceQuotas("default")
	pods := c.Client.CoreV1().Pods("default")
	if _, err := quotas.Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "compute"}, Spec: corev1.ResourceQuotaSpec{
		Hard: corev1.ResourceList{"pods": q("2"), "requests.memory": q("1Gi"), "limits.memory": q("2Gi")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	used := func(name, res string) string {
		rq, err := quotas.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u := rq.Status.Used[corev1.ResourceName(res)]
		return u.String()
	}
	wlEventually(t, 10*time.Second, "quota counted", func() (bool, string) {
		rq, _ := quotas.Get(ctx, "compute", metav1.GetOptions{})
		return len(rq.Status.Hard) == 3 && len(rq.Status.Used) == 3, fmt.Sprintf("%+v", rq.Status)
	})
	pod := func(name string, res corev1.ResourceRequirements) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "busybox", Resources: res}}}}
	}
	mem := func(req, lim string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{"memory": q(req)}, Limits: corev1.ResourceList{"memory": q(lim)}}
	}
	_, err := pods.Create(ctx, pod("bare", corev1.ResourceRequirements{}), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: app; requests.memory for: app`) {
		t.Fatalf("pod without requests: %v", err)
	}
	if _, err := pods.Create(ctx, pod("one", mem("600Mi", "1Gi")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := used("compute", "requests.memory") + " " + used("compute", "pods"); got != "600Mi 1" {
		t.Fatalf("charged at admission: %s", got)
	}
	_, err = pods.Create(ctx, pod("two", mem("600Mi", "1Gi")), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(),
		`pods "two" is forbidden: exceeded quota: compute, requested: requests.memory=600Mi, used: requests.memory=600Mi, limited: requests.memory=1Gi`) {
		t.Fatalf("over quota: %v", err)
	}
	if err := pods.Delete(ctx, "one", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 10*time.Second, "usage given back", func() (bool, string) {
		got := used("compute", "requests.memory") + " " + used("compute", "pods")
		return got == "0 0", got
	})
	if _, err := pods.Create(ctx, pod("two", mem("600Mi", "1Gi")), metav1.CreateOptions{}); err != nil {
		t.Fatalf("after the delete: %v", err)
	}

	if _, err := quotas.Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "counts"}, Spec: corev1.ResourceQuotaSpec{
		Hard: corev1.ResourceList{"configmaps": q("2")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 5*time.Second, "quota cached", func() (bool, string) {
		l, err := quotas.List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		return err == nil && len(l.Items) == 2, fmt.Sprint(err)
	})
	for i := range 3 {
		_, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("cm-", i)}}, metav1.CreateOptions{})
		switch {
		case i < 2 && err != nil:
			t.Fatal(err)
		case i == 2 && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "exceeded quota: counts, requested: configmaps=1, used: configmaps=2, limited: configmaps=2")):
			t.Fatalf("third configmap: %v", err)
		}
	}
}
