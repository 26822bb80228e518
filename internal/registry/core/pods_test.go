package core

import (
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func minimalPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
}

func TestDefaultPod(t *testing.T) {
	pod := minimalPod()
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80}}
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}}
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "a"},
		{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}},
		{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}},
		{Name: "d", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"}}},
	}
	resourceByName(t, "pods").Default(pod)

	s := pod.Spec
	if s.RestartPolicy != corev1.RestartPolicyAlways || s.DNSPolicy != corev1.DNSClusterFirst ||
		s.SchedulerName != "default-scheduler" || s.SecurityContext == nil ||
		s.TerminationGracePeriodSeconds == nil || *s.TerminationGracePeriodSeconds != 30 ||
		s.EnableServiceLinks == nil || !*s.EnableServiceLinks {
		t.Errorf("pod spec defaults not applied: %+v", s)
	}
	if s.Priority != nil || s.PreemptionPolicy != nil {
		t.Errorf("priority is Priority admission's to set, not a default: %v %v", s.Priority, s.PreemptionPolicy)
	}
	c := s.Containers[0]
	if c.ImagePullPolicy != corev1.PullAlways || c.TerminationMessagePath != "/dev/termination-log" ||
		c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
		t.Errorf("container defaults: %+v", c)
	}
	if c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("port protocol = %q", c.Ports[0].Protocol)
	}
	p := c.LivenessProbe
	if p.TimeoutSeconds != 1 || p.PeriodSeconds != 10 || p.SuccessThreshold != 1 || p.FailureThreshold != 3 ||
		p.HTTPGet.Scheme != corev1.URISchemeHTTP || p.HTTPGet.Path != "/" {
		t.Errorf("probe defaults: %+v", p)
	}
	if q := c.Resources.Requests[corev1.ResourceCPU]; q.String() != "500m" {
		t.Errorf("requests not defaulted from limits: %v", c.Resources.Requests)
	}
	if len(c.ResizePolicy) != 1 || c.ResizePolicy[0].ResourceName != corev1.ResourceCPU {
		t.Errorf("resize policy: %+v", c.ResizePolicy)
	}
	if s.Volumes[0].EmptyDir == nil || *s.Volumes[1].Secret.DefaultMode != 420 || *s.Volumes[2].ConfigMap.DefaultMode != 420 ||
		s.Volumes[3].HostPath.Type == nil || *s.Volumes[3].HostPath.Type != "" {
		t.Errorf("volume defaults: %+v", s.Volumes)
	}
}

func TestImagePullPolicyDefault(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                corev1.PullAlways,
		"nginx:latest":         corev1.PullAlways,
		"nginx:1.25":           corev1.PullIfNotPresent,
		"registry:5000/app:v1": corev1.PullIfNotPresent,
		"registry:5000/app":    corev1.PullAlways,
		"nginx@sha256:" + strings.Repeat("a", 64): corev1.PullIfNotPresent,
	} {
		c := corev1.Container{Image: image}
		defaultContainer(&c)
		if c.ImagePullPolicy != want {
			t.Errorf("%s: got %s, want %s", image, c.ImagePullPolicy, want)
		}
	}
}

func TestPrepareForCreatePod(t *testing.T) {
	pod := minimalPod()
	pod.Status.Phase = corev1.PodRunning
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/gate"}}
	resourceByName(t, "pods").PrepareForCreate(pod)
	if pod.Status.Phase != corev1.PodPending || pod.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("status = %+v", pod.Status)
	}
	if len(pod.Status.Conditions) != 1 || pod.Status.Conditions[0].Reason != "SchedulingGated" {
		t.Errorf("conditions = %+v", pod.Status.Conditions)
	}
	if PodStatusReason(pod) != "SchedulingGated" {
		t.Errorf("reason = %s", PodStatusReason(pod))
	}
	bare := minimalPod()
	preparePodForCreate(bare)
	if bare.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("qos = %s", bare.Status.QOSClass)
	}
}

func validatedPod(mut func(*corev1.Pod)) field.ErrorList {
	pod := minimalPod()
	mut(pod)
	defaultPod(pod)
	return validatePodCreate(pod)
}

func TestValidatePod(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*corev1.Pod)
		want []string
	}{
		{"valid", func(p *corev1.Pod) {}, nil},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, []string{"spec.containers: Required value"}},
		{"no image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, []string{"spec.containers[0].image: Required value"}},
		{"bad container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "Web_1" },
			[]string{`spec.containers[0].name: Invalid value: "Web_1": a lowercase RFC 1123 label must consist of...`}},
		{"duplicate name", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "c", Image: "busybox"}}
		}, []string{`spec.initContainers[0].name: Duplicate value: "c"`}},
		{"bad port", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000, Name: "HTTP_x", Protocol: "ICMP"}}
		}, []string{
			"spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
			`spec.containers[0].ports[0].name: Invalid value: "HTTP_x": ...`,
			`spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`,
		}},
		{"restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" },
			[]string{`spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"`}},
		{"dns policy", func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" },
			[]string{`spec.dnsPolicy: Unsupported value: "Google": ...`}},
		{"requests over limits", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			}
		}, []string{`spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1`}},
		{"negative quantity", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("-1")}
		}, []string{`spec.containers[0].resources.requests[memory]: Invalid value: "-1": must be greater than or equal to 0`}},
		{"volumes", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{
				{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "two", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}, HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
			}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "missing", MountPath: "/data"}}
		}, []string{
			`spec.volumes[1].name: Duplicate value: "v"`,
			"spec.volumes[2].hostPath: Forbidden: may not specify more than 1 volume type",
			`spec.containers[0].volumeMounts[0].name: Not found: "missing"`,
		}},
		{"env", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{
				{Name: "my.var-1", Value: "ok"},
				{Name: "A=B"},
				{Name: "X", ValueFrom: &corev1.EnvVarSource{}},
			}
		}, []string{
			`spec.containers[0].env[1].name: Invalid value: "A=B": ...`,
			"spec.containers[0].env[2].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
		}},
		{"probe", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{SuccessThreshold: 2}
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}}
		}, []string{
			"spec.containers[0].livenessProbe: Required value: must specify a handler type",
			"spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
			"spec.containers[0].readinessProbe.exec.command: Required value",
		}},
		{"node selector", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"bad key!": "v"} },
			[]string{`spec.nodeSelector: Invalid value: "bad key!": ...`}},
		{"init container probe", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", ReadinessProbe: &corev1.Probe{}}}
		}, []string{"spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers"}},
		{"ephemeral on create", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "busybox"}}}
		}, []string{"spec.ephemeralContainers: Forbidden: cannot be set on create"}},
		{"tolerations", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpEqual, Value: "x"}}
		}, []string{"spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\""}},
		{"active deadline", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = int64Ptr(0) },
			[]string{"spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectErrors(t, validatedPod(tc.mut), tc.want...)
		})
	}
}

func TestValidatePodTemplateSpec(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
	}
	DefaultPodTemplateSpec(tmpl)
	if tmpl.Spec.EnableServiceLinks != nil {
		t.Errorf("enableServiceLinks is a pod-only default")
	}
	expectErrors(t, ValidatePodTemplateSpec(tmpl, field.NewPath("spec", "template")),
		"spec.template.spec.containers[0].image: Required value")
}

func TestPodUpdate(t *testing.T) {
	old := minimalPod()
	old.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	defaultPod(old)

	ok := old.DeepCopy()
	ok.Spec.Containers[0].Image = "nginx:1.27"
	ok.Spec.ActiveDeadlineSeconds = int64Ptr(60)
	ok.Spec.Tolerations = append(ok.Spec.Tolerations, corev1.Toleration{Key: "other", Operator: corev1.TolerationOpExists})
	expectErrors(t, validatePodUpdate(ok, old))

	bad := old.DeepCopy()
	bad.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
	errs := validatePodUpdate(bad, old)
	expectErrors(t, errs, "spec: Forbidden: pod updates may not change fields other than "+
		"`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"+
		"`spec.tolerations` (only additions to existing tolerations),"+
		"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)...")

	removed := old.DeepCopy()
	removed.Spec.Tolerations = nil
	expectErrors(t, validatePodUpdate(removed, old),
		"spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds")

	added := old.DeepCopy()
	added.Spec.Containers = append(added.Spec.Containers, corev1.Container{Name: "d", Image: "x"})
	defaultPod(added)
	expectErrors(t, validatePodUpdate(added, old), "spec.containers: Forbidden: pod updates may not add or remove containers")

	// The API server validates an updated pod with Validate and ValidateUpdate; the checks only
	// a new pod gets are skipped once it has a resourceVersion.
	r := pods()
	withEphemeral := old.DeepCopy()
	withEphemeral.ResourceVersion = "7"
	withEphemeral.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "busybox", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}}}
	expectErrors(t, r.Validate(withEphemeral))
	withEphemeral.ResourceVersion = ""
	expectErrors(t, r.Validate(withEphemeral), "spec.ephemeralContainers: Forbidden: cannot be set on create")

	deadline := old.DeepCopy()
	deadline.Spec.ActiveDeadlineSeconds = int64Ptr(30)
	later := deadline.DeepCopy()
	later.Spec.ActiveDeadlineSeconds = int64Ptr(60)
	expectErrors(t, validatePodUpdate(later, deadline),
		"spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value")
}

func podAt(created time.Time) *corev1.Pod {
	pod := minimalPod()
	pod.CreationTimestamp = metav1.NewTime(created)
	return pod
}

func TestPodRows(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	created := now.Add(-10 * time.Minute)
	running := func(ready bool) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "c", Ready: ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	}

	cases := []struct {
		name string
		mut  func(*corev1.Pod)
		want []interface{}
	}{
		{"pending", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending },
			[]interface{}{"p", "0/1", "Pending", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"running", func(p *corev1.Pod) {
			p.Spec.NodeName = "node-1"
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIPs = []corev1.PodIP{{IP: "10.244.0.5"}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running(true)}
		}, []interface{}{"p", "1/1", "Running", "0", "10m", "10.244.0.5", "node-1", "<none>", "<none>"}},
		{"container creating", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
		}, []interface{}{"p", "0/1", "ContainerCreating", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"crashloop", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{
				Name: "c", RestartCount: 4,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 1, Reason: "Error", FinishedAt: metav1.NewTime(now.Add(-3 * time.Minute))}},
			}}
		}, []interface{}{"p", "0/1", "CrashLoopBackOff", "4 (3m ago)", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"completed", func(p *corev1.Pod) {
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}
		}, []interface{}{"p", "0/1", "Completed", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"oom", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
		}, []interface{}{"p", "0/1", "OOMKilled", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"terminating", func(p *corev1.Pod) {
			ts := metav1.NewTime(now)
			p.DeletionTimestamp = &ts
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running(true)}
		}, []interface{}{"p", "1/1", "Terminating", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"node lost", func(p *corev1.Pod) {
			ts := metav1.NewTime(now)
			p.DeletionTimestamp = &ts
			p.Status.Phase = corev1.PodRunning
			p.Status.Reason = "NodeLost"
		}, []interface{}{"p", "0/1", "Unknown", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"init", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i1"}, {Name: "i2"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{
				{Name: "i1", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}},
				{Name: "i2", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}}
		}, []interface{}{"p", "0/1", "Init:1/2", "0", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"init error", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i1"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "i1", RestartCount: 2,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
		}, []interface{}{"p", "0/1", "Init:CrashLoopBackOff", "2", "10m", "<none>", "<none>", "<none>", "<none>"}},
		{"sidecar", func(p *corev1.Pod) {
			always := corev1.ContainerRestartPolicyAlways
			p.Spec.InitContainers = []corev1.Container{{Name: "side", RestartPolicy: &always}}
			p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}}
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "side", Ready: true, Started: boolPtr(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running(true)}
		}, []interface{}{"p", "2/2", "Running", "0", "10m", "<none>", "<none>", "<none>", "0/1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := podAt(created)
			tc.mut(pod)
			got := podRow(pod, now)
			if len(got) != len(podColumns) {
				t.Fatalf("%d cells for %d columns", len(got), len(podColumns))
			}
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Errorf("cell %d (%s) = %#v, want %#v", i, podColumns[i].Name, got[i], tc.want[i])
				}
			}
			ready, total := PodReadyCount(pod)
			if want := tc.want[1].(string); want != strings.Join([]string{itoa(ready), itoa(total)}, "/") {
				t.Errorf("PodReadyCount = %d/%d, want %s", ready, total, want)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestPodFields(t *testing.T) {
	pod := minimalPod()
	pod.Spec.NodeName = "n1"
	pod.Spec.HostNetwork = true
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}}
	f := resourceByName(t, "pods").Fields(pod)
	for k, v := range map[string]string{"spec.nodeName": "n1", "spec.hostNetwork": "true", "status.phase": "Running",
		"status.podIP": "10.0.0.1", "spec.restartPolicy": "", "status.nominatedNodeName": ""} {
		if got, ok := f[k]; !ok || got != v {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, v)
		}
	}
}
