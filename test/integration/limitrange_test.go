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

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// LimitRanger admission: a namespace's LimitRange gives new pods' containers default requests
// and limits (and says so in an annotation), and refuses pods and claims outside its ranges
// with Kubernetes' messages; other namespaces are not affected.
func TestLimitRanges(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	q := resource.MustParse
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "limits"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{Type: corev1.LimitTypeContainer, Default: corev1.ResourceList{"memory": q("512Mi")}, DefaultRequest: corev1.ResourceList{"memory": q("256Mi")},
			Max: corev1.ResourceList{"memory": q("1Gi")}},
		{Type: corev1.LimitTypePersistentVolumeClaim, Max: corev1.ResourceList{"storage": q("2Gi")}},
	}}}
	if _, err := c.Client.CoreV1().LimitRanges("default").Create(ctx, lr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Admission reads the watch cache, as Kubernetes' reads an informer: wait until it has it.
	wlEventually(t, 5*time.Second, "limit range cached", func() (bool, string) {
		l, err := c.Client.CoreV1().LimitRanges("default").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		return err == nil && len(l.Items) == 1, fmt.Sprint(err)
	})
	pod := func(name string, res corev1.ResourceRequirements) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "busybox", Resources: res}}}}
	}
	p, err := c.Client.CoreV1().Pods("default").Create(ctx, pod("plain", corev1.ResourceRequirements{}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Spec.Containers[0].Resources
	if r.Requests.Memory().String() != "256Mi" || r.Limits.Memory().String() != "512Mi" ||
		p.Annotations["kubernetes.io/limit-ranger"] != "LimitRanger plugin set: memory request for container app; memory limit for container app" {
		t.Fatalf("defaults: %+v %v", r, p.Annotations)
	}
	_, err = c.Client.CoreV1().Pods("default").Create(ctx, pod("big", corev1.ResourceRequirements{Limits: corev1.ResourceList{"memory": q("2Gi")}}), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `pods "big" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi`) {
		t.Fatalf("over the max: %v", err)
	}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "huge"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": q("5Gi")}}}}
	_, err = c.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi") {
		t.Fatalf("claim over the max: %v", err)
	}
	// Another namespace has no range.
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "free"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = c.Client.CoreV1().Pods("free").Create(ctx, pod("big", corev1.ResourceRequirements{Limits: corev1.ResourceList{"memory": q("2Gi")}}), metav1.CreateOptions{})
	if err != nil || p.Annotations["kubernetes.io/limit-ranger"] != "" {
		t.Fatalf("namespace without ranges: %v %v", err, p.Annotations)
	}
}
