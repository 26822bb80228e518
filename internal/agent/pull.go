package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent/runtime"
)

// localRegistry names images that are built and imported locally (internal/agent/images),
// never pulled: there is no such registry to ask.
const localRegistry = "skiff.local/"

// pullTimeout bounds one image pull.
const pullTimeout = 10 * time.Minute

// pullPolicy is the container's pull policy, defaulted as the API does: Always for
// :latest or untagged images, IfNotPresent otherwise.
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	ref := c.Image
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return corev1.PullIfNotPresent
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	if !strings.Contains(last, ":") || strings.HasSuffix(last, ":latest") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// ensureImage makes the container's image present according to its pull policy and
// returns it; on failure the waiting reason is ErrImagePull, ImagePullBackOff or
// ErrImageNeverPull.
func (a *Agent) ensureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (*runtimeapi.Image, *waitingReason, error) {
	policy := pullPolicy(c)
	img, err := a.imageStatus(ctx, c.Image)
	if err != nil {
		return nil, &waitingReason{Reason: "ErrImagePull", Message: grpcMessage(err)}, err
	}
	switch {
	case policy == corev1.PullNever && img == nil:
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
		return nil, &waitingReason{Reason: "ErrImageNeverPull", Message: msg}, fmt.Errorf("%s", msg)
	case img != nil && (policy != corev1.PullAlways || isLocalImage(c.Image)):
		a.containerEvent(pod, c.Name, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
		return img, nil, nil
	}

	key := "image/" + c.Image
	if wait, ok := a.pullBackoff.inBackoffSinceLast(key); ok {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		a.containerEvent(pod, c.Name, corev1.EventTypeNormal, "BackOff", "%s", msg)
		return nil, &waitingReason{Reason: "ImagePullBackOff", Message: msg}, fmt.Errorf("image pull back-off (%s left)", wait.Round(time.Second))
	}
	if img == nil && isLocalImage(c.Image) {
		a.pullBackoff.Next(key)
		msg := fmt.Sprintf("image %q is not present: %s images are imported from <data-dir>/agent/images, not pulled", c.Image, strings.TrimSuffix(localRegistry, "/"))
		a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %s", c.Image, msg)
		a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		return nil, &waitingReason{Reason: "ErrImagePull", Message: msg}, fmt.Errorf("%s", msg)
	}
	a.containerEvent(pod, c.Name, corev1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	_, err = a.img.PullImage(pctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}})
	cancel()
	if err != nil {
		a.pullBackoff.Next(key)
		if img != nil {
			// Air-gapped nodes: Always cannot reach the registry, but the imported image
			// is there.
			a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "Failed", "Failed to pull image %q, using the image present on the node: %s", c.Image, grpcMessage(err))
			return img, nil, nil
		}
		msg := grpcMessage(err)
		a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %s", c.Image, msg)
		a.containerEvent(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		return nil, &waitingReason{Reason: "ErrImagePull", Message: msg}, err
	}
	a.pullBackoff.Forget(key)
	img, err = a.imageStatus(ctx, c.Image)
	if err == nil && img == nil {
		err = fmt.Errorf("image %s not present after pull", c.Image)
	}
	if err != nil {
		return nil, &waitingReason{Reason: "ErrImagePull", Message: grpcMessage(err)}, err
	}
	d := time.Since(start).Round(time.Millisecond)
	a.containerEvent(pod, c.Name, corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s (%s including waiting). Image size: %d bytes.", c.Image, d, d, img.Size)
	return img, nil, nil
}

func isLocalImage(ref string) bool { return strings.HasPrefix(ref, localRegistry) }

func (a *Agent) imageStatus(ctx context.Context, ref string) (*runtimeapi.Image, error) {
	resp, err := a.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		if runtime.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return resp.Image, nil
}

// grpcMessage is an error's text without gRPC's "rpc error: code = ... desc = " prefix.
func grpcMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

func isNotFound(err error) bool { return err != nil && runtime.IsNotFound(err) }
