package core

import (
	"fmt"
	"strings"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"
)

// Messages shared by several validations (the same wording as Kubernetes).
const (
	isNegativeErrorMsg     = apivalidation.IsNegativeErrorMsg
	isNotPositiveErrorMsg  = "must be greater than zero"
	isNotIntegerErrorMsg   = "must be an integer"
	isInvalidQuotaResource = "must be a standard resource for quota"
	fileModeErrorMsg       = "must be a number between 0 and 0777 (octal), both inclusive"
	immutableWhenSetMsg    = "field is immutable when `immutable` is set"
)

var supportedPortProtocols = sets.New(corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP)

// msgsToInvalid turns validation messages into Invalid errors at path.
func msgsToInvalid(path *field.Path, value interface{}, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, m := range msgs {
		errs = append(errs, field.Invalid(path, value, m))
	}
	return errs
}

func validateDNS1123Label(value string, path *field.Path) field.ErrorList {
	return msgsToInvalid(path, value, validation.IsDNS1123Label(value))
}

func validateDNS1123Subdomain(value string, path *field.Path) field.ErrorList {
	return msgsToInvalid(path, value, validation.IsDNS1123Subdomain(value))
}

func validateQualifiedName(value string, path *field.Path) field.ErrorList {
	return msgsToInvalid(path, value, validation.IsQualifiedName(value))
}

// validateNameRef checks a reference to an object by name (secret, config map, ...).
func validateNameRef(name string, fn apivalidation.ValidateNameFunc, path *field.Path) field.ErrorList {
	return msgsToInvalid(path, name, fn(name, false))
}

func validateNonnegative(value int64, path *field.Path) field.ErrorList {
	return apivalidation.ValidateNonnegativeField(value, path)
}

// validateImmutable reports "field is immutable" when the values differ semantically.
func validateImmutable(newVal, oldVal interface{}, path *field.Path) field.ErrorList {
	return apivalidation.ValidateImmutableField(newVal, oldVal, path)
}

func validateLabels(labels map[string]string, path *field.Path) field.ErrorList {
	return metav1validation.ValidateLabels(labels, path)
}

func semanticEqual(a, b interface{}) bool { return apiequality.Semantic.DeepEqual(a, b) }

// specDiff renders the difference between two values as Kubernetes appends it to
// "may not change" messages.
func specDiff(oldVal, newVal interface{}) (diff string) {
	defer func() {
		if recover() != nil {
			diff = ""
		}
	}()
	return cmp.Diff(oldVal, newVal)
}

// Resource names ------------------------------------------------------------------------

const (
	hugePagesPrefix         = "hugepages-"
	requestsHugePagesPrefix = "requests.hugepages-"
	nativeResourcePrefix    = "kubernetes.io/"
	requestsPrefix          = "requests."
)

var standardContainerResources = sets.New(corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage)

var standardResources = sets.New(
	corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
	corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
	corev1.ResourceSecrets, corev1.ResourceConfigMaps, corev1.ResourcePersistentVolumeClaims, corev1.ResourceStorage,
	corev1.ResourceRequestsStorage, corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
)

var standardQuotaResources = sets.New(
	corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsStorage, corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
	corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
	corev1.ResourceSecrets, corev1.ResourcePersistentVolumeClaims, corev1.ResourceConfigMaps,
	corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
)

var integerResources = sets.New(
	corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
	corev1.ResourceSecrets, corev1.ResourceConfigMaps, corev1.ResourcePersistentVolumeClaims,
	corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
)

func isHugePageResourceName(n corev1.ResourceName) bool {
	return strings.HasPrefix(string(n), hugePagesPrefix)
}

func isQuotaHugePageResourceName(n corev1.ResourceName) bool {
	return strings.HasPrefix(string(n), hugePagesPrefix) || strings.HasPrefix(string(n), requestsHugePagesPrefix)
}

// isNativeResource: unprefixed names and names in the kubernetes.io/ domain.
func isNativeResource(n corev1.ResourceName) bool {
	return !strings.Contains(string(n), "/") || strings.Contains(string(n), nativeResourcePrefix)
}

func isExtendedResourceName(n corev1.ResourceName) bool {
	if isNativeResource(n) || strings.HasPrefix(string(n), requestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(requestsPrefix+string(n))) == 0
}

func isStandardContainerResourceName(n corev1.ResourceName) bool {
	return standardContainerResources.Has(n) || isHugePageResourceName(n)
}

func isStandardResourceName(n corev1.ResourceName) bool {
	return standardResources.Has(n) || isQuotaHugePageResourceName(n)
}

func isStandardQuotaResourceName(n corev1.ResourceName) bool {
	return standardQuotaResources.Has(n) || isQuotaHugePageResourceName(n)
}

func isIntegerResourceName(n corev1.ResourceName) bool {
	return integerResources.Has(n) || isExtendedResourceName(n)
}

// isOvercommitAllowed: requests may be lower than limits.
func isOvercommitAllowed(n corev1.ResourceName) bool {
	return isNativeResource(n) && !isHugePageResourceName(n)
}

func validateResourceName(n corev1.ResourceName, path *field.Path) field.ErrorList {
	errs := validateQualifiedName(string(n), path)
	if len(errs) != 0 {
		return errs
	}
	if !strings.Contains(string(n), "/") && !isStandardResourceName(n) {
		errs = append(errs, field.Invalid(path, n, "must be a standard resource type or fully qualified"))
	}
	return errs
}

func validateContainerResourceName(n corev1.ResourceName, path *field.Path) field.ErrorList {
	errs := validateResourceName(n, path)
	if !strings.Contains(string(n), "/") {
		if !isStandardContainerResourceName(n) {
			return append(errs, field.Invalid(path, n, "must be a standard resource for containers"))
		}
	} else if !isNativeResource(n) && !isExtendedResourceName(n) {
		return append(errs, field.Invalid(path, n, "doesn't follow extended resource name standard"))
	}
	return errs
}

// Quantities ------------------------------------------------------------------------------

func validateNonnegativeQuantity(q resource.Quantity, path *field.Path) field.ErrorList {
	if q.Cmp(resource.Quantity{}) < 0 {
		return field.ErrorList{field.Invalid(path, q.String(), isNegativeErrorMsg)}
	}
	return nil
}

func validatePositiveQuantity(q resource.Quantity, path *field.Path) field.ErrorList {
	if q.Cmp(resource.Quantity{}) <= 0 {
		return field.ErrorList{field.Invalid(path, q.String(), isNotPositiveErrorMsg)}
	}
	return nil
}

// validateResourceQuantityValue: non-negative, and whole for integer resources.
func validateResourceQuantityValue(n corev1.ResourceName, q resource.Quantity, path *field.Path) field.ErrorList {
	errs := validateNonnegativeQuantity(q, path)
	if isIntegerResourceName(n) && q.MilliValue()%1000 != 0 {
		errs = append(errs, field.Invalid(path, q, isNotIntegerErrorMsg))
	}
	return errs
}

// IPs ---------------------------------------------------------------------------------------

// validateLegacyIP validates an IP in one of the fields that historically accepted sloppy
// forms; old values are accepted unchanged on update.
func validateLegacyIP(path *field.Path, value string, old []string) field.ErrorList {
	return validation.IsValidIPForLegacyField(path, value, true, old)
}

func validateLegacyCIDR(path *field.Path, value string, old []string) field.ErrorList {
	return validation.IsValidCIDRForLegacyField(path, value, true, old)
}

// validateNonSpecialIP rejects unspecified, loopback (unless allowLoopback) and link-local
// addresses.
func validateNonSpecialIP(value string, allowLoopback bool, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	ip := netutils.ParseIPSloppy(value)
	if ip == nil {
		return field.ErrorList{field.Invalid(path, value, "must be a valid IP address")}
	}
	if ip.IsUnspecified() {
		errs = append(errs, field.Invalid(path, value, fmt.Sprintf("may not be unspecified (%v)", value)))
	}
	if ip.IsLoopback() && !allowLoopback {
		errs = append(errs, field.Invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if ip.IsLinkLocalUnicast() {
		errs = append(errs, field.Invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if ip.IsLinkLocalMulticast() {
		errs = append(errs, field.Invalid(path, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return errs
}

// Taints and tolerations -------------------------------------------------------------------

func validateTaintEffect(effect corev1.TaintEffect, allowEmpty bool, path *field.Path) field.ErrorList {
	if !allowEmpty && effect == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	switch effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		return nil
	}
	return field.ErrorList{field.NotSupported(path, effect, []corev1.TaintEffect{
		corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute})}
}

// Storage -----------------------------------------------------------------------------------

var supportedAccessModes = sets.New(corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod)

var supportedVolumeModes = sets.New(corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem)

func validateAccessModes(modes []corev1.PersistentVolumeAccessMode, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	rwop, other := false, false
	for _, m := range modes {
		if !supportedAccessModes.Has(m) {
			errs = append(errs, field.NotSupported(path, m, sets.List(supportedAccessModes)))
		}
		if m == corev1.ReadWriteOncePod {
			rwop = true
		} else if supportedAccessModes.Has(m) {
			other = true
		}
	}
	if rwop && other {
		errs = append(errs, field.Forbidden(path, "may not use ReadWriteOncePod with other access modes"))
	}
	return errs
}

// accessModesString prints access modes as kubectl does ("RWO,ROX").
func accessModesString(modes []corev1.PersistentVolumeAccessMode) string {
	has := sets.New(modes...)
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{
		{corev1.ReadWriteOnce, "RWO"}, {corev1.ReadOnlyMany, "ROX"},
		{corev1.ReadWriteMany, "RWX"}, {corev1.ReadWriteOncePod, "RWOP"},
	} {
		if has.Has(m.mode) {
			out = append(out, m.short)
		}
	}
	return strings.Join(out, ",")
}
