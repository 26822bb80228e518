package core

import (
	"fmt"
	"path"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func persistentVolumes() *registry.Resource {
	r := newResource("persistentvolumes", "PersistentVolume", "persistentvolume", false,
		func() runtime.Object { return &corev1.PersistentVolume{} },
		func() runtime.Object { return &corev1.PersistentVolumeList{} })
	r.ShortNames = []string{"pv"}
	r.HasStatus = true
	r.NoGeneration = true
	r.PrepareForCreate = func(obj runtime.Object) {
		pv := obj.(*corev1.PersistentVolume)
		now := metav1.Now()
		pv.Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending, LastPhaseTransitionTime: &now}
	}
	r.Default = func(obj runtime.Object) { defaultPersistentVolume(obj.(*corev1.PersistentVolume)) }
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validatePVSpec(&obj.(*corev1.PersistentVolume).Spec, field.NewPath("spec"))
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validatePersistentVolumeUpdate(obj.(*corev1.PersistentVolume), old.(*corev1.PersistentVolume))
	}
	spec := corev1.PersistentVolumeSpec{}.SwaggerDoc()
	status := corev1.PersistentVolumeStatus{}.SwaggerDoc()
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		col("Capacity", "string", spec["capacity"], 0),
		col("Access Modes", "string", spec["accessModes"], 0),
		col("Reclaim Policy", "string", spec["persistentVolumeReclaimPolicy"], 0),
		col("Status", "string", status["phase"], 0),
		col("Claim", "string", spec["claimRef"], 0),
		col("StorageClass", "string", "StorageClass of the pv", 0),
		col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv", 0),
		col("Reason", "string", status["reason"], 0),
		registry.AgeCol,
		col("VolumeMode", "string", spec["volumeMode"], 1),
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		return persistentVolumeRow(obj.(*corev1.PersistentVolume), now)
	}
	return r
}

func defaultPersistentVolume(pv *corev1.PersistentVolume) {
	if pv.Status.Phase == "" {
		pv.Status.Phase = corev1.VolumePending
	}
	if pv.Spec.PersistentVolumeReclaimPolicy == "" {
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if pv.Spec.VolumeMode == nil {
		pv.Spec.VolumeMode = filesystemMode()
	}
	if s := pv.Spec.HostPath; s != nil && s.Type == nil {
		t := corev1.HostPathUnset
		s.Type = &t
	}
	if s := pv.Spec.RBD; s != nil {
		if s.RBDPool == "" {
			s.RBDPool = "rbd"
		}
		if s.RadosUser == "" {
			s.RadosUser = "admin"
		}
		if s.Keyring == "" {
			s.Keyring = "/etc/ceph/keyring"
		}
	}
	if s := pv.Spec.ISCSI; s != nil && s.ISCSIInterface == "" {
		s.ISCSIInterface = "default"
	}
}

var supportedReclaimPolicies = sets.New(corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimRetain)

func validatePVSpec(spec *corev1.PersistentVolumeSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(spec.AccessModes) == 0 {
		errs = append(errs, field.Required(p.Child("accessModes"), ""))
	}
	errs = append(errs, validateAccessModes(spec.AccessModes, p.Child("accessModes"))...)
	if len(spec.Capacity) == 0 {
		errs = append(errs, field.Required(p.Child("capacity"), ""))
	}
	if _, ok := spec.Capacity[corev1.ResourceStorage]; !ok || len(spec.Capacity) > 1 {
		errs = append(errs, field.NotSupported(p.Child("capacity"), spec.Capacity, []corev1.ResourceName{corev1.ResourceStorage}))
	}
	for n, q := range spec.Capacity {
		errs = append(errs, validatePositiveQuantity(q, p.Child("capacity").Key(string(n)))...)
	}
	if spec.StorageClassName != "" {
		errs = append(errs, validateNameRef(spec.StorageClassName, apivalidation.NameIsDNSSubdomain, p.Child("storageClassName"))...)
	}
	if spec.VolumeMode != nil && !supportedVolumeModes.Has(*spec.VolumeMode) {
		errs = append(errs, field.NotSupported(p.Child("volumeMode"), *spec.VolumeMode, sets.List(supportedVolumeModes)))
	}
	if spec.VolumeAttributesClassName != nil {
		if *spec.VolumeAttributesClassName == "" {
			errs = append(errs, field.Required(p.Child("volumeAttributesClassName"), "an empty string is disallowed"))
		} else {
			errs = append(errs, validateNameRef(*spec.VolumeAttributesClassName, apivalidation.NameIsDNSSubdomain, p.Child("volumeAttributesClassName"))...)
		}
	}
	if spec.PersistentVolumeReclaimPolicy != "" && !supportedReclaimPolicies.Has(spec.PersistentVolumeReclaimPolicy) {
		errs = append(errs, field.NotSupported(p.Child("persistentVolumeReclaimPolicy"), spec.PersistentVolumeReclaimPolicy, sets.List(supportedReclaimPolicies)))
	}
	if spec.NodeAffinity != nil && spec.NodeAffinity.Required != nil {
		rp := p.Child("nodeAffinity", "required")
		if len(spec.NodeAffinity.Required.NodeSelectorTerms) == 0 {
			errs = append(errs, field.Required(rp.Child("nodeSelectorTerms"), "must have at least one node selector term"))
		}
		for i, t := range spec.NodeAffinity.Required.NodeSelectorTerms {
			errs = append(errs, validateNodeSelectorTerm(t, rp.Child("nodeSelectorTerms").Index(i))...)
		}
	}

	s := &spec.PersistentVolumeSource
	n := 0
	add := func(name string, present bool, check func(*field.Path) field.ErrorList) {
		if !present {
			return
		}
		if n > 0 {
			errs = append(errs, field.Forbidden(p.Child(name), "may not specify more than 1 volume type"))
			return
		}
		n++
		if check != nil {
			errs = append(errs, check(p.Child(name))...)
		}
	}
	add("hostPath", s.HostPath != nil, func(fp *field.Path) field.ErrorList {
		if s.HostPath.Path == "" {
			return field.ErrorList{field.Required(fp.Child("path"), "")}
		}
		e := validatePathNoBacksteps(s.HostPath.Path, fp.Child("path"))
		if s.HostPath.Type != nil && !supportedHostPathTypes.Has(*s.HostPath.Type) {
			e = append(e, field.NotSupported(fp.Child("type"), *s.HostPath.Type, sets.List(supportedHostPathTypes)))
		}
		return e
	})
	add("gcePersistentDisk", s.GCEPersistentDisk != nil, nil)
	add("awsElasticBlockStore", s.AWSElasticBlockStore != nil, nil)
	add("glusterfs", s.Glusterfs != nil, nil)
	add("flocker", s.Flocker != nil, nil)
	add("nfs", s.NFS != nil, func(fp *field.Path) field.ErrorList { return validateNFS(s.NFS.Server, s.NFS.Path, fp) })
	add("rbd", s.RBD != nil, nil)
	add("quobyte", s.Quobyte != nil, nil)
	add("cinder", s.Cinder != nil, nil)
	add("cephfs", s.CephFS != nil, nil)
	add("fc", s.FC != nil, nil)
	add("flexVolume", s.FlexVolume != nil, nil)
	add("azureFile", s.AzureFile != nil, nil)
	add("vsphereVolume", s.VsphereVolume != nil, nil)
	add("photonPersistentDisk", s.PhotonPersistentDisk != nil, nil)
	add("portworxVolume", s.PortworxVolume != nil, nil)
	add("azureDisk", s.AzureDisk != nil, nil)
	add("scaleIO", s.ScaleIO != nil, nil)
	add("local", s.Local != nil, func(fp *field.Path) field.ErrorList {
		var e field.ErrorList
		if s.Local.Path == "" {
			e = append(e, field.Required(fp.Child("path"), ""))
		} else {
			e = append(e, validatePathNoBacksteps(s.Local.Path, fp.Child("path"))...)
		}
		if spec.NodeAffinity == nil || spec.NodeAffinity.Required == nil {
			e = append(e, field.Required(p.Child("nodeAffinity"), "Local volume requires node affinity"))
		}
		return e
	})
	add("iscsi", s.ISCSI != nil, nil)
	add("storageos", s.StorageOS != nil, nil)
	add("csi", s.CSI != nil, func(fp *field.Path) field.ErrorList {
		var e field.ErrorList
		if s.CSI.Driver == "" {
			e = append(e, field.Required(fp.Child("driver"), ""))
		}
		if s.CSI.VolumeHandle == "" {
			e = append(e, field.Required(fp.Child("volumeHandle"), ""))
		}
		return e
	})
	if n == 0 {
		errs = append(errs, field.Required(p, "must specify a volume type"))
	}
	if s.HostPath != nil && path.Clean(s.HostPath.Path) == "/" && spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRecycle {
		errs = append(errs, field.Forbidden(p.Child("persistentVolumeReclaimPolicy"), "may not be 'recycle' for a hostPath mount of '/'"))
	}
	return errs
}

func validatePersistentVolumeUpdate(pv, old *corev1.PersistentVolume) field.ErrorList {
	var errs field.ErrorList
	newSrc := pv.Spec.PersistentVolumeSource.DeepCopy()
	// A CSI volume may gain a controllerExpandSecretRef.
	if old.Spec.CSI != nil && old.Spec.CSI.ControllerExpandSecretRef == nil && newSrc.CSI != nil {
		newSrc.CSI.ControllerExpandSecretRef = nil
	}
	if !semanticEqual(*newSrc, old.Spec.PersistentVolumeSource) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "persistentvolumesource"),
			fmt.Sprintf("spec.persistentvolumesource is immutable after creation\n%v", specDiff(old.Spec.PersistentVolumeSource, *newSrc))))
	}
	errs = append(errs, validateImmutable(pv.Spec.VolumeMode, old.Spec.VolumeMode, field.NewPath("volumeMode"))...)
	if old.Spec.NodeAffinity != nil && !semanticEqual(pv.Spec.NodeAffinity, old.Spec.NodeAffinity) {
		errs = append(errs, field.Invalid(field.NewPath("nodeAffinity"), pv.Spec.NodeAffinity, apivalidation.FieldImmutableErrorMsg))
	}
	return errs
}

// storageClassOf prefers the beta annotation, as kubectl does.
func storageClassOf(annotations map[string]string, spec string) string {
	if c, ok := annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	return spec
}

func unsetOr(p *string) string {
	if p == nil {
		return "<unset>"
	}
	return *p
}

func persistentVolumeRow(pv *corev1.PersistentVolume, now time.Time) []interface{} {
	claim := ""
	if pv.Spec.ClaimRef != nil {
		claim = pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name
	}
	size := pv.Spec.Capacity[corev1.ResourceStorage]
	phase := string(pv.Status.Phase)
	if pv.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	mode := "<unset>"
	if pv.Spec.VolumeMode != nil {
		mode = string(*pv.Spec.VolumeMode)
	}
	return []interface{}{
		pv.Name, size.String(), accessModesString(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy),
		phase, claim, storageClassOf(pv.Annotations, pv.Spec.StorageClassName), unsetOr(pv.Spec.VolumeAttributesClassName),
		pv.Status.Reason, registry.Age(pv.CreationTimestamp, now), mode,
	}
}
