package volume

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

// fakeController builds the controller on a fake clientset whose objects are also in the
// listers (no informers run: each test drives sync functions directly).
func fakeController(t *testing.T, dir string, objs ...runtime.Object) (*Controller, *fake.Clientset, *record.FakeRecorder) {
	c, client, rec, _ := fakeControllerInformers(t, dir, objs...)
	return c, client, rec
}

func fakeControllerInformers(t *testing.T, dir string, objs ...runtime.Object) (*Controller, *fake.Clientset, *record.FakeRecorder, informers.SharedInformerFactory) {
	t.Helper()
	client := fake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(client, 0)
	rec := record.NewFakeRecorder(100)
	c := NewController(slog.New(slog.NewTextHandler(io.Discard, nil)), client, inf, rec,
		Config{BaseDir: dir, LocalNode: func(*corev1.Node) bool { return true }})
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.PersistentVolume:
			err = inf.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(o)
		case *corev1.PersistentVolumeClaim:
			err = inf.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(o)
		case *storagev1.StorageClass:
			err = inf.Storage().V1().StorageClasses().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			err = inf.Core().V1().Pods().Informer().GetIndexer().Add(o)
		case *corev1.Node:
			err = inf.Core().V1().Nodes().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return c, client, rec, inf
}

func boundTo(v *corev1.PersistentVolume, ns, name, uid string) *corev1.PersistentVolume {
	v.Spec.ClaimRef = &corev1.ObjectReference{Namespace: ns, Name: name, UID: types.UID(uid)}
	v.Status.Phase = corev1.VolumeBound
	return v
}

func TestReleaseByReclaimPolicy(t *testing.T) {
	ctx := context.Background()
	t.Run("Delete removes a provisioned volume and its directory", func(t *testing.T) {
		dir := t.TempDir()
		l := &LocalPath{BaseDir: dir}
		class := LocalPathClass()
		v := l.Volume("pvc-gone", pvc("gone", &class.Name, "1Gi", rwo), class, "n1")
		v.Status.Phase = corev1.VolumeBound
		if err := l.MakeDir("pvc-gone"); err != nil {
			t.Fatal(err)
		}
		c, client, _ := fakeController(t, dir, v)
		if err := c.syncVolume(ctx, "pvc-gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-gone", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("volume not deleted: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "pvc-gone")); !os.IsNotExist(err) {
			t.Fatalf("directory not removed: %v", err)
		}
	})
	t.Run("Retain keeps the volume Released", func(t *testing.T) {
		v := boundTo(pv("kept", "manual", "1Gi", rwo), "ns", "gone", "u1")
		v.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		c, client, _ := fakeController(t, t.TempDir(), v)
		if err := c.syncVolume(ctx, "kept"); err != nil {
			t.Fatal(err)
		}
		got, err := client.CoreV1().PersistentVolumes().Get(ctx, "kept", metav1.GetOptions{})
		if err != nil || got.Status.Phase != corev1.VolumeReleased {
			t.Fatalf("got %v %v", got.Status, err)
		}
	})
	t.Run("Delete of a volume no plugin can delete fails", func(t *testing.T) {
		v := boundTo(pv("static", "manual", "1Gi", rwo), "ns", "gone", "u1")
		v.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
		c, client, rec := fakeController(t, t.TempDir(), v)
		if err := c.syncVolume(ctx, "static"); err != nil {
			t.Fatal(err)
		}
		got, _ := client.CoreV1().PersistentVolumes().Get(ctx, "static", metav1.GetOptions{})
		if got.Status.Phase != corev1.VolumeFailed {
			t.Fatalf("phase %s", got.Status.Phase)
		}
		if e := <-rec.Events; e != `Warning VolumeFailedDelete error getting deleter volume plugin for volume "static": no deletable volume plugin matched` {
			t.Fatalf("event %q", e)
		}
	})
	t.Run("a volume whose claim still exists is not released", func(t *testing.T) {
		claim := pvc("here", nil, "1Gi", rwo)
		claim.Spec.VolumeName = "v"
		v := boundTo(pv("v", "", "1Gi", rwo), "ns", "here", string(claim.UID))
		c, client, _ := fakeController(t, t.TempDir(), v, claim)
		if err := c.syncVolume(ctx, "v"); err != nil {
			t.Fatal(err)
		}
		got, _ := client.CoreV1().PersistentVolumes().Get(ctx, "v", metav1.GetOptions{})
		if got.Status.Phase != corev1.VolumeBound {
			t.Fatalf("phase %s", got.Status.Phase)
		}
	})
}

func TestClaimWaitsForConsumerThenProvisions(t *testing.T) {
	ctx := context.Background()
	class := LocalPathClass()
	newClaim := func() *corev1.PersistentVolumeClaim {
		claim := pvc("data", &class.Name, "1Gi", rwo)
		claim.Status.Phase = corev1.ClaimPending
		claim.Annotations = map[string]string{AnnStorageProvisioner: LocalPathProvisioner, AnnBetaProvisioner: LocalPathProvisioner}
		return claim
	}

	c, client, rec := fakeController(t, t.TempDir(), class, newClaim())
	if err := c.syncClaim(ctx, "ns", "data"); err != nil {
		t.Fatal(err)
	}
	if e := <-rec.Events; e != "Normal WaitForFirstConsumer waiting for first consumer to be created before binding" {
		t.Fatalf("event %q", e)
	}
	if list, _ := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{}); len(list.Items) != 0 {
		t.Fatalf("provisioned without a consumer: %v", list.Items)
	}

	// With a pod using the claim scheduled to n2: a volume on n2, pre-bound to the claim.
	dir := t.TempDir()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "user"}, Spec: corev1.PodSpec{NodeName: "n2",
		Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}}}
	claim := newClaim()
	c, client, rec, inf := fakeControllerInformers(t, dir, class, claim, pod)
	if err := c.syncClaim(ctx, "ns", "data"); err != nil {
		t.Fatal(err)
	}
	v, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-"+string(claim.UID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Annotations[AnnLocalPathNode] != "n2" || v.Spec.ClaimRef.UID != claim.UID ||
		v.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "n2" {
		t.Fatalf("volume %+v", v)
	}
	if _, err := os.Stat(filepath.Join(dir, v.Name)); err != nil {
		t.Fatalf("directory: %v", err)
	}
	<-rec.Events // Provisioning
	if e := <-rec.Events; e != "Normal ProvisioningSucceeded Successfully provisioned volume "+v.Name {
		t.Fatalf("event %q", e)
	}

	// Once the volume is in the lister, the claim's next sync binds both.
	if err := inf.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(v); err != nil {
		t.Fatal(err)
	}
	if err := c.syncClaim(ctx, "ns", "data"); err != nil {
		t.Fatal(err)
	}
	got, _ := client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "data", metav1.GetOptions{})
	if got.Spec.VolumeName != v.Name || got.Status.Phase != corev1.ClaimBound || got.Annotations[AnnBindCompleted] != "yes" {
		t.Fatalf("claim %+v %+v", got.Spec, got.Status)
	}
	v, _ = client.CoreV1().PersistentVolumes().Get(ctx, v.Name, metav1.GetOptions{})
	if v.Status.Phase != corev1.VolumeBound {
		t.Fatalf("volume phase %s", v.Status.Phase)
	}
}
