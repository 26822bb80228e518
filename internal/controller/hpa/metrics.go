package hpa

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned/typed/metrics/v1beta1"
)

// PodMetric is one pod's usage of a resource over a window ending at Timestamp. Value is in
// milli-units: millicores for cpu, thousandths of a byte for memory.
type PodMetric struct {
	Timestamp time.Time
	Window    time.Duration
	Value     int64
}

// PodMetricsInfo maps pod names to their usage.
type PodMetricsInfo map[string]PodMetric

// MetricsClient gives the resource usage of the pods a selector picks. The controller reads
// metrics.k8s.io by default; tests inject their own.
type MetricsClient interface {
	// PodResourceMetrics returns the pods' usage of the resource and the time of the oldest
	// sample.
	PodResourceMetrics(ctx context.Context, resource corev1.ResourceName, namespace string, selector labels.Selector) (PodMetricsInfo, time.Time, error)
}

// errNoMetrics is what the resource metrics API answering no pods means.
var errNoMetrics = errors.New("no metrics returned from resource metrics API")

// resourceMetricsClient reads metrics.k8s.io PodMetrics.
type resourceMetricsClient struct {
	client metricsclient.MetricsV1beta1Interface
}

// NewResourceMetricsClient reads pod usage from the metrics.k8s.io API of the server the
// config points at.
func NewResourceMetricsClient(cfg *rest.Config) (MetricsClient, error) {
	c, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &resourceMetricsClient{client: c}, nil
}

func (m *resourceMetricsClient) PodResourceMetrics(ctx context.Context, resource corev1.ResourceName, namespace string, selector labels.Selector) (PodMetricsInfo, time.Time, error) {
	list, err := m.client.PodMetricses(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unable to fetch metrics from resource metrics API: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, time.Time{}, errNoMetrics
	}
	out := PodMetricsInfo{}
	var oldest time.Time
	for _, pm := range list.Items {
		var sum int64
		complete := len(pm.Containers) > 0
		for _, c := range pm.Containers {
			q, ok := c.Usage[resource]
			if !ok {
				complete = false
				break
			}
			sum += q.MilliValue()
		}
		if !complete {
			continue // a pod missing a container's sample counts as missing
		}
		out[pm.Name] = PodMetric{Timestamp: pm.Timestamp.Time, Window: pm.Window.Duration, Value: sum}
		if oldest.IsZero() || pm.Timestamp.Time.Before(oldest) {
			oldest = pm.Timestamp.Time
		}
	}
	return out, oldest, nil
}
