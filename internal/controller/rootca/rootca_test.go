package rootca

import (
	"context"
	"io"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func TestPublisherSync(t *testing.T) {
	active := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	}
	terminating := active("going")
	terminating.Status.Phase = corev1.NamespaceTerminating
	stale := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "stale", Name: ConfigMapName}, Data: map[string]string{DataKey: "old"}}
	client := fake.NewClientset(active("fresh"), active("stale"), terminating, stale)
	inf := informers.NewSharedInformerFactory(client, 0)
	p := NewPublisher(slog.New(slog.NewTextHandler(io.Discard, nil)), client, "CA-PEM",
		inf.Core().V1().Namespaces(), inf.Core().V1().ConfigMaps(), 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf.Start(ctx.Done())
	inf.WaitForCacheSync(ctx.Done())
	for _, ns := range []string{"fresh", "stale", "going"} {
		if err := p.sync(ctx, ns); err != nil {
			t.Fatalf("sync %s: %v", ns, err)
		}
	}
	for _, ns := range []string{"fresh", "stale"} {
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, ConfigMapName, metav1.GetOptions{})
		if err != nil || cm.Data[DataKey] != "CA-PEM" || cm.Annotations[DescriptionAnnotation] == "" {
			t.Fatalf("%s: %v %+v", ns, err, cm)
		}
	}
	if _, err := client.CoreV1().ConfigMaps("going").Get(ctx, ConfigMapName, metav1.GetOptions{}); err == nil {
		t.Fatal("published into a terminating namespace")
	}
}
