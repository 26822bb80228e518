package apps

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
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

var webLabels = map[string]string{"app": "web"}

func template() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27"}}},
	}
}

func minimalDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template(),
		},
	}
}

// errStrings renders errors as "type path: detail" for compact comparisons.
func errStrings(errs field.ErrorList) []string {
	out := []string{}
	for _, e := range errs {
		out = append(out, string(e.Type)+" "+e.Field+": "+e.Detail)
	}
	return out
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name     string
		resource string
		obj      runtime.Object
		want     runtime.Object
	}{{
		name:     "deployment",
		resource: "deployments",
		obj:      minimalDeployment(),
		want: func() runtime.Object {
			d := minimalDeployment()
			d.Spec.Replicas = new(int32(1))
			d.Spec.Strategy = appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: new(intstr.FromString("25%")),
					MaxSurge:       new(intstr.FromString("25%")),
				},
			}
			d.Spec.RevisionHistoryLimit = new(int32(10))
			d.Spec.ProgressDeadlineSeconds = new(int32(600))
			d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
			return d
		}(),
	}, {
		name:     "deployment with Recreate keeps rollingUpdate unset",
		resource: "deployments",
		obj: func() runtime.Object {
			d := minimalDeployment()
			d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
			d.Spec.Replicas = new(int32(3))
			return d
		}(),
		want: func() runtime.Object {
			d := minimalDeployment()
			d.Spec.Replicas = new(int32(3))
			d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
			d.Spec.RevisionHistoryLimit = new(int32(10))
			d.Spec.ProgressDeadlineSeconds = new(int32(600))
			d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
			return d
		}(),
	}, {
		name:     "statefulset",
		resource: "statefulsets",
		obj: &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
			Selector:             &metav1.LabelSelector{MatchLabels: webLabels},
			Template:             template(),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}},
		}},
		want: &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
			Replicas: new(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Template: func() corev1.PodTemplateSpec {
				t := template()
				t.Spec.RestartPolicy = corev1.RestartPolicyAlways
				return t
			}(),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec:       corev1.PersistentVolumeClaimSpec{VolumeMode: new(corev1.PersistentVolumeFilesystem)},
				Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
			}},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{
					Partition:      new(int32(0)),
					MaxUnavailable: new(intstr.FromInt32(1)),
				},
			},
			RevisionHistoryLimit: new(int32(10)),
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
		}},
	}, {
		name:     "daemonset",
		resource: "daemonsets",
		obj: &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Template: template(),
		}},
		want: &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Template: func() corev1.PodTemplateSpec {
				t := template()
				t.Spec.RestartPolicy = corev1.RestartPolicyAlways
				return t
			}(),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{
					MaxUnavailable: new(intstr.FromInt32(1)),
					MaxSurge:       new(intstr.FromInt32(0)),
				},
			},
			RevisionHistoryLimit: new(int32(10)),
		}},
	}, {
		name:     "replicaset",
		resource: "replicasets",
		obj:      &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: webLabels}, Template: template()}},
		want: &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{
			Replicas: new(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Template: func() corev1.PodTemplateSpec {
				t := template()
				t.Spec.RestartPolicy = corev1.RestartPolicyAlways
				return t
			}(),
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resource(t, tt.resource)
			r.Default(tt.obj)
			if !reflect.DeepEqual(tt.obj, tt.want) {
				t.Errorf("defaulted:\n%#v\nwant:\n%#v", tt.obj, tt.want)
			}
			if errs := r.Validate(tt.obj); len(errs) != 0 {
				t.Errorf("defaulted object does not validate: %v", errs)
			}
		})
	}
}

func TestValidateDeployment(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*appsv1.Deployment)
		want   []string
	}{{
		name:   "valid",
		mutate: func(*appsv1.Deployment) {},
		want:   []string{},
	}, {
		name: "selector does not match template labels",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchLabels = map[string]string{"app": "api"}
		},
		want: []string{"FieldValueInvalid spec.template.metadata.labels: `selector` does not match template `labels`"},
	}, {
		name: "selector missing",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Selector = nil
		},
		want: []string{
			"FieldValueRequired spec.selector: ",
			"FieldValueInvalid spec.template.metadata.labels: `selector` does not match template `labels`",
		},
	}, {
		name: "empty selector",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{}
		},
		want: []string{"FieldValueInvalid spec.selector: empty selector is invalid for deployment"},
	}, {
		name: "maxSurge and maxUnavailable both 0",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = new(intstr.FromInt32(0))
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = new(intstr.FromString("0%"))
		},
		want: []string{"FieldValueInvalid spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when `maxSurge` is 0"},
	}, {
		name: "maxUnavailable over 100%",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = new(intstr.FromString("150%"))
		},
		want: []string{"FieldValueInvalid spec.strategy.rollingUpdate.maxUnavailable: must not be greater than 100%"},
	}, {
		name: "bad percentage",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = new(intstr.FromString("abc"))
		},
		want: []string{`FieldValueInvalid spec.strategy.rollingUpdate.maxSurge: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')`},
	}, {
		name: "Recreate with rollingUpdate",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
		},
		want: []string{"FieldValueForbidden spec.strategy.rollingUpdate: may not be specified when strategy `type` is 'Recreate'"},
	}, {
		name: "negative counts",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Replicas = new(int32(-1))
			d.Spec.RevisionHistoryLimit = new(int32(-2))
		},
		want: []string{
			"FieldValueInvalid spec.replicas: must be greater than or equal to 0",
			"FieldValueInvalid spec.revisionHistoryLimit: must be greater than or equal to 0",
		},
	}, {
		name: "progress deadline not above minReadySeconds",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.MinReadySeconds = 600
		},
		want: []string{"FieldValueInvalid spec.progressDeadlineSeconds: must be greater than minReadySeconds"},
	}, {
		name: "restartPolicy must be Always",
		mutate: func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			d.Spec.Template.Spec.ActiveDeadlineSeconds = new(int64(5))
		},
		want: []string{
			`FieldValueNotSupported spec.template.spec.restartPolicy: supported values: "Always"`,
			"FieldValueForbidden spec.template.spec.activeDeadlineSeconds: activeDeadlineSeconds in ReplicaSet is not Supported",
		},
	}}
	r := resource(t, "deployments")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := minimalDeployment()
			r.Default(d)
			tt.mutate(d)
			got := errStrings(r.Validate(d))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	tests := []struct {
		name     string
		resource string
		old, obj runtime.Object
		want     []string
	}{{
		name:     "deployment selector is immutable",
		resource: "deployments",
		old:      minimalDeployment(),
		obj: func() runtime.Object {
			d := minimalDeployment()
			d.Spec.Selector.MatchLabels["tier"] = "front"
			return d
		}(),
		want: []string{"FieldValueInvalid spec.selector: field is immutable"},
	}, {
		name:     "deployment replicas may change",
		resource: "deployments",
		old:      minimalDeployment(),
		obj: func() runtime.Object {
			d := minimalDeployment()
			d.Spec.Replicas = new(int32(5))
			return d
		}(),
		want: []string{},
	}, {
		name:     "statefulset serviceName may not change",
		resource: "statefulsets",
		old:      &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{ServiceName: "a"}},
		obj:      &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{ServiceName: "b", Replicas: new(int32(3))}},
		want: []string{"FieldValueForbidden spec: updates to statefulset spec for fields other than 'replicas', 'ordinals', " +
			"'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"},
	}, {
		name:     "statefulset replicas and template may change",
		resource: "statefulsets",
		old:      &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{ServiceName: "a"}},
		obj:      &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{ServiceName: "a", Replicas: new(int32(3)), Template: template()}},
		want:     []string{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errStrings(resource(t, tt.resource).ValidateUpdate(tt.obj, tt.old))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestDaemonSetTemplateGeneration(t *testing.T) {
	r := resource(t, "daemonsets")
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: template()}, Status: appsv1.DaemonSetStatus{NumberReady: 3}}
	r.PrepareForCreate(ds)
	if got := ds.Annotations[appsv1.DeprecatedTemplateGeneration]; got != "1" || ds.Status.NumberReady != 0 {
		t.Fatalf("after create: annotation %q, status %+v", got, ds.Status)
	}
	old := ds.DeepCopy()
	old.Status.NumberReady = 2
	upd := ds.DeepCopy()
	upd.Spec.Template.Spec.Containers[0].Image = "nginx:2"
	r.PrepareForUpdate(upd, old)
	if got := upd.Annotations[appsv1.DeprecatedTemplateGeneration]; got != "2" || upd.Status.NumberReady != 2 {
		t.Fatalf("after template update: annotation %q, status %+v", got, upd.Status)
	}
	same := old.DeepCopy()
	delete(same.Annotations, appsv1.DeprecatedTemplateGeneration)
	r.PrepareForUpdate(same, old)
	if got := same.Annotations[appsv1.DeprecatedTemplateGeneration]; got != "1" {
		t.Fatalf("after other update: annotation %q", got)
	}
}

func TestValidateDaemonSetStrategy(t *testing.T) {
	tests := []struct {
		name                     string
		maxUnavailable, maxSurge intstr.IntOrString
		want                     []string
	}{
		{"default", intstr.FromInt32(1), intstr.FromInt32(0), []string{}},
		{"surge only", intstr.FromInt32(0), intstr.FromString("10%"), []string{}},
		{"both", intstr.FromInt32(1), intstr.FromInt32(1), []string{"FieldValueInvalid spec.updateStrategy.rollingUpdate.maxSurge: may not be set when maxUnavailable is non-zero"}},
		{"neither", intstr.FromInt32(0), intstr.FromInt32(0), []string{"FieldValueRequired spec.updateStrategy.rollingUpdate.maxUnavailable: cannot be 0 when maxSurge is 0"}},
	}
	r := resource(t, "daemonsets")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: webLabels},
				Template: template(),
				UpdateStrategy: appsv1.DaemonSetUpdateStrategy{RollingUpdate: &appsv1.RollingUpdateDaemonSet{
					MaxUnavailable: &tt.maxUnavailable, MaxSurge: &tt.maxSurge,
				}},
			}}
			r.Default(ds)
			if got := errStrings(r.Validate(ds)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestRows(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	created := metav1.NewTime(now.Add(-5 * time.Minute))
	d := minimalDeployment()
	d.CreationTimestamp = created
	d.Spec.Replicas = new(int32(3))
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar", Image: "envoy:1"})
	d.Status = appsv1.DeploymentStatus{Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2}

	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", CreationTimestamp: created},
		Spec:   appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: webLabels}, Template: template()},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, CurrentNumberScheduled: 2, NumberReady: 1, UpdatedNumberScheduled: 2, NumberAvailable: 1}}
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}

	isController := true
	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "db-7b9f", CreationTimestamp: created,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: &isController}}},
		Revision: 2}

	tests := []struct {
		name     string
		resource string
		obj      runtime.Object
		want     []interface{}
	}{
		{"deployment", "deployments", d, []interface{}{"web", "2/3", int64(3), int64(2), "5m", "nginx,sidecar", "nginx:1.27,envoy:1", "app=web"}},
		{"replicaset", "replicasets", &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d4", CreationTimestamp: created},
			Spec:   appsv1.ReplicaSetSpec{Replicas: new(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: webLabels}, Template: template()},
			Status: appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 1}},
			[]interface{}{"web-5d4", int64(2), int64(2), int64(1), "5m", "nginx", "nginx:1.27", "app=web"}},
		{"statefulset", "statefulsets", &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", CreationTimestamp: created},
			Spec: appsv1.StatefulSetSpec{Replicas: new(int32(3)), Template: template()}, Status: appsv1.StatefulSetStatus{ReadyReplicas: 3}},
			[]interface{}{"db", "3/3", "5m", "nginx", "nginx:1.27"}},
		{"daemonset", "daemonsets", ds, []interface{}{"agent", int64(2), int64(2), int64(1), int64(2), int64(1), "kubernetes.io/os=linux", "5m", "nginx", "nginx:1.27", "app=web"}},
		{"controllerrevision", "controllerrevisions", cr, []interface{}{"db-7b9f", "statefulset.apps/db", int64(2), "5m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resource(t, tt.resource)
			got := r.Row(tt.obj, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("row %#v\nwant %#v", got, tt.want)
			}
			if len(got) != len(r.Columns) {
				t.Errorf("%d cells for %d columns", len(got), len(r.Columns))
			}
		})
	}
}

func TestScaleAndFields(t *testing.T) {
	d := minimalDeployment()
	r := resource(t, "deployments")
	r.Scale.SetSpecReplicas(d, 4)
	if got := r.Scale.SpecReplicas(d); got != 4 {
		t.Errorf("spec replicas %d", got)
	}
	if got := r.Scale.Selector(d); got != "app=web" {
		t.Errorf("selector %q", got)
	}
	rs := &appsv1.ReplicaSet{Status: appsv1.ReplicaSetStatus{Replicas: 7}}
	if got := resource(t, "replicasets").Fields(rs)["status.replicas"]; got != "7" {
		t.Errorf("status.replicas field %q", got)
	}
}
