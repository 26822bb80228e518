package registry

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// HumanDuration prints an age the way kubectl's AGE column does ("5m", "3d", "<unknown>").
func HumanDuration(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// Age is the AGE cell for an object created at t.
func Age(t metav1.Time, now time.Time) string { return HumanDuration(t, now) }

// Col builds a table column definition. Priority 1 columns show only with -o wide.
func Col(name, typ, desc string, priority int32) metav1.TableColumnDefinition {
	c := metav1.TableColumnDefinition{Name: name, Type: typ, Description: desc, Priority: priority}
	if typ == "date" {
		c.Type = "string"
	}
	return c
}

// NameCol is the first column of every table.
var NameCol = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"}

// AgeCol is the AGE column.
var AgeCol = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."}

// JoinOrNone joins a list for a table cell, printing <none> for an empty one.
func JoinOrNone(items []string) string {
	if len(items) == 0 {
		return "<none>"
	}
	out := items[0]
	for _, s := range items[1:] {
		out += "," + s
	}
	return out
}

// Int32Ptr reads an optional count as kubectl prints it.
func Int32Ptr(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// Ratio prints "ready/total".
func Ratio(a, b int32) string { return fmt.Sprintf("%d/%d", a, b) }
