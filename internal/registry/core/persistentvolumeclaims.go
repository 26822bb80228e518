package core

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func persistentVolumeClaims() *registry.Resource {
	r := newResource("persistentvolumeclaims", "PersistentVolumeClaim", "persistentvolumeclaim", true,
		func() runtime.Object { return &corev1.PersistentVolumeClaim{} },
		func() runtime.Object { return &corev1.PersistentVolumeClaimList{} })
	r.ShortNames = []string{"pvc"}
	r.HasStatus = true
	r.NoGeneration = true
	r.PrepareForCreate = func(obj runtime.Object) {
		obj.(*corev1.PersistentVolumeClaim).Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
	}
	r.Default = func(obj runtime.Object) {
		pvc := obj.(*corev1.PersistentVolumeClaim)
		if pvc.Status.Phase == "" {
			pvc.Status.Phase = corev1.ClaimPending
		}
		if pvc.Spec.VolumeMode == nil {
			pvc.Spec.VolumeMode = filesystemMode()
		}
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validatePVCSpec(&obj.(*corev1.PersistentVolumeClaim).Spec, field.NewPath("spec"))
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validatePVCUpdate(obj.(*corev1.PersistentVolumeClaim), old.(*corev1.PersistentVolumeClaim))
	}
	r.ValidateStatusUpdate = func(obj, old runtime.Object) field.ErrorList {
		pvc := obj.(*corev1.PersistentVolumeClaim)
		var errs field.ErrorList
		for n, q := range pvc.Status.Capacity {
			errs = append(errs, validateResourceQuantityValue(n, q, field.NewPath("status", "capacity").Key(string(n)))...)
		}
		return errs
	}
	spec := corev1.PersistentVolumeClaimSpec{}.SwaggerDoc()
	status := corev1.PersistentVolumeClaimStatus{}.SwaggerDoc()
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		col("Status", "string", status["phase"], 0),
		col("Volume", "string", spec["volumeName"], 0),
		col("Capacity", "string", status["capacity"], 0),
		col("Access Modes", "string", status["accessModes"], 0),
		col("StorageClass", "string", "StorageClass of the pvc", 0),
		col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc", 0),
		registry.AgeCol,
		col("VolumeMode", "string", spec["volumeMode"], 1),
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		return persistentVolumeClaimRow(obj.(*corev1.PersistentVolumeClaim), now)
	}
	return r
}

func validatePVCSpec(spec *corev1.PersistentVolumeClaimSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(spec.AccessModes) == 0 {
		errs = append(errs, field.Required(p.Child("accessModes"), "at least 1 access mode is required"))
	}
	if spec.Selector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
	}
	errs = append(errs, validateAccessModes(spec.AccessModes, p.Child("accessModes"))...)
	sp := p.Child("resources").Key(string(corev1.ResourceStorage))
	if q, ok := spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		errs = append(errs, field.Required(sp, ""))
	} else if e := validatePositiveQuantity(q, sp); len(e) > 0 {
		errs = append(errs, e...)
	} else {
		errs = append(errs, validateResourceQuantityValue(corev1.ResourceStorage, q, sp)...)
	}
	if spec.StorageClassName != nil && *spec.StorageClassName != "" {
		errs = append(errs, validateNameRef(*spec.StorageClassName, apivalidation.NameIsDNSSubdomain, p.Child("storageClassName"))...)
	}
	if spec.VolumeMode != nil && !supportedVolumeModes.Has(*spec.VolumeMode) {
		errs = append(errs, field.NotSupported(p.Child("volumeMode"), *spec.VolumeMode, sets.List(supportedVolumeModes)))
	}
	if spec.VolumeAttributesClassName != nil && *spec.VolumeAttributesClassName != "" {
		errs = append(errs, validateNameRef(*spec.VolumeAttributesClassName, apivalidation.NameIsDNSSubdomain, p.Child("volumeAttributesClassName"))...)
	}
	if ds := spec.DataSource; ds != nil {
		dp := p.Child("dataSource")
		if ds.Name == "" {
			errs = append(errs, field.Required(dp.Child("name"), ""))
		}
		if ds.Kind == "" {
			errs = append(errs, field.Required(dp.Child("kind"), ""))
		}
		if (ds.APIGroup == nil || *ds.APIGroup == "") && ds.Kind != "PersistentVolumeClaim" {
			errs = append(errs, field.NotSupported(dp, ds.Kind, []string{"PersistentVolumeClaim"}))
		}
	}
	if ds := spec.DataSourceRef; ds != nil {
		dp := p.Child("dataSourceRef")
		if ds.Name == "" {
			errs = append(errs, field.Required(dp.Child("name"), ""))
		}
		if ds.Kind == "" {
			errs = append(errs, field.Required(dp.Child("kind"), ""))
		}
	}
	return errs
}

func validatePVCUpdate(pvc, old *corev1.PersistentVolumeClaim) field.ErrorList {
	var errs field.ErrorList
	newSpec := pvc.Spec.DeepCopy()
	oldSpec := old.Spec.DeepCopy()
	// The binder sets volumeName once.
	if old.Spec.VolumeName == "" {
		oldSpec.VolumeName = newSpec.VolumeName
	}
	// The storage class moves from the beta annotation to the field once.
	oldAnn, hasOldAnn := old.Annotations[corev1.BetaStorageClassAnnotation]
	newAnn, hasNewAnn := pvc.Annotations[corev1.BetaStorageClassAnnotation]
	if hasOldAnn && oldSpec.StorageClassName == nil && newSpec.StorageClassName != nil && *newSpec.StorageClassName == oldAnn &&
		(!hasNewAnn || newAnn == oldAnn) {
		newSpec.StorageClassName = nil
	} else if oldAnn != newAnn {
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "annotations").Key(corev1.BetaStorageClassAnnotation), "field is immutable"))
	}
	// An unbound claim without a class may get one later (retroactive default StorageClass).
	if !hasOldAnn && oldSpec.StorageClassName == nil && newSpec.StorageClassName != nil && old.Spec.VolumeName == "" {
		oldSpec.StorageClassName = newSpec.StorageClassName
	}
	// Bound claims may be expanded and change their volume attributes class.
	if pvc.Status.Phase == corev1.ClaimBound {
		if newSpec.Resources.Requests != nil {
			if q, ok := old.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
				newSpec.Resources.Requests[corev1.ResourceStorage] = q
			} else {
				delete(newSpec.Resources.Requests, corev1.ResourceStorage)
			}
		}
		newSpec.VolumeAttributesClassName = oldSpec.VolumeAttributesClassName
	}
	if !semanticEqual(*newSpec, *oldSpec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), fmt.Sprintf(
			"spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n%v",
			specDiff(*oldSpec, *newSpec))))
	}
	newSize := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	oldSize := old.Spec.Resources.Requests[corev1.ResourceStorage]
	statusSize := old.Status.Capacity[corev1.ResourceStorage]
	if newSize.Cmp(oldSize) < 0 && newSize.Cmp(statusSize) <= 0 {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "resources", "requests", "storage"), "field can not be less than status.capacity"))
	}
	errs = append(errs, validateImmutable(pvc.Spec.VolumeMode, old.Spec.VolumeMode, field.NewPath("volumeMode"))...)
	return errs
}

func persistentVolumeClaimRow(pvc *corev1.PersistentVolumeClaim, now time.Time) []interface{} {
	phase := string(pvc.Status.Phase)
	if pvc.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	capacity, modes := "", ""
	if pvc.Spec.VolumeName != "" {
		modes = accessModesString(pvc.Status.AccessModes)
		q := pvc.Status.Capacity[corev1.ResourceStorage]
		capacity = q.String()
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	mode := "<unset>"
	if pvc.Spec.VolumeMode != nil {
		mode = string(*pvc.Spec.VolumeMode)
	}
	return []interface{}{
		pvc.Name, phase, pvc.Spec.VolumeName, capacity, modes, storageClassOf(pvc.Annotations, class),
		unsetOr(pvc.Spec.VolumeAttributesClassName), registry.Age(pvc.CreationTimestamp, now), mode,
	}
}
