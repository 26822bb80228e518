package serviceaccount

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

func namespace(name string, phase corev1.NamespacePhase) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: phase}}
}

func newController(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, informers.SharedInformerFactory) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(cs, 0)
	c := NewController(slog.New(slog.NewTextHandler(io.Discard, nil)), cs, f.Core().V1().Namespaces(), f.Core().V1().ServiceAccounts(), 1)
	return c, cs, f
}

func created(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "serviceaccounts" {
			sa := a.(clienttesting.CreateAction).GetObject().(*corev1.ServiceAccount)
			out = append(out, a.GetNamespace()+"/"+sa.Name)
		}
	}
	return out
}

func TestSync(t *testing.T) {
	existing := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "has", Name: "default"}}
	c, cs, f := newController(t,
		namespace("new", corev1.NamespaceActive), namespace("has", corev1.NamespaceActive),
		namespace("going", corev1.NamespaceTerminating), existing)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("not synced")
	}
	for _, ns := range []string{"new", "has", "going", "missing"} {
		if err := c.sync(ctx, ns); err != nil {
			t.Fatalf("%s: %v", ns, err)
		}
	}
	if got := created(cs); len(got) != 1 || got[0] != "new/default" {
		t.Fatalf("created %v", got)
	}
}

func TestSyncToleratesRacesAndTermination(t *testing.T) {
	c, cs, f := newController(t, namespace("a", corev1.NamespaceActive), namespace("b", corev1.NamespaceActive), namespace("c", corev1.NamespaceActive))
	cs.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, runtime.Object, error) {
		switch a.GetNamespace() {
		case "a":
			return true, nil, apierrors.NewAlreadyExists(corev1.Resource("serviceaccounts"), "default")
		case "b":
			err := apierrors.NewForbidden(corev1.Resource("serviceaccounts"), "default", errors.New("being terminated"))
			err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause}}
			return true, nil, err
		}
		return true, nil, apierrors.NewInternalError(errors.New("boom"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), c.synced...)
	if err := c.sync(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx, "c"); err == nil {
		t.Fatal("server error not reported")
	}
}

func TestRecreatesDeletedDefault(t *testing.T) {
	c, cs, f := newController(t, namespace("ns", corev1.NamespaceActive))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f.Start(ctx.Done())
	sas := cs.CoreV1().ServiceAccounts("ns")
	waitFor := func(what string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := sas.Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		})
		if err != nil {
			t.Fatalf("timed out: %s", what)
		}
	}
	waitFor("default service account created")
	if err := sas.Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("default service account recreated")
	// A namespace added later gets one as well.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, namespace("later", corev1.NamespaceActive), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sas = cs.CoreV1().ServiceAccounts("later")
	waitFor("default service account in a new namespace")
}
