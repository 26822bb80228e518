package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent/runtime"
)

// volumeRefresh is how often ConfigMap, Secret and downward API volumes are rewritten
// from the API (so that changes reach running pods within about a minute).
const volumeRefresh = 30 * time.Second

// volumePath is where a pod's volume is on the host.
type volumePath struct {
	HostPath string
	// ReadOnly volumes (ConfigMap, Secret, downward API, projected) are mounted read-only
	// whatever the volumeMount says.
	ReadOnly bool
	// Owned: the path is under the pod's directory (subPaths are created in it).
	Owned bool
}

type podVolumes struct {
	paths     map[string]volumePath
	refreshAt time.Time // next refresh of API-backed contents (tokens included)
}

// volumeManager prepares pods' volumes under <data-dir>/pods/<uid>/volumes and tells
// containers where to mount them from.
type volumeManager struct {
	a      *Agent
	tokens *tokenManager

	mu   sync.Mutex
	pods map[types.UID]*podVolumes
}

func newVolumeManager(a *Agent) *volumeManager {
	return &volumeManager{a: a, tokens: newTokenManager(a.client), pods: map[types.UID]*podVolumes{}}
}

func (m *volumeManager) volumesDir(uid types.UID) string {
	return filepath.Join(m.a.podDir(string(uid)), "volumes")
}

// due tells whether the pod's volumes need (re)writing: never set up, or refresh time.
func (m *volumeManager) due(uid types.UID, now time.Time) (bool, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pv := m.pods[uid]
	if pv == nil {
		return true, now
	}
	return !now.Before(pv.refreshAt), pv.refreshAt
}

// setup creates or refreshes every volume of the pod. It is idempotent; contents that did
// not change are left alone.
func (m *volumeManager) setup(ctx context.Context, pod *corev1.Pod) error {
	pv := &podVolumes{paths: map[string]volumePath{}, refreshAt: time.Now().Add(volumeRefresh)}
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		p, refresh, err := m.setupVolume(ctx, pod, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
			continue
		}
		pv.paths[v.Name] = p
		if !refresh.IsZero() && refresh.Before(pv.refreshAt) {
			pv.refreshAt = refresh
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	m.mu.Lock()
	m.pods[pod.UID] = pv
	m.mu.Unlock()
	return nil
}

func (m *volumeManager) setupVolume(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (volumePath, time.Time, error) {
	base := m.volumesDir(pod.UID)
	var fsGroup *int64
	if pod.Spec.SecurityContext != nil {
		fsGroup = pod.Spec.SecurityContext.FSGroup
	}
	switch {
	case v.EmptyDir != nil:
		dir := filepath.Join(base, "empty-dir", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return volumePath{}, time.Time{}, err
		}
		if v.EmptyDir.Medium == corev1.StorageMediumMemory {
			var size int64
			if v.EmptyDir.SizeLimit != nil {
				size = v.EmptyDir.SizeLimit.Value()
			}
			if err := mountTmpfs(dir, size); err != nil {
				return volumePath{}, time.Time{}, fmt.Errorf("mount tmpfs: %w", err)
			}
		}
		// Writable by any user the containers run as, as the kubelet makes it.
		mode := os.FileMode(0o777)
		if fsGroup != nil {
			if err := os.Chown(dir, -1, int(*fsGroup)); err != nil {
				return volumePath{}, time.Time{}, err
			}
			mode |= os.ModeSetgid
		}
		if err := os.Chmod(dir, mode); err != nil {
			return volumePath{}, time.Time{}, err
		}
		return volumePath{HostPath: dir, Owned: true}, time.Time{}, nil

	case v.HostPath != nil:
		if err := prepareHostPath(v.HostPath); err != nil {
			return volumePath{}, time.Time{}, err
		}
		return volumePath{HostPath: v.HostPath.Path}, time.Time{}, nil

	case v.ConfigMap != nil:
		dir := filepath.Join(base, "configmap", v.Name)
		files, err := m.configMapFiles(ctx, pod, &v.ConfigMap.LocalObjectReference, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional, 0o644)
		if err != nil {
			return volumePath{}, time.Time{}, err
		}
		_, err = writeAtomic(dir, groupReadable(files, fsGroup), fsGroup)
		return volumePath{HostPath: dir, ReadOnly: true, Owned: true}, time.Time{}, err

	case v.Secret != nil:
		dir := filepath.Join(base, "secret", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return volumePath{}, time.Time{}, err
		}
		// Secrets stay in memory.
		if err := mountTmpfs(dir, 0); err != nil {
			return volumePath{}, time.Time{}, fmt.Errorf("mount tmpfs: %w", err)
		}
		files, err := m.secretFiles(ctx, pod, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional, 0o644)
		if err != nil {
			return volumePath{}, time.Time{}, err
		}
		_, err = writeAtomic(dir, groupReadable(files, fsGroup), fsGroup)
		return volumePath{HostPath: dir, ReadOnly: true, Owned: true}, time.Time{}, err

	case v.DownwardAPI != nil:
		dir := filepath.Join(base, "downward-api", v.Name)
		files, err := m.downwardFiles(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, 0o644)
		if err != nil {
			return volumePath{}, time.Time{}, err
		}
		_, err = writeAtomic(dir, groupReadable(files, fsGroup), fsGroup)
		return volumePath{HostPath: dir, ReadOnly: true, Owned: true}, time.Time{}, err

	case v.Projected != nil:
		dir := filepath.Join(base, "projected", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return volumePath{}, time.Time{}, err
		}
		if err := mountTmpfs(dir, 0); err != nil {
			return volumePath{}, time.Time{}, fmt.Errorf("mount tmpfs: %w", err)
		}
		files, refresh, err := m.projectedFiles(ctx, pod, v.Projected)
		if err != nil {
			return volumePath{}, time.Time{}, err
		}
		_, err = writeAtomic(dir, groupReadable(files, fsGroup), fsGroup)
		return volumePath{HostPath: dir, ReadOnly: true, Owned: true}, refresh, err

	case v.PersistentVolumeClaim != nil:
		p, err := m.claimPath(ctx, pod, v.PersistentVolumeClaim.ClaimName)
		if err != nil {
			return volumePath{}, time.Time{}, err
		}
		return volumePath{HostPath: p, ReadOnly: v.PersistentVolumeClaim.ReadOnly}, time.Time{}, nil
	}
	return volumePath{}, time.Time{}, errors.New("volume type not supported by skiff's node agent")
}

// groupReadable lets the fsGroup read files its owner can read.
func groupReadable(files map[string]fileData, gid *int64) map[string]fileData {
	if gid == nil {
		return files
	}
	for k, f := range files {
		if f.Mode&0o400 != 0 {
			f.Mode |= 0o040
		}
		files[k] = f
	}
	return files
}

// prepareHostPath checks (or creates) a hostPath volume per its type.
func prepareHostPath(h *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if h.Type != nil {
		t = *h.Type
	}
	st, err := os.Stat(h.Path)
	exists := err == nil
	switch t {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if !exists {
			if err := os.MkdirAll(h.Path, 0o755); err != nil {
				return err
			}
			return nil
		}
		if !st.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", h.Path)
		}
	case corev1.HostPathDirectory:
		if !exists || !st.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", h.Path)
		}
	case corev1.HostPathFileOrCreate:
		if !exists {
			if err := os.MkdirAll(filepath.Dir(h.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		if st.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", h.Path)
		}
	case corev1.HostPathFile:
		if !exists || !st.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", h.Path)
		}
	case corev1.HostPathSocket:
		if !exists || st.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a socket file", h.Path)
		}
	case corev1.HostPathCharDev:
		if !exists || st.Mode()&os.ModeCharDevice == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a character device", h.Path)
		}
	case corev1.HostPathBlockDev:
		if !exists || st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a block device", h.Path)
		}
	}
	return nil
}

func modeOr(m *int32, def os.FileMode) os.FileMode {
	if m != nil {
		return os.FileMode(*m) & os.ModePerm
	}
	return def
}

func (m *volumeManager) configMapFiles(ctx context.Context, pod *corev1.Pod, ref *corev1.LocalObjectReference, items []corev1.KeyToPath, defaultMode *int32, opt *bool, def os.FileMode) (map[string]fileData, error) {
	cm, err := m.a.objects.ConfigMap(ctx, pod.Namespace, ref.Name)
	if apierrors.IsNotFound(err) && ref.Name == rootCAConfigMap && len(m.a.cfg.CAData) > 0 {
		// Until something publishes kube-root-ca.crt, the agent knows the cluster CA.
		cm, err = &corev1.ConfigMap{Data: map[string]string{"ca.crt": string(m.a.cfg.CAData)}}, nil
	}
	if err != nil {
		if apierrors.IsNotFound(err) && optional(opt) {
			return map[string]fileData{}, nil
		}
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("configmap %q not found", ref.Name)
		}
		return nil, err
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, modeOr(defaultMode, def), optional(opt), "configmap", ref.Name)
}

// rootCAConfigMap is the ConfigMap every namespace has with the cluster's CA.
const rootCAConfigMap = "kube-root-ca.crt"

func (m *volumeManager) secretFiles(ctx context.Context, pod *corev1.Pod, name string, items []corev1.KeyToPath, defaultMode *int32, opt *bool, def os.FileMode) (map[string]fileData, error) {
	s, err := m.a.objects.Secret(ctx, pod.Namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) && optional(opt) {
			return map[string]fileData{}, nil
		}
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("secret %q not found", name)
		}
		return nil, err
	}
	return keyFiles(s.Data, items, modeOr(defaultMode, def), optional(opt), "secret", name)
}

// keyFiles maps an object's keys onto files: every key by its name, or only the listed
// items at their paths and modes.
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, mode os.FileMode, opt bool, kind, name string) (map[string]fileData, error) {
	out := map[string]fileData{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = fileData{Data: v, Mode: mode}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			return nil, fmt.Errorf("configuration error: key %q not found in %s %q", it.Key, kind, name)
		}
		out[it.Path] = fileData{Data: v, Mode: modeOr(it.Mode, mode)}
	}
	return out, nil
}

func (m *volumeManager) downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defaultMode *int32, def os.FileMode) (map[string]fileData, error) {
	out := map[string]fileData{}
	mode := modeOr(defaultMode, def)
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podFieldValue(pod, it.FieldRef.FieldPath, envContext{PodIPs: podIPsOf(pod), HostIPs: m.a.nodeIPs})
		case it.ResourceFieldRef != nil:
			v, err = resourceFieldValue(pod, nil, it.ResourceFieldRef, m.a.allocatable)
		}
		if err != nil {
			return nil, err
		}
		out[it.Path] = fileData{Data: []byte(v), Mode: modeOr(it.Mode, mode)}
	}
	return out, nil
}

// claimPath resolves a PersistentVolumeClaim to the host path of its bound volume
// (hostPath and local volumes).
func (m *volumeManager) claimPath(ctx context.Context, pod *corev1.Pod, claim string) (string, error) {
	pvc, err := m.a.client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("persistentvolumeclaim %q not found", claim)
		}
		return "", err
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("persistentvolumeclaim %q is not bound", claim)
	}
	pv, err := m.a.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentvolume %q: %w", pvc.Spec.VolumeName, err)
	}
	switch {
	case pv.Spec.HostPath != nil:
		if err := prepareHostPath(pv.Spec.HostPath); err != nil {
			return "", err
		}
		return pv.Spec.HostPath.Path, nil
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path, nil
	}
	return "", fmt.Errorf("persistentvolume %q: only hostPath and local volumes are supported", pv.Name)
}

// containerMounts returns the CRI mounts of a container's volumeMounts. vars expand
// subPathExpr.
func (m *volumeManager) containerMounts(pod *corev1.Pod, c *corev1.Container, vars map[string]string) ([]*runtimeapi.Mount, error) {
	m.mu.Lock()
	pv := m.pods[pod.UID]
	m.mu.Unlock()
	var out []*runtimeapi.Mount
	for _, vm := range c.VolumeMounts {
		var vp volumePath
		ok := false
		if pv != nil {
			vp, ok = pv.paths[vm.Name]
		}
		if !ok {
			return nil, fmt.Errorf("volume %q is not ready", vm.Name)
		}
		host := vp.HostPath
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expandVars(vm.SubPathExpr, vars)
		}
		if sub != "" {
			p, err := subPath(vp, sub)
			if err != nil {
				return nil, fmt.Errorf("volume %q subPath %q: %w", vm.Name, sub, err)
			}
			host = p
		}
		out = append(out, &runtimeapi.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      host,
			Readonly:      vm.ReadOnly || vp.ReadOnly,
			Propagation:   propagation(vm.MountPropagation),
		})
	}
	return out, nil
}

// subPath resolves a subPath inside a volume, creating it as a directory when it is
// missing, and refuses one that leads outside the volume (through .. or symlinks).
func subPath(vp volumePath, sub string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", errors.New("must be a relative path")
	}
	for _, part := range strings.Split(filepath.ToSlash(sub), "/") {
		if part == ".." {
			return "", errors.New("must not contain '..'")
		}
	}
	p := filepath.Join(vp.HostPath, sub)
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		if vp.ReadOnly {
			return "", fmt.Errorf("%s does not exist", sub)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", err
		}
		if vp.Owned {
			_ = os.Chmod(p, 0o777)
		}
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	base, err := filepath.EvalSymlinks(vp.HostPath)
	if err != nil {
		return "", err
	}
	if real != base && !strings.HasPrefix(real, base+string(filepath.Separator)) {
		return "", errors.New("leads outside the volume")
	}
	return real, nil
}

func propagation(p *corev1.MountPropagationMode) runtimeapi.MountPropagation {
	if p == nil {
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
	}
	switch *p {
	case corev1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	case corev1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	}
	return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
}

// teardown unmounts and removes the pod's directory (volumes, logs, etc-hosts).
func (m *volumeManager) teardown(uid types.UID) error {
	m.mu.Lock()
	delete(m.pods, uid)
	m.mu.Unlock()
	m.tokens.forgetPod(uid)
	dir := m.a.podDir(string(uid))
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := runtime.UnmountUnder(dir); err != nil {
		return err
	}
	// Never remove through a mount that is still there.
	if hasMountUnder(dir) {
		return fmt.Errorf("%s still has mounts", dir)
	}
	return os.RemoveAll(dir)
}

// hasMountUnder tells whether a mount point is at or below dir.
func hasMountUnder(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == real || strings.HasPrefix(f[4], real+"/")) {
			return true
		}
	}
	return false
}
