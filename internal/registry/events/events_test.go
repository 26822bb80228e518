package events

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func event() *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "web.1816", Namespace: "default", CreationTimestamp: metav1.NewTime(now.Add(-time.Minute))},
		EventTime:           metav1.NewMicroTime(now.Add(-90 * time.Second)),
		ReportingController: "kubelet",
		ReportingInstance:   "node-1",
		Action:              "Pulling",
		Reason:              "Pulling",
		Regarding:           corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0", FieldPath: "spec.containers{nginx}"},
		Note:                "Pulling image \"nginx\" ",
		Type:                corev1.EventTypeNormal,
	}
}

func TestValidate(t *testing.T) {
	r := Resources()[0]
	tests := []struct {
		name   string
		mutate func(*eventsv1.Event)
		want   []string
	}{
		{"valid", func(*eventsv1.Event) {}, nil},
		{"bad type", func(e *eventsv1.Event) { e.Type = "Error" }, []string{`type: Invalid value: "": has invalid value: Error`}},
		{"missing fields", func(e *eventsv1.Event) { e.ReportingInstance = ""; e.Action = "" },
			[]string{"reportingInstance: Required value", "action: Required value"}},
		{"deprecated fields set", func(e *eventsv1.Event) { e.DeprecatedCount = 3 }, []string{`count: Invalid value: "": needs to be unset`}},
		{"short series", func(e *eventsv1.Event) { e.Series = &eventsv1.EventSeries{Count: 1, LastObservedTime: e.EventTime} },
			[]string{`series.count: Invalid value: "": should be at least 2`}},
		{"namespace mismatch", func(e *eventsv1.Event) { e.Namespace = "other"; e.Regarding.Namespace = "" },
			[]string{`involvedObject.namespace: Invalid value: "": does not match event.namespace`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := event()
			tt.mutate(e)
			var got []string
			for _, err := range r.Validate(e) {
				got = append(got, err.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors %q, want %q", got, tt.want)
			}
		})
	}
	upd := event()
	upd.Note = "changed"
	upd.Series = &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(now)}
	if errs := r.ValidateUpdate(upd, event()); len(errs) != 1 || errs[0].Field != "message" {
		t.Errorf("update errors %v", errs)
	}
}

func TestRow(t *testing.T) {
	r := Resources()[0]
	e := event()
	want := []interface{}{"90s", "Normal", "Pulling", "pod/web-0", "spec.containers{nginx}", "kubelet, node-1", `Pulling image "nginx"`, "90s", int64(1), "web.1816"}
	if got := r.Row(e, now); !reflect.DeepEqual(got, want) {
		t.Errorf("row %#v\nwant %#v", got, want)
	}
	e.Series = &eventsv1.EventSeries{Count: 4, LastObservedTime: metav1.NewMicroTime(now.Add(-10 * time.Second))}
	want[0], want[8] = "10s", int64(4)
	if got := r.Row(e, now); !reflect.DeepEqual(got, want) {
		t.Errorf("row %#v\nwant %#v", got, want)
	}
	if len(want) != len(r.Columns) {
		t.Errorf("%d cells for %d columns", len(want), len(r.Columns))
	}
	if f := r.Fields(e); f["regarding.name"] != "web-0" || f["reportingController"] != "kubelet" {
		t.Errorf("fields %v", f)
	}
}
