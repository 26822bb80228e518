package promutil

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterSharesTheFirstCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "things_total", Help: "Things."}
	a, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil || b != a {
		t.Fatalf("second registration: %v, shared %v", err, b == a)
	}
	// Same name, different help: a real conflict is reported.
	if _, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "things_total", Help: "Other."})); err == nil {
		t.Fatal("conflicting collector registered without an error")
	}
}
