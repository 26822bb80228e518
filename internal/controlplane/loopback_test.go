package controlplane

import (
	"net/http"
	"testing"
)

func TestIsEventWrite(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/api/v1/namespaces/default/events", true},
		{"PATCH", "/api/v1/namespaces/default/events/web.17f", true},
		{"POST", "/apis/events.k8s.io/v1/namespaces/default/events", true},
		{"DELETE", "/api/v1/events", true},
		{"GET", "/api/v1/namespaces/default/events", false},
		{"POST", "/api/v1/namespaces/events/pods", false}, // a namespace called events
		{"PUT", "/api/v1/namespaces/default/pods/events/status", false},
		{"POST", "/apis/apps/v1/namespaces/default/deployments", false},
		{"PUT", "/api/v1/nodes/events", false},
	} {
		r, _ := http.NewRequest(c.method, "http://x"+c.path, nil)
		if got := isEventWrite(r); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.method, c.path, got, c.want)
		}
	}
}
