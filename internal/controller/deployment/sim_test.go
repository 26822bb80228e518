package deployment

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

func newDeployment(name string, n int32, surge, unavailable string) *appsv1.Deployment {
	s, u := intstr.Parse(surge), intstr.Parse(unavailable)
	ten, pds := int32(10), int32(600)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:v1"}}},
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}},
			RevisionHistoryLimit:    &ten,
			ProgressDeadlineSeconds: &pds,
		},
	}
}

// simPod is a pod of the simulated cluster: it becomes available one tick after it is
// created, and a deleted pod terminates for one tick before it is gone.
type simPod struct {
	name        string
	rsUID       types.UID
	bornAt      int
	terminating bool
}

// sim drives the real controller against a fake API, playing the ReplicaSet controller and
// kubelets itself in ticks.
type sim struct {
	t      *testing.T
	client *fake.Clientset
	c      *Controller
	inf    informers.SharedInformerFactory
	tick   int
	pods   []*simPod
	seq    int
	clock  time.Time
}

func newSim(t *testing.T, d *appsv1.Deployment) *sim {
	// The field-managed NewClientset is two orders of magnitude slower for these long
	// simulations; the plain tracker is all they need.
	s := &sim{t: t, client: fake.NewSimpleClientset(d), clock: time.Unix(1_700_000_000, 0)}
	s.client.PrependReactor("create", "replicasets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rs := a.(k8stesting.CreateAction).GetObject().(*appsv1.ReplicaSet)
		rs.UID = types.UID("uid-" + rs.Name)
		s.clock = s.clock.Add(time.Second)
		rs.CreationTimestamp = metav1.NewTime(s.clock)
		return false, nil, nil
	})
	s.inf = informers.NewSharedInformerFactory(s.client, 0)
	cctx := &controller.Context{
		Client: s.client, Informers: s.inf,
		Recorder: func(string) record.EventRecorder { return record.NewFakeRecorder(10000) },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	c, err := newController(cctx)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return s.clock }
	s.c = c
	return s
}

func (s *sim) refresh() {
	ctx := context.Background()
	ds, _ := s.client.AppsV1().Deployments("ns").List(ctx, metav1.ListOptions{})
	rss, _ := s.client.AppsV1().ReplicaSets("ns").List(ctx, metav1.ListOptions{})
	var objs []interface{}
	for i := range ds.Items {
		objs = append(objs, &ds.Items[i])
	}
	replace(s.t, s.inf.Apps().V1().Deployments().Informer().GetIndexer(), objs)
	objs = nil
	for i := range rss.Items {
		objs = append(objs, &rss.Items[i])
	}
	replace(s.t, s.inf.Apps().V1().ReplicaSets().Informer().GetIndexer(), objs)
	objs = nil
	owners := map[types.UID]*appsv1.ReplicaSet{}
	for i := range rss.Items {
		owners[rss.Items[i].UID] = &rss.Items[i]
	}
	for _, p := range s.pods {
		rs := owners[p.rsUID]
		if rs == nil {
			continue
		}
		yes := true
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "ns", Labels: rs.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		if p.terminating {
			now := metav1.NewTime(s.clock)
			pod.DeletionTimestamp = &now
		}
		objs = append(objs, pod)
	}
	replace(s.t, s.inf.Core().V1().Pods().Informer().GetIndexer(), objs)
}

func replace(t *testing.T, idx cache.Indexer, objs []interface{}) {
	if err := idx.Replace(objs, ""); err != nil {
		t.Fatal(err)
	}
}

func (s *sim) deployment() *appsv1.Deployment {
	d, err := s.client.AppsV1().Deployments("ns").Get(context.Background(), "d", metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

func (s *sim) replicaSets() []*appsv1.ReplicaSet {
	l, _ := s.client.AppsV1().ReplicaSets("ns").List(context.Background(), metav1.ListOptions{})
	var out []*appsv1.ReplicaSet
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	sort.Sort(byCreation(out))
	return out
}

// sync runs the controller once on a fresh cache.
func (s *sim) sync() {
	s.refresh()
	if err := s.c.sync(context.Background(), "ns/d"); err != nil {
		s.t.Logf("sync: %v", err)
	}
}

// step plays one tick of the ReplicaSet controller and kubelets.
func (s *sim) step() {
	s.tick++
	s.clock = s.clock.Add(10 * time.Second)
	// Pods terminating since the last tick are gone.
	var kept []*simPod
	for _, p := range s.pods {
		if !p.terminating {
			kept = append(kept, p)
		}
	}
	s.pods = kept
	for _, rs := range s.replicaSets() {
		var active []*simPod
		for _, p := range s.pods {
			if p.rsUID == rs.UID && !p.terminating {
				active = append(active, p)
			}
		}
		want := int(replicas(rs.Spec.Replicas))
		for len(active) < want {
			s.seq++
			p := &simPod{name: fmt.Sprintf("%s-%05d", rs.Name, s.seq), rsUID: rs.UID, bornAt: s.tick}
			s.pods = append(s.pods, p)
			active = append(active, p)
		}
		// Delete the youngest (not yet available) first, as the ReplicaSet controller does.
		sort.SliceStable(active, func(i, j int) bool { return active[i].bornAt > active[j].bornAt })
		for len(active) > want {
			active[0].terminating = true
			active = active[1:]
		}
		var avail int32
		for _, p := range active {
			if p.bornAt < s.tick {
				avail++
			}
		}
		rs.Status = appsv1.ReplicaSetStatus{Replicas: int32(len(active)), FullyLabeledReplicas: int32(len(active)),
			ReadyReplicas: avail, AvailableReplicas: avail, ObservedGeneration: rs.Generation}
		if _, err := s.client.AppsV1().ReplicaSets("ns").UpdateStatus(context.Background(), rs, metav1.UpdateOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// counts returns active pods and available pods by old/new ReplicaSet.
func (s *sim) counts(newUID types.UID) (oldPods, newPods, oldAvail, newAvail, terminatingOld int) {
	for _, p := range s.pods {
		isNew := p.rsUID == newUID
		if p.terminating {
			if !isNew {
				terminatingOld++
			}
			continue
		}
		avail := p.bornAt < s.tick
		switch {
		case isNew:
			newPods++
			if avail {
				newAvail++
			}
		default:
			oldPods++
			if avail {
				oldAvail++
			}
		}
	}
	return
}

// settle runs sync/step until the deployment is complete.
func (s *sim) settle(max int, check func()) {
	for i := 0; i < max; i++ {
		s.sync()
		if check != nil {
			check()
		}
		s.step()
		if check != nil {
			check()
		}
		d := s.deployment()
		if deploymentComplete(d, &d.Status) && len(s.pods) == int(*d.Spec.Replicas) {
			c := getCondition(d.Status, appsv1.DeploymentProgressing)
			if c != nil && c.Reason == ReasonNewRSAvailable {
				return
			}
		}
	}
	d := s.deployment()
	s.t.Fatalf("not complete after %d ticks: status %+v", max, d.Status)
}

func (s *sim) setImage(image string) {
	d := s.deployment()
	d.Spec.Template.Spec.Containers[0].Image = image
	d.Generation++
	if _, err := s.client.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

func TestRollingUpdateSteps(t *testing.T) {
	for _, tc := range []struct {
		replicas       int32
		surge, unavail string
	}{
		{3, "25%", "25%"},
		{10, "25%", "25%"},
		{10, "0", "1"},
		{10, "3", "0"},
		{5, "100%", "0"},
		{4, "1", "1"},
		{7, "50%", "50%"},
		{1, "0", "1"},
	} {
		t.Run(fmt.Sprintf("%d-%s-%s", tc.replicas, tc.surge, tc.unavail), func(t *testing.T) {
			s := newSim(t, newDeployment("d", tc.replicas, tc.surge, tc.unavail))
			s.settle(20, nil)
			first := s.replicaSets()
			if len(first) != 1 || first[0].Name != "d-"+first[0].Labels[PodTemplateHashLabel] || first[0].Annotations[RevisionAnnotation] != "1" {
				t.Fatalf("first rollout: %+v", first)
			}
			d := s.deployment()
			maxTotal := int(tc.replicas + MaxSurge(d))
			minAvail := int(tc.replicas - MaxUnavailable(d))

			s.setImage("web:v2")
			var newUID types.UID
			steps := 0
			s.settle(100, func() {
				steps++
				if newUID == "" {
					if nrs := FindNewReplicaSet(s.deployment(), s.replicaSets()); nrs != nil {
						newUID = nrs.UID
					}
				}
				var specTotal int32
				for _, rs := range s.replicaSets() {
					specTotal += replicas(rs.Spec.Replicas)
				}
				oldPods, newPods, oldAvail, newAvail, _ := s.counts(newUID)
				if int(specTotal) > maxTotal || oldPods+newPods > maxTotal {
					t.Fatalf("step %d: %d desired / %d pods > replicas+maxSurge %d", steps, specTotal, oldPods+newPods, maxTotal)
				}
				if oldAvail+newAvail < minAvail {
					t.Fatalf("step %d: %d available < replicas-maxUnavailable %d", steps, oldAvail+newAvail, minAvail)
				}
			})
			sets := s.replicaSets()
			if len(sets) != 2 || replicas(sets[0].Spec.Replicas) != 0 || replicas(sets[1].Spec.Replicas) != tc.replicas {
				t.Fatalf("after rollout: %v", describe(sets))
			}
			d = s.deployment()
			if d.Annotations[RevisionAnnotation] != "2" || sets[1].Annotations[RevisionAnnotation] != "2" {
				t.Fatalf("revision: deployment %q rs %q", d.Annotations[RevisionAnnotation], sets[1].Annotations[RevisionAnnotation])
			}
			c := getCondition(d.Status, appsv1.DeploymentProgressing)
			if c == nil || c.Message != fmt.Sprintf("ReplicaSet %q has successfully progressed.", sets[1].Name) {
				t.Fatalf("progressing %+v", c)
			}
			if a := getCondition(d.Status, appsv1.DeploymentAvailable); a == nil || a.Status != corev1.ConditionTrue || a.Reason != ReasonMinimumAvailable {
				t.Fatalf("available %+v", a)
			}
			if d.Status.UpdatedReplicas != tc.replicas || d.Status.AvailableReplicas != tc.replicas || d.Status.UnavailableReplicas != 0 {
				t.Fatalf("status %+v", d.Status)
			}
		})
	}
}

func describe(sets []*appsv1.ReplicaSet) string {
	var b strings.Builder
	for _, rs := range sets {
		fmt.Fprintf(&b, "%s=%d/%d(rev %s) ", rs.Name, replicas(rs.Spec.Replicas), rs.Status.AvailableReplicas, rs.Annotations[RevisionAnnotation])
	}
	return b.String()
}

func TestRecreateNeverOverlaps(t *testing.T) {
	d := newDeployment("d", 4, "25%", "25%")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	s := newSim(t, d)
	s.settle(20, nil)
	s.setImage("web:v2")
	var newUID types.UID
	s.settle(50, func() {
		if newUID == "" {
			if nrs := FindNewReplicaSet(s.deployment(), s.replicaSets()); nrs != nil {
				newUID = nrs.UID
			}
		}
		oldPods, newPods, _, _, terminatingOld := s.counts(newUID)
		if newPods > 0 && oldPods+terminatingOld > 0 {
			t.Fatalf("old (%d running, %d terminating) and new (%d) pods at once", oldPods, terminatingOld, newPods)
		}
	})
	if newUID == "" {
		t.Fatal("no new ReplicaSet")
	}
}

func TestScaleMidRolloutIsProportional(t *testing.T) {
	s := newSim(t, newDeployment("d", 10, "3", "2"))
	s.settle(20, nil)
	s.setImage("web:v2")
	// Let the rollout start: new ReplicaSet up by surge, old down by unavailability.
	s.sync()
	s.step()
	s.sync()
	s.step()
	before := s.replicaSets()
	if len(before) != 2 || replicas(before[1].Spec.Replicas) == 0 || replicas(before[0].Spec.Replicas) == 0 {
		t.Fatalf("rollout did not start: %s", describe(before))
	}
	d := s.deployment()
	n := int32(20)
	d.Spec.Replicas = &n
	d.Generation++
	if _, err := s.client.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.sync()
	after := s.replicaSets()
	oldB, newB := replicas(before[0].Spec.Replicas), replicas(before[1].Spec.Replicas)
	oldA, newA := replicas(after[0].Spec.Replicas), replicas(after[1].Spec.Replicas)
	if oldA+newA != 23 {
		t.Fatalf("total %d, want 20+3 surge: %s", oldA+newA, describe(after))
	}
	if oldA <= oldB || newA <= newB {
		t.Fatalf("both must grow: %s → %s", describe(before), describe(after))
	}
	for _, rs := range after {
		if rs.Annotations[DesiredReplicasAnnotation] != "20" || rs.Annotations[MaxReplicasAnnotation] != "23" {
			t.Fatalf("annotations of %s: %v", rs.Name, rs.Annotations)
		}
	}
	s.settle(100, nil)
	if got := s.replicaSets(); replicas(got[1].Spec.Replicas) != 20 || replicas(got[0].Spec.Replicas) != 0 {
		t.Fatalf("final %s", describe(got))
	}
}

func TestPausedScalesButDoesNotRollOut(t *testing.T) {
	s := newSim(t, newDeployment("d", 3, "25%", "25%"))
	s.settle(20, nil)
	d := s.deployment()
	d.Spec.Paused = true
	d.Spec.Template.Spec.Containers[0].Image = "web:v2"
	n := int32(5)
	d.Spec.Replicas = &n
	d.Generation++
	if _, err := s.client.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		s.sync()
		s.step()
	}
	sets := s.replicaSets()
	if len(sets) != 1 || replicas(sets[0].Spec.Replicas) != 5 {
		t.Fatalf("paused: %s", describe(sets))
	}
	d = s.deployment()
	if c := getCondition(d.Status, appsv1.DeploymentProgressing); c == nil || c.Reason != ReasonPaused || c.Status != corev1.ConditionUnknown || c.Message != "Deployment is paused" {
		t.Fatalf("progressing %+v", c)
	}
	if d.Status.UpdatedReplicas != 0 || d.Status.ObservedGeneration != d.Generation {
		t.Fatalf("status %+v", d.Status)
	}
	d.Spec.Paused = false
	d.Generation++
	if _, err := s.client.AppsV1().Deployments("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if c := getCondition(s.deployment().Status, appsv1.DeploymentProgressing); c == nil || (c.Reason != ReasonResumed && c.Reason != ReasonNewRSCreated && c.Reason != ReasonRSUpdated) {
		t.Fatalf("progressing after resume %+v", c)
	}
	s.settle(50, nil)
	if sets := s.replicaSets(); len(sets) != 2 || replicas(sets[1].Spec.Replicas) != 5 {
		t.Fatalf("resumed: %s", describe(sets))
	}
}

func TestUndoReusesOldReplicaSet(t *testing.T) {
	s := newSim(t, newDeployment("d", 2, "25%", "25%"))
	s.settle(20, nil)
	s.setImage("web:v2")
	s.settle(50, nil)
	s.setImage("web:v1") // what kubectl rollout undo does in apps/v1
	s.settle(50, nil)
	sets := s.replicaSets()
	if len(sets) != 2 {
		t.Fatalf("undo created a ReplicaSet: %s", describe(sets))
	}
	first := sets[0]
	if replicas(first.Spec.Replicas) != 2 || first.Annotations[RevisionAnnotation] != "3" || first.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Fatalf("first ReplicaSet after undo: %s %v", describe(sets), first.Annotations)
	}
	if s.deployment().Annotations[RevisionAnnotation] != "3" {
		t.Fatal("deployment revision not 3")
	}
}

func TestRevisionHistoryLimit(t *testing.T) {
	d := newDeployment("d", 1, "1", "0")
	two := int32(2)
	d.Spec.RevisionHistoryLimit = &two
	s := newSim(t, d)
	s.settle(20, nil)
	for i := 2; i <= 6; i++ {
		s.setImage(fmt.Sprintf("web:v%d", i))
		s.settle(50, nil)
	}
	s.sync()
	sets := s.replicaSets()
	if len(sets) != 3 {
		t.Fatalf("want the new ReplicaSet and 2 old ones: %s", describe(sets))
	}
	if sets[0].Annotations[RevisionAnnotation] != "4" {
		t.Fatalf("oldest kept should be revision 4: %s", describe(sets))
	}
}

func TestHashCollision(t *testing.T) {
	d := newDeployment("d", 1, "1", "0")
	s := newSim(t, d)
	hash := TemplateHash(&d.Spec.Template, nil)
	// Somebody else's ReplicaSet already has the name the new one would get.
	squatter := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "d-" + hash, Namespace: "ns", Labels: map[string]string{"other": "x"}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"other": "x"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"other": "x"}}}}}
	if _, err := s.client.AppsV1().ReplicaSets("ns").Create(context.Background(), squatter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.settle(20, nil)
	got := s.deployment()
	if got.Status.CollisionCount == nil || *got.Status.CollisionCount != 1 {
		t.Fatalf("collisionCount %v", got.Status.CollisionCount)
	}
	one := int32(1)
	want := "d-" + TemplateHash(&d.Spec.Template, &one)
	if nrs := FindNewReplicaSet(got, s.replicaSets()); nrs == nil || nrs.Name != want {
		t.Fatalf("new ReplicaSet %v, want %s", nrs, want)
	}
}
