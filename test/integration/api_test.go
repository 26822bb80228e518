package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func cm(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}
}

func TestHarnessStartsFast(t *testing.T) {
	start := time.Now()
	c := skifftest.Start(t)
	elapsed := time.Since(start)
	t.Logf("in-process control plane ready in %v", elapsed)
	ns, err := c.Client.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, n := range ns.Items {
		got[n.Name] = n.Status.Phase == corev1.NamespaceActive
	}
	for _, want := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if !got[want] {
			t.Errorf("namespace %s missing or not Active: %v", want, got)
		}
	}
}

func TestCRUDErrorsAndConflicts(t *testing.T) {
	c := skifftest.Start(t)
	ctx := context.Background()
	cms := c.Client.CoreV1().ConfigMaps("default")
	created, err := cms.Create(ctx, cm("a"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() {
		t.Fatalf("server-set metadata missing: %+v", created.ObjectMeta)
	}
	if _, err := cms.Create(ctx, cm("a"), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("duplicate create: %v", err)
	}
	// An update from a stale copy is a conflict; a fresh one succeeds.
	fresh := created.DeepCopy()
	fresh.Data["k"] = "v2"
	if _, err := cms.Update(ctx, fresh, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	created.Data["k"] = "stale"
	if _, err := cms.Update(ctx, created, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
	got, _ := cms.Get(ctx, "a", metav1.GetOptions{})
	if got.Data["k"] != "v2" {
		t.Fatalf("stale update changed data: %v", got.Data)
	}
	// Invalid names store nothing.
	bad := cm("Not_Valid")
	if _, err := cms.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("invalid name: %v", err)
	}
	// Missing namespace.
	if _, err := c.Client.CoreV1().ConfigMaps("missing").Create(ctx, cm("x"), metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in missing namespace: %v", err)
	}
	// generateName.
	gen := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}
	g, err := cms.Create(ctx, gen, metav1.CreateOptions{})
	if err != nil || !strings.HasPrefix(g.Name, "gen-") || len(g.Name) != len("gen-")+5 {
		t.Fatalf("generateName: %v %q", err, g.Name)
	}
	// dryRun stores nothing.
	if _, err := cms.Create(ctx, cm("dry"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run object was stored: %v", err)
	}
	// Delete with a wrong UID precondition fails; the right one succeeds.
	wrong := types.UID("nope")
	if err := cms.Delete(ctx, "a", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrong}}); !apierrors.IsConflict(err) {
		t.Fatalf("delete with wrong uid: %v", err)
	}
	if err := cms.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "a", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestFinalizersHoldDeletion(t *testing.T) {
	c := skifftest.Start(t)
	ctx := context.Background()
	cms := c.Client.CoreV1().ConfigMaps("default")
	obj := cm("held")
	obj.Finalizers = []string{"example.com/hold"}
	if _, err := cms.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cms.Get(ctx, "held", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("object with finalizer: %v, deletionTimestamp %v", err, got.DeletionTimestamp)
	}
	got.Finalizers = nil
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("object should be gone once its finalizers are: %v", err)
	}
}

func TestPaginationAndSelectors(t *testing.T) {
	c := skifftest.Start(t)
	ctx := context.Background()
	cms := c.Client.CoreV1().ConfigMaps("default")
	for i := 0; i < 30; i++ {
		o := cm(fmt.Sprintf("c%02d", i))
		o.Labels = map[string]string{"even": fmt.Sprint(i%2 == 0)}
		if _, err := cms.Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	// Only the test's own objects (the root CA publisher adds kube-root-ca.crt to every
	// namespace).
	opts := metav1.ListOptions{Limit: 7, LabelSelector: "even"}
	for {
		l, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(l.Items)
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if seen != 30 {
		t.Fatalf("paged through %d items, want 30", seen)
	}
	l, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "even in (true)"})
	if err != nil || len(l.Items) != 15 {
		t.Fatalf("set-based selector: %v, %d items", err, len(l.Items))
	}
	l, err = cms.List(ctx, metav1.ListOptions{ResourceVersion: "0", LabelSelector: "even,even!=true"})
	if err != nil || len(l.Items) != 15 {
		t.Fatalf("cached list with selector: %v, %d items", err, len(l.Items))
	}
	if _, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "spec.nothing=x"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("unsupported field selector: %v", err)
	}
	if _, err := cms.List(ctx, metav1.ListOptions{Limit: 5, Continue: "garbage"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("bad continue token: %v", err)
	}
}

// An informer sees every change, in order, and its store ends equal to the server's state.
func TestInformerSeesEveryChange(t *testing.T) {
	c := skifftest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The root CA publisher adds kube-root-ca.crt to the namespace at its own pace.
	f := informers.NewSharedInformerFactoryWithOptions(c.Client, 0, informers.WithNamespace("default"),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name!=kube-root-ca.crt" }))
	inf := f.Core().V1().ConfigMaps().Informer()
	var mu sync.Mutex
	adds, updates, deletes := 0, 0, 0
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { mu.Lock(); adds++; mu.Unlock() },
		UpdateFunc: func(any, any) { mu.Lock(); updates++; mu.Unlock() },
		DeleteFunc: func(any) { mu.Lock(); deletes++; mu.Unlock() },
	})
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	cms := c.Client.CoreV1().ConfigMaps("default")
	for i := 0; i < 50; i++ {
		if _, err := cms.Create(ctx, cm(fmt.Sprintf("i%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i += 2 {
		o, _ := cms.Get(ctx, fmt.Sprintf("i%d", i), metav1.GetOptions{})
		o.Data["k"] = "changed"
		if _, err := cms.Update(ctx, o, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		if err := cms.Delete(ctx, fmt.Sprintf("i%d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := adds == 50 && updates == 25 && deletes == 10
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if adds != 50 || updates != 25 || deletes != 10 {
		t.Fatalf("informer saw %d adds, %d updates, %d deletes; want 50, 25, 10", adds, updates, deletes)
	}
	if n := len(inf.GetStore().List()); n != 40 {
		t.Fatalf("informer store holds %d, want 40", n)
	}
}

// A watch from a compacted revision gets 410 Gone (Expired), which is what makes informers
// relist.
func TestWatchExpiredAfterCompaction(t *testing.T) {
	c := skifftest.Start(t)
	ctx := context.Background()
	cms := c.Client.CoreV1().ConfigMaps("default")
	first, err := cms.Create(ctx, cm("first"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// More events than the watch cache's window keeps.
	for i := 0; i < 4200; i++ {
		if _, err := cms.Create(ctx, cm(fmt.Sprintf("n%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err == nil {
		// Some clients see the error as the first event instead.
		t.Fatal("watch from an expired revision succeeded")
	}
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("watch from an expired revision: %v, want 410 Expired", err)
	}
	// A watch from a recent revision works and delivers new events.
	l, _ := cms.List(ctx, metav1.ListOptions{Limit: 1})
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := cms.Create(ctx, cm("after"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "after" {
			t.Fatalf("unexpected event %s", ev.Type)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := skifftest.Start(t, skifftest.Options{DataDir: dir})
	ctx := context.Background()
	if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm("kept"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Stop()
	c2 := skifftest.Start(t, skifftest.Options{DataDir: dir})
	got, err := c2.Client.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("after restart: %v %+v", err, got)
	}
}

// fieldValidation: Strict refuses unknown fields, Warn (the default) stores and warns, Ignore
// stores silently.
func TestFieldValidation(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	body := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"NAME"},"data":{"a":"b"},"unknownField":1}`)
	rc := c.Client.CoreV1().RESTClient()
	for _, tc := range []struct {
		mode    string
		wantErr bool
	}{{"Strict", true}, {"Warn", false}, {"Ignore", false}, {"", false}} {
		name := "fv-" + strings.ToLower(tc.mode)
		if tc.mode == "" {
			name = "fv-default"
		}
		req := rc.Post().Namespace("default").Resource("configmaps").SetHeader("Content-Type", "application/json").
			Body([]byte(strings.Replace(string(body), "NAME", name, 1)))
		if tc.mode != "" {
			req = req.Param("fieldValidation", tc.mode)
		}
		res := req.Do(ctx)
		err := res.Error()
		if tc.wantErr {
			if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "unknownField"`) {
				t.Fatalf("%s: %v", tc.mode, err)
			}
			if _, err := c.Client.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("%s stored the object", tc.mode)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		warned := len(res.Warnings()) > 0
		if want := tc.mode != "Ignore"; warned != want {
			t.Fatalf("%s: warnings %v", tc.mode, res.Warnings())
		}
	}
	// Over 3 MiB is refused with 413 and stores nothing.
	big := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Data: map[string]string{"x": strings.Repeat("x", 3*1024*1024+10)}}
	if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, big, metav1.CreateOptions{}); !apierrors.IsRequestEntityTooLargeError(err) {
		t.Fatalf("oversized body: %v", err)
	}
}
