// Package scheduling describes scheduling.k8s.io/v1 PriorityClasses, with Kubernetes'
// defaults, validation and table. The API server resolves a pod's priorityClassName to its
// priority on create (Priority admission, internal/apiserver/admission.go) and creates the two
// system classes at start.
package scheduling

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Kubernetes' limits: users may define priorities up to HighestUserDefinablePriority; the
// system classes sit above it.
const (
	HighestUserDefinablePriority = int32(1000000000)
	SystemCriticalPriority       = 2 * HighestUserDefinablePriority
	SystemClusterCritical        = "system-cluster-critical"
	SystemNodeCritical           = "system-node-critical"
	systemPrefix                 = "system-"
)

// SystemClasses are the PriorityClasses every cluster has, as Kubernetes creates them.
func SystemClasses() []*schedulingv1.PriorityClass {
	pc := func(name string, value int32, desc string) *schedulingv1.PriorityClass {
		p := corev1.PreemptLowerPriority
		return &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value, Description: desc, PreemptionPolicy: &p}
	}
	return []*schedulingv1.PriorityClass{
		pc(SystemNodeCritical, SystemCriticalPriority+1000, "Used for system critical pods that must not be moved from their current node."),
		pc(SystemClusterCritical, SystemCriticalPriority, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
	}
}

// Resources returns the scheduling.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	doc := schedulingv1.PriorityClass{}.SwaggerDoc()
	return []*registry.Resource{{
		Group: schedulingv1.GroupName, Version: "v1", Resource: "priorityclasses",
		Kind: "PriorityClass", ListKind: "PriorityClassList", SingularName: "priorityclass",
		ShortNames: []string{"pc"}, NoGeneration: true,
		New:     func() runtime.Object { return &schedulingv1.PriorityClass{} },
		NewList: func() runtime.Object { return &schedulingv1.PriorityClassList{} },
		Default: func(obj runtime.Object) {
			if pc := obj.(*schedulingv1.PriorityClass); pc.PreemptionPolicy == nil {
				p := corev1.PreemptLowerPriority
				pc.PreemptionPolicy = &p
			}
		},
		Validate: func(obj runtime.Object) field.ErrorList { return validate(obj.(*schedulingv1.PriorityClass)) },
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			pc, prev := obj.(*schedulingv1.PriorityClass), old.(*schedulingv1.PriorityClass)
			var errs field.ErrorList
			if pc.Value != prev.Value {
				errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
			}
			if pc.PreemptionPolicy != nil && prev.PreemptionPolicy != nil && *pc.PreemptionPolicy != *prev.PreemptionPolicy {
				errs = append(errs, field.Invalid(field.NewPath("preemptionPolicy"), *pc.PreemptionPolicy, "field is immutable"))
			}
			return errs
		},
		Columns: []metav1.TableColumnDefinition{
			registry.NameCol,
			registry.Col("Value", "integer", doc["value"], 0),
			registry.Col("Global-Default", "boolean", doc["globalDefault"], 0),
			registry.AgeCol,
			registry.Col("PreemptionPolicy", "string", doc["preemptionPolicy"], 0),
		},
		Row: func(obj runtime.Object, now time.Time) []interface{} {
			pc := obj.(*schedulingv1.PriorityClass)
			policy := ""
			if pc.PreemptionPolicy != nil {
				policy = string(*pc.PreemptionPolicy)
			}
			return []interface{}{pc.Name, int64(pc.Value), pc.GlobalDefault, registry.Age(pc.CreationTimestamp, now), policy}
		},
	}}
}

func validate(pc *schedulingv1.PriorityClass) field.ErrorList {
	var errs field.ErrorList
	if strings.HasPrefix(pc.Name, systemPrefix) {
		if !isSystemClass(pc) {
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "name"),
				fmt.Sprintf("priority class names with '%s' prefix are reserved for system use only. error: %v is not a known system priority class",
					systemPrefix, pc.Name)))
		}
	} else if pc.Value > HighestUserDefinablePriority {
		errs = append(errs, field.Forbidden(field.NewPath("value"),
			fmt.Sprintf("maximum allowed value of a user defined priority is %v", HighestUserDefinablePriority)))
	}
	if p := pc.PreemptionPolicy; p != nil && *p != corev1.PreemptLowerPriority && *p != corev1.PreemptNever {
		errs = append(errs, field.NotSupported(field.NewPath("preemptionPolicy"), *p, []string{string(corev1.PreemptLowerPriority), string(corev1.PreemptNever)}))
	}
	return errs
}

// isSystemClass reports whether pc is one of SystemClasses with its own value.
func isSystemClass(pc *schedulingv1.PriorityClass) bool {
	for _, s := range SystemClasses() {
		if s.Name == pc.Name && s.Value == pc.Value {
			return true
		}
	}
	return false
}
