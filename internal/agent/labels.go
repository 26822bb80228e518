package agent

import (
	"hash/fnv"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// Labels and annotations on sandboxes and containers. The io.kubernetes.* names are the
// kubelet's: other parts of skiff (logs, exec, stats) and ordinary CRI tools find a pod's
// containers by them.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	// labelNode marks what this agent created, so that the cleanup of orphans never
	// touches containers someone else runs on a shared containerd.
	labelNode = "skiff.sh/node"

	annContainerHash          = "io.kubernetes.container.hash"
	annRestartCount           = "io.kubernetes.container.restartCount"
	annTerminationMessagePath = "io.kubernetes.container.terminationMessagePath"
	annTerminationPolicy      = "io.kubernetes.container.terminationMessagePolicy"
	annPreStopHandler         = "io.kubernetes.container.preStopHandler"
	annPodGracePeriod         = "io.kubernetes.pod.terminationGracePeriod"
	// annImage is the image as the pod spec names it (CRI reports the resolved one).
	annImage = "skiff.sh/image"
	// annTerminationHostPath is where the termination message file lives on the host.
	annTerminationHostPath = "skiff.sh/termination-message-host-path"
	// annContainerKind is "init", "sidecar" or "regular".
	annContainerKind = "skiff.sh/container-kind"
)

// containerHash identifies the part of a container's spec that can change on a running
// pod (the image); a running container with another hash is replaced. Other fields of a
// pod's containers are immutable, so hashing them would only restart containers when the
// API's defaulting changes.
func containerHash(c *corev1.Container) string {
	h := fnv.New64a()
	h.Write([]byte(c.Name))
	h.Write([]byte{0})
	h.Write([]byte(c.Image))
	return strconv.FormatUint(h.Sum64(), 16)
}

// podLabels are the labels of a pod's sandbox: the pod's own plus the reserved ones.
func podLabels(pod *corev1.Pod, node string) map[string]string {
	l := make(map[string]string, len(pod.Labels)+4)
	for k, v := range pod.Labels {
		l[k] = v
	}
	l[labelPodName] = pod.Name
	l[labelPodNamespace] = pod.Namespace
	l[labelPodUID] = string(pod.UID)
	l[labelNode] = node
	return l
}

// containerLabels are the labels of one container.
func containerLabels(pod *corev1.Pod, name, node string) map[string]string {
	return map[string]string{
		labelPodName:       pod.Name,
		labelPodNamespace:  pod.Namespace,
		labelPodUID:        string(pod.UID),
		labelContainerName: name,
		labelNode:          node,
	}
}
