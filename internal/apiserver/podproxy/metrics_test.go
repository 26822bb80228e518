package podproxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	agentserver "github.com/skiff-sh/skiff/internal/agent/server"
)

func u64(v uint64) *uint64 { return &v }

func TestMetricsAPI(t *testing.T) {
	ca := newTestCA(t)
	ts := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	cstat := func(name string, nano, ws uint64) agentserver.ContainerStats {
		return agentserver.ContainerStats{Name: name,
			CPU:    &agentserver.CPUStats{Time: ts, UsageNanoCores: u64(nano), UsageCoreNanoSeconds: u64(1)},
			Memory: &agentserver.MemoryStats{Time: ts, WorkingSetBytes: u64(ws)}}
	}
	summary := agentserver.Summary{
		Node: agentserver.NodeStats{NodeName: "n1",
			CPU:    &agentserver.CPUStats{Time: ts, UsageNanoCores: u64(250_000_000)},
			Memory: &agentserver.MemoryStats{Time: ts, WorkingSetBytes: u64(512 << 20)}},
		Pods: []agentserver.PodStats{
			{PodRef: agentserver.PodReference{Name: "web", Namespace: "ns", UID: "uid-1"},
				Containers: []agentserver.ContainerStats{cstat("app", 5_000_000, 10<<20), cstat("side", 1_000_000, 1<<20)}},
			{PodRef: agentserver.PodReference{Name: "stale", Namespace: "ns", UID: "old-uid"},
				Containers: []agentserver.ContainerStats{cstat("app", 1, 1)}},
			{PodRef: agentserver.PodReference{Name: "norate", Namespace: "ns", UID: "uid-3"},
				Containers: []agentserver.ContainerStats{{Name: "app", CPU: &agentserver.CPUStats{Time: ts}, Memory: &agentserver.MemoryStats{Time: ts, WorkingSetBytes: u64(1)}}}},
		},
	}
	agent := newFakeAgent(t, ca, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats/summary" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(&summary)
	})
	n1 := agent.node()
	n1.Labels = map[string]string{"zone": "a"}
	n2 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}} // no address: no metrics
	mkPod := func(name, uid string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + uid), Labels: labels},
			Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	}
	web := mkPod("web", "1", map[string]string{"app": "web"})
	stale := mkPod("stale", "2", nil) // recreated: the summary has the old pod's UID
	norate := mkPod("norate", "3", nil)
	done := mkPod("done", "4", nil)
	done.Status.Phase = corev1.PodSucceeded
	client := fake.NewSimpleClientset(n1, n2, web, stale, norate, done)
	px := New(Config{Client: client, ClientCert: ca.clientCert(t), RootCAs: ca.pool})
	srv := httptest.NewServer(NewMetricsAPI(px))
	defer srv.Close()

	get := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}

	var group metav1.APIGroup
	if code := get("/apis/metrics.k8s.io", &group); code != 200 || group.Name != "metrics.k8s.io" || group.PreferredVersion.GroupVersion != "metrics.k8s.io/v1beta1" {
		t.Errorf("group: %d %+v", code, group)
	}
	var rl metav1.APIResourceList
	if code := get("/apis/metrics.k8s.io/v1beta1", &rl); code != 200 || len(rl.APIResources) != 2 || rl.APIResources[1].Kind != "PodMetrics" || !rl.APIResources[1].Namespaced {
		t.Errorf("resources: %d %+v", code, rl)
	}

	var nodes metricsv1beta1.NodeMetricsList
	if code := get("/apis/metrics.k8s.io/v1beta1/nodes", &nodes); code != 200 || nodes.Kind != "NodeMetricsList" || len(nodes.Items) != 1 {
		t.Fatalf("nodes: %d %+v", code, nodes)
	}
	nm := nodes.Items[0]
	if nm.Name != "n1" || nm.Labels["zone"] != "a" || nm.Usage.Cpu().MilliValue() != 250 || nm.Usage.Memory().Value() != 512<<20 ||
		!nm.Timestamp.Equal(&ts) || nm.Window.Duration != MetricsWindow {
		t.Errorf("node metrics %+v", nm)
	}
	if code := get("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Db", &nodes); code != 200 || len(nodes.Items) != 0 {
		t.Errorf("nodes zone=b: %+v", nodes)
	}
	var one metricsv1beta1.NodeMetrics
	if code := get("/apis/metrics.k8s.io/v1beta1/nodes/n1", &one); code != 200 || one.Kind != "NodeMetrics" || one.Name != "n1" {
		t.Errorf("node n1: %d %+v", code, one)
	}
	var st metav1.Status
	if code := get("/apis/metrics.k8s.io/v1beta1/nodes/n2", &st); code != 404 || st.Message != `nodemetrics.metrics.k8s.io "n2" not found` {
		t.Errorf("node n2: %d %+v", code, st)
	}
	if code := get("/apis/metrics.k8s.io/v1beta1/nodes/n3", &st); code != 404 {
		t.Errorf("node n3: %d %+v", code, st)
	}

	var pods metricsv1beta1.PodMetricsList
	if code := get("/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods", &pods); code != 200 || pods.Kind != "PodMetricsList" || len(pods.Items) != 1 {
		t.Fatalf("pods: %d %+v", code, pods)
	}
	pm := pods.Items[0]
	if pm.Name != "web" || pm.Namespace != "ns" || pm.Labels["app"] != "web" || len(pm.Containers) != 2 ||
		pm.Containers[0].Name != "app" || pm.Containers[0].Usage.Cpu().MilliValue() != 5 || pm.Containers[1].Usage.Memory().Value() != 1<<20 {
		t.Errorf("pod metrics %+v", pm)
	}
	if code := get("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb", &pods); code != 200 || len(pods.Items) != 1 {
		t.Errorf("all pods app=web: %+v", pods)
	}
	if code := get("/apis/metrics.k8s.io/v1beta1/namespaces/other/pods", &pods); code != 200 || len(pods.Items) != 0 {
		t.Errorf("other namespace: %+v", pods)
	}
	var p metricsv1beta1.PodMetrics
	if code := get("/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/web", &p); code != 200 || p.Name != "web" {
		t.Errorf("pod web: %d %+v", code, p)
	}
	for _, name := range []string{"stale", "norate", "missing"} {
		if code := get("/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/"+name, &st); code != 404 || st.Message != `podmetrics.metrics.k8s.io "ns/`+name+`" not found` {
			t.Errorf("pod %s: %d %+v", name, code, st)
		}
	}
	resp, _ := http.Post(srv.URL+"/apis/metrics.k8s.io/v1beta1/nodes", "application/json", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	resp.Body.Close()

	d := MetricsAggregatedDiscovery()
	if d.Name != "metrics.k8s.io" || len(d.Versions) != 1 || len(d.Versions[0].Resources) != 2 || d.Versions[0].Resources[0].ResponseKind.Kind != "NodeMetrics" {
		t.Errorf("aggregated discovery %+v", d)
	}
}
