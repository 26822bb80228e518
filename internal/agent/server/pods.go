package server

import (
	"context"
	"os"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// podsFromRuntime describes the pods the runtime has sandboxes for: their identity, their
// containers' names and images, and whether they run.
func podsFromRuntime(ctx context.Context, rt Runtime) ([]corev1.Pod, error) {
	sbs, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, err
	}
	cs, err := rt.ListContainers(ctx, nil)
	if err != nil {
		return nil, err
	}
	bySandbox := map[string][]*runtimeapi.Container{}
	for _, c := range cs {
		bySandbox[c.PodSandboxId] = append(bySandbox[c.PodSandboxId], c)
	}
	var out []corev1.Pod
	for _, sb := range sbs {
		if sb.Metadata == nil {
			continue
		}
		p := corev1.Pod{
			TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: sb.Metadata.Name, Namespace: sb.Metadata.Namespace,
				UID: types.UID(sb.Metadata.Uid), CreationTimestamp: metav1.NewTime(time.Unix(0, sb.CreatedAt))},
			Status: corev1.PodStatus{Phase: corev1.PodPending},
		}
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			p.Status.Phase = corev1.PodRunning
		}
		ctrs := bySandbox[sb.Id]
		sortInstances(ctrs)
		seen := map[string]bool{}
		for _, c := range ctrs {
			name := c.Labels[LabelContainerName]
			if name == "" && c.Metadata != nil {
				name = c.Metadata.Name
			}
			if seen[name] {
				continue // an earlier instance
			}
			seen[name] = true
			image := ""
			if c.Image != nil {
				image = c.Image.Image
			}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: image})
			st := corev1.ContainerStatus{Name: name, Image: image, ImageID: c.ImageRef, ContainerID: c.Id, RestartCount: int32(attempt(c))}
			switch c.State {
			case runtimeapi.ContainerState_CONTAINER_RUNNING:
				st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(0, c.CreatedAt))}
				st.Ready, st.Started = true, ptrTo(true)
			case runtimeapi.ContainerState_CONTAINER_EXITED:
				st.State.Terminated = &corev1.ContainerStateTerminated{}
			default:
				st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			}
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, st)
		}
		sort.Slice(p.Spec.Containers, func(i, j int) bool { return p.Spec.Containers[i].Name < p.Spec.Containers[j].Name })
		sort.Slice(p.Status.ContainerStatuses, func(i, j int) bool {
			return p.Status.ContainerStatuses[i].Name < p.Status.ContainerStatuses[j].Name
		})
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func ptrTo[T any](v T) *T { return &v }
