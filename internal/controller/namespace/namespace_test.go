package namespace

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fakemetadata "k8s.io/client-go/metadata/fake"
	clienttesting "k8s.io/client-go/testing"
)

var (
	configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secrets    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

func lists() []*metav1.APIResourceList {
	return []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Namespaced: true, Kind: "Pod", Verbs: []string{"create", "delete", "deletecollection", "get", "list", "watch"}},
			{Name: "pods/status", Namespaced: true, Kind: "Pod", Verbs: []string{"get", "update"}},
			// No deletecollection: listed and deleted one by one.
			{Name: "configmaps", Namespaced: true, Kind: "ConfigMap", Verbs: []string{"create", "delete", "get", "list"}},
			{Name: "secrets", Namespaced: true, Kind: "Secret", Verbs: []string{"delete", "deletecollection", "list"}},
			// Not deletable: left alone.
			{Name: "bindings", Namespaced: true, Kind: "Binding", Verbs: []string{"create"}},
		}},
	}
}

type env struct {
	t  *testing.T
	c  *Controller
	cs *fake.Clientset
	md *fakemetadata.FakeMetadataClient
}

func partial(kind, ns, name string, finalizers ...string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Finalizers: finalizers},
	}
}

func terminating(name string, deletedAgo time.Duration) *corev1.Namespace {
	ts := metav1.NewTime(time.Now().Add(-deletedAgo))
	return &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: "ns-uid", DeletionTimestamp: &ts},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
	}
}

// newEnv builds a controller over fakes. The metadata client deletes as the API server does:
// objects with finalizers only get a deletionTimestamp; finalize empties spec.finalizers and
// the namespace goes once nothing holds it.
func newEnv(t *testing.T, discover DiscoverFunc, typed []runtime.Object, objs ...runtime.Object) *env {
	t.Helper()
	cs := fake.NewClientset(typed...)
	cs.PrependReactor("create", "namespaces", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "finalize" {
			return false, nil, nil
		}
		want := a.(clienttesting.CreateAction).GetObject().(*corev1.Namespace)
		gvr := corev1.SchemeGroupVersion.WithResource("namespaces")
		o, err := cs.Tracker().Get(gvr, "", want.Name)
		if err != nil {
			return true, nil, err
		}
		cur := o.(*corev1.Namespace).DeepCopy()
		if want.ResourceVersion != "" && want.ResourceVersion != cur.ResourceVersion {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), want.Name, errors.New("stale"))
		}
		cur.Spec.Finalizers = want.Spec.Finalizers
		if len(cur.Spec.Finalizers) == 0 && len(cur.Finalizers) == 0 {
			return true, cur, cs.Tracker().Delete(gvr, "", want.Name)
		}
		return true, cur, cs.Tracker().Update(gvr, cur, "")
	})
	scheme := fakemetadata.NewTestScheme()
	for _, k := range []string{"Pod", "ConfigMap", "Secret"} {
		scheme.AddKnownTypeWithName(schema.GroupVersionKind{Version: "v1", Kind: k}, &metav1.PartialObjectMetadata{})
		scheme.AddKnownTypeWithName(schema.GroupVersionKind{Version: "v1", Kind: k + "List"}, &metav1.PartialObjectMetadataList{})
	}
	md := fakemetadata.NewSimpleMetadataClient(scheme, objs...)
	tracker := md.Tracker()
	deleteOne := func(gvr schema.GroupVersionResource, ns, name string) error {
		o, err := tracker.Get(gvr, ns, name)
		if err != nil {
			return err
		}
		m, _ := meta.Accessor(o)
		if len(m.GetFinalizers()) > 0 || strings.HasPrefix(name, "graceful") {
			if m.GetDeletionTimestamp() == nil {
				now := metav1.Now()
				m.SetDeletionTimestamp(&now)
			}
			return tracker.Update(gvr, o, ns)
		}
		return tracker.Delete(gvr, ns, name)
	}
	md.PrependReactor("delete", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		d := a.(clienttesting.DeleteAction)
		return true, nil, deleteOne(d.GetResource(), d.GetNamespace(), d.GetName())
	})
	md.PrependReactor("delete-collection", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		l, err := tracker.List(a.GetResource(), schema.GroupVersionKind{Group: "fake-metadata-client-group", Version: "v1"}, a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		items, _ := meta.ExtractList(l)
		for _, it := range items {
			m, _ := meta.Accessor(it)
			if err := deleteOne(a.GetResource(), a.GetNamespace(), m.GetName()); err != nil && !apierrors.IsNotFound(err) {
				return true, nil, err
			}
		}
		return true, nil, nil
	})
	if discover == nil {
		discover = func() ([]*metav1.APIResourceList, error) { return lists(), nil }
	}
	factory := informers.NewSharedInformerFactory(cs, 0)
	c := NewController(slog.New(slog.NewTextHandler(io.Discard, nil)), cs, md, discover, factory.Core().V1().Namespaces(), 1)
	c.DeletionDelay = 0
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	return &env{t: t, c: c, cs: cs, md: md}
}

func (e *env) ns(name string) *corev1.Namespace {
	e.t.Helper()
	ns, err := e.cs.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return ns
}

func (e *env) count(gvr schema.GroupVersionResource, ns string) int {
	l, err := e.md.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(l.Items)
}

func condition(ns *corev1.Namespace, t corev1.NamespaceConditionType) corev1.NamespaceCondition {
	for _, c := range ns.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.NamespaceCondition{}
}

func TestEmptiesAndFinalizes(t *testing.T) {
	e := newEnv(t, nil, []runtime.Object{terminating("gone", 0)},
		partial("Pod", "gone", "p1"), partial("ConfigMap", "gone", "c1"), partial("ConfigMap", "gone", "c2"),
		partial("Secret", "gone", "s1"), partial("ConfigMap", "other", "keep"))
	if err := e.c.sync(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	if n := e.count(configMaps, "gone") + e.count(secrets, "gone") + e.count(podsGVR, "gone"); n != 0 {
		t.Fatalf("%d objects left", n)
	}
	if e.count(configMaps, "other") != 1 {
		t.Fatal("another namespace's content deleted")
	}
	if _, err := e.cs.CoreV1().Namespaces().Get(context.Background(), "gone", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace not finalized: %v", err)
	}
	// Content went through deletecollection where served, else list and delete, always
	// with background propagation.
	var collections, deletes int
	for _, a := range e.md.Actions() {
		switch a.GetVerb() {
		case "delete-collection":
			collections++
			if a.GetResource() == configMaps {
				t.Error("deletecollection on a resource that does not serve it")
			}
		case "delete":
			deletes++
			if p := a.(clienttesting.DeleteAction).GetDeleteOptions().PropagationPolicy; p == nil || *p != metav1.DeletePropagationBackground {
				t.Errorf("delete without background propagation")
			}
		}
	}
	if collections != 2 || deletes != 2 {
		t.Fatalf("deletecollections %d (want 2), deletes %d (want 2)", collections, deletes)
	}
}

func TestOtherFinalizersKeepNamespace(t *testing.T) {
	ns := terminating("held", 0)
	ns.Spec.Finalizers = append(ns.Spec.Finalizers, "example.com/other")
	e := newEnv(t, nil, []runtime.Object{ns})
	if err := e.c.sync(context.Background(), "held"); err != nil {
		t.Fatal(err)
	}
	got := e.ns("held")
	if len(got.Spec.Finalizers) != 1 || got.Spec.Finalizers[0] != "example.com/other" {
		t.Fatalf("spec.finalizers = %v", got.Spec.Finalizers)
	}
	for _, ct := range conditionTypes {
		c := condition(got, ct)
		if c.Status != corev1.ConditionFalse || c.Message != okConditions[ct][1] || c.Reason != okConditions[ct][0] {
			t.Errorf("%s: %+v", ct, c)
		}
	}
}

func TestFinalizersRemainConditions(t *testing.T) {
	e := newEnv(t, nil, []runtime.Object{terminating("stuck", 0)},
		partial("ConfigMap", "stuck", "c1", "example.com/x"), partial("ConfigMap", "stuck", "c2", "example.com/x", "example.com/y"))
	err := e.c.sync(context.Background(), "stuck")
	var rem *ResourcesRemainingError
	if !errors.As(err, &rem) || rem.Estimate != finalizerEstimateSeconds {
		t.Fatalf("err = %v", err)
	}
	got := e.ns("stuck")
	if len(got.Spec.Finalizers) != 1 {
		t.Fatal("finalized with content left")
	}
	c := condition(got, corev1.NamespaceContentRemaining)
	if c.Status != corev1.ConditionTrue || c.Reason != "SomeResourcesRemain" || c.Message != "Some resources are remaining: configmaps. has 2 resource instances" {
		t.Errorf("content remaining: %+v", c)
	}
	c = condition(got, corev1.NamespaceFinalizersRemaining)
	if c.Status != corev1.ConditionTrue || c.Reason != "SomeFinalizersRemain" ||
		c.Message != "Some content in the namespace has finalizers remaining: example.com/x in 2 resource instances, example.com/y in 1 resource instances" {
		t.Errorf("finalizers remaining: %+v", c)
	}
	if c := condition(got, corev1.NamespaceDeletionContentFailure); c.Status != corev1.ConditionFalse {
		t.Errorf("content failure: %+v", c)
	}
	// Once the finalizers are gone, the next pass finishes.
	for _, n := range []string{"c1", "c2"} {
		if err := e.md.Tracker().Delete(configMaps, "stuck", n); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.c.sync(context.Background(), "stuck"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.CoreV1().Namespaces().Get(context.Background(), "stuck", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace not finalized: %v", err)
	}
}

func TestPodsFirst(t *testing.T) {
	e := newEnv(t, nil, []runtime.Object{terminating("ordered", 0)},
		partial("Pod", "ordered", "p1", "example.com/hold"), partial("ConfigMap", "ordered", "c1"))
	err := e.c.sync(context.Background(), "ordered")
	var rem *ResourcesRemainingError
	if !errors.As(err, &rem) {
		t.Fatalf("err = %v", err)
	}
	if e.count(configMaps, "ordered") != 1 {
		t.Fatal("configmaps deleted while pods remain")
	}
	c := condition(e.ns("ordered"), corev1.NamespaceContentRemaining)
	if c.Message != "Some resources are remaining: pods. has 1 resource instances" {
		t.Errorf("content remaining: %+v", c)
	}
	if err := e.md.Tracker().Delete(podsGVR, "ordered", "p1"); err != nil {
		t.Fatal(err)
	}
	if err := e.c.sync(context.Background(), "ordered"); err != nil {
		t.Fatal(err)
	}
	if e.count(configMaps, "ordered") != 0 {
		t.Fatal("configmaps left")
	}
}

func TestGracefulPodsEstimate(t *testing.T) {
	grace := int64(30)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "pods", Name: "graceful-pod"},
		Spec:   corev1.PodSpec{TerminationGracePeriodSeconds: &grace, NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	e := newEnv(t, nil, []runtime.Object{terminating("pods", 0), pod}, partial("Pod", "pods", "graceful-pod"))
	err := e.c.sync(context.Background(), "pods")
	var rem *ResourcesRemainingError
	if !errors.As(err, &rem) || rem.Estimate != 30 {
		t.Fatalf("err = %v", err)
	}
	// Past the grace period a pod still there is unexpected.
	e2 := newEnv(t, nil, []runtime.Object{terminating("late", time.Minute), pod}, partial("Pod", "late", "graceful-pod"))
	err = e2.c.sync(context.Background(), "late")
	if err == nil || !strings.Contains(err.Error(), "unexpected items still remain in namespace: late for gvr: /v1, Resource=pods") {
		t.Fatalf("err = %v", err)
	}
	c := condition(e2.ns("late"), corev1.NamespaceDeletionContentFailure)
	if c.Status != corev1.ConditionTrue || c.Reason != "ContentDeletionFailed" ||
		c.Message != "Failed to delete all resource types, 1 remaining: unexpected items still remain in namespace: late for gvr: /v1, Resource=pods" {
		t.Errorf("content failure: %+v", c)
	}
}

func TestDiscoveryFailure(t *testing.T) {
	discover := func() ([]*metav1.APIResourceList, error) {
		return lists(), &discovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{
			{Group: "broken.example.com", Version: "v1"}: errors.New("the server is currently unable to handle the request")}}
	}
	e := newEnv(t, discover, []runtime.Object{terminating("partial", 0)}, partial("ConfigMap", "partial", "c1"))
	if err := e.c.sync(context.Background(), "partial"); err == nil {
		t.Fatal("no error")
	}
	if e.count(configMaps, "partial") != 0 {
		t.Fatal("discovered resources not emptied")
	}
	got := e.ns("partial")
	c := condition(got, corev1.NamespaceDeletionDiscoveryFailure)
	if c.Status != corev1.ConditionTrue || c.Reason != "DiscoveryFailed" ||
		!strings.HasPrefix(c.Message, "Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: broken.example.com/v1") {
		t.Errorf("discovery: %+v", c)
	}
	if len(got.Spec.Finalizers) != 1 {
		t.Fatal("finalized despite discovery failure")
	}
}

func TestGroupVersionParsingFailure(t *testing.T) {
	discover := func() ([]*metav1.APIResourceList, error) {
		return append(lists(), &metav1.APIResourceList{GroupVersion: "a/b/c"}), nil
	}
	e := newEnv(t, discover, []runtime.Object{terminating("parse", 0)})
	if err := e.c.sync(context.Background(), "parse"); err == nil {
		t.Fatal("no error")
	}
	c := condition(e.ns("parse"), corev1.NamespaceDeletionGVParsingFailure)
	if c.Status != corev1.ConditionTrue || c.Reason != "GroupVersionParsingFailed" || c.Message == "" {
		t.Errorf("parsing: %+v", c)
	}
}

func TestIgnoresLiveNamespaces(t *testing.T) {
	live := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "live"},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}}}
	e := newEnv(t, nil, []runtime.Object{live}, partial("ConfigMap", "live", "c1"))
	if err := e.c.sync(context.Background(), "live"); err != nil {
		t.Fatal(err)
	}
	if err := e.c.sync(context.Background(), "missing"); err != nil {
		t.Fatal(err)
	}
	if e.count(configMaps, "live") != 1 {
		t.Fatal("content of a live namespace deleted")
	}
}

func TestSetsTerminatingPhase(t *testing.T) {
	ns := terminating("phase", 0)
	ns.Status.Phase = corev1.NamespaceActive
	e := newEnv(t, nil, []runtime.Object{ns})
	ns.Spec.Finalizers = append(ns.Spec.Finalizers, "example.com/other")
	if _, err := e.cs.CoreV1().Namespaces().Update(context.Background(), ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.sync(context.Background(), "phase"); err != nil {
		t.Fatal(err)
	}
	if p := e.ns("phase").Status.Phase; p != corev1.NamespaceTerminating {
		t.Fatalf("phase %s", p)
	}
}

func TestRunFinalizesFromInformer(t *testing.T) {
	e := newEnv(t, nil, []runtime.Object{terminating("bye", 0)}, partial("ConfigMap", "bye", "c1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, err := e.cs.CoreV1().Namespaces().Get(context.Background(), "bye", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("namespace not removed")
	}
}
