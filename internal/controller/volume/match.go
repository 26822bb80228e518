package volume

import (
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Annotations the binder reads and writes (Kubernetes' names).
const (
	AnnBindCompleted      = "pv.kubernetes.io/bind-completed"
	AnnBoundByController  = "pv.kubernetes.io/bound-by-controller"
	AnnProvisionedBy      = "pv.kubernetes.io/provisioned-by"
	AnnStorageProvisioner = "volume.kubernetes.io/storage-provisioner"
	AnnBetaProvisioner    = "volume.beta.kubernetes.io/storage-provisioner"
	AnnSelectedNode       = "volume.kubernetes.io/selected-node"
	AnnBetaStorageClass   = "volume.beta.kubernetes.io/storage-class"
	AnnDefaultClass       = "storageclass.kubernetes.io/is-default-class"
	// AnnLocalPathNode records the node whose disk holds a local-path volume.
	AnnLocalPathNode = "skiff.sh/local-path-node"
)

// claimClass is the claim's storage class name: spec.storageClassName, else the beta
// annotation, else "".
func claimClass(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return pvc.Annotations[AnnBetaStorageClass]
}

// volumeClass is the volume's storage class name, the beta annotation counting too.
func volumeClass(pv *corev1.PersistentVolume) string {
	if pv.Spec.StorageClassName != "" {
		return pv.Spec.StorageClassName
	}
	return pv.Annotations[AnnBetaStorageClass]
}

// claimRequest is the storage the claim asks for.
func claimRequest(pvc *corev1.PersistentVolumeClaim) resource.Quantity {
	return pvc.Spec.Resources.Requests[corev1.ResourceStorage]
}

// preBoundTo reports whether the volume's claimRef names the claim (by namespace and name,
// and UID when the ref has one).
func preBoundTo(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	ref := pv.Spec.ClaimRef
	return ref != nil && ref.Namespace == pvc.Namespace && ref.Name == pvc.Name && (ref.UID == "" || ref.UID == pvc.UID)
}

// hasAccessModes reports whether the volume offers every mode the claim asks for.
func hasAccessModes(pv *corev1.PersistentVolume, want []corev1.PersistentVolumeAccessMode) bool {
	for _, m := range want {
		found := false
		for _, h := range pv.Spec.AccessModes {
			if h == m {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func volumeModeOf(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

// matches reports whether the volume can serve the claim, ignoring who it is bound to.
func matches(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	if pv.DeletionTimestamp != nil {
		return false
	}
	if volumeClass(pv) != claimClass(pvc) {
		return false
	}
	if volumeModeOf(pv.Spec.VolumeMode) != volumeModeOf(pvc.Spec.VolumeMode) {
		return false
	}
	if !hasAccessModes(pv, pvc.Spec.AccessModes) {
		return false
	}
	capacity := pv.Spec.Capacity[corev1.ResourceStorage]
	req := claimRequest(pvc)
	if capacity.Cmp(req) < 0 {
		return false
	}
	if pvc.Spec.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(pvc.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pv.Labels)) {
			return false
		}
	}
	return true
}

// FindMatch picks the volume for an unbound claim: a volume pre-bound to it (claimRef naming
// it) if one matches, else the smallest available, unclaimed matching volume. Volumes
// pre-bound to other claims, and volumes not Available, are skipped. nil when none fits.
func FindMatch(pvc *corev1.PersistentVolumeClaim, volumes []*corev1.PersistentVolume) *corev1.PersistentVolume {
	var best *corev1.PersistentVolume
	for _, pv := range volumes {
		if !matches(pv, pvc) {
			continue
		}
		if pv.Spec.ClaimRef != nil {
			if preBoundTo(pv, pvc) {
				return pv
			}
			continue
		}
		if pv.Status.Phase != "" && pv.Status.Phase != corev1.VolumeAvailable {
			continue
		}
		if best == nil {
			best = pv
			continue
		}
		a, b := pv.Spec.Capacity[corev1.ResourceStorage], best.Spec.Capacity[corev1.ResourceStorage]
		if c := a.Cmp(b); c < 0 || (c == 0 && pv.Name < best.Name) {
			best = pv
		}
	}
	return best
}

// DefaultClass returns the default storage class: the newest of those annotated as default
// (by name on ties), nil when none is.
func DefaultClass(classes []*storagev1.StorageClass) *storagev1.StorageClass {
	var chosen *storagev1.StorageClass
	for _, c := range classes {
		if c.Annotations[AnnDefaultClass] != "true" {
			continue
		}
		if chosen == nil || c.CreationTimestamp.After(chosen.CreationTimestamp.Time) ||
			(c.CreationTimestamp.Equal(&chosen.CreationTimestamp) && c.Name < chosen.Name) {
			chosen = c
		}
	}
	return chosen
}

// podClaims lists the names of the claims a pod's volumes use.
func podClaims(pod *corev1.Pod) []string {
	var out []string
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			out = append(out, v.PersistentVolumeClaim.ClaimName)
		}
	}
	return out
}
