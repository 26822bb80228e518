package openapi

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestFriendlyName(t *testing.T) {
	cases := map[string]string{
		"k8s.io/api/core/v1.Pod":                            "io.k8s.api.core.v1.Pod",
		"k8s.io/apimachinery/pkg/apis/meta/v1.ObjectMeta":   "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
		"k8s.io/apimachinery/pkg/util/intstr.IntOrString":   "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
		"sigs.k8s.io/structured-merge-diff/v6/value.Value":  "io.k8s.sigs.structured-merge-diff.v6.value.Value",
		"io.k8s.api.apps.v1.Deployment":                     "io.k8s.api.apps.v1.Deployment",
		"github.com/skiff-sh/skiff/internal/apis/v1.Gadget": "com.github.skiff-sh.skiff.internal.apis.v1.Gadget",
	}
	for in, want := range cases {
		if got := friendlyName(in); got != want {
			t.Errorf("friendlyName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModelNameForGVK(t *testing.T) {
	cases := map[schema.GroupVersionKind]string{
		{Version: "v1", Kind: "Pod"}:                                               "io.k8s.api.core.v1.Pod",
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}:          "io.k8s.api.rbac.v1.Role",
		{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscalerList"}: "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerList",
	}
	for gvk, want := range cases {
		got, err := modelNameForGVK(gvk)
		if err != nil || got != want {
			t.Errorf("modelNameForGVK(%s) = %q, %v; want %q", gvk, got, err, want)
		}
	}
}

func TestOperationNaming(t *testing.T) {
	cases := []struct {
		gv          schema.GroupVersion
		prefix, tag string
	}{
		{schema.GroupVersion{Version: "v1"}, "CoreV1", "core_v1"},
		{schema.GroupVersion{Group: "apps", Version: "v1"}, "AppsV1", "apps_v1"},
		{schema.GroupVersion{Group: "rbac.authorization.k8s.io", Version: "v1"}, "RbacAuthorizationV1", "rbacAuthorization_v1"},
		{schema.GroupVersion{Group: "autoscaling", Version: "v2"}, "AutoscalingV2", "autoscaling_v2"},
	}
	for _, tc := range cases {
		if got := opPrefix(tc.gv); got != tc.prefix {
			t.Errorf("opPrefix(%s) = %q, want %q", tc.gv, got, tc.prefix)
		}
		if got := opTag(tc.gv); got != tc.tag {
			t.Errorf("opTag(%s) = %q, want %q", tc.gv, got, tc.tag)
		}
	}
}

func TestNegotiate(t *testing.T) {
	offers := []string{"application/json", mediaProtoV2, mediaProtoV2Deprecate}
	cases := map[string]string{
		"":                    "application/json",
		"*/*":                 "application/json",
		"application/*":       "application/json",
		mediaProtoV2Deprecate: mediaProtoV2Deprecate,
		"application/json;q=0.9, " + mediaProtoV2: mediaProtoV2,
		"*/*;q=0.1, " + mediaProtoV2Deprecate:     mediaProtoV2Deprecate,
		"application/json;q=0":                    "",
		"text/html":                               "",
		"APPLICATION/JSON":                        "application/json",
	}
	for accept, want := range cases {
		if got := negotiate(accept, offers); got != want {
			t.Errorf("negotiate(%q) = %q, want %q", accept, got, want)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	cases := map[string]bool{
		"":                  false,
		"gzip":              true,
		"deflate, gzip;q=1": true,
		"gzip;q=0":          false,
		"br":                false,
		"*":                 true,
	}
	for h, want := range cases {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
}
