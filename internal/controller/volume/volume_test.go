package volume

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func pv(name, class, size string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tier": "fast"}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:         corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:      modes,
			StorageClassName: class,
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable},
	}
}

func pvc(name string, class *string, size string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: class,
			AccessModes:      modes,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
}

const rwo, rwx = corev1.ReadWriteOnce, corev1.ReadWriteMany

func TestFindMatch(t *testing.T) {
	manual := "manual"
	empty := ""
	prebound := pv("pre", "manual", "10Gi", rwo)
	prebound.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "c"}
	other := pv("other", "manual", "1Gi", rwo)
	other.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "someone-else"}
	released := pv("released", "manual", "1Gi", rwo)
	released.Status.Phase = corev1.VolumeReleased
	for _, tc := range []struct {
		name    string
		claim   *corev1.PersistentVolumeClaim
		volumes []*corev1.PersistentVolume
		want    string
	}{
		{"smallest that fits", pvc("c", &manual, "1Gi", rwo),
			[]*corev1.PersistentVolume{pv("big", "manual", "10Gi", rwo), pv("small", "manual", "2Gi", rwo), pv("tiny", "manual", "500Mi", rwo)}, "small"},
		{"class must match", pvc("c", &manual, "1Gi", rwo), []*corev1.PersistentVolume{pv("a", "other", "2Gi", rwo)}, ""},
		{"empty class matches classless volumes", pvc("c", &empty, "1Gi", rwo),
			[]*corev1.PersistentVolume{pv("a", "manual", "2Gi", rwo), pv("b", "", "2Gi", rwo)}, "b"},
		{"access modes must be offered", pvc("c", &manual, "1Gi", rwx), []*corev1.PersistentVolume{pv("a", "manual", "2Gi", rwo)}, ""},
		{"pre-bound volume wins", pvc("c", &manual, "1Gi", rwo), []*corev1.PersistentVolume{pv("a", "manual", "2Gi", rwo), prebound}, "pre"},
		{"volume pre-bound elsewhere and released volumes are skipped", pvc("c", &manual, "1Gi", rwo),
			[]*corev1.PersistentVolume{other, released}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FindMatch(tc.claim, tc.volumes)
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tc.want {
				t.Fatalf("got %q, want %q", name, tc.want)
			}
		})
	}
	t.Run("selector", func(t *testing.T) {
		c := pvc("c", &manual, "1Gi", rwo)
		c.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "slow"}}
		if got := FindMatch(c, []*corev1.PersistentVolume{pv("a", "manual", "2Gi", rwo)}); got != nil {
			t.Fatalf("selector ignored: %s", got.Name)
		}
		c.Spec.Selector.MatchLabels["tier"] = "fast"
		if got := FindMatch(c, []*corev1.PersistentVolume{pv("a", "manual", "2Gi", rwo)}); got == nil {
			t.Fatal("matching selector refused")
		}
	})
}

func TestDefaultClass(t *testing.T) {
	older := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "old", CreationTimestamp: metav1.NewTime(time.Unix(100, 0)),
		Annotations: map[string]string{AnnDefaultClass: "true"}}}
	newer := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "new", CreationTimestamp: metav1.NewTime(time.Unix(200, 0)),
		Annotations: map[string]string{AnnDefaultClass: "true"}}}
	plain := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "plain", CreationTimestamp: metav1.NewTime(time.Unix(300, 0))}}
	if got := DefaultClass([]*storagev1.StorageClass{older, newer, plain}); got != newer {
		t.Fatalf("got %v, want the newest default", got)
	}
	if got := DefaultClass([]*storagev1.StorageClass{plain}); got != nil {
		t.Fatalf("got %v, want none", got.Name)
	}
}

func TestLocalPathVolume(t *testing.T) {
	dir := t.TempDir()
	l := &LocalPath{BaseDir: dir}
	class := LocalPathClass()
	c := pvc("data", &class.Name, "1Gi", rwo)
	v := l.Volume("pvc-123", c, class, "node-a")
	if v.Spec.HostPath == nil || v.Spec.HostPath.Path != filepath.Join(dir, "pvc-123") {
		t.Fatalf("hostPath %+v", v.Spec.HostPath)
	}
	if v.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || v.Spec.StorageClassName != "local-path" {
		t.Fatalf("spec %+v", v.Spec)
	}
	if v.Spec.ClaimRef == nil || v.Spec.ClaimRef.UID != c.UID || v.Annotations[AnnLocalPathNode] != "node-a" ||
		v.Annotations[AnnProvisionedBy] != LocalPathProvisioner {
		t.Fatalf("claimRef/annotations %+v %v", v.Spec.ClaimRef, v.Annotations)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{corev1.LabelHostname: "node-a"}}}
	otherNode := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b", Labels: map[string]string{corev1.LabelHostname: "node-b"}}}
	if !volumeFitsNode(v, node) || volumeFitsNode(v, otherNode) {
		t.Fatal("node affinity should admit node-a only")
	}
	if err := l.MakeDir("pvc-123"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(v.Spec.HostPath.Path); err != nil || !st.IsDir() {
		t.Fatalf("directory not made: %v", err)
	}
	if err := l.RemoveDir(v); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Spec.HostPath.Path); !os.IsNotExist(err) {
		t.Fatalf("directory not removed: %v", err)
	}
	// Never a path outside the base directory.
	v.Spec.HostPath.Path = "/etc"
	if err := l.RemoveDir(v); err == nil {
		t.Fatal("RemoveDir accepted /etc")
	}
}
