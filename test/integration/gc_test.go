package integration

import (
	"bytes"
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller/garbagecollector"
	"github.com/skiff-sh/skiff/internal/controller/namespace"
	"github.com/skiff-sh/skiff/internal/controller/serviceaccount"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// gcStart starts a control plane running the garbage collector, namespace and service
// account controllers.
func gcStart(t *testing.T) *skifftest.Cluster {
	t.Helper()
	return skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{
		garbagecollector.New, namespace.New, serviceaccount.New}})
}

// gcEventually polls cond until it holds.
func gcEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %v: %s", timeout, what)
	}
}

// gcConsistently checks cond for a while.
func gcConsistently(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if !cond() {
			t.Fatalf("no longer holds: %s", what)
		}
	}
}

func gcOwnerRef(owner *corev1.ConfigMap, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID, BlockOwnerDeletion: &block}
}

// gcFamily creates a parent ConfigMap with a ConfigMap and a Secret depending on it.
func gcFamily(t *testing.T, c *skifftest.Cluster, ns string, block bool, childFinalizers ...string) *corev1.ConfigMap {
	t.Helper()
	ctx := context.Background()
	parent, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm("parent"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	child := cm("child")
	child.OwnerReferences = []metav1.OwnerReference{gcOwnerRef(parent, block)}
	child.Finalizers = childFinalizers
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, child, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "child-secret", OwnerReferences: []metav1.OwnerReference{gcOwnerRef(parent, block)}},
		StringData: map[string]string{"k": "v"}}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return parent
}

func gcConfigMapGone(c *skifftest.Cluster, ns, name string) func() bool {
	return func() bool {
		_, err := c.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
}

func gcSecretGone(c *skifftest.Cluster, ns, name string) func() bool {
	return func() bool {
		_, err := c.Client.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
}

func gcDelete(t *testing.T, c *skifftest.Cluster, ns, name string, policy metav1.DeletionPropagation) {
	t.Helper()
	opts := metav1.DeleteOptions{}
	if policy != "" {
		opts.PropagationPolicy = &policy
	}
	if err := c.Client.CoreV1().ConfigMaps(ns).Delete(context.Background(), name, opts); err != nil {
		t.Fatal(err)
	}
}

func TestGarbageCollectorBackground(t *testing.T) {
	c := gcStart(t)
	for _, policy := range []metav1.DeletionPropagation{metav1.DeletePropagationBackground, ""} {
		gcFamily(t, c, "default", true)
		gcDelete(t, c, "default", "parent", policy)
		if !gcConfigMapGone(c, "default", "parent")() {
			t.Fatalf("%q: background deletion kept the owner", policy)
		}
		gcEventually(t, 15*time.Second, "dependents of a deleted owner collected", func() bool {
			return gcConfigMapGone(c, "default", "child")() && gcSecretGone(c, "default", "child-secret")()
		})
	}
}

func TestGarbageCollectorForeground(t *testing.T) {
	c := gcStart(t)
	ctx := context.Background()
	cms := c.Client.CoreV1().ConfigMaps("default")
	gcFamily(t, c, "default", true, "example.com/hold")
	gcDelete(t, c, "default", "parent", metav1.DeletePropagationForeground)
	// The dependents are deleted first; the one held by a finalizer holds the owner.
	gcEventually(t, 15*time.Second, "dependents deleted", func() bool {
		child, err := cms.Get(ctx, "child", metav1.GetOptions{})
		return err == nil && child.DeletionTimestamp != nil && gcSecretGone(c, "default", "child-secret")()
	})
	gcConsistently(t, time.Second, "owner waits for its blocking dependent", func() bool {
		p, err := cms.Get(ctx, "parent", metav1.GetOptions{})
		return err == nil && p.DeletionTimestamp != nil && len(p.Finalizers) == 1 && p.Finalizers[0] == metav1.FinalizerDeleteDependents
	})
	if _, err := cms.Patch(ctx, "child", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	gcEventually(t, 15*time.Second, "owner deleted once its dependents are gone", func() bool {
		return gcConfigMapGone(c, "default", "child")() && gcConfigMapGone(c, "default", "parent")()
	})
}

func TestGarbageCollectorForegroundNonBlocking(t *testing.T) {
	c := gcStart(t)
	gcFamily(t, c, "default", false)
	gcDelete(t, c, "default", "parent", metav1.DeletePropagationForeground)
	gcEventually(t, 15*time.Second, "owner and dependents deleted", func() bool {
		return gcConfigMapGone(c, "default", "parent")() && gcConfigMapGone(c, "default", "child")() && gcSecretGone(c, "default", "child-secret")()
	})
}

func TestGarbageCollectorOrphan(t *testing.T) {
	c := gcStart(t)
	ctx := context.Background()
	gcFamily(t, c, "default", true)
	gcDelete(t, c, "default", "parent", metav1.DeletePropagationOrphan)
	gcEventually(t, 15*time.Second, "owner deleted after orphaning", gcConfigMapGone(c, "default", "parent"))
	child, err := c.Client.CoreV1().ConfigMaps("default").Get(ctx, "child", metav1.GetOptions{})
	if err != nil || len(child.OwnerReferences) != 0 {
		t.Fatalf("child not orphaned: %v %v", err, child.OwnerReferences)
	}
	sec, err := c.Client.CoreV1().Secrets("default").Get(ctx, "child-secret", metav1.GetOptions{})
	if err != nil || len(sec.OwnerReferences) != 0 {
		t.Fatalf("secret not orphaned: %v %v", err, sec.OwnerReferences)
	}
	gcConsistently(t, time.Second, "orphans stay", func() bool {
		return !gcConfigMapGone(c, "default", "child")() && !gcSecretGone(c, "default", "child-secret")()
	})
}

func TestGarbageCollectorAbsentAndMismatchedOwners(t *testing.T) {
	c := gcStart(t)
	ctx := context.Background()
	cms := c.Client.CoreV1().ConfigMaps("default")
	live, err := cms.Create(ctx, cm("live"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, refs ...metav1.OwnerReference) {
		t.Helper()
		o := cm(name)
		o.OwnerReferences = refs
		if _, err := cms.Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("never-existed", metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "ghost", UID: "no-such-uid"})
	mk("uid-mismatch", metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "live", UID: "old-uid"})
	mk("kept", gcOwnerRef(live, false))
	mk("kept-by-namespace", metav1.OwnerReference{APIVersion: "v1", Kind: "Namespace", Name: "default", UID: ns.UID})
	mk("half-dangling", gcOwnerRef(live, false), metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "ghost", UID: "gone-uid"})
	gcEventually(t, 15*time.Second, "dependents of absent owners collected", func() bool {
		return gcConfigMapGone(c, "default", "never-existed")() && gcConfigMapGone(c, "default", "uid-mismatch")()
	})
	gcEventually(t, 15*time.Second, "dangling reference removed beside a live owner", func() bool {
		o, err := cms.Get(ctx, "half-dangling", metav1.GetOptions{})
		return err == nil && len(o.OwnerReferences) == 1 && o.OwnerReferences[0].UID == live.UID
	})
	for _, n := range []string{"kept", "kept-by-namespace", "live"} {
		if gcConfigMapGone(c, "default", n)() {
			t.Errorf("%s deleted", n)
		}
	}
}

// TestGarbageCollectorMetadataAPI checks what the collector relies on from the API server:
// metadata-only get, list, watch (informers), merge patch, delete with preconditions and
// deletecollection, on any resource.
func TestGarbageCollectorMetadataAPI(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	md, err := metadata.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	secrets := md.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace("default")
	sec, err := c.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := secrets.Get(ctx, "s", metav1.GetOptions{})
	if err != nil || p.UID != sec.UID || p.ResourceVersion != sec.ResourceVersion {
		t.Fatalf("get: %v %+v", err, p)
	}
	l, err := secrets.List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.ResourceVersion == "" {
		t.Fatalf("list: %v %+v", err, l)
	}
	// The metadata client asks for protobuf first and gets it, as from Kubernetes; JSON when
	// asked for JSON only.
	for accept, want := range map[string]string{
		"application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json": "application/vnd.kubernetes.protobuf",
		"application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json":                    "application/json",
	} {
		var ct string
		raw, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/secrets/s").
			SetHeader("Accept", accept).Do(ctx).ContentType(&ct).Raw()
		if err != nil || ct != want {
			t.Fatalf("Accept %s: content type %q, err %v", accept, ct, err)
		}
		if !bytes.Contains(raw, []byte("PartialObjectMetadata")) || bytes.Contains(raw, []byte("kind\":\"Secret")) {
			t.Fatalf("Accept %s: body %q", accept, raw)
		}
	}
	// A merge patch carrying a stale resourceVersion conflicts.
	if _, err := secrets.Patch(ctx, "s", types.MergePatchType, []byte(`{"metadata":{"finalizers":["example.com/x"],"resourceVersion":"1"}}`), metav1.PatchOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale patch: %v", err)
	}
	p, err = secrets.Patch(ctx, "s", types.MergePatchType, []byte(`{"metadata":{"finalizers":["example.com/x"],"resourceVersion":"`+p.ResourceVersion+`"}}`), metav1.PatchOptions{})
	if err != nil || len(p.Finalizers) != 1 {
		t.Fatalf("patch: %v %+v", err, p)
	}
	// Delete with a stale resourceVersion precondition conflicts; with a matching UID it marks
	// the object deleted (it has a finalizer).
	stale := "1"
	if err := secrets.Delete(ctx, "s", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &stale}}); !apierrors.IsConflict(err) {
		t.Fatalf("stale delete: %v", err)
	}
	orphan := metav1.DeletePropagationOrphan
	if err := secrets.Delete(ctx, "s", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID}, PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	p, err = secrets.Get(ctx, "s", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil || len(p.Finalizers) != 2 {
		t.Fatalf("after delete: %v %+v", err, p)
	}
	// Removing the last finalizers removes the object.
	if _, err := secrets.Patch(ctx, "s", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Get(ctx, "s", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("not removed: %v", err)
	}
	// Informers list and watch.
	factory := metadatainformer.NewSharedInformerFactory(md, 0)
	inf := factory.ForResource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Informer()
	added := make(chan string, 10)
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o interface{}) {
		added <- o.(*metav1.PartialObjectMetadata).Name
	}})
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory.Start(ictx.Done())
	if !cache.WaitForCacheSync(ictx.Done(), inf.HasSynced) {
		t.Fatal("informer not synced")
	}
	if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm("watched"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case n := <-added:
			seen = n == "watched"
		case <-deadline:
			t.Fatal("metadata informer did not see the new object")
		}
	}
	if err := md.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace("default").
		DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, _ := c.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); len(l.Items) != 0 {
		t.Fatalf("deletecollection left %d", len(l.Items))
	}
}
