package daemonset

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/plugins/helper"
)

// daemonTolerations are the tolerations every daemon pod gets, so that node conditions that
// evict or repel ordinary pods do not take a node's daemons away.
func daemonTolerations(spec *corev1.PodSpec) []corev1.Toleration {
	tols := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	if spec.HostNetwork {
		tols = append(tols, corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return tols
}

// addTolerations adds the daemon tolerations the spec does not already have (by key, operator
// and effect).
func addTolerations(spec *corev1.PodSpec) {
	for _, t := range daemonTolerations(spec) {
		found := false
		for _, have := range spec.Tolerations {
			if have.Key == t.Key && have.Effect == t.Effect && have.Operator == t.Operator {
				found = true
				break
			}
		}
		if !found {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
}

// placement says whether a daemon pod should be placed on a node and whether one already
// there may keep running.
type placement struct {
	shouldRun, shouldContinue bool
}

// nodeShouldRun decides for one node from the pod the DaemonSet would create (its
// nodeSelector, required node affinity and tolerations including the daemon ones).
func nodeShouldRun(node *corev1.Node, ds *appsv1.DaemonSet) placement {
	pod := &corev1.Pod{Spec: *ds.Spec.Template.Spec.DeepCopy()}
	pod.Spec.NodeName = node.Name
	addTolerations(&pod.Spec)
	aff := helper.GetRequiredNodeAffinity(pod)
	if !aff.Match(node) {
		return placement{}
	}
	if _, bad := helper.FindMatchingUntoleratedTaint(node.Spec.Taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute
	}); bad {
		return placement{}
	}
	if _, bad := helper.FindMatchingUntoleratedTaint(node.Spec.Taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule
	}); bad {
		return placement{shouldContinue: true}
	}
	return placement{shouldRun: true, shouldContinue: true}
}

// pinToNode sets the required node affinity that binds a daemon pod to node: the required
// terms are replaced with one matching the node's name, which the scheduler honours.
func pinToNode(spec *corev1.PodSpec, node string) {
	term := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{
		Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
	}}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{term},
	}
}

// podNode returns the node a daemon pod is on or pinned to.
func podNode(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	if names := helper.MatchNodeNames(p); len(names) == 1 {
		return names[0]
	}
	return ""
}

// templateGeneration is the DaemonSet's deprecated template generation annotation.
func templateGeneration(ds *appsv1.DaemonSet) (int64, bool) {
	n, err := strconv.ParseInt(ds.Annotations[appsv1.DeprecatedTemplateGeneration], 10, 64)
	return n, err == nil
}

// isUpdated reports whether a pod was created from the DaemonSet's current template.
func isUpdated(p *corev1.Pod, hash string, gen int64, hasGen bool) bool {
	if hash != "" && p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
		return true
	}
	return hasGen && p.Labels[templateGenerationLabel] == strconv.FormatInt(gen, 10)
}

// templateGenerationLabel carries the template generation a daemon pod was created from.
const templateGenerationLabel = "pod-template-generation"
