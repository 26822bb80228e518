package framework

import (
	"errors"
	"strings"
)

// Code is the outcome of running a plugin.
type Code int

const (
	// Success: the plugin ran and accepts the pod (nil *Status means the same).
	Success Code = iota
	// Error: an internal error; the pod is retried with backoff.
	Error
	// Unschedulable: the pod does not fit now; preemption might make room.
	Unschedulable
	// UnschedulableAndUnresolvable: the pod does not fit and preempting pods would not
	// change that (a taint, a label, a node name).
	UnschedulableAndUnresolvable
	// Skip: PreFilter/PreScore found nothing to do; the matching Filter/Score is skipped.
	// Bind plugins return it to pass the pod on to the next binder.
	Skip
	// Pending: the pod waits for something outside the scheduler.
	Pending
)

var codeNames = [...]string{"Success", "Error", "Unschedulable", "UnschedulableAndUnresolvable", "Skip", "Pending"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Unknown"
}

// Status is a plugin result: a code, human-readable reasons (each counted separately in
// the "0/N nodes are available" message) and the plugin that produced it.
type Status struct {
	code    Code
	reasons []string
	err     error
	plugin  string
}

// NewStatus returns a status with the given code and reasons.
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons}
}

// AsStatus wraps an error into an Error status (nil stays nil).
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{code: Error, err: err}
}

// Code returns the code; a nil status is Success.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// IsSuccess reports whether the status is nil or Success.
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// IsSkip reports whether the plugin asked to be skipped.
func (s *Status) IsSkip() bool { return s.Code() == Skip }

// IsRejected reports whether the pod was rejected rather than failing on an error.
func (s *Status) IsRejected() bool {
	c := s.Code()
	return c == Unschedulable || c == UnschedulableAndUnresolvable || c == Pending
}

// Reasons returns the reasons, with the error's text appended when there is one.
func (s *Status) Reasons() []string {
	if s == nil {
		return nil
	}
	if s.err != nil {
		return append([]string{s.err.Error()}, s.reasons...)
	}
	return s.reasons
}

// Message joins the reasons with ", ".
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.Reasons(), ", ")
}

// AsError returns nil for success and an error carrying the message otherwise.
func (s *Status) AsError() error {
	if s.IsSuccess() {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return errors.New(s.Message())
}

// Plugin returns the plugin that produced the status ("" when unknown).
func (s *Status) Plugin() string {
	if s == nil {
		return ""
	}
	return s.plugin
}

// WithPlugin records the plugin that produced the status and returns it.
func (s *Status) WithPlugin(name string) *Status {
	if s == nil {
		return nil
	}
	s.plugin = name
	return s
}
