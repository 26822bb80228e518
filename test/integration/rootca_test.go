package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller/namespace"
	"github.com/skiff-sh/skiff/internal/controller/rootca"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func TestRootCAPublishedInEveryNamespace(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{rootca.New, namespace.New}})
	ctx := context.Background()
	ca := string(c.Config.CAData)
	if ca == "" {
		t.Fatal("cluster config has no CA")
	}
	waitCA := func(ns string) *corev1.ConfigMap {
		t.Helper()
		var cm *corev1.ConfigMap
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			if err == nil && got.Data["ca.crt"] == ca && len(got.Data) == 1 {
				cm = got
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kube-root-ca.crt in %s: %v %v", ns, err, got)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return cm
	}
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		waitCA(ns)
	}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := waitCA("team-a")
	if cm.Annotations["kubernetes.io/description"] == "" {
		t.Fatalf("annotations %v", cm.Annotations)
	}
	// Deleted: recreated.
	if err := c.Client.CoreV1().ConfigMaps("team-a").Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCA("team-a")
	// Changed: put back.
	cm = waitCA("team-a")
	cm.Data["ca.crt"] = "tampered"
	cm.Data["extra"] = "x"
	if _, err := c.Client.CoreV1().ConfigMaps("team-a").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitCA("team-a")
	if got.ResourceVersion == cm.ResourceVersion {
		t.Fatal(fmt.Sprint("not rewritten: ", got.Data))
	}
}
