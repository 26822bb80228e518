package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/polymorphichelpers"

	"github.com/skiff-sh/skiff/internal/controller/garbagecollector"
	"github.com/skiff-sh/skiff/internal/controller/statefulset"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

var stsGK = schema.GroupKind{Group: "apps", Kind: "StatefulSet"}

func stsCluster(t *testing.T, startDelay time.Duration) *skifftest.Cluster {
	t.Helper()
	return skifftest.Start(t, skifftest.Options{
		Controllers: []controlplane.ComponentFactory{statefulset.New, scheduler.New, garbagecollector.New},
		NodeComponents: []controlplane.ComponentFactory{simnode.NewFactory(simnode.Config{
			Count: 2, StartDelay: startDelay, StopDelay: 200 * time.Millisecond})},
	})
}

func stsWeb(name string, n int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &n,
			ServiceName: "nginx",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "skiff.local/web:v1",
					VolumeMounts: []corev1.VolumeMount{{Name: "www", MountPath: "/usr/share/nginx/html"}}}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "www"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

// stsStatus is what `kubectl rollout status` prints for the StatefulSet now.
func stsStatus(t *testing.T, c *skifftest.Cluster, ns, name string) (string, bool) {
	t.Helper()
	s, err := c.Client.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		t.Fatal(err)
	}
	msg, done, err := (&polymorphichelpers.StatefulSetStatusViewer{}).Status(&unstructured.Unstructured{Object: u}, 0)
	if err != nil {
		return err.Error(), false
	}
	return msg, done
}

func stsPods(t *testing.T, c *skifftest.Cluster, ns, app string) map[string]corev1.Pod {
	t.Helper()
	l, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.Pod{}
	for _, p := range l.Items {
		out[p.Name] = p
	}
	return out
}

func stsUpdate(t *testing.T, c *skifftest.Cluster, ns, name string, mutate func(*appsv1.StatefulSet)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := c.Client.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(s)
		_, err = c.Client.AppsV1().StatefulSets(ns).Update(context.Background(), s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// stsPodLog records, from a watch, the order in which pods appear and start terminating, and
// whether each pod's predecessor was Running and Ready when it appeared.
type stsPodLog struct {
	mu          sync.Mutex
	added       []string
	terminating []string
	gone        []string
	readyAtAdd  map[string]bool // pod → was the previous ordinal ready when it was added
	goneAtTerm  map[string]bool // pod → was the next ordinal gone when it began terminating
	state       map[string]*corev1.Pod
}

func stsWatchPods(t *testing.T, c *skifftest.Cluster, ns, app string) *stsPodLog {
	t.Helper()
	w, err := c.Client.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	l := &stsPodLog{readyAtAdd: map[string]bool{}, goneAtTerm: map[string]bool{}, state: map[string]*corev1.Pod{}}
	ordinalName := func(name string, delta int) string {
		i := strings.LastIndex(name, "-")
		var n int
		fmt.Sscanf(name[i+1:], "%d", &n)
		return fmt.Sprintf("%s-%d", name[:i], n+delta)
	}
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			l.mu.Lock()
			prev := l.state[p.Name]
			switch ev.Type {
			case watch.Added:
				l.added = append(l.added, p.Name)
				if q := l.state[ordinalName(p.Name, -1)]; q != nil {
					l.readyAtAdd[p.Name] = q.Status.Phase == corev1.PodRunning && stsReady(q)
				}
				l.state[p.Name] = p
			case watch.Modified:
				if p.DeletionTimestamp != nil && (prev == nil || prev.DeletionTimestamp == nil) {
					l.terminating = append(l.terminating, p.Name)
					_, present := l.state[ordinalName(p.Name, 1)]
					l.goneAtTerm[p.Name] = !present
				}
				l.state[p.Name] = p
			case watch.Deleted:
				l.gone = append(l.gone, p.Name)
				delete(l.state, p.Name)
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func stsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func stsEvents(t *testing.T, c *skifftest.Cluster, ns, name string) []string {
	t.Helper()
	l, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=StatefulSet,involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range l.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out
}

func TestStatefulSetOrderedCreationAndScaleDown(t *testing.T) {
	c := stsCluster(t, 300*time.Millisecond)
	ctx := context.Background()
	ns := "default"
	log := stsWatchPods(t, c, ns, "web")
	if _, err := c.Client.AppsV1().StatefulSets(ns).Create(ctx, stsWeb("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 60*time.Second, "rollout", func() (bool, string) {
		msg, done := stsStatus(t, c, ns, "web")
		return done && msg == "partitioned roll out complete: 3 new pods have been updated...\n", msg
	})
	log.mu.Lock()
	added := slices.Clone(log.added)
	readyAtAdd := map[string]bool{"web-1": log.readyAtAdd["web-1"], "web-2": log.readyAtAdd["web-2"]}
	log.mu.Unlock()
	if !slices.Equal(added, []string{"web-0", "web-1", "web-2"}) {
		t.Fatalf("pods created in order %v", added)
	}
	for p, ok := range readyAtAdd {
		if !ok {
			t.Errorf("%s was created before its predecessor was Running and Ready", p)
		}
	}

	s, err := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := s.Status
	if st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.CurrentReplicas != 3 || st.UpdatedReplicas != 3 ||
		st.CurrentRevision == "" || st.CurrentRevision != st.UpdateRevision || st.ObservedGeneration != s.Generation {
		t.Fatalf("status %+v", st)
	}
	if !strings.HasPrefix(st.UpdateRevision, "web-") {
		t.Fatalf("revision name %q", st.UpdateRevision)
	}
	crs, err := c.Client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(crs.Items) != 1 || crs.Items[0].Name != st.UpdateRevision || crs.Items[0].Revision != 1 ||
		!metav1.IsControlledBy(&crs.Items[0], s) {
		t.Fatalf("controller revisions %+v", crs.Items)
	}

	pods := stsPods(t, c, ns, "web")
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("web-%d", i)
		p, ok := pods[name]
		if !ok {
			t.Fatalf("no pod %s", name)
		}
		if p.Spec.Hostname != name || p.Spec.Subdomain != "nginx" {
			t.Errorf("%s hostname %q subdomain %q", name, p.Spec.Hostname, p.Spec.Subdomain)
		}
		if p.Labels[appsv1.StatefulSetPodNameLabel] != name || p.Labels[appsv1.PodIndexLabel] != fmt.Sprint(i) ||
			p.Labels[appsv1.ControllerRevisionHashLabelKey] != st.UpdateRevision {
			t.Errorf("%s labels %v", name, p.Labels)
		}
		claim := "www-" + name
		found := false
		for _, v := range p.Spec.Volumes {
			if v.Name == "www" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
				found = true
			}
		}
		if !found {
			t.Errorf("%s volumes %+v", name, p.Spec.Volumes)
		}
		pvc, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("claim %s: %v", claim, err)
		}
		if pvc.Labels["app"] != "web" || !pvc.CreationTimestamp.Time.Add(-time.Second).Before(p.CreationTimestamp.Time) {
			t.Errorf("claim %s labels %v created %v (pod %v)", claim, pvc.Labels, pvc.CreationTimestamp, p.CreationTimestamp)
		}
	}
	wlEventually(t, 10*time.Second, "events", func() (bool, string) {
		evs := stsEvents(t, c, ns, "web")
		want := []string{"SuccessfulCreate: create Pod web-0 in StatefulSet web successful",
			"SuccessfulCreate: create Pod web-2 in StatefulSet web successful",
			"SuccessfulCreate: create Claim www-web-1 Pod web-1 in StatefulSet web success"}
		for _, w := range want {
			if !slices.Contains(evs, w) {
				return false, fmt.Sprintf("%q missing from %q", w, evs)
			}
		}
		return true, ""
	})

	// Scale down: web-2 goes first, web-1 only after web-2 is gone; claims stay.
	stsUpdate(t, c, ns, "web", func(s *appsv1.StatefulSet) { s.Spec.Replicas = new(int32(1)) })
	wlEventually(t, 60*time.Second, "scale down", func() (bool, string) {
		pods := stsPods(t, c, ns, "web")
		s, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		return len(pods) == 1 && s.Status.Replicas == 1 && s.Status.ReadyReplicas == 1, fmt.Sprintf("%d pods, status %+v", len(pods), s.Status)
	})
	log.mu.Lock()
	terminating, goneAtTerm := slices.Clone(log.terminating), log.goneAtTerm["web-1"]
	log.mu.Unlock()
	if !slices.Equal(terminating, []string{"web-2", "web-1"}) || !goneAtTerm {
		t.Fatalf("terminated in order %v; web-2 gone when web-1 began terminating: %v", terminating, goneAtTerm)
	}
	if _, ok := stsPods(t, c, ns, "web")["web-0"]; !ok {
		t.Fatal("web-0 gone")
	}
	for i := 0; i < 3; i++ {
		if _, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, fmt.Sprintf("www-web-%d", i), metav1.GetOptions{}); err != nil {
			t.Errorf("claim of web-%d: %v (retained by default)", i, err)
		}
	}
	if evs := stsEvents(t, c, ns, "web"); !slices.Contains(evs, "SuccessfulDelete: delete Pod web-2 in StatefulSet web successful") {
		t.Errorf("events %q", evs)
	}
}

func TestStatefulSetRollingUpdatePartitionHistoryUndo(t *testing.T) {
	c := stsCluster(t, 100*time.Millisecond)
	ctx := context.Background()
	ns := "default"
	web := stsWeb("web", 3)
	web.Annotations = map[string]string{"kubernetes.io/change-cause": "create web"}
	if _, err := c.Client.AppsV1().StatefulSets(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 60*time.Second, "rollout", func() (bool, string) {
		msg, done := stsStatus(t, c, ns, "web")
		return done && strings.Contains(msg, "3 new pods"), msg
	})
	s0, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	rev1 := s0.Status.CurrentRevision
	uids := map[string]string{}
	for n, p := range stsPods(t, c, ns, "web") {
		uids[n] = string(p.UID)
	}

	// Partition 2: only web-2 moves to the new revision.
	stsUpdate(t, c, ns, "web", func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Image = "skiff.local/web:v2"
		s.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(2))
		s.Annotations["kubernetes.io/change-cause"] = "image v2"
	})
	wlEventually(t, 60*time.Second, "partitioned rollout", func() (bool, string) {
		msg, done := stsStatus(t, c, ns, "web")
		return done && msg == "partitioned roll out complete: 1 new pods have been updated...\n", msg
	})
	s1, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	rev2 := s1.Status.UpdateRevision
	if rev2 == rev1 || s1.Status.CurrentRevision != rev1 || s1.Status.CurrentReplicas != 2 || s1.Status.UpdatedReplicas != 1 {
		t.Fatalf("status after partitioned update %+v", s1.Status)
	}
	pods := stsPods(t, c, ns, "web")
	if pods["web-2"].Spec.Containers[0].Image != "skiff.local/web:v2" || pods["web-1"].Spec.Containers[0].Image != "skiff.local/web:v1" ||
		string(pods["web-0"].UID) != uids["web-0"] || string(pods["web-1"].UID) != uids["web-1"] {
		t.Fatalf("pods after partitioned update: %v %v", pods["web-2"].Spec.Containers[0].Image, pods["web-1"].Spec.Containers[0].Image)
	}

	// A pod below the partition that is deleted comes back at the current revision.
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "web-0 recreated", func() (bool, string) {
		p, ok := stsPods(t, c, ns, "web")["web-0"]
		return ok && string(p.UID) != uids["web-0"] && stsReady(&p), fmt.Sprint(p.UID)
	})
	if p := stsPods(t, c, ns, "web")["web-0"]; p.Spec.Containers[0].Image != "skiff.local/web:v1" || p.Labels[appsv1.ControllerRevisionHashLabelKey] != rev1 {
		t.Fatalf("web-0 recreated with %s at %s", p.Spec.Containers[0].Image, p.Labels[appsv1.ControllerRevisionHashLabelKey])
	}

	// Partition 0: the rest follow, highest ordinal first; the update becomes current.
	log := stsWatchPods(t, c, ns, "web")
	stsUpdate(t, c, ns, "web", func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(0)) })
	wlEventually(t, 60*time.Second, "full rollout", func() (bool, string) {
		s, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		msg, done := stsStatus(t, c, ns, "web")
		return done && s.Status.CurrentRevision == rev2 && s.Status.UpdatedReplicas == 3 && s.Status.ReadyReplicas == 3, fmt.Sprintf("%s %+v", msg, s.Status)
	})
	log.mu.Lock()
	if !slices.Equal(log.terminating, []string{"web-1", "web-0"}) {
		t.Errorf("rolled in order %v", log.terminating)
	}
	log.mu.Unlock()

	// kubectl rollout history reads the revisions.
	hv, err := polymorphichelpers.HistoryViewerFor(stsGK, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	out, err := hv.ViewHistory(ns, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1         create web") || !strings.Contains(out, "2         image v2") {
		t.Fatalf("history:\n%s", out)
	}
	out, err = hv.ViewHistory(ns, "web", 1)
	if err != nil || !strings.Contains(out, "skiff.local/web:v1") {
		t.Fatalf("history of revision 1: %v\n%s", err, out)
	}

	// kubectl rollout undo goes back to revision 1, which becomes revision 3.
	rb, err := polymorphichelpers.RollbackerFor(stsGK, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if _, err := rb.Rollback(cur, nil, 0, util.DryRunNone); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 60*time.Second, "undo", func() (bool, string) {
		s, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		pods := stsPods(t, c, ns, "web")
		v1 := 0
		for _, p := range pods {
			if p.Spec.Containers[0].Image == "skiff.local/web:v1" && p.DeletionTimestamp == nil {
				v1++
			}
		}
		return s.Status.CurrentRevision == rev1 && s.Status.UpdateRevision == rev1 && v1 == 3 && s.Status.ReadyReplicas == 3,
			fmt.Sprintf("%d v1 pods, %+v", v1, s.Status)
	})
	cr, err := c.Client.AppsV1().ControllerRevisions(ns).Get(ctx, rev1, metav1.GetOptions{})
	if err != nil || cr.Revision != 3 {
		t.Fatalf("revision of %s after undo: %v %v", rev1, cr.Revision, err)
	}
	// Undoing to the revision in use is a no-op for kubectl.
	cur, _ = c.Client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if msg, err := rb.Rollback(cur, nil, 3, util.DryRunNone); err != nil || !strings.Contains(msg, "skipped rollback") {
		t.Fatalf("rollback to current: %q %v", msg, err)
	}
}

func TestStatefulSetParallelAndClaimRetention(t *testing.T) {
	c := stsCluster(t, 2*time.Second)
	ctx := context.Background()
	ns := "default"
	web := stsWeb("par", 3)
	web.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	web.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
	}
	if _, err := c.Client.AppsV1().StatefulSets(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// All three exist before any is Ready (each takes 2s to start).
	wlEventually(t, 20*time.Second, "parallel creation", func() (bool, string) {
		pods := stsPods(t, c, ns, "par")
		ready := 0
		for _, p := range pods {
			if stsReady(&p) {
				ready++
			}
		}
		if ready > 0 && len(pods) < 3 {
			t.Fatalf("a pod was ready before all were created: %d pods", len(pods))
		}
		return len(pods) == 3, fmt.Sprintf("%d pods", len(pods))
	})
	wlEventually(t, 60*time.Second, "ready", func() (bool, string) {
		msg, done := stsStatus(t, c, ns, "par")
		return done, msg
	})
	stsUpdate(t, c, ns, "par", func(s *appsv1.StatefulSet) { s.Spec.Replicas = new(int32(1)) })
	wlEventually(t, 60*time.Second, "claims of removed ordinals deleted", func() (bool, string) {
		l, err := c.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, p := range l.Items {
			if p.DeletionTimestamp == nil {
				names = append(names, p.Name)
			}
		}
		return slices.Equal(names, []string{"www-par-0"}) && len(stsPods(t, c, ns, "par")) == 1, fmt.Sprint(names)
	})
}

// A failed pod is replaced under the same name.
func TestStatefulSetReplacesFailedPod(t *testing.T) {
	c := stsCluster(t, 100*time.Millisecond)
	ctx := context.Background()
	ns := "default"
	web := stsWeb("fail", 1)
	web.Spec.VolumeClaimTemplates = nil
	web.Spec.Template.Spec.Containers[0].VolumeMounts = nil
	if _, err := c.Client.AppsV1().StatefulSets(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var first corev1.Pod
	wlEventually(t, 30*time.Second, "running", func() (bool, string) {
		p, ok := stsPods(t, c, ns, "fail")["fail-0"]
		first = p
		return ok && stsReady(&p), fmt.Sprint(p.Status.Phase)
	})
	first.Status.Phase = corev1.PodFailed
	first.Status.Conditions = nil
	if _, err := c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, &first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "replacement", func() (bool, string) {
		p, ok := stsPods(t, c, ns, "fail")["fail-0"]
		return ok && p.UID != first.UID && stsReady(&p), fmt.Sprint(p.UID, p.Status.Phase)
	})
}

// Deleted with --cascade=orphan and created again, a StatefulSet adopts its pods and its
// revision: nothing restarts and no new revision appears.
func TestStatefulSetAdoptsOrphans(t *testing.T) {
	c := stsCluster(t, 100*time.Millisecond)
	ctx := context.Background()
	ns := "default"
	web := stsWeb("orph", 2)
	web.Spec.VolumeClaimTemplates = nil
	web.Spec.Template.Spec.Containers[0].VolumeMounts = nil
	if _, err := c.Client.AppsV1().StatefulSets(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "rollout", func() (bool, string) {
		msg, done := stsStatus(t, c, ns, "orph")
		return done && strings.Contains(msg, "2 new pods"), msg
	})
	before := stsPods(t, c, ns, "orph")
	s0, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "orph", metav1.GetOptions{})
	orphan := metav1.DeletePropagationOrphan
	if err := c.Client.AppsV1().StatefulSets(ns).Delete(ctx, "orph", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "orphaned", func() (bool, string) {
		crs, _ := c.Client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=orph"})
		p := stsPods(t, c, ns, "orph")["orph-0"]
		return len(crs.Items) == 1 && len(crs.Items[0].OwnerReferences) == 0 && len(p.OwnerReferences) == 0, fmt.Sprint(len(crs.Items))
	})
	if _, err := c.Client.AppsV1().StatefulSets(ns).Create(ctx, stsWebNoClaims("orph", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "adopted", func() (bool, string) {
		s, _ := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "orph", metav1.GetOptions{})
		crs, _ := c.Client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=orph"})
		pods := stsPods(t, c, ns, "orph")
		owned := 0
		for _, p := range pods {
			if metav1.IsControlledBy(&p, s) {
				owned++
			}
		}
		return owned == 2 && len(crs.Items) == 1 && metav1.IsControlledBy(&crs.Items[0], s) && s.Status.ReadyReplicas == 2 &&
			s.Status.UpdateRevision == s0.Status.UpdateRevision, fmt.Sprintf("%d owned, %d revisions, %+v", owned, len(crs.Items), s.Status)
	})
	for name, p := range stsPods(t, c, ns, "orph") {
		if before[name].UID != p.UID {
			t.Errorf("%s was replaced", name)
		}
	}
}

func stsWebNoClaims(name string, n int32) *appsv1.StatefulSet {
	s := stsWeb(name, n)
	s.Spec.VolumeClaimTemplates = nil
	s.Spec.Template.Spec.Containers[0].VolumeMounts = nil
	return s
}
