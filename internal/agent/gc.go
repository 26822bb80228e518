package agent

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent/images"
)

// Garbage collection settings.
const (
	gcPeriod = time.Minute
	// Image GC starts above the high threshold of the image filesystem's usage and stops
	// below the low one (the kubelet's defaults).
	imageGCHighPercent = 85
	imageGCLowPercent  = 80
	// deadContainersPerName is how many exited instances of a container are kept: the
	// newest, for lastState and logs of the previous run.
	deadContainersPerName = 1
)

func (a *Agent) gcLoop(ctx context.Context) {
	t := time.NewTicker(gcPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.gcContainers(ctx); err != nil && ctx.Err() == nil {
			a.log.Debug("container gc", "err", err)
		}
		if err := a.gcImages(ctx); err != nil && ctx.Err() == nil {
			a.log.Debug("image gc", "err", err)
		}
		a.crashBackoff.GC()
		a.pullBackoff.GC()
	}
}

// gcContainers removes exited containers beyond the newest per pod and name, and
// sandboxes that are neither ready nor the newest of their pod. Pods that are gone are
// their workers' business.
func (a *Agent) gcContainers(ctx context.Context) error {
	sel := map[string]string{labelNode: a.cfg.NodeName}
	cs, err := a.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		return err
	}
	type key struct {
		uid  types.UID
		name string
	}
	byName := map[key][]*runtimeapi.Container{}
	busySandbox := map[string]bool{}
	for _, c := range cs.Containers {
		k := key{types.UID(c.Labels[labelPodUID]), c.Labels[labelContainerName]}
		byName[k] = append(byName[k], c)
		if c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			busySandbox[c.PodSandboxId] = true
		}
	}
	for _, list := range byName {
		sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt > list[j].CreatedAt })
		dead := 0
		for i, c := range list {
			if c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
				continue
			}
			dead++
			// The newest instance always stays (its status is the container's status).
			if i == 0 || dead <= deadContainersPerName {
				continue
			}
			// The runtime leaves the log file; it goes with the container.
			var logPath string
			if st, err := a.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id}); err == nil {
				logPath = st.Status.GetLogPath()
			}
			if _, err := a.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil && !isNotFound(err) {
				return err
			}
			if logPath != "" && strings.HasPrefix(logPath, a.cfg.DataDir+"/") {
				_ = os.Remove(logPath)
			}
			a.states.forget(c.Id)
		}
	}
	sbs, err := a.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return err
	}
	newest := map[string]*runtimeapi.PodSandbox{}
	for _, sb := range sbs.Items {
		uid := sb.Labels[labelPodUID]
		if n := newest[uid]; n == nil || sb.CreatedAt > n.CreatedAt {
			newest[uid] = sb
		}
	}
	for _, sb := range sbs.Items {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY || newest[sb.Labels[labelPodUID]] == sb || busySandbox[sb.Id] {
			continue
		}
		// Removing an old sandbox removes its exited containers too; keep it while one of
		// them is the newest of its name.
		keep := false
		for _, list := range byName {
			if len(list) > 0 && list[0].PodSandboxId == sb.Id {
				keep = true
			}
		}
		if keep {
			continue
		}
		if err := a.removeSandbox(ctx, sb.Id); err != nil {
			return err
		}
		for _, c := range cs.Containers {
			if c.PodSandboxId == sb.Id {
				a.states.forget(c.Id)
			}
		}
	}
	return nil
}

// gcImages removes images no container uses, largest first, while the image
// filesystem is fuller than the high threshold. Images the agent imports (skiff.local)
// and the sandbox image stay: they cannot be pulled back.
func (a *Agent) gcImages(ctx context.Context) error {
	fs, err := a.img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		return err
	}
	if len(fs.ImageFilesystems) == 0 || fs.ImageFilesystems[0].FsId == nil {
		return nil
	}
	mount := fs.ImageFilesystems[0].FsId.Mountpoint
	usage := func() int {
		var st syscall.Statfs_t
		if syscall.Statfs(mount, &st) != nil || st.Blocks == 0 {
			return 0
		}
		return int(100 - st.Bavail*100/st.Blocks)
	}
	if usage() < imageGCHighPercent {
		return nil
	}
	cs, err := a.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	for _, c := range cs.Containers {
		inUse[c.ImageRef] = true
		if c.Image != nil {
			inUse[c.Image.Image] = true
		}
	}
	list, err := a.img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return err
	}
	imgs := list.Images
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Size > imgs[j].Size })
	for _, img := range imgs {
		if usage() < imageGCLowPercent {
			break
		}
		if img.Pinned || inUse[img.Id] || protectedImage(img) {
			continue
		}
		a.log.Info("removing unused image", "image", img.Id, "tags", img.RepoTags, "size", img.Size)
		if _, err := a.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: img.Id}}); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

func protectedImage(img *runtimeapi.Image) bool {
	for _, t := range img.RepoTags {
		if strings.HasPrefix(t, localRegistry) || t == images.Pause {
			return true
		}
	}
	return false
}

// removePodCgroups removes the (empty) cgroup directories of a pod from every cgroup
// hierarchy; runc created them from the sandbox's cgroup parent and leaves them behind.
func removePodCgroups(uid types.UID) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		for _, qos := range []string{"", "burstable", "besteffort"} {
			dir := filepath.Join(root, "kubepods", qos, "pod"+string(uid))
			if _, err := os.Stat(dir); err != nil {
				continue
			}
			// Container cgroups below go first (rmdir only takes empty cgroups).
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.IsDir() {
					_ = syscall.Rmdir(filepath.Join(dir, e.Name()))
				}
			}
			_ = syscall.Rmdir(dir)
		}
	}
}
