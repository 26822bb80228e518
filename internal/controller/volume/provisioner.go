package volume

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalPathProvisioner is the built-in provisioner's name.
const LocalPathProvisioner = "skiff.sh/local-path"

// LocalPath provisions hostPath volumes in per-volume directories under BaseDir on the
// node that first uses the claim.
type LocalPath struct {
	BaseDir string
}

// Dir is the directory of the named volume.
func (l *LocalPath) Dir(name string) string { return filepath.Join(l.BaseDir, name) }

// Volume is the PersistentVolume for the claim on the node: a DirectoryOrCreate hostPath
// (so that an agent on another machine creates it), node affinity to the node, the class's
// reclaim policy and mount options, pre-bound to the claim.
func (l *LocalPath) Volume(name string, pvc *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node string) *corev1.PersistentVolume {
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	hostPathType := corev1.HostPathDirectoryOrCreate
	mode := corev1.PersistentVolumeFilesystem
	if pvc.Spec.VolumeMode != nil {
		mode = *pvc.Spec.VolumeMode
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Annotations: map[string]string{
				AnnProvisionedBy: LocalPathProvisioner,
				AnnLocalPathNode: node,
			},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: claimRequest(pvc)},
			AccessModes:                   append([]corev1.PersistentVolumeAccessMode(nil), pvc.Spec.AccessModes...),
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    &mode,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: l.Dir(name), Type: &hostPathType},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}}}},
			}},
		},
	}
}

// MakeDir creates the volume's directory, writable by any container user.
func (l *LocalPath) MakeDir(name string) error {
	dir := l.Dir(name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	return os.Chmod(dir, 0o777)
}

// RemoveDir removes a provisioned volume's directory — only a directory directly under
// BaseDir, never anything else a hostPath might name.
func (l *LocalPath) RemoveDir(pv *corev1.PersistentVolume) error {
	if pv.Spec.HostPath == nil {
		return nil
	}
	dir := filepath.Clean(pv.Spec.HostPath.Path)
	base := filepath.Clean(l.BaseDir)
	if filepath.Dir(dir) != base || !strings.HasPrefix(filepath.Base(dir), "pvc-") {
		return fmt.Errorf("refusing to remove %s: not a volume directory under %s", dir, base)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing volume directory: %w", err)
	}
	return nil
}
