package hpa

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

func TestResourceMetricsClient(t *testing.T) {
	ts := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var gotPath, gotSelector string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotSelector = r.URL.Path, r.URL.Query().Get("labelSelector")
		usage := func(cpu, mem string) corev1.ResourceList {
			return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
		}
		list := metricsv1beta1.PodMetricsList{
			TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: "metrics.k8s.io/v1beta1"},
			Items: []metricsv1beta1.PodMetrics{
				{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Timestamp: metav1.NewTime(ts), Window: metav1.Duration{Duration: 15 * time.Second},
					Containers: []metricsv1beta1.ContainerMetrics{{Name: "x", Usage: usage("100m", "10Mi")}, {Name: "y", Usage: usage("50m", "6Mi")}}},
				{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"}, Timestamp: metav1.NewTime(ts.Add(-time.Second)),
					Containers: []metricsv1beta1.ContainerMetrics{{Name: "x", Usage: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}}}},
			},
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	}))
	defer srv.Close()
	m, err := NewResourceMetricsClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, oldest, err := m.PodResourceMetrics(context.Background(), corev1.ResourceCPU, "ns", labels.SelectorFromSet(labels.Set{"app": "web"}))
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods" || gotSelector != "app=web" {
		t.Fatalf("request %s ?labelSelector=%s", gotPath, gotSelector)
	}
	// b has no cpu sample: missing, not zero.
	if len(got) != 1 || got["a"].Value != 150 || got["a"].Window != 15*time.Second || !oldest.Equal(ts) {
		t.Fatalf("got %+v oldest %v", got, oldest)
	}
	mem, _, err := m.PodResourceMetrics(context.Background(), corev1.ResourceMemory, "ns", labels.Everything())
	if err != nil || mem["a"].Value != 16*1024*1024*1000 || mem["b"].Value != 1024*1024*1000 {
		t.Fatalf("memory %+v %v", mem, err)
	}
}
