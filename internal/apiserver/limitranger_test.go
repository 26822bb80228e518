package apiserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/skiff-sh/skiff/internal/quota"
)

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func TestLimitRangeDefaultsAndChecks(t *testing.T) {
	it := corev1.LimitRangeItem{Type: corev1.LimitTypeContainer,
		Default: rl("cpu", "500m", "memory", "256Mi"), DefaultRequest: rl("cpu", "100m", "memory", "128Mi"),
		Min: rl("cpu", "50m"), Max: rl("cpu", "1", "memory", "1Gi"), MaxLimitRequestRatio: rl("cpu", "5")}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "web"},
		{Name: "side", Resources: corev1.ResourceRequirements{Limits: rl("cpu", "200m")}},
	}}}
	applyContainerDefaults(pod, it)
	web, side := pod.Spec.Containers[0].Resources, pod.Spec.Containers[1].Resources
	if web.Requests.Cpu().String() != "100m" || web.Limits.Memory().String() != "256Mi" || side.Limits.Cpu().String() != "200m" || side.Requests.Cpu().String() != "100m" {
		t.Fatalf("defaults: web %+v side %+v", web, side)
	}
	want := "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web; cpu, memory request for container side; memory limit for container side"
	if got := pod.Annotations[limitRangerAnnotation]; got != want {
		t.Fatalf("annotation\n got %q\nwant %q", got, want)
	}
	for _, c := range pod.Spec.Containers {
		if errs := checkRange(it, corev1.LimitTypeContainer, c.Resources.Requests, c.Resources.Limits); len(errs) != 0 {
			t.Fatalf("%s: %v", c.Name, errs)
		}
	}
	errs := checkRange(it, corev1.LimitTypeContainer, rl("cpu", "10m"), rl("cpu", "2"))
	got := utilerrors.NewAggregate(errs).Error()
	for _, w := range []string{
		"minimum cpu usage per Container is 50m, but request is 10m",
		"maximum cpu usage per Container is 1, but limit is 2",
		"maximum memory usage per Container is 1Gi.  No limit is specified",
		"cpu max limit to request ratio per Container is 5, but provided ratio is 200.000000",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in %s", w, got)
		}
	}
	req, lim := quota.PodTotals(&corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: rl("cpu", "3")}}},
		Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: rl("cpu", "1"), Limits: rl("memory", "1Gi")}},
			{Resources: corev1.ResourceRequirements{Requests: rl("cpu", "1"), Limits: rl("memory", "1Gi")}}},
	}})
	if req.Cpu().String() != "3" || lim.Memory().String() != "2Gi" {
		t.Fatalf("pod totals: %v %v", req, lim)
	}
}
