package batch

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// The labels that tie a job's pods to it when the selector is generated.
const (
	legacyJobNameLabel       = "job-name"
	legacyControllerUIDLabel = "controller-uid"
)

// Limits of Kubernetes' job validation.
const (
	maxParallelismForIndexedJob        = 100000
	maxFailedIndexesLimitForIndexedJob = 100000
	completionsSoftLimit               = 100000
	parallelismLimitForHighCompletions = 10000
	maxPodFailurePolicyRules           = 20
	maxPodFailurePolicyOnExitCodes     = 255
	maxPodFailurePolicyOnPodConditions = 20
	maxManagedByLength                 = 63
	maxSuccessPolicyRules              = 20
	maxSucceededIndexesLength          = 64 * 1024
)

func jobs() *registry.Resource {
	return &registry.Resource{
		Group:        batchv1.GroupName,
		Version:      "v1",
		Resource:     "jobs",
		Kind:         "Job",
		ListKind:     "JobList",
		SingularName: "job",
		Namespaced:   true,
		Categories:   []string{"all"},
		New:          func() runtime.Object { return &batchv1.Job{} },
		NewList:      func() runtime.Object { return &batchv1.JobList{} },
		HasStatus:    true,
		// PrepareForCreate resets status (as the generic layer would) and, unless the user
		// asked for spec.manualSelector, generates the selector from metadata.uid.
		PrepareForCreate: func(obj runtime.Object) {
			job := obj.(*batchv1.Job)
			job.Status = batchv1.JobStatus{}
			copyTemplateLabels(job)
			if !deref(job.Spec.ManualSelector, false) {
				generateSelector(job)
			}
		},
		Default: func(obj runtime.Object) { defaultJob(obj.(*batchv1.Job)) },
		Validate: func(obj runtime.Object) field.ErrorList {
			return validateJob(obj.(*batchv1.Job))
		},
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			return validateJobUpdate(obj.(*batchv1.Job), old.(*batchv1.Job))
		},
		ValidateStatusUpdate: func(obj, _ runtime.Object) field.ErrorList {
			return validateJobStatus(&obj.(*batchv1.Job).Status, field.NewPath("status"))
		},
		Fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.successful": strconv.Itoa(int(obj.(*batchv1.Job).Status.Succeeded))}
		},
		Columns: []metav1.TableColumnDefinition{
			registry.NameCol,
			registry.Col("Status", "string", "Status of the job.", 0),
			registry.Col("Completions", "string", batchv1.JobStatus{}.SwaggerDoc()["succeeded"], 0),
			registry.Col("Duration", "string", "Time required to complete the job.", 0),
			registry.AgeCol,
			registry.Col("Containers", "string", containersDesc, 1),
			registry.Col("Images", "string", imagesDesc, 1),
			registry.Col("Selector", "string", batchv1.JobSpec{}.SwaggerDoc()["selector"], 1),
		},
		Row: func(obj runtime.Object, now time.Time) []interface{} { return jobRow(obj.(*batchv1.Job), now) },
	}
}

// copyTemplateLabels gives a job without labels its pod template's labels.
func copyTemplateLabels(job *batchv1.Job) {
	if job.Spec.Template.Labels != nil && len(job.Labels) == 0 {
		job.Labels = make(map[string]string, len(job.Spec.Template.Labels))
		for k, v := range job.Spec.Template.Labels {
			job.Labels[k] = v
		}
	}
}

// generateSelector labels the pod template with the job's name and uid (both the
// batch.kubernetes.io/ and the legacy keys), and selects batch.kubernetes.io/controller-uid.
// Labels the user already set are kept; validation then rejects wrong values.
func generateSelector(job *batchv1.Job) {
	if job.Spec.Template.Labels == nil {
		job.Spec.Template.Labels = map[string]string{}
	}
	set := func(k, v string) {
		if _, ok := job.Spec.Template.Labels[k]; !ok {
			job.Spec.Template.Labels[k] = v
		}
	}
	set(legacyJobNameLabel, job.Name)
	set(batchv1.JobNameLabel, job.Name)
	set(legacyControllerUIDLabel, string(job.UID))
	set(batchv1.ControllerUidLabel, string(job.UID))
	if job.Spec.Selector == nil {
		job.Spec.Selector = &metav1.LabelSelector{}
	}
	if job.Spec.Selector.MatchLabels == nil {
		job.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, ok := job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel]; !ok {
		job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = string(job.UID)
	}
}

// defaultJob applies the batch/v1 Job defaults.
func defaultJob(job *batchv1.Job) {
	s := &job.Spec
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions = new(int32(1))
		s.Parallelism = new(int32(1))
	}
	if s.Parallelism == nil {
		s.Parallelism = new(int32(1))
	}
	if s.BackoffLimit == nil {
		if s.BackoffLimitPerIndex != nil {
			s.BackoffLimit = new(int32(math.MaxInt32))
		} else {
			s.BackoffLimit = new(int32(6))
		}
	}
	copyTemplateLabels(job)
	if s.CompletionMode == nil {
		s.CompletionMode = new(batchv1.NonIndexedCompletion)
	}
	if s.Suspend == nil {
		s.Suspend = new(false)
	}
	if s.PodFailurePolicy != nil {
		for _, rule := range s.PodFailurePolicy.Rules {
			for i := range rule.OnPodConditions {
				if rule.OnPodConditions[i].Status == "" {
					rule.OnPodConditions[i].Status = corev1.ConditionTrue
				}
			}
		}
	}
	if s.PodReplacementPolicy == nil {
		if s.PodFailurePolicy != nil {
			s.PodReplacementPolicy = new(batchv1.Failed)
		} else {
			s.PodReplacementPolicy = new(batchv1.TerminatingOrFailed)
		}
	}
	DefaultPodTemplate(&s.Template)
}

func validateJob(job *batchv1.Job) field.ErrorList {
	errs := validateGeneratedSelector(job)
	errs = append(errs, validateJobSpecWithSelector(&job.Spec, field.NewPath("spec"))...)
	if deref(job.Spec.CompletionMode, "") == batchv1.IndexedCompletion && deref(job.Spec.Completions, 0) > 0 {
		// Pods of an indexed job are named <job>-<index>, which must be a DNS label.
		host := fmt.Sprintf("%s-%d", job.Name, *job.Spec.Completions-1)
		if len(utilvalidation.IsDNS1123Label(host)) > 0 {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), job.Name,
				fmt.Sprintf("will not able to create pod with invalid DNS label: %s", host)))
		}
	}
	return errs
}

// validateGeneratedSelector checks, for a job whose selector was generated, that the pod
// template carries the expected labels and that the selector selects them.
func validateGeneratedSelector(job *batchv1.Job) field.ErrorList {
	var errs field.ErrorList
	if deref(job.Spec.ManualSelector, false) || job.Spec.Selector == nil {
		return errs
	}
	if job.UID == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "uid"), ""))
	}
	meta := field.NewPath("spec", "template", "metadata")
	errs = append(errs, hasLabel(job.Spec.Template.Labels, meta, legacyControllerUIDLabel, string(job.UID))...)
	errs = append(errs, hasLabel(job.Spec.Template.Labels, meta, legacyJobNameLabel, job.Name)...)
	errs = append(errs, hasLabel(job.Spec.Template.Labels, meta, batchv1.ControllerUidLabel, string(job.UID))...)
	errs = append(errs, hasLabel(job.Spec.Template.Labels, meta, batchv1.JobNameLabel, job.Name)...)
	expected := labels.Set{batchv1.ControllerUidLabel: string(job.UID), batchv1.JobNameLabel: job.Name}
	if sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector); err == nil && !sel.Matches(expected) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), job.Spec.Selector, "`selector` not auto-generated"))
	}
	return errs
}

func hasLabel(l map[string]string, meta *field.Path, key, want string) field.ErrorList {
	got, ok := l[key]
	if !ok {
		return field.ErrorList{field.Required(meta.Child("labels").Key(key), key)}
	}
	if got != want {
		return field.ErrorList{field.Invalid(meta.Child("labels").Key(key), l, fmt.Sprintf("must be '%s'", want))}
	}
	return nil
}

// validateJobSpecWithSelector validates a Job's spec: the spec itself, a selector that is set
// and well formed, and that it selects the template's labels.
func validateJobSpecWithSelector(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	errs := validateJobSpec(spec, fldPath)
	if spec.Selector == nil {
		errs = append(errs, field.Required(fldPath.Child("selector"), ""))
	} else {
		errs = append(errs, metavalidation.ValidateLabelSelector(spec.Selector, metavalidation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
	}
	if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err == nil && !sel.Matches(labels.Set(spec.Template.Labels)) {
		errs = append(errs, field.Invalid(fldPath.Child("template", "metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	return errs
}

// validateJobSpec validates what a Job and a CronJob's job template have in common.
func validateJobSpec(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Parallelism != nil {
		errs = append(errs, nonNegative(int64(*spec.Parallelism), fldPath.Child("parallelism"))...)
	}
	if spec.Completions != nil {
		errs = append(errs, nonNegative(int64(*spec.Completions), fldPath.Child("completions"))...)
	}
	if spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, nonNegative(*spec.ActiveDeadlineSeconds, fldPath.Child("activeDeadlineSeconds"))...)
	}
	if spec.BackoffLimit != nil {
		errs = append(errs, nonNegative(int64(*spec.BackoffLimit), fldPath.Child("backoffLimit"))...)
	}
	if spec.TTLSecondsAfterFinished != nil {
		errs = append(errs, nonNegative(int64(*spec.TTLSecondsAfterFinished), fldPath.Child("ttlSecondsAfterFinished"))...)
	}
	if spec.BackoffLimitPerIndex != nil {
		errs = append(errs, nonNegative(int64(*spec.BackoffLimitPerIndex), fldPath.Child("backoffLimitPerIndex"))...)
	}
	if spec.MaxFailedIndexes != nil {
		errs = append(errs, nonNegative(int64(*spec.MaxFailedIndexes), fldPath.Child("maxFailedIndexes"))...)
		if spec.BackoffLimitPerIndex == nil {
			errs = append(errs, field.Required(fldPath.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
		}
	}
	if spec.ManagedBy != nil {
		errs = append(errs, utilvalidation.IsDomainPrefixedPath(fldPath.Child("managedBy"), *spec.ManagedBy)...)
		if len(*spec.ManagedBy) > maxManagedByLength {
			errs = append(errs, field.TooLong(fldPath.Child("managedBy"), "", maxManagedByLength))
		}
	}
	indexed := deref(spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
	if spec.CompletionMode != nil {
		if m := *spec.CompletionMode; m != batchv1.NonIndexedCompletion && m != batchv1.IndexedCompletion {
			errs = append(errs, field.NotSupported(fldPath.Child("completionMode"), m, []batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}))
		}
		if indexed {
			if spec.Completions == nil {
				errs = append(errs, field.Required(fldPath.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
			}
			if p := deref(spec.Parallelism, 0); p > maxParallelismForIndexedJob {
				errs = append(errs, field.Invalid(fldPath.Child("parallelism"), p,
					fmt.Sprintf("must be less than or equal to %d when completion mode is %s", maxParallelismForIndexedJob, batchv1.IndexedCompletion)))
			}
			if spec.Completions != nil && spec.MaxFailedIndexes != nil && *spec.MaxFailedIndexes > *spec.Completions {
				errs = append(errs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, "must be less than or equal to completions"))
			}
			if spec.MaxFailedIndexes != nil && *spec.MaxFailedIndexes > maxFailedIndexesLimitForIndexedJob {
				errs = append(errs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes,
					fmt.Sprintf("must be less than or equal to %d", maxFailedIndexesLimitForIndexedJob)))
			}
			if spec.Completions != nil && *spec.Completions > completionsSoftLimit && spec.BackoffLimitPerIndex != nil {
				if spec.MaxFailedIndexes == nil {
					errs = append(errs, field.Required(fldPath.Child("maxFailedIndexes"), fmt.Sprintf("must be specified when completions is above %d", completionsSoftLimit)))
				}
				if p := deref(spec.Parallelism, 0); p > parallelismLimitForHighCompletions {
					errs = append(errs, field.Invalid(fldPath.Child("parallelism"), p, fmt.Sprintf(
						"must be less than or equal to %d when completions are above %d and used with backoff limit per index",
						parallelismLimitForHighCompletions, completionsSoftLimit)))
				}
			}
		}
	}
	if !indexed {
		if spec.BackoffLimitPerIndex != nil {
			errs = append(errs, field.Invalid(fldPath.Child("backoffLimitPerIndex"), *spec.BackoffLimitPerIndex, "requires indexed completion mode"))
		}
		if spec.MaxFailedIndexes != nil {
			errs = append(errs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, "requires indexed completion mode"))
		}
	}
	if spec.PodFailurePolicy != nil {
		errs = append(errs, validatePodFailurePolicy(spec, fldPath.Child("podFailurePolicy"))...)
	}
	if spec.SuccessPolicy != nil {
		if !indexed {
			errs = append(errs, field.Invalid(fldPath.Child("successPolicy"), *spec.SuccessPolicy, "requires indexed completion mode"))
		} else {
			errs = append(errs, validateSuccessPolicy(spec, fldPath.Child("successPolicy"))...)
		}
	}
	if p := spec.PodReplacementPolicy; p != nil {
		pp := fldPath.Child("podReplacementPolicy")
		if spec.PodFailurePolicy != nil {
			if *p != batchv1.Failed {
				errs = append(errs, field.NotSupported(pp, *p, []batchv1.PodReplacementPolicy{batchv1.Failed}))
			}
		} else if *p != batchv1.Failed && *p != batchv1.TerminatingOrFailed {
			errs = append(errs, field.NotSupported(pp, *p, []batchv1.PodReplacementPolicy{batchv1.Failed, batchv1.TerminatingOrFailed}))
		}
	}

	tp := fldPath.Child("template")
	errs = append(errs, ValidatePodTemplate(&spec.Template, tp)...)
	rp := spec.Template.Spec.RestartPolicy
	rpPath := tp.Child("spec", "restartPolicy")
	switch {
	case rp == corev1.RestartPolicyAlways || rp == "":
		// Core defaults an unset restartPolicy to Always, which a job cannot use.
		errs = append(errs, field.Required(rpPath, fmt.Sprintf("valid values: %q, %q", corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)))
	case rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.NotSupported(rpPath, rp, []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	case spec.PodFailurePolicy != nil && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.Invalid(rpPath, rp, fmt.Sprintf("only %q is supported when podFailurePolicy is specified", corev1.RestartPolicyNever)))
	}
	return errs
}

func validatePodFailurePolicy(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	rulesPath := fldPath.Child("rules")
	rules := spec.PodFailurePolicy.Rules
	if len(rules) > maxPodFailurePolicyRules {
		errs = append(errs, field.TooMany(rulesPath, len(rules), maxPodFailurePolicyRules))
	}
	containers := map[string]bool{}
	for _, c := range spec.Template.Spec.Containers {
		containers[c.Name] = true
	}
	for _, c := range spec.Template.Spec.InitContainers {
		containers[c.Name] = true
	}
	for i := range rules {
		rule := &rules[i]
		rp := rulesPath.Index(i)
		ap := rp.Child("action")
		if rule.Action == batchv1.PodFailurePolicyActionFailIndex && spec.BackoffLimitPerIndex == nil {
			errs = append(errs, field.Invalid(ap, rule.Action, "requires the backoffLimitPerIndex to be set"))
		}
		switch rule.Action {
		case batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailIndex,
			batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore:
		default:
			errs = append(errs, field.NotSupported(ap, rule.Action, []batchv1.PodFailurePolicyAction{
				batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailIndex,
				batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore}))
		}
		if oe := rule.OnExitCodes; oe != nil {
			ep := rp.Child("onExitCodes")
			if oe.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn && oe.Operator != batchv1.PodFailurePolicyOnExitCodesOpNotIn {
				errs = append(errs, field.NotSupported(ep.Child("operator"), oe.Operator, []batchv1.PodFailurePolicyOnExitCodesOperator{
					batchv1.PodFailurePolicyOnExitCodesOpIn, batchv1.PodFailurePolicyOnExitCodesOpNotIn}))
			}
			if oe.ContainerName != nil && !containers[*oe.ContainerName] {
				errs = append(errs, field.Invalid(ep.Child("containerName"), *oe.ContainerName, "must be one of the container or initContainer names in the pod template"))
			}
			vp := ep.Child("values")
			if len(oe.Values) == 0 {
				errs = append(errs, field.Invalid(vp, oe.Values, "at least one value is required"))
			}
			if len(oe.Values) > maxPodFailurePolicyOnExitCodes {
				errs = append(errs, field.TooMany(vp, len(oe.Values), maxPodFailurePolicyOnExitCodes))
			}
			seen := map[int32]bool{}
			for j, v := range oe.Values {
				if oe.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && v == 0 {
					errs = append(errs, field.Invalid(vp.Index(j), v, "must not be 0 for the In operator"))
				}
				if seen[v] {
					errs = append(errs, field.Duplicate(vp.Index(j), v))
				}
				seen[v] = true
			}
			if !slices.IsSorted(oe.Values) {
				errs = append(errs, field.Invalid(vp, oe.Values, "must be ordered"))
			}
		}
		if pcs := rule.OnPodConditions; len(pcs) > 0 {
			cp := rp.Child("onPodConditions")
			if len(pcs) > maxPodFailurePolicyOnPodConditions {
				errs = append(errs, field.TooMany(cp, len(pcs), maxPodFailurePolicyOnPodConditions))
			}
			for j, pc := range pcs {
				pp := cp.Index(j)
				for _, msg := range content.IsQualifiedName(string(pc.Type)) {
					errs = append(errs, field.Invalid(pp.Child("type"), pc.Type, msg))
				}
				switch pc.Status {
				case "":
					errs = append(errs, field.Required(pp.Child("status"), fmt.Sprintf("valid values: %q, %q, %q", corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown)))
				case corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown:
				default:
					errs = append(errs, field.NotSupported(pp.Child("status"), pc.Status, []corev1.ConditionStatus{corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionUnknown}))
				}
			}
		}
		switch {
		case rule.OnExitCodes != nil && len(rule.OnPodConditions) > 0:
			errs = append(errs, field.Invalid(rp, field.OmitValueType{}, "specifying both OnExitCodes and OnPodConditions is not supported"))
		case rule.OnExitCodes == nil && len(rule.OnPodConditions) == 0:
			errs = append(errs, field.Invalid(rp, field.OmitValueType{}, "specifying one of OnExitCodes and OnPodConditions is required"))
		}
	}
	return errs
}

func validateSuccessPolicy(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	rulesPath := fldPath.Child("rules")
	rules := spec.SuccessPolicy.Rules
	if len(rules) == 0 {
		errs = append(errs, field.Required(rulesPath, "at least one rules must be specified when the successPolicy is specified"))
	}
	if len(rules) > maxSuccessPolicyRules {
		errs = append(errs, field.TooMany(rulesPath, len(rules), maxSuccessPolicyRules))
	}
	completions := deref(spec.Completions, 0)
	for i, rule := range rules {
		rp := rulesPath.Index(i)
		if rule.SucceededIndexes == nil && rule.SucceededCount == nil {
			errs = append(errs, field.Required(rp, "at least one of succeededCount or succeededIndexes must be specified"))
		}
		var total int32
		if rule.SucceededIndexes != nil {
			ip := rp.Child("succeededIndexes")
			if len(*rule.SucceededIndexes) > maxSucceededIndexesLength {
				errs = append(errs, field.TooLong(ip, "", maxSucceededIndexesLength))
			}
			n, err := countIndexes(*rule.SucceededIndexes, completions)
			if err != nil {
				errs = append(errs, field.Invalid(ip, *rule.SucceededIndexes, fmt.Sprintf("error parsing succeededIndexes: %s", err)))
			}
			total = n
		}
		if rule.SucceededCount != nil {
			cp := rp.Child("succeededCount")
			c := *rule.SucceededCount
			errs = append(errs, nonNegative(int64(c), cp)...)
			if c > completions {
				errs = append(errs, field.Invalid(cp, c, fmt.Sprintf("must be less than or equal to %d (the number of specified completions)", completions)))
			}
			if rule.SucceededIndexes != nil && c > total {
				errs = append(errs, field.Invalid(cp, c, fmt.Sprintf("must be less than or equal to %d (the number of indexes in the specified succeededIndexes field)", total)))
			}
		}
	}
	return errs
}

// countIndexes parses an ordered list of indexes and ranges ("1,3-5,7"), all below
// completions, and returns how many indexes it names.
func countIndexes(s string, completions int32) (int32, error) {
	if s == "" {
		return 0, nil
	}
	var total int32
	last := int64(-1)
	for _, interval := range strings.Split(s, ",") {
		limits := strings.Split(interval, "-")
		if len(limits) > 2 {
			return 0, fmt.Errorf("the fragment %q violates the requirement that an index interval can have at most two parts separated by '-'", interval)
		}
		for i, l := range limits {
			x, err := strconv.Atoi(l)
			if err != nil {
				return 0, fmt.Errorf("cannot convert string to integer for index: %q", l)
			}
			if x >= int(completions) {
				return 0, fmt.Errorf("too large index: %q", l)
			}
			if last >= int64(x) {
				return 0, fmt.Errorf("non-increasing order, previous: %d, current: %d", last, x)
			}
			if i == 0 {
				total++
			} else {
				total += int32(int64(x) - last)
			}
			last = int64(x)
		}
	}
	return total, nil
}

// validateJobUpdate checks what may not change on a job.
func validateJobUpdate(job, old *batchv1.Job) field.ErrorList {
	spec, oldSpec := &job.Spec, &old.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	// Completions may change only on an indexed job, together with parallelism.
	if deref(spec.CompletionMode, "") == batchv1.IndexedCompletion {
		if spec.Completions != nil && deref(oldSpec.Completions, -1) != *spec.Completions && *spec.Completions != deref(spec.Parallelism, 0) {
			errs = append(errs, field.Invalid(p.Child("completions"), spec.Completions, "can only be modified in tandem with spec.parallelism"))
		}
	} else {
		errs = append(errs, immutable(spec.Completions, oldSpec.Completions, p.Child("completions"))...)
	}
	errs = append(errs, immutable(spec.Selector, oldSpec.Selector, p.Child("selector"))...)
	errs = append(errs, immutable(mutableTemplate(job, old), &oldSpec.Template, p.Child("template"))...)
	errs = append(errs, immutable(spec.CompletionMode, oldSpec.CompletionMode, p.Child("completionMode"))...)
	errs = append(errs, immutable(spec.PodFailurePolicy, oldSpec.PodFailurePolicy, p.Child("podFailurePolicy"))...)
	errs = append(errs, immutable(spec.BackoffLimitPerIndex, oldSpec.BackoffLimitPerIndex, p.Child("backoffLimitPerIndex"))...)
	errs = append(errs, immutable(spec.ManagedBy, oldSpec.ManagedBy, p.Child("managedBy"))...)
	errs = append(errs, immutable(spec.SuccessPolicy, oldSpec.SuccessPolicy, p.Child("successPolicy"))...)
	return errs
}

// mutableTemplate returns the new template with what may change put back to the old values:
// a suspended job that never started may change its pods' node affinity, node selector,
// tolerations, scheduling gates, labels and annotations.
func mutableTemplate(job, old *batchv1.Job) *corev1.PodTemplateSpec {
	t := job.Spec.Template.DeepCopy()
	if !deref(old.Spec.Suspend, false) || old.Status.StartTime != nil {
		return t
	}
	o := &old.Spec.Template
	t.Labels, t.Annotations = o.Labels, o.Annotations
	t.Spec.NodeSelector, t.Spec.Tolerations, t.Spec.SchedulingGates = o.Spec.NodeSelector, o.Spec.Tolerations, o.Spec.SchedulingGates
	switch {
	case t.Spec.Affinity == nil && o.Spec.Affinity != nil:
		if a := *o.Spec.Affinity; a.PodAffinity == nil && a.PodAntiAffinity == nil {
			t.Spec.Affinity = o.Spec.Affinity
		}
	case t.Spec.Affinity != nil && o.Spec.Affinity == nil:
		if t.Spec.Affinity.PodAffinity == nil && t.Spec.Affinity.PodAntiAffinity == nil {
			t.Spec.Affinity = nil
		}
	case t.Spec.Affinity != nil:
		t.Spec.Affinity.NodeAffinity = o.Spec.Affinity.NodeAffinity
	}
	return t
}

func validateJobStatus(s *batchv1.JobStatus, p *field.Path) field.ErrorList {
	errs := nonNegative(int64(s.Active), p.Child("active"))
	errs = append(errs, nonNegative(int64(s.Succeeded), p.Child("succeeded"))...)
	errs = append(errs, nonNegative(int64(s.Failed), p.Child("failed"))...)
	if s.Ready != nil {
		errs = append(errs, nonNegative(int64(*s.Ready), p.Child("ready"))...)
	}
	if s.Terminating != nil {
		errs = append(errs, nonNegative(int64(*s.Terminating), p.Child("terminating"))...)
	}
	return errs
}

func hasCondition(conds []batchv1.JobCondition, t batchv1.JobConditionType) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func jobRow(job *batchv1.Job, now time.Time) []interface{} {
	var completions string
	switch p := deref(job.Spec.Parallelism, 0); {
	case job.Spec.Completions != nil:
		completions = fmt.Sprintf("%d/%d", job.Status.Succeeded, *job.Spec.Completions)
	case p > 1:
		completions = fmt.Sprintf("%d/1 of %d", job.Status.Succeeded, p)
	default:
		completions = fmt.Sprintf("%d/1", job.Status.Succeeded)
	}
	var took string
	switch {
	case job.Status.StartTime == nil:
	case job.Status.CompletionTime == nil:
		took = duration.HumanDuration(now.Sub(job.Status.StartTime.Time))
	default:
		took = duration.HumanDuration(job.Status.CompletionTime.Sub(job.Status.StartTime.Time))
	}
	var status string
	switch c := job.Status.Conditions; {
	case hasCondition(c, batchv1.JobComplete):
		status = "Complete"
	case hasCondition(c, batchv1.JobFailed):
		status = "Failed"
	case job.DeletionTimestamp != nil:
		status = "Terminating"
	case hasCondition(c, batchv1.JobSuspended):
		status = "Suspended"
	case hasCondition(c, batchv1.JobSuccessCriteriaMet):
		status = "SuccessCriteriaMet"
	case hasCondition(c, batchv1.JobFailureTarget):
		status = "FailureTarget"
	default:
		status = "Running"
	}
	names, images := containerCells(job.Spec.Template.Spec.Containers)
	return []interface{}{
		job.Name, status, completions, took, registry.Age(job.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(job.Spec.Selector),
	}
}
