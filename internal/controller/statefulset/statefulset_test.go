package statefulset

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller/history"
)

func testSet(replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "set-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         "nginx",
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "img:v2"}}},
			},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(int32(0))}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "www", Labels: map[string]string{"tier": "data"}},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
			}},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.RetainPersistentVolumeClaimRetentionPolicyType},
		},
	}
}

// fixture is a round over a fake clientset; the update revision is the set's template (v2),
// the current one the same template at v1.
type fixture struct {
	client *fake.Clientset
	round  *round
}

func newFixture(t *testing.T, set *appsv1.StatefulSet, pods ...*corev1.Pod) *fixture {
	t.Helper()
	client := fake.NewSimpleClientset()
	for _, p := range pods {
		if _, err := client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	client.ClearActions()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	c := &Controller{client: client, claims: corelisters.NewPersistentVolumeClaimLister(idx),
		recorder: record.NewFakeRecorder(100), deleting: newDeletions(), now: time.Now}
	update := mustRevision(t, set, &set.Spec.Template, 2)
	oldTmpl := set.Spec.Template.DeepCopy()
	oldTmpl.Spec.Containers[0].Image = "img:v1"
	current := mustRevision(t, set, oldTmpl, 1)
	return &fixture{client: client, round: &round{c: c, set: set, current: current, update: update, currentTmpl: oldTmpl, now: time.Now()}}
}

func mustRevision(t *testing.T, set *appsv1.StatefulSet, tmpl *corev1.PodTemplateSpec, n int64) *appsv1.ControllerRevision {
	t.Helper()
	data, err := history.TemplatePatch(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return history.NewRevision(set, gvk, tmpl, data, n, nil)
}

// setPod is pod <ordinal> of testSet at revision rev ("current" or "update").
func (f *fixture) pod(ordinal int, rev string, healthy bool) *corev1.Pod {
	r := f.round.current
	tmpl := f.round.currentTmpl
	if rev == "update" {
		r, tmpl = f.round.update, &f.round.set.Spec.Template
	}
	p, err := newPod(f.round.set, tmpl, r.Name, ordinal)
	if err != nil {
		panic(err)
	}
	p.UID = types.UID(fmt.Sprintf("uid-%d", ordinal))
	p.Status.Phase = corev1.PodPending
	if healthy {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p
}

// run does one round over pods and returns "create pod/web-0", "create pvc/www-web-0",
// "delete pod/web-2" in call order.
func (f *fixture) run(t *testing.T, pods ...*corev1.Pod) []string {
	t.Helper()
	for _, p := range pods {
		_, _ = f.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	}
	f.client.ClearActions()
	if err := f.round.manage(context.Background(), pods); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range f.client.Actions() {
		switch a := a.(type) {
		case k8stesting.CreateAction:
			obj := a.GetObject().(metav1.Object)
			out = append(out, fmt.Sprintf("create %s/%s", short(a.GetResource().Resource), obj.GetName()))
		case k8stesting.DeleteAction:
			out = append(out, fmt.Sprintf("delete %s/%s", short(a.GetResource().Resource), a.GetName()))
		}
	}
	return out
}

func short(resource string) string {
	if resource == "persistentvolumeclaims" {
		return "pvc"
	}
	return "pod"
}

func TestOrderedReadyCreation(t *testing.T) {
	set := testSet(3)
	f := newFixture(t, set)
	if got := f.run(t); !reflect.DeepEqual(got, []string{"create pvc/www-web-0", "create pod/web-0"}) {
		t.Fatalf("from nothing: %v", got)
	}
	f = newFixture(t, set)
	// (The fixture's claim cache is empty, so web-0's claim is made again: missing claims of
	// existing pods are restored.)
	if got := f.run(t, f.pod(0, "update", false)); !reflect.DeepEqual(got, []string{"create pvc/www-web-0"}) {
		t.Fatalf("web-0 not ready yet: %v", got)
	}
	f = newFixture(t, set)
	if got := f.run(t, f.pod(0, "update", true)); !reflect.DeepEqual(got, []string{"create pvc/www-web-0", "create pvc/www-web-1", "create pod/web-1"}) {
		t.Fatalf("web-0 ready: %v", got)
	}
}

func TestMinReadySecondsHoldsOrderedCreation(t *testing.T) {
	set := testSet(2)
	set.Spec.MinReadySeconds = 30
	f := newFixture(t, set)
	p0 := f.pod(0, "update", true)
	p0.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Now().Add(-10 * time.Second))
	if got := f.run(t, p0); slicesContain(got, "create pod/web-1") {
		t.Fatalf("web-1 created before web-0 was available: %v", got)
	}
	p0.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Now().Add(-time.Minute))
	f = newFixture(t, set)
	if got := f.run(t, p0); !slicesContain(got, "create pod/web-1") {
		t.Fatalf("web-1 not created once web-0 was available: %v", got)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestParallelCreationAndDeletion(t *testing.T) {
	set := testSet(3)
	set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	set.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, set)
	if got := f.run(t); !reflect.DeepEqual(got, []string{"create pod/web-0", "create pod/web-1", "create pod/web-2"}) {
		t.Fatalf("parallel create: %v", got)
	}
	set = testSet(1)
	set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	set.Spec.VolumeClaimTemplates = nil
	f = newFixture(t, set)
	got := f.run(t, f.pod(0, "update", false), f.pod(1, "update", false), f.pod(2, "update", true))
	if !reflect.DeepEqual(got, []string{"delete pod/web-2", "delete pod/web-1"}) {
		t.Fatalf("parallel scale down: %v", got)
	}
}

func TestOrderedScaleDown(t *testing.T) {
	set := testSet(1)
	set.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, set)
	if got := f.run(t, f.pod(0, "update", true), f.pod(1, "update", true), f.pod(2, "update", true)); !reflect.DeepEqual(got, []string{"delete pod/web-2"}) {
		t.Fatalf("scale down: %v", got)
	}
	// The pod just deleted counts as terminating although the cache has not seen it so.
	if got := f.run(t, f.pod(0, "update", true), f.pod(1, "update", true), f.pod(2, "update", true)); len(got) != 0 {
		t.Fatalf("second round from a stale cache: %v", got)
	}
	f = newFixture(t, set)
	if got := f.run(t, f.pod(0, "update", false), f.pod(1, "update", true), f.pod(2, "update", true)); len(got) != 0 {
		t.Fatalf("scale down with web-0 unhealthy must wait: %v", got)
	}
	f = newFixture(t, set)
	if got := f.run(t, f.pod(0, "update", true), f.pod(1, "update", true), f.pod(2, "update", false)); !reflect.DeepEqual(got, []string{"delete pod/web-2"}) {
		t.Fatalf("an unhealthy condemned pod may go: %v", got)
	}
}

func TestRollingUpdate(t *testing.T) {
	set := testSet(3)
	set.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, set)
	if got := f.run(t, f.pod(0, "current", true), f.pod(1, "current", true), f.pod(2, "current", true)); !reflect.DeepEqual(got, []string{"delete pod/web-2"}) {
		t.Fatalf("first step: %v", got)
	}
	f = newFixture(t, set)
	if got := f.run(t, f.pod(0, "current", true), f.pod(1, "current", true), f.pod(2, "update", false)); len(got) != 0 {
		t.Fatalf("wait for web-2: %v", got)
	}
	f = newFixture(t, set)
	if got := f.run(t, f.pod(0, "current", true), f.pod(1, "current", true), f.pod(2, "update", true)); !reflect.DeepEqual(got, []string{"delete pod/web-1"}) {
		t.Fatalf("second step: %v", got)
	}
	set.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(2))
	f = newFixture(t, set)
	if got := f.run(t, f.pod(0, "current", true), f.pod(1, "current", true), f.pod(2, "update", true)); len(got) != 0 {
		t.Fatalf("partition 2 reached: %v", got)
	}
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	f = newFixture(t, set)
	if got := f.run(t, f.pod(0, "current", true), f.pod(1, "current", true), f.pod(2, "current", true)); len(got) != 0 {
		t.Fatalf("OnDelete must not delete: %v", got)
	}
}

func TestRecreatedPodRevision(t *testing.T) {
	set := testSet(3)
	set.Spec.VolumeClaimTemplates = nil
	set.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(2))
	f := newFixture(t, set)
	// web-0, below the partition, comes back at the current revision.
	f.run(t)
	created, err := f.client.CoreV1().Pods("ns").Get(context.Background(), "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.Containers[0].Image != "img:v1" || created.Labels[RevisionLabel] != f.round.current.Name {
		t.Fatalf("web-0 below the partition: image %s revision %s", created.Spec.Containers[0].Image, created.Labels[RevisionLabel])
	}
	// web-2, at or above it, at the update revision.
	f = newFixture(t, set)
	f.run(t, f.pod(0, "current", true), f.pod(1, "current", true))
	created, err = f.client.CoreV1().Pods("ns").Get(context.Background(), "web-2", metav1.GetOptions{})
	if err != nil || created.Spec.Containers[0].Image != "img:v2" || created.Labels[RevisionLabel] != f.round.update.Name {
		t.Fatalf("web-2: %v %+v", err, created)
	}
}

func TestFailedPodIsReplaced(t *testing.T) {
	set := testSet(2)
	set.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, set)
	p := f.pod(0, "update", false)
	p.Status.Phase = corev1.PodFailed
	if got := f.run(t, p, f.pod(1, "update", true)); !reflect.DeepEqual(got, []string{"delete pod/web-0"}) {
		t.Fatalf("failed pod: %v", got)
	}
}

func TestPodIdentityAndClaims(t *testing.T) {
	set := testSet(3)
	set.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "www", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	p, err := newPod(set, &set.Spec.Template, "web-abc", 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "web-2" || p.GenerateName != "" || p.Spec.Hostname != "web-2" || p.Spec.Subdomain != "nginx" {
		t.Fatalf("identity %s %q %s %s", p.Name, p.GenerateName, p.Spec.Hostname, p.Spec.Subdomain)
	}
	want := map[string]string{"app": "web", PodNameLabel: "web-2", PodIndexLabel: "2", RevisionLabel: "web-abc"}
	if !reflect.DeepEqual(p.Labels, want) {
		t.Fatalf("labels %v", p.Labels)
	}
	if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].PersistentVolumeClaim == nil || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "www-web-2" {
		t.Fatalf("volumes %+v (the claim replaces the template's volume of the same name)", p.Spec.Volumes)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != set.UID || ref.Kind != "StatefulSet" {
		t.Fatalf("owner %+v", ref)
	}
	c := newClaim(set, &set.Spec.VolumeClaimTemplates[0], 2)
	if c.Name != "www-web-2" || !reflect.DeepEqual(c.Labels, map[string]string{"app": "web", "tier": "data"}) || len(c.OwnerReferences) != 0 {
		t.Fatalf("claim %s labels %v owners %v", c.Name, c.Labels, c.OwnerReferences)
	}
	set.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	if c := newClaim(set, &set.Spec.VolumeClaimTemplates[0], 2); len(c.OwnerReferences) != 1 || c.OwnerReferences[0].UID != set.UID {
		t.Fatalf("whenDeleted=Delete owners %v", c.OwnerReferences)
	}
}

func TestOrdinalOf(t *testing.T) {
	set := testSet(1)
	for name, want := range map[string]int{"web-0": 0, "web-12": 12, "web-": -1, "web-01": -1, "web-x": -1, "webby-1": -1, "web-1-2": -1, "other-1": -1} {
		if got := ordinalOf(set, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}); got != want {
			t.Errorf("%s: %d, want %d", name, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	set := testSet(3)
	set.Generation = 5
	f := newFixture(t, set)
	terminating := f.pod(2, "current", true)
	terminating.DeletionTimestamp = &metav1.Time{}
	st := f.round.status([]*corev1.Pod{f.pod(0, "current", true), f.pod(1, "update", false), terminating}, new(int32(0)))
	want := appsv1.StatefulSetStatus{ObservedGeneration: 5, Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, CurrentReplicas: 1,
		UpdatedReplicas: 1, CurrentRevision: f.round.current.Name, UpdateRevision: f.round.update.Name, CollisionCount: new(int32(0))}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("status\n got %+v\nwant %+v", st, want)
	}
	// All pods updated and ready: the update revision becomes current.
	st = f.round.status([]*corev1.Pod{f.pod(0, "update", true), f.pod(1, "update", true), f.pod(2, "update", true)}, nil)
	if st.CurrentRevision != f.round.update.Name || st.CurrentReplicas != 3 || st.UpdatedReplicas != 3 {
		t.Fatalf("completed update: %+v", st)
	}
}

func TestTruncateHistory(t *testing.T) {
	set := testSet(1)
	client := fake.NewSimpleClientset()
	h := history.History{Client: client}
	var revs []*appsv1.ControllerRevision
	for i := 1; i <= 5; i++ {
		tmpl := set.Spec.Template.DeepCopy()
		tmpl.Spec.Containers[0].Image = fmt.Sprintf("img:%d", i)
		cr := mustRevision(t, set, tmpl, int64(i))
		if _, err := client.AppsV1().ControllerRevisions("ns").Create(context.Background(), cr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		revs = append(revs, cr)
	}
	// Keep the newest (in use) and revision 1 (a pod still runs it); limit 2 of the rest.
	if err := h.Truncate(context.Background(), revs, map[string]bool{revs[4].Name: true, revs[0].Name: true}, 2); err != nil {
		t.Fatal(err)
	}
	l, _ := client.AppsV1().ControllerRevisions("ns").List(context.Background(), metav1.ListOptions{})
	var left []int64
	for _, cr := range l.Items {
		left = append(left, cr.Revision)
	}
	sort.Slice(left, func(i, j int) bool { return left[i] < left[j] })
	if !reflect.DeepEqual(left, []int64{1, 3, 4, 5}) {
		t.Fatalf("revisions left %v", left)
	}
}

func TestOrdinalsStart(t *testing.T) {
	set := testSet(2)
	set.Spec.VolumeClaimTemplates = nil
	set.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	f := newFixture(t, set)
	if got := f.run(t); !reflect.DeepEqual(got, []string{"create pod/web-5"}) {
		t.Fatalf("from nothing: %v", got)
	}
	// web-0 is outside [5, 7): condemned once web-5 and web-6 are healthy.
	f = newFixture(t, set)
	if got := f.run(t, f.pod(0, "update", true), f.pod(5, "update", true), f.pod(6, "update", true)); !reflect.DeepEqual(got, []string{"delete pod/web-0"}) {
		t.Fatalf("out of range: %v", got)
	}
	// The partition counts from the start ordinal: partition 1 keeps web-5 at the current revision.
	set.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(1))
	f = newFixture(t, set)
	if got := f.run(t, f.pod(5, "current", true), f.pod(6, "current", true)); !reflect.DeepEqual(got, []string{"delete pod/web-6"}) {
		t.Fatalf("partitioned: %v", got)
	}
	f = newFixture(t, set)
	if got := f.run(t, f.pod(5, "current", true), f.pod(6, "update", true)); len(got) != 0 {
		t.Fatalf("partition reached: %v", got)
	}
}
