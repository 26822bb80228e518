// Package events describes events.k8s.io/v1 events, with Kubernetes' validation, table
// columns and selectable fields. Kubernetes serves these from the same storage as core/v1
// events, validating and printing its internal (core-shaped) event, so errors name the core
// fields (involvedObject, message, source...) and the table is the core events table.
package events

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Length limits of event fields.
const (
	reportingInstanceLengthLimit = 128
	actionLengthLimit            = 128
	reasonLengthLimit            = 128
	noteLengthLimit              = 1024
)

// Resources returns the events.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{{
		Group:        eventsv1.GroupName,
		Version:      "v1",
		Resource:     "events",
		Kind:         "Event",
		ListKind:     "EventList",
		SingularName: "event",
		Namespaced:   true,
		ShortNames:   []string{"ev"},
		New:          func() runtime.Object { return &eventsv1.Event{} },
		NewList:      func() runtime.Object { return &eventsv1.EventList{} },
		NoGeneration: true,
		// One storage with core/v1 events, as in Kubernetes: an event written through either
		// API is read through both (kubectl describe reads core events; kube-scheduler-style
		// recorders write events.k8s.io ones).
		Stored: &registry.StorageConversion{
			Group: corev1.GroupName, Version: "v1",
			ToStorage:   func(obj, _ runtime.Object) runtime.Object { return ToCore(obj.(*eventsv1.Event)) },
			FromStorage: func(stored runtime.Object) runtime.Object { return FromCore(stored.(*corev1.Event)) },
			NewStored:   func() runtime.Object { return &corev1.Event{} },
			NewList:     func() runtime.Object { return &corev1.EventList{} },
			FieldLabel:  coreFieldLabel,
		},
		Validate: func(obj runtime.Object) field.ErrorList { return validateEvent(obj.(*eventsv1.Event)) },
		ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
			return validateEventUpdate(obj.(*eventsv1.Event), old.(*eventsv1.Event))
		},
		Fields: func(obj runtime.Object) fields.Set {
			e := obj.(*eventsv1.Event)
			return fields.Set{
				"regarding.kind":            e.Regarding.Kind,
				"regarding.namespace":       e.Regarding.Namespace,
				"regarding.name":            e.Regarding.Name,
				"regarding.uid":             string(e.Regarding.UID),
				"regarding.apiVersion":      e.Regarding.APIVersion,
				"regarding.resourceVersion": e.Regarding.ResourceVersion,
				"regarding.fieldPath":       e.Regarding.FieldPath,
				"reason":                    e.Reason,
				"reportingController":       e.ReportingController,
				"type":                      e.Type,
			}
		},
		Columns: []metav1.TableColumnDefinition{
			registry.Col("Last Seen", "string", corev1.Event{}.SwaggerDoc()["lastTimestamp"], 0),
			registry.Col("Type", "string", corev1.Event{}.SwaggerDoc()["type"], 0),
			registry.Col("Reason", "string", corev1.Event{}.SwaggerDoc()["reason"], 0),
			registry.Col("Object", "string", corev1.Event{}.SwaggerDoc()["involvedObject"], 0),
			registry.Col("Subobject", "string", corev1.ObjectReference{}.SwaggerDoc()["fieldPath"], 1),
			registry.Col("Source", "string", corev1.Event{}.SwaggerDoc()["source"], 1),
			registry.Col("Message", "string", corev1.Event{}.SwaggerDoc()["message"], 0),
			registry.Col("First Seen", "string", corev1.Event{}.SwaggerDoc()["firstTimestamp"], 1),
			registry.Col("Count", "string", corev1.Event{}.SwaggerDoc()["count"], 1),
			func() metav1.TableColumnDefinition { c := registry.NameCol; c.Priority = 1; return c }(),
		},
		Row: func(obj runtime.Object, now time.Time) []interface{} { return eventRow(obj.(*eventsv1.Event), now) },
	}}
}

// ToCore converts an events.k8s.io/v1 event to the core/v1 event it is stored as.
func ToCore(e *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		TypeMeta:            metav1.TypeMeta{Kind: "Event", APIVersion: "v1"},
		ObjectMeta:          e.ObjectMeta,
		InvolvedObject:      e.Regarding,
		Reason:              e.Reason,
		Message:             e.Note,
		Source:              e.DeprecatedSource,
		FirstTimestamp:      e.DeprecatedFirstTimestamp,
		LastTimestamp:       e.DeprecatedLastTimestamp,
		Count:               e.DeprecatedCount,
		Type:                e.Type,
		EventTime:           e.EventTime,
		Action:              e.Action,
		Related:             e.Related,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
	}
	if e.Series != nil {
		out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}

// FromCore converts a stored core/v1 event to events.k8s.io/v1.
func FromCore(e *corev1.Event) *eventsv1.Event {
	out := &eventsv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "events.k8s.io/v1"},
		ObjectMeta:               e.ObjectMeta,
		EventTime:                e.EventTime,
		ReportingController:      e.ReportingController,
		ReportingInstance:        e.ReportingInstance,
		Action:                   e.Action,
		Reason:                   e.Reason,
		Regarding:                e.InvolvedObject,
		Related:                  e.Related,
		Note:                     e.Message,
		Type:                     e.Type,
		DeprecatedSource:         e.Source,
		DeprecatedFirstTimestamp: e.FirstTimestamp,
		DeprecatedLastTimestamp:  e.LastTimestamp,
		DeprecatedCount:          e.Count,
	}
	if e.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}

// coreFieldLabel maps this API's field selector labels to the stored core event's.
func coreFieldLabel(label string) string {
	switch {
	case strings.HasPrefix(label, "regarding."):
		return "involvedObject." + strings.TrimPrefix(label, "regarding.")
	case label == "reportingController":
		return "reportingComponent"
	}
	return label
}

func microSince(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return registry.HumanDuration(metav1.NewTime(t.Time), now)
}

func eventRow(e *eventsv1.Event, now time.Time) []interface{} {
	first := registry.HumanDuration(e.DeprecatedFirstTimestamp, now)
	if e.DeprecatedFirstTimestamp.IsZero() {
		first = microSince(e.EventTime, now)
	}
	last := registry.HumanDuration(e.DeprecatedLastTimestamp, now)
	if e.DeprecatedLastTimestamp.IsZero() {
		last = first
	}
	count := e.DeprecatedCount
	if e.Series != nil {
		last = microSince(e.Series.LastObservedTime, now)
		count = e.Series.Count
	} else if count == 0 {
		// Singleton events do not count themselves in this API.
		count = 1
	}
	target := strings.ToLower(e.Regarding.Kind)
	if e.Regarding.Name != "" {
		target += "/" + e.Regarding.Name
	}
	component, instance := e.DeprecatedSource.Component, e.DeprecatedSource.Host
	if component == "" {
		component = e.ReportingController
	}
	if instance == "" {
		instance = e.ReportingInstance
	}
	source := component
	if instance != "" {
		source += ", " + instance
	}
	return []interface{}{
		last, e.Type, e.Reason, target, e.Regarding.FieldPath, source,
		strings.TrimSpace(e.Note), first, int64(count), e.Name,
	}
}

// validateEvent applies Kubernetes' checks for events written through events.k8s.io/v1.
func validateEvent(e *eventsv1.Event) field.ErrorList {
	errs := validateEventFields(e)
	errs = append(errs, validateSeries(e)...)
	if e.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning {
		errs = append(errs, field.Invalid(field.NewPath("type"), "", fmt.Sprintf("has invalid value: %v", e.Type)))
	}
	if !e.DeprecatedFirstTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("firstTimestamp"), "", "needs to be unset"))
	}
	if !e.DeprecatedLastTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("lastTimestamp"), "", "needs to be unset"))
	}
	if e.DeprecatedCount != 0 {
		errs = append(errs, field.Invalid(field.NewPath("count"), "", "needs to be unset"))
	}
	if e.DeprecatedSource.Component != "" || e.DeprecatedSource.Host != "" {
		errs = append(errs, field.Invalid(field.NewPath("source"), "", "needs to be unset"))
	}
	return errs
}

// validateEventFields is the check every event gets, whichever API wrote it.
func validateEventFields(e *eventsv1.Event) field.ErrorList {
	var errs field.ErrorList
	nsPath := field.NewPath("involvedObject", "namespace")
	if e.EventTime.IsZero() {
		// An old-style event: its namespace must be the one of the object it is about.
		if e.Regarding.Namespace == "" {
			if e.Namespace != metav1.NamespaceNone && e.Namespace != metav1.NamespaceDefault {
				errs = append(errs, field.Invalid(nsPath, e.Regarding.Namespace, "does not match event.namespace"))
			}
		} else if e.Namespace != e.Regarding.Namespace {
			errs = append(errs, field.Invalid(nsPath, e.Regarding.Namespace, "does not match event.namespace"))
		}
	} else {
		if e.Regarding.Namespace == "" && e.Namespace != metav1.NamespaceDefault && e.Namespace != metav1.NamespaceSystem {
			errs = append(errs, field.Invalid(nsPath, e.Regarding.Namespace, "does not match event.namespace"))
		}
		rc := field.NewPath("reportingController")
		if e.ReportingController == "" {
			errs = append(errs, field.Required(rc, ""))
		}
		for _, msg := range content.IsQualifiedName(e.ReportingController) {
			errs = append(errs, field.Invalid(rc, e.ReportingController, msg))
		}
		if e.ReportingInstance == "" {
			errs = append(errs, field.Required(field.NewPath("reportingInstance"), ""))
		}
		if len(e.ReportingInstance) > reportingInstanceLengthLimit {
			errs = append(errs, field.Invalid(field.NewPath("reportingInstance"), "", fmt.Sprintf("can have at most %v characters", reportingInstanceLengthLimit)))
		}
		if e.Action == "" {
			errs = append(errs, field.Required(field.NewPath("action"), ""))
		}
		if len(e.Action) > actionLengthLimit {
			errs = append(errs, field.Invalid(field.NewPath("action"), "", fmt.Sprintf("can have at most %v characters", actionLengthLimit)))
		}
		if e.Reason == "" {
			errs = append(errs, field.Required(field.NewPath("reason"), ""))
		}
		if len(e.Reason) > reasonLengthLimit {
			errs = append(errs, field.Invalid(field.NewPath("reason"), "", fmt.Sprintf("can have at most %v characters", reasonLengthLimit)))
		}
		if len(e.Note) > noteLengthLimit {
			errs = append(errs, field.Invalid(field.NewPath("message"), "", fmt.Sprintf("can have at most %v characters", noteLengthLimit)))
		}
	}
	for _, msg := range content.IsDNS1123Subdomain(e.Namespace) {
		errs = append(errs, field.Invalid(field.NewPath("namespace"), e.Namespace, msg))
	}
	return errs
}

func validateSeries(e *eventsv1.Event) field.ErrorList {
	var errs field.ErrorList
	if e.Series != nil {
		if e.Series.Count < 2 {
			errs = append(errs, field.Invalid(field.NewPath("series.count"), "", "should be at least 2"))
		}
		if e.Series.LastObservedTime.IsZero() {
			errs = append(errs, field.Required(field.NewPath("series.lastObservedTime"), ""))
		}
	}
	return errs
}

// validateEventUpdate lets an event change little but its series.
func validateEventUpdate(e, old *eventsv1.Event) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		path     string
		new, old interface{}
	}{
		{"involvedObject", e.Regarding, old.Regarding},
		{"reason", e.Reason, old.Reason},
		{"message", e.Note, old.Note},
		{"source", e.DeprecatedSource, old.DeprecatedSource},
		{"firstTimestamp", e.DeprecatedFirstTimestamp, old.DeprecatedFirstTimestamp},
		{"lastTimestamp", e.DeprecatedLastTimestamp, old.DeprecatedLastTimestamp},
		{"count", e.DeprecatedCount, old.DeprecatedCount},
		{"type", e.Type, old.Type},
		{"eventTime", e.EventTime, old.EventTime},
		{"action", e.Action, old.Action},
		{"related", e.Related, old.Related},
		{"reportingController", e.ReportingController, old.ReportingController},
		{"reportingInstance", e.ReportingInstance, old.ReportingInstance},
	} {
		if !apiequality.Semantic.DeepEqual(f.new, f.old) {
			errs = append(errs, field.Invalid(field.NewPath(f.path), f.new, "field is immutable"))
		}
	}
	return errs
}
