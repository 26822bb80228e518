package podproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	agentserver "github.com/skiff-sh/skiff/internal/agent/server"
)

// The metrics.k8s.io API served by NewMetricsAPI.
const (
	MetricsGroup   = "metrics.k8s.io"
	MetricsVersion = "v1beta1"
	// MetricsPrefix is the path the handler serves (mount it for MetricsPrefix and
	// MetricsPrefix + "/").
	MetricsPrefix = "/apis/" + MetricsGroup
)

// MetricsWindow is the window reported with usage: the agents' CPU sampling interval.
var MetricsWindow = 10 * time.Second

var (
	nodeMetricsGR = schema.GroupResource{Group: MetricsGroup, Resource: "nodemetrics"}
	podMetricsGR  = schema.GroupResource{Group: MetricsGroup, Resource: "podmetrics"}
)

// MetricsAPIGroup is the group for GET /apis (legacy discovery).
func MetricsAPIGroup() metav1.APIGroup {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: MetricsGroup + "/" + MetricsVersion, Version: MetricsVersion}
	return metav1.APIGroup{Name: MetricsGroup, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
}

// MetricsAPIResourceList is GET /apis/metrics.k8s.io/v1beta1.
func MetricsAPIResourceList() metav1.APIResourceList {
	return metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: MetricsGroup + "/" + MetricsVersion,
		APIResources: []metav1.APIResource{
			{Name: "nodes", SingularName: "", Namespaced: false, Kind: "NodeMetrics", Verbs: []string{"get", "list"}},
			{Name: "pods", SingularName: "", Namespaced: true, Kind: "PodMetrics", Verbs: []string{"get", "list"}},
		},
	}
}

// MetricsAggregatedDiscovery is the group's entry in aggregated discovery (GET /apis with
// Accept ...;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList).
func MetricsAggregatedDiscovery() apidiscoveryv2.APIGroupDiscovery {
	res := func(name, kind string, scope apidiscoveryv2.ResourceScope) apidiscoveryv2.APIResourceDiscovery {
		return apidiscoveryv2.APIResourceDiscovery{Resource: name, Scope: scope, Verbs: []string{"get", "list"},
			ResponseKind: &metav1.GroupVersionKind{Group: MetricsGroup, Version: MetricsVersion, Kind: kind}}
	}
	return apidiscoveryv2.APIGroupDiscovery{
		ObjectMeta: metav1.ObjectMeta{Name: MetricsGroup},
		Versions: []apidiscoveryv2.APIVersionDiscovery{{
			Version:   MetricsVersion,
			Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
			Resources: []apidiscoveryv2.APIResourceDiscovery{
				res("nodes", "NodeMetrics", apidiscoveryv2.ScopeCluster),
				res("pods", "PodMetrics", apidiscoveryv2.ScopeNamespace),
			},
		}},
	}
}

// Summary fetches a node agent's /stats/summary.
func (p *Proxy) Summary(ctx context.Context, node *corev1.Node) (*agentserver.Summary, error) {
	base, err := p.NodeAgentURL(node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.MetricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+"/stats/summary", nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("node %s: stats summary: %s: %s", node.Name, resp.Status, strings.TrimSpace(string(b)))
	}
	var s agentserver.Summary
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("node %s: stats summary: %w", node.Name, err)
	}
	return &s, nil
}

// summaries fetches the summaries of nodes concurrently; nodes that fail are left out.
func (p *Proxy) summaries(ctx context.Context, nodes []*corev1.Node) map[string]*agentserver.Summary {
	out := map[string]*agentserver.Summary{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, n := range nodes {
		wg.Add(1)
		go func(n *corev1.Node) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := p.Summary(ctx, n)
			if err != nil {
				p.log.Debug("metrics: node stats", "node", n.Name, "err", err)
				return
			}
			mu.Lock()
			out[n.Name] = s
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	return out
}

type metricsAPI struct {
	p *Proxy
}

// NewMetricsAPI serves the metrics.k8s.io/v1beta1 API (NodeMetrics and PodMetrics, get and
// list) under MetricsPrefix from the agents' stats summaries, as metrics-server does; it
// needs Config.Client. Its group and version discovery documents are served too.
func NewMetricsAPI(p *Proxy) http.Handler { return &metricsAPI{p: p} }

func (m *metricsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, MetricsPrefix)
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if len(parts) == 1 && parts[0] == "" {
		parts = nil
	}
	if r.Method != http.MethodGet {
		writeStatus(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: MetricsGroup}, strings.ToLower(r.Method)))
		return
	}
	if m.p.cfg.Client == nil && len(parts) > 1 {
		writeStatus(w, apierrors.NewServiceUnavailable("metrics API has no client"))
		return
	}
	q := r.URL.Query()
	opts := metav1.ListOptions{LabelSelector: q.Get("labelSelector"), FieldSelector: q.Get("fieldSelector")}
	switch {
	case len(parts) == 0:
		g := MetricsAPIGroup()
		g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		writeJSON(w, http.StatusOK, &g)
	case parts[0] != MetricsVersion:
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{}, ""))
	case len(parts) == 1:
		l := MetricsAPIResourceList()
		writeJSON(w, http.StatusOK, &l)
	case len(parts) == 2 && parts[1] == "nodes":
		m.listNodes(w, r, opts)
	case len(parts) == 3 && parts[1] == "nodes":
		m.getNode(w, r, parts[2])
	case len(parts) == 2 && parts[1] == "pods":
		m.listPods(w, r, "", opts)
	case len(parts) == 4 && parts[1] == "namespaces" && parts[3] == "pods":
		m.listPods(w, r, parts[2], opts)
	case len(parts) == 5 && parts[1] == "namespaces" && parts[3] == "pods":
		m.getPod(w, r, parts[2], parts[4])
	default:
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{}, ""))
	}
}

func cpuQuantity(nanoCores uint64) resource.Quantity {
	return *resource.NewScaledQuantity(int64(nanoCores), resource.Nano)
}

func memQuantity(bytes uint64) resource.Quantity {
	return *resource.NewQuantity(int64(bytes), resource.BinarySI)
}

// nodeMetrics builds a NodeMetrics from a summary (false when the usage is not known).
func nodeMetrics(node *corev1.Node, s *agentserver.Summary) (metricsv1beta1.NodeMetrics, bool) {
	n := s.Node
	if n.CPU == nil || n.CPU.UsageNanoCores == nil || n.Memory == nil || n.Memory.WorkingSetBytes == nil {
		return metricsv1beta1.NodeMetrics{}, false
	}
	return metricsv1beta1.NodeMetrics{
		TypeMeta:   metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: MetricsGroup + "/" + MetricsVersion},
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, Labels: node.Labels, CreationTimestamp: metav1.Now()},
		Timestamp:  n.CPU.Time,
		Window:     metav1.Duration{Duration: MetricsWindow},
		Usage: corev1.ResourceList{
			corev1.ResourceCPU:    cpuQuantity(*n.CPU.UsageNanoCores),
			corev1.ResourceMemory: memQuantity(*n.Memory.WorkingSetBytes),
		},
	}, true
}

// podMetrics builds a PodMetrics from the pod's entry in its node's summary (false when
// the pod is not there or a container's usage is not known, as metrics-server skips it).
func podMetrics(pod *corev1.Pod, s *agentserver.Summary) (metricsv1beta1.PodMetrics, bool) {
	for _, ps := range s.Pods {
		if ps.PodRef.Namespace != pod.Namespace || ps.PodRef.Name != pod.Name {
			continue
		}
		if pod.UID != "" && ps.PodRef.UID != "" && ps.PodRef.UID != string(pod.UID) {
			continue
		}
		pm := metricsv1beta1.PodMetrics{
			TypeMeta:   metav1.TypeMeta{Kind: "PodMetrics", APIVersion: MetricsGroup + "/" + MetricsVersion},
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: pod.Labels, CreationTimestamp: metav1.Now()},
			Window:     metav1.Duration{Duration: MetricsWindow},
			Containers: []metricsv1beta1.ContainerMetrics{},
		}
		for _, c := range ps.Containers {
			if c.CPU == nil || c.CPU.UsageNanoCores == nil || c.Memory == nil || c.Memory.WorkingSetBytes == nil {
				return metricsv1beta1.PodMetrics{}, false
			}
			if c.CPU.Time.After(pm.Timestamp.Time) {
				pm.Timestamp = c.CPU.Time
			}
			pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: c.Name, Usage: corev1.ResourceList{
				corev1.ResourceCPU:    cpuQuantity(*c.CPU.UsageNanoCores),
				corev1.ResourceMemory: memQuantity(*c.Memory.WorkingSetBytes),
			}})
		}
		if len(pm.Containers) == 0 {
			return metricsv1beta1.PodMetrics{}, false
		}
		return pm, true
	}
	return metricsv1beta1.PodMetrics{}, false
}

func (m *metricsAPI) listNodes(w http.ResponseWriter, r *http.Request, opts metav1.ListOptions) {
	ctx := r.Context()
	nl, err := m.p.cfg.Client.CoreV1().Nodes().List(ctx, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	nodes := make([]*corev1.Node, len(nl.Items))
	for i := range nl.Items {
		nodes[i] = &nl.Items[i]
	}
	sums := m.p.summaries(ctx, nodes)
	out := &metricsv1beta1.NodeMetricsList{
		TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: MetricsGroup + "/" + MetricsVersion},
		Items:    []metricsv1beta1.NodeMetrics{},
	}
	for _, n := range nodes {
		if s := sums[n.Name]; s != nil {
			if nm, ok := nodeMetrics(n, s); ok {
				out.Items = append(out.Items, nm)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *metricsAPI) getNode(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	n, err := m.p.cfg.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			writeStatus(w, apierrors.NewNotFound(nodeMetricsGR, name))
			return
		}
		writeError(w, err)
		return
	}
	s, err := m.p.Summary(ctx, n)
	if err != nil {
		m.p.log.Debug("metrics: node stats", "node", name, "err", err)
		writeStatus(w, apierrors.NewNotFound(nodeMetricsGR, name))
		return
	}
	nm, ok := nodeMetrics(n, s)
	if !ok {
		writeStatus(w, apierrors.NewNotFound(nodeMetricsGR, name))
		return
	}
	writeJSON(w, http.StatusOK, &nm)
}

// podsMetrics fetches the metrics of pods from their nodes' agents.
func (m *metricsAPI) podsMetrics(ctx context.Context, pods []*corev1.Pod) []metricsv1beta1.PodMetrics {
	nodeNames := map[string]bool{}
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			nodeNames[p.Spec.NodeName] = true
		}
	}
	var nodes []*corev1.Node
	for name := range nodeNames {
		n, err := m.p.getNode(ctx, name)
		if err != nil {
			continue
		}
		nodes = append(nodes, n)
	}
	sums := m.p.summaries(ctx, nodes)
	out := []metricsv1beta1.PodMetrics{}
	for _, p := range pods {
		if s := sums[p.Spec.NodeName]; s != nil {
			if pm, ok := podMetrics(p, s); ok {
				out = append(out, pm)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (m *metricsAPI) listPods(w http.ResponseWriter, r *http.Request, ns string, opts metav1.ListOptions) {
	ctx := r.Context()
	pl, err := m.p.cfg.Client.CoreV1().Pods(ns).List(ctx, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	var pods []*corev1.Pod
	for i := range pl.Items {
		if ph := pl.Items[i].Status.Phase; ph != corev1.PodSucceeded && ph != corev1.PodFailed {
			pods = append(pods, &pl.Items[i])
		}
	}
	writeJSON(w, http.StatusOK, &metricsv1beta1.PodMetricsList{
		TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: MetricsGroup + "/" + MetricsVersion},
		Items:    m.podsMetrics(ctx, pods),
	})
}

func (m *metricsAPI) getPod(w http.ResponseWriter, r *http.Request, ns, name string) {
	ctx := r.Context()
	pod, err := m.p.cfg.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			writeStatus(w, apierrors.NewNotFound(podMetricsGR, ns+"/"+name))
			return
		}
		writeError(w, err)
		return
	}
	items := m.podsMetrics(ctx, []*corev1.Pod{pod})
	if len(items) == 0 {
		writeStatus(w, apierrors.NewNotFound(podMetricsGR, ns+"/"+name))
		return
	}
	writeJSON(w, http.StatusOK, &items[0])
}
