package rbac

import (
	"reflect"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func resource(t *testing.T, name string) *registry.Resource {
	t.Helper()
	for _, r := range Resources() {
		if r.Resource == name {
			return r
		}
	}
	t.Fatalf("no resource %q", name)
	return nil
}

func errStrings(errs field.ErrorList) []string {
	out := []string{}
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		resource string
		obj      runtime.Object
		want     []string
	}{
		{"role", "roles", &rbacv1.Role{Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, []string{}},
		{"role without verbs or resources", "roles", &rbacv1.Role{Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}}}}, []string{
			"rules[0].verbs: Required value: verbs must contain at least one value",
			"rules[0].resources: Required value: resource rules must supply at least one resource",
		}},
		{"role with urls", "roles", &rbacv1.Role{Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}}}, []string{
			`rules[0].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs`,
		}},
		{"clusterrole with urls", "clusterroles", &rbacv1.ClusterRole{Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}}}, []string{}},
		{"clusterrole empty aggregation", "clusterroles", &rbacv1.ClusterRole{AggregationRule: &rbacv1.AggregationRule{}}, []string{
			"aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil",
		}},
		{"binding", "rolebindings", &rbacv1.RoleBinding{
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default"}, {Kind: "User", APIGroup: rbacv1.GroupName, Name: "jane"}},
		}, []string{}},
		{"clusterrolebinding to a role", "clusterrolebindings", &rbacv1.ClusterRoleBinding{
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default"}, {Kind: "Robot", Name: "r2"}},
		}, []string{
			`roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"`,
			"subjects[0].namespace: Required value",
			`subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"`,
		}},
		{"binding with bad role name", "rolebindings", &rbacv1.RoleBinding{RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "a/b"}},
			[]string{`roleRef.name: Invalid value: "a/b": may not contain '/'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resource(t, tt.resource)
			if r.Default != nil {
				r.Default(tt.obj)
			}
			if got := errStrings(r.Validate(tt.obj)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestBindings(t *testing.T) {
	r := resource(t, "rolebindings")
	b := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "read", Namespace: "dev"},
		RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{
			{Kind: "User", Name: "jane"}, {Kind: "Group", Name: "devs"},
			{Kind: "ServiceAccount", Name: "ci", Namespace: "tools"}, {Kind: "ServiceAccount", Name: "default"},
		},
	}
	r.Default(b)
	if b.RoleRef.APIGroup != rbacv1.GroupName || b.Subjects[0].APIGroup != rbacv1.GroupName || b.Subjects[2].APIGroup != "" {
		t.Errorf("defaults %+v", b)
	}
	changed := b.DeepCopy()
	changed.RoleRef.Name = "edit"
	if got := errStrings(r.ValidateUpdate(changed, b)); len(got) != 1 || got[0] != `roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"edit"}: cannot change roleRef` {
		t.Errorf("update errors %q", got)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.CreationTimestamp = metav1.NewTime(now.Add(-40 * time.Second))
	want := []interface{}{"read", "ClusterRole/view", "40s", "jane", "devs", "tools:ci, default"}
	if got := r.Row(b, now); !reflect.DeepEqual(got, want) {
		t.Errorf("row %#v, want %#v", got, want)
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "view", CreationTimestamp: metav1.NewTime(time.Date(2025, 6, 1, 8, 30, 0, 0, time.UTC))}}
	if got := resource(t, "clusterroles").Row(role, now); !reflect.DeepEqual(got, []interface{}{"view", "2025-06-01T08:30:00Z"}) {
		t.Errorf("row %#v", got)
	}
	if msgs := resource(t, "roles").ValidateName("system:controller:foo", false); len(msgs) != 0 {
		t.Errorf("name rejected: %v", msgs)
	}
}
