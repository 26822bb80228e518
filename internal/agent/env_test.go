package agent

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeObjects serves ConfigMaps, Secrets and Services from maps.
type fakeObjects struct {
	cms      map[string]*corev1.ConfigMap
	secrets  map[string]*corev1.Secret
	services map[string][]*corev1.Service
}

func (f *fakeObjects) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	if cm, ok := f.cms[ns+"/"+name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (f *fakeObjects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	if s, ok := f.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (f *fakeObjects) Services(ns string) ([]*corev1.Service, error) { return f.services[ns], nil }

func envPod() *corev1.Pod {
	p := testPod(always(), nil, "app")
	p.Namespace = "dev"
	p.Labels = map[string]string{"app": "web", "tier": "front"}
	p.Annotations = map[string]string{"note": `say "hi"`}
	p.Spec.NodeName = "node-1"
	p.Spec.ServiceAccountName = "builder"
	return p
}

func testObjects() *fakeObjects {
	return &fakeObjects{
		cms: map[string]*corev1.ConfigMap{
			"dev/cfg": {ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"mode": "fast", "bad-key": "x", "LEVEL": "3"}},
		},
		secrets: map[string]*corev1.Secret{
			"dev/creds": {ObjectMeta: metav1.ObjectMeta{Name: "creds"}, Data: map[string][]byte{"user": []byte("admin"), "pass": []byte("pw")}},
		},
		services: map[string][]*corev1.Service{
			"default": {{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.1",
				Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}}},
			"dev": {
				{ObjectMeta: metav1.ObjectMeta{Name: "redis-master"}, Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.11",
					Ports: []corev1.ServicePort{{Port: 6379, Protocol: corev1.ProtocolTCP}}}},
				{ObjectMeta: metav1.ObjectMeta{Name: "headless"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone,
					Ports: []corev1.ServicePort{{Port: 80}}}},
			},
		},
	}
}

func envMap(vars []envVar) map[string]string {
	m := map[string]string{}
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return m
}

func TestMakeEnvironment(t *testing.T) {
	pod := envPod()
	c := &pod.Spec.Containers[0]
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: mustQ("128Mi")}
	c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: mustQ("250m")}
	c.EnvFrom = []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
		{Prefix: "DB_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}},
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: boolPtr(true)}},
	}
	c.Env = []corev1.EnvVar{
		{Name: "PLAIN", Value: "v"},
		{Name: "mode", Value: "override"},
		{Name: "REF", Value: "$(PLAIN)-$(DB_user)-$(UNDEFINED)-$$(PLAIN)"},
		{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
		{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "POD_IPS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
		{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
		{Name: "TIER", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
		{Name: "LABELS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
		{Name: "ANN", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}}},
		{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: mustQ("1Mi")}}},
		{Name: "CPU_LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
		{Name: "CPU_REQ", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: mustQ("1m")}}},
		{Name: "CM_KEY", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "LEVEL"}}},
		{Name: "SECRET_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "pass"}}},
		{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "nope", Optional: boolPtr(true)}}},
		{Name: "REDIS", Value: "$(REDIS_MASTER_SERVICE_HOST):$(REDIS_MASTER_SERVICE_PORT)"},
	}
	ec := envContext{PodIPs: []string{"10.42.0.7", "fd00::7"}, HostIPs: []string{"192.168.1.10"},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: mustQ("2"), corev1.ResourceMemory: mustQ("8Gi")}}
	vars, err := makeEnvironment(context.Background(), pod, c, testObjects(), ec)
	if err != nil {
		t.Fatal(err)
	}
	got := envMap(vars)
	want := map[string]string{
		"mode": "override", "LEVEL": "3", "bad-key": "x", "DB_user": "admin", "DB_pass": "pw", "PLAIN": "v",
		"REF":  "v-admin-$(UNDEFINED)-$(PLAIN)",
		"NAME": "p", "NS": "dev", "UID": "uid-1", "NODE": "node-1", "SA": "builder",
		"POD_IP": "10.42.0.7", "POD_IPS": "10.42.0.7,fd00::7", "HOST_IP": "192.168.1.10", "TIER": "front",
		"LABELS": "app=\"web\"\ntier=\"front\"", "ANN": `note="say \"hi\""`,
		"MEM": "128", "CPU_LIMIT": "2", "CPU_REQ": "250", "CM_KEY": "3", "SECRET_KEY": "pw",
		"REDIS":                            "10.43.0.11:6379",
		"REDIS_MASTER_SERVICE_HOST":        "10.43.0.11",
		"REDIS_MASTER_SERVICE_PORT":        "6379",
		"REDIS_MASTER_PORT":                "tcp://10.43.0.11:6379",
		"REDIS_MASTER_PORT_6379_TCP":       "tcp://10.43.0.11:6379",
		"REDIS_MASTER_PORT_6379_TCP_PROTO": "tcp",
		"REDIS_MASTER_PORT_6379_TCP_PORT":  "6379",
		"REDIS_MASTER_PORT_6379_TCP_ADDR":  "10.43.0.11",
		"KUBERNETES_SERVICE_HOST":          "10.43.0.1",
		"KUBERNETES_SERVICE_PORT":          "443",
		"KUBERNETES_SERVICE_PORT_HTTPS":    "443",
		"KUBERNETES_PORT":                  "tcp://10.43.0.1:443",
		"KUBERNETES_PORT_443_TCP":          "tcp://10.43.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO":    "tcp",
		"KUBERNETES_PORT_443_TCP_PORT":     "443",
		"KUBERNETES_PORT_443_TCP_ADDR":     "10.43.0.1",
	}
	if !reflect.DeepEqual(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected %s = %q", k, v)
			}
		}
	}
	if validEnvName("A=B") || validEnvName("") || !validEnvName("my.env-name") {
		t.Error("validEnvName does not follow the relaxed rule")
	}
	// envFrom comes first, then env, in order; service variables last.
	if vars[0].Name != "LEVEL" || vars[len(vars)-1].Name != "REDIS_MASTER_PORT_6379_TCP_ADDR" {
		t.Errorf("order: first %s, last %s", vars[0].Name, vars[len(vars)-1].Name)
	}
}

func TestMakeEnvironmentServiceLinksOff(t *testing.T) {
	pod := envPod()
	pod.Spec.EnableServiceLinks = boolPtr(false)
	vars, err := makeEnvironment(context.Background(), pod, &pod.Spec.Containers[0], testObjects(), envContext{})
	if err != nil {
		t.Fatal(err)
	}
	got := envMap(vars)
	if _, ok := got["REDIS_MASTER_SERVICE_HOST"]; ok {
		t.Error("service links off, but the namespace's services are there")
	}
	if got["KUBERNETES_SERVICE_HOST"] != "10.43.0.1" {
		t.Error("the kubernetes service's variables are always there")
	}
}

func TestMakeEnvironmentErrors(t *testing.T) {
	tests := []struct {
		name string
		env  corev1.EnvVar
		want string
	}{
		{"missing configmap", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}},
			`configmap "nope" not found`},
		{"missing key", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "k"}}},
			`couldn't find key k in ConfigMap dev/cfg`},
		{"missing secret", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}},
			`secret "nope" not found`},
		{"missing secret key", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "k"}}},
			`couldn't find key k in Secret dev/creds`},
		{"bad field path", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.foo"}}},
			`unsupported fieldPath "spec.foo"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := envPod()
			pod.Spec.Containers[0].Env = []corev1.EnvVar{tt.env}
			_, err := makeEnvironment(context.Background(), pod, &pod.Spec.Containers[0], testObjects(), envContext{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	tests := map[string]string{
		"plain":          "plain",
		"$(A)":           "1",
		"x$(A)y$(B)z":    "x1ytwoz",
		"$$(A)":          "$(A)",
		"$(C)":           "$(C)",
		"$(A":            "$(A",
		"$A":             "$A",
		"$$":             "$",
		"cost $5":        "cost $5",
		"trailing $":     "trailing $",
		"$()":            "$()",
		"$(A)$(A)$$$(B)": "11$two",
	}
	for in, want := range tests {
		if got := expandVars(in, vars); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func boolPtr(b bool) *bool { return &b }
