package controllerutil

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
)

func ownedFixture() (*OwnedPods[*appsv1.ReplicaSet], workqueue.TypedRateLimitingInterface[string], *Expectations) {
	sets := map[string]*appsv1.ReplicaSet{
		"web": {ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u-web"},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
		"db": {ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", UID: "u-db"},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}},
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	exp := NewExpectations()
	o := &OwnedPods[*appsv1.ReplicaSet]{
		GVK: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), Queue: q, Expectations: exp,
		Get: func(ns, name string) (*appsv1.ReplicaSet, error) {
			if rs, ok := sets[name]; ok {
				return rs, nil
			}
			return nil, errors.New("not found")
		},
		List: func(ns string) ([]*appsv1.ReplicaSet, error) {
			return []*appsv1.ReplicaSet{sets["web"], sets["db"]}, nil
		},
		Selects: func(rs *appsv1.ReplicaSet, pod *corev1.Pod) bool {
			return SelectsPod(rs.Spec.Selector, pod)
		},
	}
	return o, q, exp
}

func ownedPod(name, app string, owner string, uid types.UID, apiVersion string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: "1", Labels: map[string]string{"app": app}}}
	if owner != "" {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: "ReplicaSet", Name: owner, UID: uid, Controller: &yes}}
	}
	return p
}

func drain(q workqueue.TypedRateLimitingInterface[string]) map[string]bool {
	out := map[string]bool{}
	for q.Len() > 0 {
		k, _ := q.Get()
		out[k] = true
		q.Done(k)
	}
	return out
}

func TestOwnedPods(t *testing.T) {
	o, q, exp := ownedFixture()
	h := o.Handlers()

	// An owned pod wakes its owner and counts as an observed creation.
	exp.ExpectCreations("ns/web", 1)
	h.OnAdd(ownedPod("a", "web", "web", "u-web", "apps/v1"), false)
	if got := drain(q); !got["ns/web"] || len(got) != 1 {
		t.Fatalf("owned add woke %v", got)
	}
	if !exp.Satisfied("ns/web") {
		t.Error("creation not observed")
	}
	// A reference to another object of the same name (other UID), or to another group's
	// kind of the same name, wakes nobody.
	h.OnAdd(ownedPod("b", "web", "web", "u-old", "apps/v1"), false)
	h.OnAdd(ownedPod("c", "web", "web", "u-web", "extensions.example/v1"), false)
	if got := drain(q); len(got) != 0 {
		t.Fatalf("foreign references woke %v", got)
	}
	// An orphan wakes the owners that select it.
	h.OnAdd(ownedPod("d", "db", "", "", ""), false)
	if got := drain(q); !got["ns/db"] || len(got) != 1 {
		t.Fatalf("orphan woke %v", got)
	}
	// A pod that starts terminating counts as deleted at once; relabelled, its selecting
	// owners are woken too.
	exp.ExpectDeletions("ns/web", []string{"ns/a"})
	old := ownedPod("a", "web", "web", "u-web", "apps/v1")
	cur := old.DeepCopy()
	cur.ResourceVersion = "2"
	now := metav1.Now()
	cur.DeletionTimestamp = &now
	h.OnUpdate(old, cur)
	if !exp.Satisfied("ns/web") {
		t.Error("terminating pod not counted as deleted")
	}
	if got := drain(q); !got["ns/web"] {
		t.Fatalf("terminating pod woke %v", got)
	}
	// An orphan relabelled to match another owner wakes it; a resync (same resourceVersion)
	// wakes nobody.
	o1 := ownedPod("e", "web", "", "", "")
	o2 := o1.DeepCopy()
	o2.ResourceVersion, o2.Labels = "2", map[string]string{"app": "db"}
	h.OnUpdate(o1, o1)
	if got := drain(q); len(got) != 0 {
		t.Fatalf("resync woke %v", got)
	}
	h.OnUpdate(o1, o2)
	if got := drain(q); !got["ns/db"] || len(got) != 1 {
		t.Fatalf("relabelled orphan woke %v", got)
	}
}

func TestSelectsPod(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}}
	if !SelectsPod(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, pod) {
		t.Error("matching selector")
	}
	if SelectsPod(&metav1.LabelSelector{}, pod) || SelectsPod(nil, pod) {
		t.Error("an empty selector must select nothing")
	}
}
