package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	schemaFor := func() *apiextensionsv1.CustomResourceValidation {
		return &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
			Type: "object",
			Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"spec": {Type: "object", Required: []string{"size"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"size":     {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"small"`)}, {Raw: []byte(`"large"`)}}},
					"replicas": {Type: "integer", Minimum: new(float64(0)), Default: &apiextensionsv1.JSON{Raw: []byte("1")}},
					"labels":   {Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
					"extra":    {Type: "object", XPreserveUnknownFields: new(true)},
				}},
				"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"replicas": {Type: "integer"},
					"selector": {Type: "string"},
				}},
			},
		}}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.skiff.sh"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.skiff.sh", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Kind: "Widget", ShortNames: []string{"wg"}, Categories: []string{"all"}},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
				{Name: "v1", Served: true, Storage: true, Schema: schemaFor(),
					Subresources: &apiextensionsv1.CustomResourceSubresources{
						Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
						Scale: &apiextensionsv1.CustomResourceSubresourceScale{SpecReplicasPath: ".spec.replicas",
							StatusReplicasPath: ".status.replicas", LabelSelectorPath: new(".status.selector")},
					},
					AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
						{Name: "Size", Type: "string", JSONPath: ".spec.size"},
						{Name: "Replicas", Type: "integer", JSONPath: ".spec.replicas"},
					}},
				{Name: "v1beta1", Served: true, Schema: schemaFor()},
			},
		},
	}
}

func widget(name, version string, spec map[string]interface{}) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "example.skiff.sh/" + version, "kind": "Widget",
		"metadata": map[string]interface{}{"name": name}, "spec": spec,
	}}
}

// CustomResourceDefinitions as Kubernetes serves them: the definition is accepted and
// established, its versions appear in discovery and serve objects pruned, defaulted and
// validated by the schema (unknown fields refused under strict validation), with status and
// scale subresources, printer columns, watches, a second version over the same storage, and a
// clash of names refused; deleting the definition deletes its objects and stops serving them.
func TestCustomResourceDefinitions(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	ext := apiextensionsclient.NewForConfigOrDie(c.Config)
	dyn := dynamic.NewForConfigOrDie(c.Config)
	crds := ext.ApiextensionsV1().CustomResourceDefinitions()

	bad := widgetCRD()
	bad.Name = "widgets.wrong.example"
	if _, err := crds.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "must be spec.names.plural") {
		t.Fatalf("misnamed definition: %v", err)
	}
	if _, err := crds.Create(ctx, widgetCRD(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var crd *apiextensionsv1.CustomResourceDefinition
	wlEventually(t, 10*time.Second, "definition established", func() (bool, string) {
		var err error
		crd, err = crds.Get(ctx, "widgets.example.skiff.sh", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		established := false
		for _, cond := range crd.Status.Conditions {
			established = established || cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue
		}
		return established, fmt.Sprintf("%+v", crd.Status)
	})
	if crd.Status.AcceptedNames.Kind != "Widget" || crd.Status.AcceptedNames.ListKind != "WidgetList" || crd.Status.AcceptedNames.Singular != "widget" ||
		len(crd.Status.StoredVersions) != 1 || crd.Status.StoredVersions[0] != "v1" || len(crd.Finalizers) != 1 {
		t.Fatalf("definition: %+v finalizers %v", crd.Status, crd.Finalizers)
	}

	dc := discovery.NewDiscoveryClientForConfigOrDie(c.Config)
	rl, err := dc.ServerResourcesForGroupVersion("example.skiff.sh/v1")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range rl.APIResources {
		names[r.Name] = true
		if r.Name == "widgets" && (!r.Namespaced || r.Kind != "Widget" || strings.Join(r.ShortNames, ",") != "wg") {
			t.Fatalf("discovery: %+v", r)
		}
	}
	if !names["widgets"] || !names["widgets/status"] || !names["widgets/scale"] {
		t.Fatalf("discovery: %v", names)
	}

	gvr := schema.GroupVersionResource{Group: "example.skiff.sh", Version: "v1", Resource: "widgets"}
	w := dyn.Resource(gvr).Namespace("default")
	watcher, err := w.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()

	// Pruned and defaulted; unknown fields refused with strict validation.
	obj := widget("w1", "v1", map[string]interface{}{"size": "small", "color": "red",
		"labels": map[string]interface{}{"a": "b"}, "extra": map[string]interface{}{"anything": true}})
	obj.Object["status"] = map[string]interface{}{"replicas": int64(7)}
	if _, err := w.Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict"}); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.color"`) {
		t.Fatalf("strict create: %v", err)
	}
	got, err := w.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedString(got.Object, "spec", "color"); found {
		t.Fatalf("unknown field kept: %v", got.Object["spec"])
	}
	if n, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); n != 1 {
		t.Fatalf("default replicas: %v", got.Object["spec"])
	}
	if v, _, _ := unstructured.NestedBool(got.Object, "spec", "extra", "anything"); !v {
		t.Fatalf("preserved field lost: %v", got.Object["spec"])
	}
	if _, found := got.Object["status"]; found || got.GetGeneration() != 1 || got.GetUID() == "" {
		t.Fatalf("status on create or metadata: %v", got.Object)
	}
	select {
	case ev := <-watcher.ResultChan():
		if ev.Type != watch.Added || ev.Object.(*unstructured.Unstructured).GetName() != "w1" {
			t.Fatalf("watch: %v %v", ev.Type, ev.Object)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event")
	}

	// Schema validation.
	for _, tc := range []struct {
		spec map[string]interface{}
		want string
	}{
		{map[string]interface{}{}, "spec.size: Required value"},
		{map[string]interface{}{"size": "huge"}, `spec.size: Unsupported value: "huge": supported values: "small", "large"`},
		{map[string]interface{}{"size": "small", "replicas": "x"}, "spec.replicas in body must be of type integer"},
		{map[string]interface{}{"size": "small", "replicas": int64(-1)}, "spec.replicas in body should be greater than or equal to 0"},
	} {
		_, err := w.Create(ctx, widget("bad", "v1", tc.spec), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("spec %v: %v, want %q", tc.spec, err, tc.want)
		}
	}

	// Status: the main endpoint ignores it, /status changes nothing else; generation follows spec.
	got.Object["status"] = map[string]interface{}{"replicas": int64(3)}
	got.Object["spec"].(map[string]interface{})["size"] = "large"
	got, err = w.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil || got.GetGeneration() != 2 || got.Object["status"] != nil {
		t.Fatalf("update: %v gen %d status %v", err, got.GetGeneration(), got.Object["status"])
	}
	st, err := w.Patch(ctx, "w1", types.MergePatchType, []byte(`{"spec":{"size":"small"},"status":{"replicas":3,"selector":"app=w1"}}`), metav1.PatchOptions{}, "status")
	if err != nil || st.Object["spec"].(map[string]interface{})["size"] != "large" || st.GetGeneration() != 2 {
		t.Fatalf("status patch: %v %v", err, st)
	}
	if _, err := w.Patch(ctx, "w1", types.StrategicMergePatchType, []byte(`{"spec":{"size":"small"}}`), metav1.PatchOptions{}); !apierrors.IsUnsupportedMediaType(err) {
		t.Fatalf("strategic merge patch of a custom resource: %v", err)
	}

	// Scale.
	scale, err := w.Get(ctx, "w1", metav1.GetOptions{}, "scale")
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(scale.Object, "spec", "replicas"); r != 1 {
		t.Fatalf("scale: %v", scale.Object)
	}
	if s, _, _ := unstructured.NestedString(scale.Object, "status", "selector"); s != "app=w1" {
		t.Fatalf("scale selector: %v", scale.Object)
	}
	if _, err := w.Patch(ctx, "w1", types.MergePatchType, []byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	if got, _ = w.Get(ctx, "w1", metav1.GetOptions{}); got.Object["spec"].(map[string]interface{})["replicas"] != int64(4) {
		t.Fatalf("scaled: %v", got.Object["spec"])
	}

	// Printer columns in the server-side table.
	var table metav1.Table
	raw, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/apis/example.skiff.sh/v1/namespaces/default/widgets").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, col := range table.ColumnDefinitions {
		cols = append(cols, col.Name)
	}
	if strings.Join(cols, ",") != "Name,Size,Replicas" || len(table.Rows) != 1 || fmt.Sprint(table.Rows[0].Cells) != "[w1 large 4]" {
		t.Fatalf("table: %v %v", cols, table.Rows)
	}

	// The second version shows the same objects.
	beta := dyn.Resource(schema.GroupVersionResource{Group: "example.skiff.sh", Version: "v1beta1", Resource: "widgets"}).Namespace("default")
	b, err := beta.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil || b.GetAPIVersion() != "example.skiff.sh/v1beta1" || b.Object["spec"].(map[string]interface{})["size"] != "large" {
		t.Fatalf("v1beta1 view: %v %v", err, b)
	}
	if _, err := beta.Create(ctx, widget("w2", "v1beta1", map[string]interface{}{"size": "small"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w2, err := w.Get(ctx, "w2", metav1.GetOptions{}); err != nil || w2.GetAPIVersion() != "example.skiff.sh/v1" {
		t.Fatalf("created as v1beta1, read as v1: %v %v", err, w2)
	}

	// A definition whose kind is taken in the group is not accepted.
	clash := widgetCRD()
	clash.Name = "gadgets.example.skiff.sh"
	clash.Spec.Names.Plural = "gadgets"
	clash.Spec.Names.ShortNames = nil
	if _, err := crds.Create(ctx, clash, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 10*time.Second, "clash refused", func() (bool, string) {
		d, err := crds.Get(ctx, "gadgets.example.skiff.sh", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, cond := range d.Status.Conditions {
			if cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", d.Status)
	})
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "example.skiff.sh", Version: "v1", Resource: "gadgets"}).Namespace("default").
		List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("clashing definition served: %v", err)
	}

	// Deleting the definition deletes its objects, then the definition.
	if err := crds.Delete(ctx, "widgets.example.skiff.sh", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 15*time.Second, "definition gone", func() (bool, string) {
		_, err := crds.Get(ctx, "widgets.example.skiff.sh", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if _, err := w.List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("resources still served: %v", err)
	}
	if keys, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/apis/example.skiff.sh/v1beta1").DoRaw(ctx); err == nil && strings.Contains(string(keys), `"widgets"`) {
		t.Fatalf("discovery still lists widgets: %s", keys)
	}
	// The names are free again: the definition refused for them is served now.
	gadgets := dyn.Resource(schema.GroupVersionResource{Group: "example.skiff.sh", Version: "v1", Resource: "gadgets"}).Namespace("default")
	wlEventually(t, 10*time.Second, "refused definition served once the names are free", func() (bool, string) {
		_, err := gadgets.List(ctx, metav1.ListOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if err := crds.Delete(ctx, "gadgets.example.skiff.sh", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 15*time.Second, "gadgets gone", func() (bool, string) {
		_, err := crds.Get(ctx, "gadgets.example.skiff.sh", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	// Created again, it starts empty.
	if _, err := crds.Create(ctx, widgetCRD(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 10*time.Second, "served again", func() (bool, string) {
		l, err := w.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(l.Items) == 0, fmt.Sprint(len(l.Items))
	})
}
