package integration

import (
	"context"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// An Ingress created without a class gets the default IngressClass (the newest default when
// several claim it), as Kubernetes' DefaultIngressClass admission does; an explicit class or
// the legacy annotation is kept, and without a default nothing is set.
func TestDefaultIngressClassAdmission(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	ings := c.Client.NetworkingV1().Ingresses("default")
	mk := func(name string, class *string, annotations map[string]string) *networkingv1.Ingress {
		t.Helper()
		ing, err := ings.Create(ctx, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
			Spec: networkingv1.IngressSpec{IngressClassName: class, DefaultBackend: &networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ing
	}
	if ing := mk("before", nil, nil); ing.Spec.IngressClassName != nil {
		t.Fatalf("no default class yet, got %q", *ing.Spec.IngressClassName)
	}
	for _, name := range []string{"first", "second"} {
		_, err := c.Client.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}},
			Spec:       networkingv1.IngressClassSpec{Controller: "example.com/" + name},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Creation timestamps have second resolution: equal ones fall back to the name order,
	// so "first" wins a tie and "second" wins when it is newer. Either is a default.
	ing := mk("after", nil, nil)
	if ing.Spec.IngressClassName == nil || (*ing.Spec.IngressClassName != "first" && *ing.Spec.IngressClassName != "second") {
		t.Fatalf("default class not set: %v", ing.Spec.IngressClassName)
	}
	explicit := "other"
	if ing := mk("explicit", &explicit, nil); *ing.Spec.IngressClassName != "other" {
		t.Fatalf("explicit class replaced: %q", *ing.Spec.IngressClassName)
	}
	if ing := mk("legacy", nil, map[string]string{"kubernetes.io/ingress.class": "nginx"}); ing.Spec.IngressClassName != nil {
		t.Fatalf("legacy annotation overridden with %q", *ing.Spec.IngressClassName)
	}
}
