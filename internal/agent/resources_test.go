package agent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }

func TestContainerResources(t *testing.T) {
	const nodeMem = 8 << 30
	tests := []struct {
		name                       string
		req, lim                   corev1.ResourceList
		shares, quota, period, mem int64
		oom                        int64
	}{
		{name: "best effort", shares: 2, oom: 1000},
		{name: "cpu request", req: corev1.ResourceList{corev1.ResourceCPU: mustQ("250m")}, shares: 256, oom: 999},
		{name: "cpu limit only (request from limit)", lim: corev1.ResourceList{corev1.ResourceCPU: mustQ("500m")}, shares: 512, quota: 50000, period: 100000, oom: 999},
		{name: "tiny limit gets the minimum quota", req: corev1.ResourceList{corev1.ResourceCPU: mustQ("1m")}, lim: corev1.ResourceList{corev1.ResourceCPU: mustQ("1m")}, shares: 2, quota: 1000, period: 100000, oom: 999},
		{name: "memory limit, burstable by its request", req: corev1.ResourceList{corev1.ResourceMemory: mustQ("2Gi")}, lim: corev1.ResourceList{corev1.ResourceMemory: mustQ("4Gi")},
			shares: 2, mem: 4 << 30, oom: 750},
		{name: "guaranteed", req: corev1.ResourceList{corev1.ResourceCPU: mustQ("1"), corev1.ResourceMemory: mustQ("1Gi")}, lim: corev1.ResourceList{corev1.ResourceCPU: mustQ("1"), corev1.ResourceMemory: mustQ("1Gi")},
			shares: 1024, quota: 100000, period: 100000, mem: 1 << 30, oom: -997},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod(always(), nil, "a")
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: tt.req, Limits: tt.lim}
			r := containerResources(p, &p.Spec.Containers[0], nodeMem)
			if r.CpuShares != tt.shares || r.CpuQuota != tt.quota || r.CpuPeriod != tt.period || r.MemoryLimitInBytes != tt.mem || r.OomScoreAdj != tt.oom {
				t.Errorf("got shares %d quota %d period %d mem %d oom %d", r.CpuShares, r.CpuQuota, r.CpuPeriod, r.MemoryLimitInBytes, r.OomScoreAdj)
			}
		})
	}
}

func TestPodCgroupParent(t *testing.T) {
	p := testPod(always(), nil, "a")
	if got := podCgroupParent(p); got != "/kubepods/besteffort/poduid-1" {
		t.Errorf("best effort: %s", got)
	}
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: mustQ("1")}
	if got := podCgroupParent(p); got != "/kubepods/burstable/poduid-1" {
		t.Errorf("burstable: %s", got)
	}
	both := corev1.ResourceList{corev1.ResourceCPU: mustQ("1"), corev1.ResourceMemory: mustQ("1Gi")}
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: both, Limits: both}
	if got := podCgroupParent(p); got != "/kubepods/poduid-1" {
		t.Errorf("guaranteed: %s", got)
	}
}
