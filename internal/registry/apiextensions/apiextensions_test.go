package apiextensions

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func valid() *apiextensionsv1.CustomResourceDefinition {
	schema := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object"}}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "crontabs.stable.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: "stable.example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names:    apiextensionsv1.CustomResourceDefinitionNames{Plural: "crontabs", Kind: "CronTab"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true, Schema: schema}}},
	}
}

func TestValidate(t *testing.T) {
	d := valid()
	Default(d)
	if errs := Validate(d); len(errs) != 0 {
		t.Fatalf("valid definition: %v", errs)
	}
	if d.Spec.Names.Singular != "crontab" || d.Spec.Names.ListKind != "CronTabList" || d.Spec.Conversion.Strategy != apiextensionsv1.NoneConverter {
		t.Fatalf("defaults: %+v %+v", d.Spec.Names, d.Spec.Conversion)
	}
	for name, tc := range map[string]struct {
		mutate func(*apiextensionsv1.CustomResourceDefinition)
		want   string
	}{
		"name":       {func(d *apiextensionsv1.CustomResourceDefinition) { d.Name = "x.stable.example.com" }, "metadata.name: Invalid value"},
		"group":      {func(d *apiextensionsv1.CustomResourceDefinition) { d.Spec.Group = "nodots"; d.Name = "crontabs.nodots" }, "should be a domain with at least one dot"},
		"scope":      {func(d *apiextensionsv1.CustomResourceDefinition) { d.Spec.Scope = "Global" }, `spec.scope: Unsupported value: "Global"`},
		"no storage": {func(d *apiextensionsv1.CustomResourceDefinition) { d.Spec.Versions[0].Storage = false }, "must have exactly one version marked as storage version"},
		"no schema":  {func(d *apiextensionsv1.CustomResourceDefinition) { d.Spec.Versions[0].Schema = nil }, "schemas are required"},
		"plural":     {func(d *apiextensionsv1.CustomResourceDefinition) { d.Spec.Names.Plural = "CronTabs" }, "spec.names.plural: Invalid value"},
		"column type": {func(d *apiextensionsv1.CustomResourceDefinition) {
			d.Spec.Versions[0].AdditionalPrinterColumns = []apiextensionsv1.CustomResourceColumnDefinition{{Name: "X", Type: "list", JSONPath: ".x"}}
		}, "additionalPrinterColumns[0].type: Unsupported value"},
		"webhook": {func(d *apiextensionsv1.CustomResourceDefinition) {
			d.Spec.Conversion.Strategy = apiextensionsv1.WebhookConverter
		}, "spec.conversion.strategy: Unsupported value"},
	} {
		d := valid()
		Default(d)
		tc.mutate(d)
		errs := Validate(d)
		if !strings.Contains(errs.ToAggregate().Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, errs, tc.want)
		}
	}
}
