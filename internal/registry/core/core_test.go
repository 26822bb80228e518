package core

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestDiscoveryFacts(t *testing.T) {
	type facts struct {
		kind       string
		namespaced bool
		short      string
		hasStatus  bool
		noGen      bool
		all        bool
	}
	want := map[string]facts{
		"namespaces":             {"Namespace", false, "ns", true, true, false},
		"pods":                   {"Pod", true, "po", true, false, true},
		"nodes":                  {"Node", false, "no", true, true, false},
		"services":               {"Service", true, "svc", true, true, true},
		"endpoints":              {"Endpoints", true, "ep", false, true, false},
		"configmaps":             {"ConfigMap", true, "cm", false, true, false},
		"secrets":                {"Secret", true, "", false, true, false},
		"serviceaccounts":        {"ServiceAccount", true, "sa", false, true, false},
		"events":                 {"Event", true, "ev", false, true, false},
		"persistentvolumes":      {"PersistentVolume", false, "pv", true, true, false},
		"persistentvolumeclaims": {"PersistentVolumeClaim", true, "pvc", true, true, false},
		"replicationcontrollers": {"ReplicationController", true, "rc", true, false, true},
		"limitranges":            {"LimitRange", true, "limits", false, true, false},
		"resourcequotas":         {"ResourceQuota", true, "quota", true, true, false},
		"podtemplates":           {"PodTemplate", true, "", false, false, false},
	}
	rs := Resources()
	if len(rs) != len(want) {
		t.Fatalf("%d resources, want %d", len(rs), len(want))
	}
	for _, r := range rs {
		w, ok := want[r.Resource]
		if !ok {
			t.Errorf("unexpected resource %s", r.Resource)
			continue
		}
		short := strings.Join(r.ShortNames, ",")
		all := len(r.Categories) == 1 && r.Categories[0] == "all"
		if r.Kind != w.kind || r.ListKind != w.kind+"List" || r.Namespaced != w.namespaced || short != w.short ||
			r.HasStatus != w.hasStatus || r.NoGeneration != w.noGen || all != w.all || r.Version != "v1" || r.Group != "" {
			t.Errorf("%s: facts = %+v", r.Resource, r)
		}
		if r.SingularName != strings.ToLower(r.Kind) {
			t.Errorf("%s: singular %q", r.Resource, r.SingularName)
		}
		if obj := r.New(); obj == nil || r.NewList() == nil {
			t.Errorf("%s: New", r.Resource)
		}
		if len(r.Columns) == 0 || r.Row == nil {
			t.Errorf("%s: no table", r.Resource)
			continue
		}
		if cells := r.Row(r.New(), time.Now()); len(cells) != len(r.Columns) {
			t.Errorf("%s: %d cells for %d columns", r.Resource, len(cells), len(r.Columns))
		}
	}
	if ns := resourceByName(t, "namespaces"); ns.Supports("deletecollection") {
		t.Errorf("namespaces do not support deletecollection")
	}
	if !resourceByName(t, "nodes").KeepStatusOnCreate {
		t.Errorf("nodes keep their status on create")
	}
}

func TestNamespaces(t *testing.T) {
	r := resourceByName(t, "namespaces")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	r.PrepareForCreate(ns)
	r.Default(ns)
	if ns.Status.Phase != corev1.NamespaceActive || len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != "kubernetes" ||
		ns.Labels["kubernetes.io/metadata.name"] != "team-a" {
		t.Errorf("namespace = %+v", ns)
	}
	expectErrors(t, r.Validate(ns))
	if len(r.ValidateName("team.a", false)) == 0 {
		t.Errorf("namespace names are DNS labels")
	}
	ns.Spec.Finalizers = append(ns.Spec.Finalizers, "custom")
	expectErrors(t, r.Validate(ns), `spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified`)
	if got := r.Row(ns, time.Now()); got[1] != "Active" {
		t.Errorf("row = %v", got)
	}
}

func TestConfigMapImmutable(t *testing.T) {
	r := resourceByName(t, "configmaps")
	old := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"a": "1"}, Immutable: boolPtr(true)}
	same := old.DeepCopy()
	expectErrors(t, r.ValidateUpdate(same, old))
	changed := old.DeepCopy()
	changed.Data["a"] = "2"
	changed.Immutable = nil
	expectErrors(t, r.ValidateUpdate(changed, old),
		"immutable: Forbidden: field is immutable when `immutable` is set",
		"data: Forbidden: field is immutable when `immutable` is set")

	bad := &corev1.ConfigMap{Data: map[string]string{"a b": "x", "k": strings.Repeat("x", corev1.MaxSecretSize+1)}}
	expectErrors(t, r.Validate(bad),
		`data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.'...`,
		"[]: Too long: may not be more than 1048576 bytes")
	if got := r.Row(&corev1.ConfigMap{Data: map[string]string{"a": ""}, BinaryData: map[string][]byte{"b": nil}}, time.Now()); got[1] != int64(2) {
		t.Errorf("row = %v", got)
	}
}

func TestSecrets(t *testing.T) {
	r := resourceByName(t, "secrets")
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"user": "admin"}}
	r.Default(s)
	if s.Type != corev1.SecretTypeOpaque || string(s.Data["user"]) != "admin" || s.StringData != nil {
		t.Errorf("secret defaults = %+v", s)
	}
	tls := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("x")}}
	expectErrors(t, r.Validate(tls), "data[tls.key]: Required value")
	sat := &corev1.Secret{Type: corev1.SecretTypeServiceAccountToken}
	expectErrors(t, r.Validate(sat), "metadata.annotations[kubernetes.io/service-account.name]: Required value")
	dcj := &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{".dockerconfigjson": []byte("{")}}
	expectErrors(t, r.Validate(dcj), `data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": ...`)

	retyped := s.DeepCopy()
	retyped.Type = corev1.SecretTypeBasicAuth
	retyped.Data["password"] = []byte("x")
	expectErrors(t, r.ValidateUpdate(retyped, s), `type: Invalid value: "kubernetes.io/basic-auth": field is immutable`)
	if f := r.Fields(s); f["type"] != "Opaque" {
		t.Errorf("fields = %v", f)
	}
	if got := r.Row(s, time.Now()); got[1] != "Opaque" || got[2] != int64(1) {
		t.Errorf("row = %v", got)
	}
}

func rcWithTemplate(labels map[string]string) *corev1.ReplicationController {
	return &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "rc", Namespace: "default"},
		Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1.27"}}},
		}},
	}
}

func TestReplicationControllers(t *testing.T) {
	r := resourceByName(t, "replicationcontrollers")
	rc := rcWithTemplate(map[string]string{"app": "x"})
	r.Default(rc)
	if *rc.Spec.Replicas != 1 || rc.Spec.Selector["app"] != "x" || rc.Labels["app"] != "x" {
		t.Errorf("rc defaults = %+v", rc)
	}
	tmpl := rc.Spec.Template.Spec
	if tmpl.RestartPolicy != corev1.RestartPolicyAlways || tmpl.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("template defaults = %+v", tmpl)
	}
	expectErrors(t, r.Validate(rc))
	if r.Scale.Selector(rc) != "app=x" || r.Scale.SpecReplicas(rc) != 1 {
		t.Errorf("scale = %q %d", r.Scale.Selector(rc), r.Scale.SpecReplicas(rc))
	}
	r.Scale.SetSpecReplicas(rc, 3)
	if *rc.Spec.Replicas != 3 {
		t.Errorf("scale set")
	}

	bad := rcWithTemplate(map[string]string{"app": "y"})
	bad.Spec.Selector = map[string]string{"app": "x"}
	bad.Spec.Replicas = int32Ptr(-1)
	bad.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	bad.Spec.Template.Spec.Containers[0].Image = ""
	r.Default(bad)
	expectErrors(t, r.Validate(bad),
		"spec.replicas: Invalid value: -1: must be greater than or equal to 0",
		"spec.template.metadata.labels: Invalid value: {\"app\":\"y\"}: `selector` does not match template `labels`",
		`spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"`,
		"spec.template.spec.containers[0].image: Required value")
	noSel := &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Replicas: int32Ptr(1)}}
	expectErrors(t, r.Validate(noSel), "spec.selector: Required value", "spec.template: Required value")

	rc.Status = corev1.ReplicationControllerStatus{Replicas: 3, ReadyReplicas: 2}
	got := r.Row(rc, time.Now())
	want := []interface{}{"rc", int64(3), int64(3), int64(2)}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("cell %d = %#v, want %#v", i, got[i], want[i])
		}
	}
	if got[5] != "c" || got[6] != "nginx:1.27" || got[7] != "app=x" {
		t.Errorf("wide cells = %v", got[5:])
	}
	if f := r.Fields(rc); f["status.replicas"] != "3" {
		t.Errorf("fields = %v", f)
	}
}

func TestPersistentVolumes(t *testing.T) {
	r := resourceByName(t, "persistentvolumes")
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadOnlyMany},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data"}},
			StorageClassName:       "standard",
		},
	}
	r.PrepareForCreate(pv)
	r.Default(pv)
	if pv.Status.Phase != corev1.VolumePending || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain ||
		*pv.Spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		t.Errorf("pv defaults = %+v", pv)
	}
	expectErrors(t, r.Validate(pv))
	row := r.Row(pv, time.Now())
	want := []interface{}{"pv1", "10Gi", "RWO,ROX", "Retain", "Pending", "", "standard", "<unset>", ""}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("cell %d = %#v, want %#v", i, row[i], want[i])
		}
	}
	empty := &corev1.PersistentVolume{}
	expectErrors(t, r.Validate(empty), "spec.accessModes: Required value", "spec.capacity: Required value",
		"spec: Required value: must specify a volume type")

	changed := pv.DeepCopy()
	changed.Spec.HostPath.Path = "/other"
	expectErrors(t, r.ValidateUpdate(changed, pv), "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation...")
}

func TestPersistentVolumeClaims(t *testing.T) {
	r := resourceByName(t, "persistentvolumeclaims")
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	r.PrepareForCreate(pvc)
	r.Default(pvc)
	if pvc.Status.Phase != corev1.ClaimPending || *pvc.Spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		t.Errorf("pvc defaults = %+v", pvc)
	}
	expectErrors(t, r.Validate(pvc))
	expectErrors(t, r.Validate(&corev1.PersistentVolumeClaim{}),
		"spec.accessModes: Required value: at least 1 access mode is required", "spec.resources[storage]: Required value")

	changed := pvc.DeepCopy()
	changed.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
	expectErrors(t, r.ValidateUpdate(changed, pvc),
		"spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims...")

	// An unbound claim without a class may get one (retroactive default class); a bound one
	// or one that has a class may not change it.
	classed := pvc.DeepCopy()
	local := "local-path"
	classed.Spec.StorageClassName = &local
	expectErrors(t, r.ValidateUpdate(classed, pvc))
	other := "other"
	reclassed := classed.DeepCopy()
	reclassed.Spec.StorageClassName = &other
	expectErrors(t, r.ValidateUpdate(reclassed, classed),
		"spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims...")
	boundNoClass := pvc.DeepCopy()
	boundNoClass.Spec.VolumeName = "pv0"
	boundClassed := boundNoClass.DeepCopy()
	boundClassed.Spec.StorageClassName = &local
	expectErrors(t, r.ValidateUpdate(boundClassed, boundNoClass),
		"spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims...")

	// A bound claim may grow.
	bound := pvc.DeepCopy()
	bound.Spec.VolumeName = "pv1"
	bound.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: bound.Spec.AccessModes,
		Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}
	grown := bound.DeepCopy()
	grown.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
	expectErrors(t, r.ValidateUpdate(grown, bound))

	row := r.Row(bound, time.Now())
	want := []interface{}{"data", "Bound", "pv1", "1Gi", "RWO", "", "<unset>"}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("cell %d = %#v, want %#v", i, row[i], want[i])
		}
	}
}

func TestNodes(t *testing.T) {
	r := resourceByName(t, "nodes")
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{
			"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""}},
		Spec: corev1.NodeSpec{Unschedulable: true, PodCIDR: "10.244.0.0/24"},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Debian"},
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
		},
	}
	r.Default(n)
	if len(n.Spec.PodCIDRs) != 1 || n.Status.Allocatable == nil {
		t.Errorf("node defaults = %+v", n)
	}
	expectErrors(t, r.Validate(n))
	row := r.Row(n, time.Now())
	want := []interface{}{"n1", "Ready,SchedulingDisabled", "control-plane,worker", "<unknown>", "v1.37.2",
		"192.168.1.10", "<none>", "Debian", "<unknown>", "<unknown>"}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("cell %d = %#v, want %#v", i, row[i], want[i])
		}
	}
	if got := r.Row(&corev1.Node{}, time.Now()); got[1] != "Unknown" || got[2] != "<none>" {
		t.Errorf("empty node row = %v", got)
	}

	n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: "Sometimes"}}
	expectErrors(t, r.Validate(n), `metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`)
	n.Spec.Taints = nil
	moved := n.DeepCopy()
	moved.Spec.PodCIDRs = []string{"10.245.0.0/24"}
	expectErrors(t, r.ValidateUpdate(moved, n), `spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid`)
	if f := r.Fields(n); f["spec.unschedulable"] != "true" {
		t.Errorf("fields = %v", f)
	}
}

func TestEvents(t *testing.T) {
	r := resourceByName(t, "events")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web.1", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", Namespace: "default", FieldPath: "spec.containers{c}"},
		Reason:         "Pulled", Message: "Pulled image \n", Type: "Normal", Count: 3,
		Source:         corev1.EventSource{Component: "kubelet", Host: "n1"},
		FirstTimestamp: metav1.NewTime(now.Add(-5 * time.Minute)),
		LastTimestamp:  metav1.NewTime(now.Add(-1 * time.Minute)),
	}
	expectErrors(t, r.Validate(ev))
	row := r.Row(ev, now)
	want := []interface{}{"60s", "Normal", "Pulled", "pod/web", "spec.containers{c}", "kubelet, n1", "Pulled image", "5m", int64(3), "web.1"}
	if c := r.Columns[len(r.Columns)-1]; c.Name != "Name" || c.Format != "name" || c.Priority != 1 {
		t.Errorf("the event name column is last and wide only: %+v", c)
	}
	for _, c := range r.Columns {
		if c.Priority == 0 && !map[string]bool{"Last Seen": true, "Type": true, "Reason": true, "Object": true, "Message": true}[c.Name] {
			t.Errorf("unexpected default column %s", c.Name)
		}
	}
	for i := range want {
		if row[i] != want[i] {
			t.Errorf("cell %d = %#v, want %#v", i, row[i], want[i])
		}
	}
	f := r.Fields(ev)
	if f["involvedObject.kind"] != "Pod" || f["involvedObject.name"] != "web" || f["source"] != "kubelet" || f["type"] != "Normal" {
		t.Errorf("fields = %v", f)
	}
	ev.InvolvedObject.Namespace = "other"
	expectErrors(t, r.Validate(ev), `involvedObject.namespace: Invalid value: "other": does not match event.namespace`)
}

func TestEndpoints(t *testing.T) {
	r := resourceByName(t, "endpoints")
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}, {IP: "10.0.0.3"}, {IP: "10.0.0.4"}},
		Ports:     []corev1.EndpointPort{{Port: 80}},
	}}}
	r.Default(ep)
	if ep.Subsets[0].Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("protocol not defaulted")
	}
	expectErrors(t, r.Validate(ep))
	if got := r.Row(ep, time.Now())[1]; got != "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..." {
		t.Errorf("endpoints cell = %v", got)
	}
	if got := r.Row(&corev1.Endpoints{}, time.Now())[1]; got != "<none>" {
		t.Errorf("empty endpoints cell = %v", got)
	}
	bad := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "nope"}}}, {}}}
	expectErrors(t, r.Validate(bad), `subsets[0].addresses[0].ip: Invalid value: "nope": ...`,
		"subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`")
}

func TestLimitRangesAndQuotas(t *testing.T) {
	lr := &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type: corev1.LimitTypeContainer,
		Max:  corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
		Min:  corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}}}}
	lrr := resourceByName(t, "limitranges")
	lrr.Default(lr)
	it := lr.Spec.Limits[0]
	if q := it.Default[corev1.ResourceCPU]; q.String() != "2" {
		t.Errorf("default = %v", it.Default)
	}
	if q := it.DefaultRequest[corev1.ResourceCPU]; q.String() != "2" {
		t.Errorf("defaultRequest cpu = %v", it.DefaultRequest)
	}
	if q := it.DefaultRequest[corev1.ResourceMemory]; q.String() != "64Mi" {
		t.Errorf("defaultRequest memory = %v", it.DefaultRequest)
	}
	expectErrors(t, lrr.Validate(lr))
	lr.Spec.Limits[0].Min[corev1.ResourceCPU] = resource.MustParse("3")
	expectErrors(t, lrr.Validate(lr), `spec.limits[0].min[cpu]: Invalid value: "3": min value 3 is greater than max value 2`)

	qr := resourceByName(t, "resourcequotas")
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
		"pods": resource.MustParse("10"), "limits.cpu": resource.MustParse("4"), "requests.cpu": resource.MustParse("2")}}}
	expectErrors(t, qr.Validate(q))
	q.Status = corev1.ResourceQuotaStatus{Hard: q.Spec.Hard, Used: corev1.ResourceList{"pods": resource.MustParse("1")}}
	row := qr.Row(q, time.Now())
	if row[2] != "pods: 1/10, requests.cpu: 0/2" || row[3] != "limits.cpu: 0/4" {
		t.Errorf("quota row = %v", row)
	}
	bad := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
		"pods": resource.MustParse("1.5"), "widgets": resource.MustParse("1")}}}
	expectErrors(t, qr.Validate(bad), `spec.hard[pods]: Invalid value: "1500m": must be an integer`,
		`spec.hard[widgets]: Invalid value: "widgets": must be a standard resource for quota`)
}

func TestServiceAccountsRow(t *testing.T) {
	r := resourceByName(t, "serviceaccounts")
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Secrets: []corev1.ObjectReference{{Name: "x"}}}
	if row := r.Row(runtime.Object(sa), time.Now()); row[0] != "default" || row[1] != int64(1) {
		t.Errorf("row = %v", row)
	}
}

func TestPodTemplate(t *testing.T) {
	r := podTemplates()
	pt := &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: "tpl"}, Template: corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "busybox"}, {Name: "b", Image: "web:v1"}}}}}
	r.Default(pt)
	if pt.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways || pt.Template.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways {
		t.Errorf("template defaults not applied: %+v", pt.Template.Spec)
	}
	if errs := r.Validate(pt); len(errs) != 0 {
		t.Errorf("valid template: %v", errs)
	}
	row := r.Row(pt, time.Now())
	if row[1] != "a,b" || row[2] != "busybox,web:v1" || row[3] != "app=x" {
		t.Errorf("row %v", row)
	}
	pt.Template.Spec.Containers = nil
	if errs := r.Validate(pt); len(errs) == 0 || errs[0].Field != "template.spec.containers" {
		t.Errorf("template without containers: %v", errs)
	}
}
