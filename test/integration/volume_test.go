package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiff-sh/skiff/internal/controller/volume"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// volCluster runs the volume controller (local-path volumes under the returned directory),
// the scheduler and two simulated nodes.
func volCluster(t *testing.T) (*skifftest.Cluster, string) {
	t.Helper()
	dir := t.TempDir()
	c := skifftest.Start(t, skifftest.Options{
		Controllers: []controlplane.ComponentFactory{volume.NewFactory(volume.Config{BaseDir: dir,
			// The simulated nodes' disks are this machine's: directories are made and removed here.
			LocalNode: func(*corev1.Node) bool { return true }}), scheduler.New},
		NodeComponents: []controlplane.ComponentFactory{simnode.NewFactory(simnode.Config{Count: 2, StartDelay: 100 * time.Millisecond})},
	})
	volEventually(t, 10*time.Second, "default storage class", func() (bool, string) {
		_, err := c.Client.StorageV1().StorageClasses().Get(context.Background(), "local-path", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	return c, dir
}

func volEventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

func volClaim(name string, class *string, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: class,
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
}

func volStatic(name, class, size string, reclaim corev1.PersistentVolumeReclaimPolicy, path string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path}},
		},
	}
}

func volPod(name, claim string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "skiff.local/web:v1",
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
		},
	}
}

func volEvents(t *testing.T, c *skifftest.Cluster, ns, kind, name string) map[string]string {
	t.Helper()
	list, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.kind": kind, "involvedObject.name": name}.String()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range list.Items {
		out[e.Reason] = e.Message
	}
	return out
}

func volWaitClaimPhase(t *testing.T, c *skifftest.Cluster, ns, name string, phase corev1.PersistentVolumeClaimPhase) *corev1.PersistentVolumeClaim {
	t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	volEventually(t, 15*time.Second, "claim "+name+" "+string(phase), func() (bool, string) {
		var err error
		pvc, err = c.Client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return pvc.Status.Phase == phase, fmt.Sprintf("phase %s volume %q", pvc.Status.Phase, pvc.Spec.VolumeName)
	})
	return pvc
}

func volWaitVolumePhase(t *testing.T, c *skifftest.Cluster, name string, phase corev1.PersistentVolumePhase) *corev1.PersistentVolume {
	t.Helper()
	var pv *corev1.PersistentVolume
	volEventually(t, 15*time.Second, "volume "+name+" "+string(phase), func() (bool, string) {
		var err error
		pv, err = c.Client.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return pv.Status.Phase == phase, fmt.Sprintf("phase %s", pv.Status.Phase)
	})
	return pv
}

func TestVolumeLocalPathWaitForFirstConsumer(t *testing.T) {
	c, dir := volCluster(t)
	ctx := context.Background()
	ns := "default"
	sc, err := c.Client.StorageV1().StorageClasses().Get(ctx, "local-path", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Provisioner != "skiff.sh/local-path" || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
		*sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" {
		t.Fatalf("default class: %+v", sc)
	}

	pvc, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, volClaim("data", nil, "1Gi"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "local-path" {
		t.Fatalf("DefaultStorageClass admission: class %v", pvc.Spec.StorageClassName)
	}
	// Without a consumer it waits, saying so.
	volEventually(t, 10*time.Second, "WaitForFirstConsumer event", func() (bool, string) {
		ev := volEvents(t, c, ns, "PersistentVolumeClaim", "data")
		return ev["WaitForFirstConsumer"] == "waiting for first consumer to be created before binding", fmt.Sprint(ev)
	})
	if got, _ := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{}); got.Status.Phase != corev1.ClaimPending || got.Spec.VolumeName != "" {
		t.Fatalf("claim without a consumer: phase %s volume %q", got.Status.Phase, got.Spec.VolumeName)
	}

	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, volPod("user", "data"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc = volWaitClaimPhase(t, c, ns, "data", corev1.ClaimBound)
	wantPV := "pvc-" + string(pvc.UID)
	if pvc.Spec.VolumeName != wantPV || pvc.Annotations[volume.AnnBindCompleted] != "yes" ||
		pvc.Annotations[volume.AnnStorageProvisioner] != "skiff.sh/local-path" {
		t.Fatalf("bound claim: volume %q annotations %v", pvc.Spec.VolumeName, pvc.Annotations)
	}
	if q := pvc.Status.Capacity[corev1.ResourceStorage]; q.String() != "1Gi" {
		t.Fatalf("claim capacity %s", q.String())
	}
	pv := volWaitVolumePhase(t, c, wantPV, corev1.VolumeBound)
	pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, "user", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID || pv.Spec.StorageClassName != "local-path" ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Fatalf("volume: %+v", pv.Spec)
	}
	if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != filepath.Join(dir, wantPV) {
		t.Fatalf("hostPath %+v", pv.Spec.HostPath)
	}
	terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
	if len(terms) != 1 || terms[0].MatchExpressions[0].Values[0] != pod.Spec.NodeName {
		t.Fatalf("node affinity %+v, pod on %s", terms, pod.Spec.NodeName)
	}
	if st, err := os.Stat(pv.Spec.HostPath.Path); err != nil || !st.IsDir() {
		t.Fatalf("volume directory: %v", err)
	}
	if ev := volEvents(t, c, ns, "PersistentVolumeClaim", "data"); ev["ProvisioningSucceeded"] != "Successfully provisioned volume "+wantPV {
		t.Fatalf("events %v", ev)
	}

	// Deleting pod and claim deletes the volume and its directory (reclaim policy Delete).
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, "user", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	volEventually(t, 15*time.Second, "volume deleted", func() (bool, string) {
		_, err := c.Client.CoreV1().PersistentVolumes().Get(ctx, wantPV, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if _, err := os.Stat(pv.Spec.HostPath.Path); !os.IsNotExist(err) {
		t.Fatalf("volume directory left behind: %v", err)
	}
}

func TestVolumeStaticBindingAndRetain(t *testing.T) {
	c, _ := volCluster(t)
	ctx := context.Background()
	ns := "default"
	manual := "manual"
	for _, pv := range []*corev1.PersistentVolume{
		volStatic("small", "manual", "1Gi", corev1.PersistentVolumeReclaimRetain, "/tmp/skiff-vol-small"),
		volStatic("large", "manual", "10Gi", corev1.PersistentVolumeReclaimRetain, "/tmp/skiff-vol-large"),
		volStatic("other-class", "slow", "5Gi", corev1.PersistentVolumeReclaimRetain, "/tmp/skiff-vol-other"),
	} {
		if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	volWaitVolumePhase(t, c, "small", corev1.VolumeAvailable)

	// The smallest volume of the class that is large enough.
	if _, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, volClaim("logs", &manual, "2Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := volWaitClaimPhase(t, c, ns, "logs", corev1.ClaimBound)
	if pvc.Spec.VolumeName != "large" || pvc.Annotations[volume.AnnBoundByController] != "yes" {
		t.Fatalf("claim bound to %q, annotations %v", pvc.Spec.VolumeName, pvc.Annotations)
	}
	if q := pvc.Status.Capacity[corev1.ResourceStorage]; q.String() != "10Gi" {
		t.Fatalf("claim capacity %s, want the volume's 10Gi", q.String())
	}
	pv := volWaitVolumePhase(t, c, "large", corev1.VolumeBound)
	if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Name != "logs" || pv.Annotations[volume.AnnBoundByController] != "yes" {
		t.Fatalf("volume claimRef %+v annotations %v", pv.Spec.ClaimRef, pv.Annotations)
	}

	// A claim naming its volume binds to it (pre-binding by volumeName).
	pre := volClaim("pinned", &manual, "1Gi")
	pre.Spec.VolumeName = "small"
	if _, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pre, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	volWaitClaimPhase(t, c, ns, "pinned", corev1.ClaimBound)
	if pv := volWaitVolumePhase(t, c, "small", corev1.VolumeBound); pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Name != "pinned" {
		t.Fatalf("small's claimRef %+v", pv.Spec.ClaimRef)
	}

	// No volume fits: the claim stays Pending.
	if _, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, volClaim("huge", &manual, "100Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Retain: deleting the claim releases the volume and keeps it.
	if err := c.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "logs", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	volWaitVolumePhase(t, c, "large", corev1.VolumeReleased)
	if got, _ := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "huge", metav1.GetOptions{}); got.Status.Phase != corev1.ClaimPending {
		t.Fatalf("huge claim phase %s", got.Status.Phase)
	}
	// A Released volume is not reused.
	if _, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, volClaim("again", &manual, "2Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The binder has looked at it once it reports the class ("manual" has no StorageClass
	// object) as unprovisionable; it must not have bound.
	volEventually(t, 10*time.Second, "binder pass over the new claim", func() (bool, string) {
		ev := volEvents(t, c, ns, "PersistentVolumeClaim", "again")
		return ev["ProvisioningFailed"] != "", fmt.Sprint(ev)
	})
	if got, _ := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "again", metav1.GetOptions{}); got.Spec.VolumeName != "" {
		t.Fatalf("claim bound to released volume %q", got.Spec.VolumeName)
	}
	// Once the administrator clears the claimRef, the volume is Available and the claim binds.
	pv, _ = c.Client.CoreV1().PersistentVolumes().Get(ctx, "large", metav1.GetOptions{})
	pv.Spec.ClaimRef = nil
	if _, err := c.Client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if pvc := volWaitClaimPhase(t, c, ns, "again", corev1.ClaimBound); pvc.Spec.VolumeName != "large" {
		t.Fatalf("claim bound to %q", pvc.Spec.VolumeName)
	}
}

func TestVolumeImmediateAndExternalProvisioners(t *testing.T) {
	c, _ := volCluster(t)
	ctx := context.Background()
	ns := "default"
	immediate := storagev1.VolumeBindingImmediate
	for _, sc := range []*storagev1.StorageClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "local-now"}, Provisioner: volume.LocalPathProvisioner, VolumeBindingMode: &immediate},
		{ObjectMeta: metav1.ObjectMeta{Name: "ebs"}, Provisioner: "ebs.csi.aws.com", VolumeBindingMode: &immediate},
	} {
		if _, err := c.Client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	now, ebs, missing := "local-now", "ebs", "nope"
	for name, class := range map[string]*string{"now": &now, "ebs": &ebs, "missing": &missing} {
		if _, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, volClaim(name, class, "1Gi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Immediate local-path provisions without a consumer.
	pvc := volWaitClaimPhase(t, c, ns, "now", corev1.ClaimBound)
	if pvc.Spec.VolumeName != "pvc-"+string(pvc.UID) {
		t.Fatalf("volume %q", pvc.Spec.VolumeName)
	}
	volEventually(t, 10*time.Second, "ExternalProvisioning event", func() (bool, string) {
		ev := volEvents(t, c, ns, "PersistentVolumeClaim", "ebs")
		return ev["ExternalProvisioning"] != "", fmt.Sprint(ev)
	})
	got, _ := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "ebs", metav1.GetOptions{})
	if got.Annotations[volume.AnnStorageProvisioner] != "ebs.csi.aws.com" || got.Status.Phase != corev1.ClaimPending {
		t.Fatalf("external claim: %v %s", got.Annotations, got.Status.Phase)
	}
	volEventually(t, 10*time.Second, "ProvisioningFailed event", func() (bool, string) {
		ev := volEvents(t, c, ns, "PersistentVolumeClaim", "missing")
		return ev["ProvisioningFailed"] == `storageclass.storage.k8s.io "nope" not found`, fmt.Sprint(ev)
	})
}

// A claim created while no default class exists is still handled: it gets the default
// class later if the API allows setting it, and otherwise binds as a classless claim.
func TestVolumeClaimBeforeDefaultClass(t *testing.T) {
	dir := t.TempDir()
	c := skifftest.Start(t, skifftest.Options{
		Controllers: []controlplane.ComponentFactory{volume.NewFactory(volume.Config{BaseDir: dir, NoDefaultClass: true}), scheduler.New},
	})
	ctx := context.Background()
	ns := "default"
	pvc, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, volClaim("early", nil, "1Gi"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Spec.StorageClassName != nil {
		t.Fatalf("class %q without any default", *pvc.Spec.StorageClassName)
	}
	if _, err := c.Client.StorageV1().StorageClasses().Create(ctx, volume.LocalPathClass(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx,
		volStatic("classless", "", "1Gi", corev1.PersistentVolumeReclaimRetain, "/tmp/skiff-vol-classless"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	volEventually(t, 10*time.Second, "claim handled", func() (bool, string) {
		got, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "early", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		retro := got.Spec.StorageClassName != nil && *got.Spec.StorageClassName == "local-path"
		classless := got.Spec.StorageClassName == nil && got.Status.Phase == corev1.ClaimBound && got.Spec.VolumeName == "classless"
		return retro || classless, fmt.Sprintf("class %v phase %s volume %q", got.Spec.StorageClassName, got.Status.Phase, got.Spec.VolumeName)
	})
}
