package agent

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// objectSource reads what containers and volumes refer to. NotFound errors are API
// NotFound errors.
type objectSource interface {
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// Services lists the services whose variables a pod gets (its namespace's, when
	// enableServiceLinks, and default/kubernetes).
	Services(namespace string) ([]*corev1.Service, error)
}

// envContext is what environment values are computed from besides the pod.
type envContext struct {
	PodIPs, HostIPs []string
	Allocatable     corev1.ResourceList
	// MasterServiceNamespace holds the kubernetes service (default).
	MasterServiceNamespace string
}

// envVar is one resolved variable.
type envVar struct{ Name, Value string }

// makeEnvironment resolves a container's environment the way the kubelet does: the
// service variables first, then envFrom sources, then env entries, each later one
// overriding earlier ones of the same name; $(VAR) in values refers to what is defined
// before. A missing non-optional ConfigMap, Secret or key is an error
// (CreateContainerConfigError).
func makeEnvironment(ctx context.Context, pod *corev1.Pod, c *corev1.Container, src objectSource, ec envContext) ([]envVar, error) {
	var out []envVar
	index := map[string]int{}
	set := func(name, value string) {
		if i, ok := index[name]; ok {
			out[i].Value = value
			return
		}
		index[name] = len(out)
		out = append(out, envVar{name, value})
	}
	// Service variables are the base layer; envFrom and env override them.
	svcEnv, err := serviceEnv(pod, src, ec)
	if err != nil {
		return nil, err
	}
	lookup := map[string]string{}
	for _, v := range svcEnv {
		lookup[v.Name] = v.Value
	}

	cmCache := map[string]*corev1.ConfigMap{}
	secCache := map[string]*corev1.Secret{}
	getCM := func(name string) (*corev1.ConfigMap, error) {
		if cm, ok := cmCache[name]; ok {
			return cm, nil
		}
		cm, err := src.ConfigMap(ctx, pod.Namespace, name)
		if err != nil {
			return nil, err
		}
		cmCache[name] = cm
		return cm, nil
	}
	getSecret := func(name string) (*corev1.Secret, error) {
		if s, ok := secCache[name]; ok {
			return s, nil
		}
		s, err := src.Secret(ctx, pod.Namespace, name)
		if err != nil {
			return nil, err
		}
		secCache[name] = s
		return s, nil
	}

	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, err := getCM(ef.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("configmap %q not found", ef.ConfigMapRef.Name)
			}
			for _, k := range sortedKeys(cm.Data) {
				name := ef.Prefix + k
				if validEnvName(name) {
					set(name, cm.Data[k])
					lookup[name] = cm.Data[k]
				}
			}
		case ef.SecretRef != nil:
			s, err := getSecret(ef.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ef.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("secret %q not found", ef.SecretRef.Name)
			}
			keys := make([]string, 0, len(s.Data))
			for k := range s.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				name := ef.Prefix + k
				if validEnvName(name) {
					set(name, string(s.Data[k]))
					lookup[name] = string(s.Data[k])
				}
			}
		}
	}

	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom == nil {
			value = expandVars(value, lookup)
		} else {
			vf := e.ValueFrom
			switch {
			case vf.FieldRef != nil:
				v, err := podFieldValue(pod, vf.FieldRef.FieldPath, ec)
				if err != nil {
					return nil, err
				}
				value = v
			case vf.ResourceFieldRef != nil:
				v, err := resourceFieldValue(pod, c, vf.ResourceFieldRef, ec.Allocatable)
				if err != nil {
					return nil, err
				}
				value = v
			case vf.ConfigMapKeyRef != nil:
				ref := vf.ConfigMapKeyRef
				cm, err := getCM(ref.Name)
				if err != nil {
					if apierrors.IsNotFound(err) && optional(ref.Optional) {
						continue
					}
					if apierrors.IsNotFound(err) {
						return nil, fmt.Errorf("configmap %q not found", ref.Name)
					}
					return nil, err
				}
				v, ok := cm.Data[ref.Key]
				if !ok {
					if b, bok := cm.BinaryData[ref.Key]; bok {
						v, ok = string(b), true
					}
				}
				if !ok {
					if optional(ref.Optional) {
						continue
					}
					return nil, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
				}
				value = v
			case vf.SecretKeyRef != nil:
				ref := vf.SecretKeyRef
				s, err := getSecret(ref.Name)
				if err != nil {
					if apierrors.IsNotFound(err) && optional(ref.Optional) {
						continue
					}
					if apierrors.IsNotFound(err) {
						return nil, fmt.Errorf("secret %q not found", ref.Name)
					}
					return nil, err
				}
				b, ok := s.Data[ref.Key]
				if !ok {
					if optional(ref.Optional) {
						continue
					}
					return nil, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
				}
				value = string(b)
			case vf.FileKeyRef != nil:
				return nil, fmt.Errorf("env %s: fileKeyRef is not supported", e.Name)
			}
		}
		set(e.Name, value)
		lookup[e.Name] = value
	}
	for _, v := range svcEnv {
		if _, ok := index[v.Name]; !ok {
			set(v.Name, v.Value)
		}
	}
	return out, nil
}

func optional(b *bool) bool { return b != nil && *b }

// validEnvName follows the relaxed rule of current Kubernetes: printable ASCII but '='.
func validEnvName(name string) bool { return len(validation.IsRelaxedEnvVarName(name)) == 0 }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// expandVars expands $(VAR) references in s from vars, as Kubernetes does in env values,
// command and args: $$ is a literal $, an undefined reference stays as written.
func expandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// podFieldValue returns a downward API field of the pod.
func podFieldValue(pod *corev1.Pod, fieldPath string, ec envContext) (string, error) {
	if path, key, ok := subscript(fieldPath); ok {
		switch path {
		case "metadata.labels":
			return pod.Labels[key], nil
		case "metadata.annotations":
			return pod.Annotations[key], nil
		}
		return "", fmt.Errorf("unsupported fieldPath %q", fieldPath)
	}
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return first(ec.HostIPs), nil
	case "status.hostIPs":
		return strings.Join(ec.HostIPs, ","), nil
	case "status.podIP":
		if pod.Spec.HostNetwork {
			return first(ec.HostIPs), nil
		}
		return first(ec.PodIPs), nil
	case "status.podIPs":
		if pod.Spec.HostNetwork {
			return strings.Join(ec.HostIPs, ","), nil
		}
		return strings.Join(ec.PodIPs, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", fieldPath)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// subscript splits "metadata.labels['key']" into its path and key.
func subscript(fieldPath string) (string, string, bool) {
	i := strings.Index(fieldPath, "['")
	if i < 0 || !strings.HasSuffix(fieldPath, "']") {
		return "", "", false
	}
	return fieldPath[:i], fieldPath[i+2 : len(fieldPath)-2], true
}

// formatMap renders labels or annotations as the downward API does: key="value" lines,
// sorted.
func formatMap(m map[string]string) string {
	var lines []string
	for _, k := range sortedKeys(m) {
		lines = append(lines, k+"="+strconv.Quote(m[k]))
	}
	return strings.Join(lines, "\n")
}

// resourceFieldValue returns a container's request or limit in units of the divisor,
// rounded up; a limit that is not set reports the node's allocatable amount.
func resourceFieldValue(pod *corev1.Pod, c *corev1.Container, ref *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	target := c
	if ref.ContainerName != "" && (c == nil || ref.ContainerName != c.Name) {
		target = findContainer(pod, ref.ContainerName)
		if target == nil {
			return "", fmt.Errorf("container %q not found in pod", ref.ContainerName)
		}
	}
	if target == nil {
		return "", fmt.Errorf("resourceFieldRef %s needs a container name", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q resource.Quantity
	var name corev1.ResourceName
	kind, res, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	name = corev1.ResourceName(res)
	switch kind {
	case "limits":
		q = effectiveLimit(target, name, allocatable)
	case "requests":
		if v, ok := target.Resources.Requests[name]; ok {
			q = v
		} else if v, ok := target.Resources.Limits[name]; ok {
			q = v
		}
	default:
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	if name == corev1.ResourceCPU {
		v := math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue()))
		return strconv.FormatInt(int64(v), 10), nil
	}
	v := math.Ceil(float64(q.Value()) / float64(divisor.Value()))
	return strconv.FormatInt(int64(v), 10), nil
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// serviceEnv returns the Docker-links style variables of the services a pod sees:
// FOO_SERVICE_HOST, FOO_SERVICE_PORT, FOO_PORT_80_TCP_ADDR, ...
func serviceEnv(pod *corev1.Pod, src objectSource, ec envContext) ([]envVar, error) {
	if src == nil {
		return nil, nil
	}
	masterNS := ec.MasterServiceNamespace
	if masterNS == "" {
		masterNS = metaNamespaceDefault
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	seen := map[string]*corev1.Service{}
	if links {
		svcs, err := src.Services(pod.Namespace)
		if err != nil {
			return nil, err
		}
		for _, s := range svcs {
			seen[s.Name] = s
		}
	}
	if pod.Namespace != masterNS || !links {
		master, err := src.Services(masterNS)
		if err != nil {
			return nil, err
		}
		for _, s := range master {
			if s.Name == "kubernetes" {
				seen[s.Name] = s
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []envVar
	for _, n := range names {
		s := seen[n]
		ip := s.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		out = append(out, envVar{prefix + "_SERVICE_HOST", ip}, envVar{prefix + "_SERVICE_PORT", strconv.Itoa(int(s.Spec.Ports[0].Port))})
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out = append(out, envVar{prefix + "_SERVICE_PORT_" + strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), strconv.Itoa(int(p.Port))})
			}
		}
		p0 := s.Spec.Ports[0]
		proto := string(p0.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		out = append(out, envVar{prefix + "_PORT", fmt.Sprintf("%s://%s", strings.ToLower(proto), joinHostPort(ip, p0.Port))})
		for _, p := range s.Spec.Ports {
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			base := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(proto))
			out = append(out,
				envVar{base, fmt.Sprintf("%s://%s", strings.ToLower(proto), joinHostPort(ip, p.Port))},
				envVar{base + "_PROTO", strings.ToLower(proto)},
				envVar{base + "_PORT", strconv.Itoa(int(p.Port))},
				envVar{base + "_ADDR", ip})
		}
	}
	return out, nil
}

const metaNamespaceDefault = "default"

func joinHostPort(ip string, port int32) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + strconv.Itoa(int(port))
	}
	return ip + ":" + strconv.Itoa(int(port))
}
