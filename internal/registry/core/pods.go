package core

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"

	"github.com/skiff-sh/skiff/internal/registry"
)

func pods() *registry.Resource {
	r := newResource("pods", "Pod", "pod", true,
		func() runtime.Object { return &corev1.Pod{} },
		func() runtime.Object { return &corev1.PodList{} })
	r.ShortNames = []string{"po"}
	r.Categories = []string{"all"}
	r.HasStatus = true
	r.PrepareForCreate = func(obj runtime.Object) { preparePodForCreate(obj.(*corev1.Pod)) }
	r.Default = func(obj runtime.Object) { defaultPod(obj.(*corev1.Pod)) }
	// The API server runs Validate on create and update, ValidateUpdate on update only.
	r.Validate = func(obj runtime.Object) field.ErrorList { return validatePod(obj.(*corev1.Pod)) }
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validatePodUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
	}
	r.ValidateStatusUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validatePodStatusUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
	}
	r.Fields = func(obj runtime.Object) fields.Set { return podFields(obj.(*corev1.Pod)) }
	r.Columns = podColumns
	r.Row = func(obj runtime.Object, now time.Time) []interface{} { return podRow(obj.(*corev1.Pod), now) }
	return r
}

// ---------------------------------------------------------------------------------------
// Defaults and server-set fields

// defaultPod applies the v1 defaults of a Pod: the PodSpec ones plus those that only apply to
// pods (not to pod templates).
func defaultPod(pod *corev1.Pod) {
	spec := &pod.Spec
	DefaultPodSpec(spec)
	for i := range spec.Containers {
		c := &spec.Containers[i]
		defaultRequestsFromLimits(&c.Resources)
		if c.Resources.Requests != nil {
			defaultResizePolicy(c)
		}
	}
	for i := range spec.InitContainers {
		defaultRequestsFromLimits(&spec.InitContainers[i].Resources)
	}
	if spec.EnableServiceLinks == nil {
		spec.EnableServiceLinks = boolPtr(corev1.DefaultEnableServiceLinks)
	}
	if spec.HostNetwork {
		defaultHostNetworkPorts(spec.Containers)
		defaultHostNetworkPorts(spec.InitContainers)
	}
	defaultPodLevelRequests(spec)
	// priority and preemptionPolicy come from Priority admission (internal/apiserver).
	// podIP/podIPs and hostIP/hostIPs are kept in sync by the API.
	st := &pod.Status
	if len(st.PodIPs) == 0 && st.PodIP != "" {
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	if len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}
	if len(st.HostIPs) == 0 && st.HostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	}
	if len(st.HostIPs) > 0 {
		st.HostIP = st.HostIPs[0].IP
	}
}

func defaultRequestsFromLimits(r *corev1.ResourceRequirements) {
	if r.Limits == nil {
		return
	}
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	for k, v := range r.Limits {
		if _, ok := r.Requests[k]; !ok {
			r.Requests[k] = v.DeepCopy()
		}
	}
}

func defaultResizePolicy(c *corev1.Container) {
	has := map[corev1.ResourceName]bool{}
	for _, p := range c.ResizePolicy {
		has[p.ResourceName] = true
	}
	for _, n := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[n]; ok && !has[n] {
			c.ResizePolicy = append(c.ResizePolicy, corev1.ContainerResizePolicy{ResourceName: n, RestartPolicy: corev1.NotRequired})
		}
	}
}

func defaultHostNetworkPorts(ctrs []corev1.Container) {
	for i := range ctrs {
		for j := range ctrs[i].Ports {
			if ctrs[i].Ports[j].HostPort == 0 {
				ctrs[i].Ports[j].HostPort = ctrs[i].Ports[j].ContainerPort
			}
		}
	}
}

// defaultPodLevelRequests fills pod-level requests when pod-level limits are given.
func defaultPodLevelRequests(spec *corev1.PodSpec) {
	if spec.Resources == nil || len(spec.Resources.Limits) == 0 {
		return
	}
	if spec.Resources.Requests == nil {
		spec.Resources.Requests = corev1.ResourceList{}
	}
	supported := func(n corev1.ResourceName) bool {
		return n == corev1.ResourceCPU || n == corev1.ResourceMemory || isHugePageResourceName(n)
	}
	agg := aggregateContainerRequests(spec)
	for n, q := range agg {
		if _, ok := spec.Resources.Requests[n]; !ok && supported(n) && isOvercommitAllowed(n) {
			spec.Resources.Requests[n] = q.DeepCopy()
		}
	}
	for n, q := range spec.Resources.Limits {
		if _, ok := spec.Resources.Requests[n]; !ok && supported(n) {
			spec.Resources.Requests[n] = q.DeepCopy()
		}
	}
}

// aggregateContainerRequests is the effective request of the containers: the sum over the
// regular and sidecar containers, at least the largest plain init container.
func aggregateContainerRequests(spec *corev1.PodSpec) corev1.ResourceList {
	sum := corev1.ResourceList{}
	add := func(rl corev1.ResourceList) {
		for n, q := range rl {
			v := sum[n]
			v.Add(q)
			sum[n] = v
		}
	}
	for _, c := range spec.Containers {
		add(c.Resources.Requests)
	}
	for i := range spec.InitContainers {
		if isRestartableInitContainer(&spec.InitContainers[i]) {
			add(spec.InitContainers[i].Resources.Requests)
		}
	}
	for i := range spec.InitContainers {
		if isRestartableInitContainer(&spec.InitContainers[i]) {
			continue
		}
		for n, q := range spec.InitContainers[i].Resources.Requests {
			if v, ok := sum[n]; !ok || q.Cmp(v) > 0 {
				sum[n] = q.DeepCopy()
			}
		}
	}
	return sum
}

func preparePodForCreate(pod *corev1.Pod) {
	defaultPod(pod)
	pod.Status = corev1.PodStatus{
		Phase:    corev1.PodPending,
		QOSClass: podQOSClass(pod),
	}
	if len(pod.Spec.SchedulingGates) > 0 {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
			Type:    corev1.PodScheduled,
			Status:  corev1.ConditionFalse,
			Reason:  corev1.PodReasonSchedulingGated,
			Message: "Scheduling is blocked due to non-empty scheduling gates",
		})
	}
}

// podQOSClass computes the pod's quality-of-service class from its cpu and memory
// requests and limits.
func podQOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	isQoS := func(n corev1.ResourceName) bool { return n == corev1.ResourceCPU || n == corev1.ResourceMemory }
	zero := resource.Quantity{}
	if pr := pod.Spec.Resources; pr != nil {
		for n, q := range pr.Requests {
			if isQoS(n) && q.Cmp(zero) > 0 {
				requests[n] = q.DeepCopy()
			}
		}
		found := sets.New[corev1.ResourceName]()
		for n, q := range pr.Limits {
			if isQoS(n) && q.Cmp(zero) > 0 {
				limits[n] = q.DeepCopy()
				found.Insert(n)
			}
		}
		if !found.HasAll(corev1.ResourceCPU, corev1.ResourceMemory) {
			guaranteed = false
		}
	} else {
		all := append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...)
		for _, c := range all {
			for n, q := range c.Resources.Requests {
				if isQoS(n) && q.Cmp(zero) > 0 {
					v := requests[n]
					v.Add(q)
					requests[n] = v
				}
			}
			found := sets.New[corev1.ResourceName]()
			for n, q := range c.Resources.Limits {
				if isQoS(n) && q.Cmp(zero) > 0 {
					found.Insert(n)
					v := limits[n]
					v.Add(q)
					limits[n] = v
				}
			}
			if !found.HasAll(corev1.ResourceCPU, corev1.ResourceMemory) {
				guaranteed = false
			}
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for n, req := range requests {
			if lim, ok := limits[n]; !ok || lim.Cmp(req) != 0 {
				guaranteed = false
				break
			}
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// ---------------------------------------------------------------------------------------
// Validation

func validatePodMetaAndSpec(pod *corev1.Pod) field.ErrorList {
	specPath := field.NewPath("spec")
	errs := ValidatePodSpec(&pod.Spec, specPath)
	for i, c := range pod.Spec.Containers {
		if len(c.Image) != len(strings.TrimSpace(c.Image)) {
			errs = append(errs, field.Invalid(specPath.Child("containers").Index(i).Child("image"), c.Image, "must not have leading or trailing whitespace"))
		}
	}
	for i, c := range pod.Spec.InitContainers {
		if len(c.Image) != len(strings.TrimSpace(c.Image)) {
			errs = append(errs, field.Invalid(specPath.Child("initContainers").Index(i).Child("image"), c.Image, "must not have leading or trailing whitespace"))
		}
	}
	return errs
}

// validatePod validates a pod being created or updated; the checks that only apply to a new
// pod run when it has no resourceVersion yet.
func validatePod(pod *corev1.Pod) field.ErrorList {
	if pod.ResourceVersion != "" {
		return validatePodMetaAndSpec(pod)
	}
	return validatePodCreate(pod)
}

func validatePodCreate(pod *corev1.Pod) field.ErrorList {
	errs := validatePodMetaAndSpec(pod)
	specPath := field.NewPath("spec")
	if len(pod.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
	}
	if pod.Spec.NodeName != "" && len(pod.Spec.SchedulingGates) != 0 {
		errs = append(errs, field.Forbidden(specPath.Child("nodeName"), "cannot be set until all schedulingGates have been cleared"))
	}
	errs = append(errs, validatePodIPs(pod, nil)...)
	return errs
}

var updatablePodSpecFields = []string{
	"`spec.containers[*].image`",
	"`spec.initContainers[*].image`",
	"`spec.activeDeadlineSeconds`",
	"`spec.tolerations` (only additions to existing tolerations)",
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
}

// validatePodUpdate checks what may change in a pod's spec (the spec itself is validated by
// validatePod).
func validatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	specPath := field.NewPath("spec")

	if e, stop := validateContainerUpdates(pod.Spec.Containers, old.Spec.Containers, specPath.Child("containers")); stop {
		return append(errs, e...)
	} else {
		errs = append(errs, e...)
	}
	if e, stop := validateContainerUpdates(pod.Spec.InitContainers, old.Spec.InitContainers, specPath.Child("initContainers")); stop {
		return append(errs, e...)
	} else {
		errs = append(errs, e...)
	}

	adsPath := specPath.Child("activeDeadlineSeconds")
	if pod.Spec.ActiveDeadlineSeconds != nil {
		v := *pod.Spec.ActiveDeadlineSeconds
		if v < 0 || v > math.MaxInt32 {
			return append(errs, field.Invalid(adsPath, v, validation.InclusiveRangeError(0, math.MaxInt32)))
		}
		if old.Spec.ActiveDeadlineSeconds != nil && *old.Spec.ActiveDeadlineSeconds < v {
			return append(errs, field.Invalid(adsPath, v, "must be less than or equal to previous value"))
		}
	} else if old.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Invalid(adsPath, pod.Spec.ActiveDeadlineSeconds, "must not update from a positive integer to nil value"))
	}

	errs = append(errs, validateOnlyAddedTolerations(pod.Spec.Tolerations, old.Spec.Tolerations, specPath.Child("tolerations"))...)
	errs = append(errs, validateOnlyDeletedSchedulingGates(pod.Spec.SchedulingGates, old.Spec.SchedulingGates, specPath.Child("schedulingGates"))...)

	if semanticEqual(pod.Spec, old.Spec) {
		return errs
	}

	munged := pod.Spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = old.Spec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = nil
	if old.Spec.ActiveDeadlineSeconds != nil {
		munged.ActiveDeadlineSeconds = int64Ptr(*old.Spec.ActiveDeadlineSeconds)
	}
	munged.SchedulingGates = old.Spec.SchedulingGates
	munged.Tolerations = old.Spec.Tolerations
	if g := old.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 &&
		munged.TerminationGracePeriodSeconds != nil && *munged.TerminationGracePeriodSeconds == 1 {
		munged.TerminationGracePeriodSeconds = old.Spec.TerminationGracePeriodSeconds
	}
	// A pod still gated from scheduling may gain node selector entries.
	if len(old.Spec.SchedulingGates) > 0 && !semanticEqual(munged.NodeSelector, old.Spec.NodeSelector) {
		for k, v := range old.Spec.NodeSelector {
			if nv, ok := munged.NodeSelector[k]; !ok || nv != v {
				errs = append(errs, field.Invalid(specPath.Child("nodeSelector"), munged.NodeSelector, "only additions to spec.nodeSelector are allowed (no mutations or deletions)"))
				break
			}
		}
		munged.NodeSelector = old.Spec.NodeSelector
	}
	if !semanticEqual(*munged, old.Spec) {
		diff := specDiff(old.Spec, *munged)
		errs = append(errs, field.Forbidden(specPath, fmt.Sprintf("pod updates may not change fields other than %s\n%v",
			strings.Join(updatablePodSpecFields, ","), diff)))
	}
	return errs
}

func validateContainerUpdates(newCtrs, oldCtrs []corev1.Container, p *field.Path) (field.ErrorList, bool) {
	if len(newCtrs) != len(oldCtrs) {
		return field.ErrorList{field.Forbidden(p, "pod updates may not add or remove containers")}, true
	}
	var errs field.ErrorList
	for i, c := range newCtrs {
		if c.Image == "" {
			errs = append(errs, field.Required(p.Index(i).Child("image"), ""))
		}
	}
	return errs, false
}

func validateOnlyAddedTolerations(newTols, oldTols []corev1.Toleration, p *field.Path) field.ErrorList {
	for _, o := range oldTols {
		found := false
		for _, n := range newTols {
			oc := o
			oc.TolerationSeconds = n.TolerationSeconds
			if semanticEqual(oc, n) {
				found = true
				break
			}
		}
		if !found {
			return field.ErrorList{field.Forbidden(p, "existing toleration can not be modified except its tolerationSeconds")}
		}
	}
	return validateTolerations(newTols, p)
}

func validateOnlyDeletedSchedulingGates(newGates, oldGates []corev1.PodSchedulingGate, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	old := sets.New[string]()
	for _, g := range oldGates {
		old.Insert(g.Name)
	}
	for i, g := range newGates {
		if !old.Has(g.Name) {
			errs = append(errs, field.Forbidden(p.Index(i).Child("name"), fmt.Sprintf("only deletion is allowed, but found new scheduling gate '%s'", g.Name)))
		}
	}
	return errs
}

func validatePodStatusUpdate(pod, old *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	statusPath := field.NewPath("status")
	if pod.Status.NominatedNodeName != old.Status.NominatedNodeName && pod.Status.NominatedNodeName != "" {
		errs = append(errs, validateNameRef(pod.Status.NominatedNodeName, nodeNameValidator, statusPath.Child("nominatedNodeName"))...)
	}
	for i, c := range pod.Status.Conditions {
		errs = append(errs, validateQualifiedName(string(c.Type), field.NewPath("metadata", "conditions").Index(i).Child("Type"))...)
	}
	errs = append(errs, validatePodIPs(pod, old)...)
	return errs
}

func isTerminalPhase(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

func validatePodIPs(pod, old *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	var oldPod, oldHost []string
	if old != nil {
		for _, ip := range old.Status.PodIPs {
			oldPod = append(oldPod, ip.IP)
		}
		for _, ip := range old.Status.HostIPs {
			oldHost = append(oldHost, ip.IP)
		}
	}
	check := func(p *field.Path, ips []string, olds []string) {
		for i, ip := range ips {
			errs = append(errs, validateLegacyIP(p.Index(i), ip, olds)...)
		}
		if len(errs) > 0 || len(ips) < 2 {
			return
		}
		dual, err := netutils.IsDualStackIPStrings(ips)
		if err != nil {
			errs = append(errs, field.InternalError(p, fmt.Errorf("failed to check for dual stack with error:%v", err)))
		}
		if !dual || len(ips) > 2 {
			errs = append(errs, field.Invalid(p, ips, "may specify no more than one IP for each IP family"))
		}
		seen := sets.New[string]()
		for i, ip := range ips {
			if seen.Has(ip) {
				errs = append(errs, field.Duplicate(p.Index(i), ip))
			}
			seen.Insert(ip)
		}
	}
	var podIPs, hostIPs []string
	for _, ip := range pod.Status.PodIPs {
		podIPs = append(podIPs, ip.IP)
	}
	for _, ip := range pod.Status.HostIPs {
		hostIPs = append(hostIPs, ip.IP)
	}
	check(field.NewPath("status", "podIPs"), podIPs, oldPod)
	check(field.NewPath("status", "hostIPs"), hostIPs, oldHost)
	return errs
}

// ---------------------------------------------------------------------------------------
// Field selectors

func podFields(pod *corev1.Pod) fields.Set {
	podIP := pod.Status.PodIP
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	}
	return fields.Set{
		"spec.nodeName":            pod.Spec.NodeName,
		"spec.restartPolicy":       string(pod.Spec.RestartPolicy),
		"spec.schedulerName":       pod.Spec.SchedulerName,
		"spec.serviceAccountName":  pod.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(pod.Spec.HostNetwork),
		"status.phase":             string(pod.Status.Phase),
		"status.podIP":             podIP,
		"status.nominatedNodeName": pod.Status.NominatedNodeName,
	}
}

// ---------------------------------------------------------------------------------------
// Table

var podColumns = []metav1.TableColumnDefinition{
	registry.NameCol,
	col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
	col("Status", "string", "The aggregate status of the containers in this pod.", 0),
	col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
	registry.AgeCol,
	col("IP", "string", corev1.PodStatus{}.SwaggerDoc()["podIP"], 1),
	col("Node", "string", corev1.PodSpec{}.SwaggerDoc()["nodeName"], 1),
	col("Nominated Node", "string", corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"], 1),
	col("Readiness Gates", "string", corev1.PodSpec{}.SwaggerDoc()["readinessGates"], 1),
}

// podSummary is what kubectl shows of a pod's state.
type podSummary struct {
	reason       string
	ready, total int
	restarts     int
	lastRestart  metav1.Time
}

// nodeUnreachablePodReason is the status reason the node lifecycle controller sets on pods of
// unreachable nodes.
const nodeUnreachablePodReason = "NodeLost"

func summarizePod(pod *corev1.Pod) podSummary {
	var s podSummary
	restartableRestarts := 0
	var lastRestartableRestart metav1.Time
	s.total = len(pod.Spec.Containers)
	s.reason = string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		s.reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			s.reason = corev1.PodReasonSchedulingGated
		}
	}

	initSpecs := map[string]*corev1.Container{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		initSpecs[c.Name] = c
		if isRestartableInitContainer(c) {
			s.total++
		}
	}

	later := func(cur *metav1.Time, t metav1.Time) {
		if cur.Before(&t) {
			*cur = t
		}
	}

	initializing := false
	for i, cs := range pod.Status.InitContainerStatuses {
		s.restarts += int(cs.RestartCount)
		if cs.LastTerminationState.Terminated != nil {
			later(&s.lastRestart, cs.LastTerminationState.Terminated.FinishedAt)
		}
		restartable := isRestartableInitContainer(initSpecs[cs.Name])
		if restartable {
			restartableRestarts += int(cs.RestartCount)
			if cs.LastTerminationState.Terminated != nil {
				later(&lastRestartableRestart, cs.LastTerminationState.Terminated.FinishedAt)
			}
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case restartable && cs.Started != nil && *cs.Started:
			if cs.Ready {
				s.ready++
			}
			continue
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			switch {
			case t.Reason != "":
				s.reason = "Init:" + t.Reason
			case t.Signal != 0:
				s.reason = fmt.Sprintf("Init:Signal:%d", t.Signal)
			default:
				s.reason = fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
			}
			initializing = true
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			s.reason = "Init:" + cs.State.Waiting.Reason
			initializing = true
		default:
			s.reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
			initializing = true
		}
		break
	}

	if !initializing || podConditionTrue(pod, corev1.PodInitialized) {
		s.restarts = restartableRestarts
		s.lastRestart = lastRestartableRestart
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := pod.Status.ContainerStatuses[i]
			s.restarts += int(cs.RestartCount)
			if cs.LastTerminationState.Terminated != nil {
				later(&s.lastRestart, cs.LastTerminationState.Terminated.FinishedAt)
			}
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				s.reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				s.reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil:
				if cs.State.Terminated.Signal != 0 {
					s.reason = fmt.Sprintf("Signal:%d", cs.State.Terminated.Signal)
				} else {
					s.reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
				}
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
				s.ready++
			}
		}
		// A pod whose last container completed but another still runs is shown as running.
		if s.reason == "Completed" && hasRunning {
			if podConditionTrue(pod, corev1.PodReady) {
				s.reason = "Running"
			} else {
				s.reason = "NotReady"
			}
		}
	}

	if pod.DeletionTimestamp != nil && pod.Status.Reason == nodeUnreachablePodReason {
		s.reason = "Unknown"
	} else if pod.DeletionTimestamp != nil && !isTerminalPhase(pod.Status.Phase) {
		s.reason = "Terminating"
	}
	return s
}

func podConditionTrue(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodStatusReason is the STATUS column kubectl shows for a pod ("Running",
// "CrashLoopBackOff", "Init:0/1", "Terminating", ...).
func PodStatusReason(pod *corev1.Pod) string { return summarizePod(pod).reason }

// PodReadyCount returns the READY column's numbers: ready containers (and started ready
// sidecars) out of the regular containers plus sidecars.
func PodReadyCount(pod *corev1.Pod) (ready, total int) {
	s := summarizePod(pod)
	return s.ready, s.total
}

func podRow(pod *corev1.Pod, now time.Time) []interface{} {
	s := summarizePod(pod)
	restarts := strconv.Itoa(s.restarts)
	if s.restarts != 0 && !s.lastRestart.IsZero() {
		restarts = fmt.Sprintf("%d (%s ago)", s.restarts, since(s.lastRestart, now))
	}
	podIP := "<none>"
	if len(pod.Status.PodIPs) > 0 && pod.Status.PodIPs[0].IP != "" {
		podIP = pod.Status.PodIPs[0].IP
	} else if pod.Status.PodIP != "" {
		podIP = pod.Status.PodIP
	}
	node := orNone(pod.Spec.NodeName)
	nominated := orNone(pod.Status.NominatedNodeName)
	gates := "<none>"
	if len(pod.Spec.ReadinessGates) > 0 {
		trueConds := 0
		for _, g := range pod.Spec.ReadinessGates {
			for _, c := range pod.Status.Conditions {
				if c.Type == g.ConditionType {
					if c.Status == corev1.ConditionTrue {
						trueConds++
					}
					break
				}
			}
		}
		gates = fmt.Sprintf("%d/%d", trueConds, len(pod.Spec.ReadinessGates))
	}
	return []interface{}{
		pod.Name,
		fmt.Sprintf("%d/%d", s.ready, s.total),
		s.reason,
		restarts,
		registry.Age(pod.CreationTimestamp, now),
		podIP, node, nominated, gates,
	}
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
