package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func deployApply(replicas int32, labels map[string]string) *appsv1ac.DeploymentApplyConfiguration {
	return appsv1ac.Deployment("web", "default").WithLabels(labels).
		WithSpec(appsv1ac.DeploymentSpec().WithReplicas(replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": "web"})).
			WithTemplate(corev1ac.PodTemplateSpec().WithLabels(map[string]string{"app": "web"}).
				WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("web").WithImage("skiff.local/web:v1")))))
}

// Server-side apply through client-go's typed Apply: creates, records ownership, merges
// by list keys, removes what a manager stops applying, conflicts with other managers
// unless forced, and refuses bad requests without changing anything.
func TestServerSideApply(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	deps := c.Client.AppsV1().Deployments("default")

	d, err := deps.Apply(ctx, deployApply(2, map[string]string{"app": "web", "tier": "front"}), metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 || d.Spec.Strategy.Type != "RollingUpdate" || d.UID == "" || len(d.ManagedFields) != 1 ||
		d.ManagedFields[0].Manager != "alice" || d.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("created by apply: replicas %d strategy %q managedFields %+v", *d.Spec.Replicas, d.Spec.Strategy.Type, d.ManagedFields)
	}

	// Another manager changes replicas with an ordinary update: its ownership is recorded.
	d.Spec.Replicas = new(int32(5))
	if d, err = deps.Update(ctx, d, metav1.UpdateOptions{FieldManager: "bob"}); err != nil {
		t.Fatal(err)
	}
	managers := map[string]bool{}
	for _, m := range d.ManagedFields {
		managers[m.Manager+"/"+string(m.Operation)] = true
	}
	if !managers["alice/Apply"] || !managers["bob/Update"] {
		t.Fatalf("managers after bob's update: %v", managers)
	}

	// alice applying a different replicas conflicts with bob, and changes nothing.
	_, err = deps.Apply(ctx, deployApply(3, map[string]string{"app": "web", "tier": "front"}), metav1.ApplyOptions{FieldManager: "alice"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `conflict with "bob"`) || !strings.Contains(err.Error(), ".spec.replicas") {
		t.Fatalf("conflicting apply: %v", err)
	}
	if got, _ := deps.Get(ctx, "web", metav1.GetOptions{}); *got.Spec.Replicas != 5 {
		t.Fatalf("conflicting apply changed replicas to %d", *got.Spec.Replicas)
	}
	// Forced, alice takes replicas over; dropping a label she applied removes it.
	d, err = deps.Apply(ctx, deployApply(3, map[string]string{"app": "web"}), metav1.ApplyOptions{FieldManager: "alice", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 3 || d.Labels["tier"] != "" || d.Labels["app"] != "web" {
		t.Fatalf("forced apply: replicas %d labels %v", *d.Spec.Replicas, d.Labels)
	}

	// Lists merge by key: a second manager adds an env var to the same container.
	settings := corev1ac.ConfigMap("settings", "default").WithData(map[string]string{"a": "1"})
	if _, err := c.Client.CoreV1().ConfigMaps("default").Apply(ctx, settings, metav1.ApplyOptions{FieldManager: "alice"}); err != nil {
		t.Fatal(err)
	}
	more := corev1ac.ConfigMap("settings", "default").WithData(map[string]string{"b": "2"})
	got, err := c.Client.CoreV1().ConfigMaps("default").Apply(ctx, more, metav1.ApplyOptions{FieldManager: "carol"})
	if err != nil || got.Data["a"] != "1" || got.Data["b"] != "2" {
		t.Fatalf("two managers' data: %v %v", err, got.Data)
	}
	sidecar := appsv1ac.Deployment("web", "default").WithSpec(appsv1ac.DeploymentSpec().
		WithTemplate(corev1ac.PodTemplateSpec().WithSpec(corev1ac.PodSpec().WithContainers(
			corev1ac.Container().WithName("web").WithEnv(corev1ac.EnvVar().WithName("MODE").WithValue("fast"))))))
	d, err = deps.Apply(ctx, sidecar, metav1.ApplyOptions{FieldManager: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if cs := d.Spec.Template.Spec.Containers; len(cs) != 1 || cs[0].Image != "skiff.local/web:v1" || len(cs[0].Env) != 1 {
		t.Fatalf("merged containers: %+v", cs)
	}

	// A Service applied gets its cluster IP like a created one.
	svc := corev1ac.Service("web", "default").WithSpec(corev1ac.ServiceSpec().WithSelector(map[string]string{"app": "web"}).
		WithPorts(corev1ac.ServicePort().WithPort(80)))
	s, err := c.Client.CoreV1().Services("default").Apply(ctx, svc, metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil || s.Spec.ClusterIP == "" || s.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Fatalf("applied service: %v %+v", err, s)
	}

	// Bad requests: no field manager, another object's name, a mismatched kind.
	raw := c.Client.AppsV1().RESTClient()
	for _, tc := range []struct {
		name, body, manager, want string
	}{
		{"no manager", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`, "", "fieldManager is required"},
		{"other name", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"db"}}`, "x", "does not match the name on the URL"},
		{"wrong kind", `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"web"}}`, "x", "does not match the expected kind"},
		{"not yaml", "a: [", "x", "error decoding YAML"},
	} {
		req := raw.Patch(types.ApplyPatchType).Namespace("default").Resource("deployments").Name("web").Body([]byte(tc.body))
		if tc.manager != "" {
			req = req.Param("fieldManager", tc.manager)
		}
		err := req.Do(ctx).Error()
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want BadRequest %q", tc.name, err, tc.want)
		}
	}
	if got, _ := deps.Get(ctx, "web", metav1.GetOptions{}); *got.Spec.Replicas != 3 {
		t.Errorf("bad requests changed the deployment: replicas %d", *got.Spec.Replicas)
	}
	// Objects never applied keep no managedFields (and cost nothing to track).
	plain, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm("plain"), metav1.CreateOptions{})
	if err != nil || len(plain.ManagedFields) != 0 {
		t.Fatalf("plain create: %v %+v", err, plain.ManagedFields)
	}
}
