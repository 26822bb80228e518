package nodelifecycle

import (
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// conditionTaints maps a node condition status to the NoSchedule taint it calls for.
var conditionTaints = map[corev1.NodeConditionType]map[corev1.ConditionStatus]string{
	corev1.NodeReady: {
		corev1.ConditionFalse:   corev1.TaintNodeNotReady,
		corev1.ConditionUnknown: corev1.TaintNodeUnreachable,
	},
	corev1.NodeMemoryPressure:     {corev1.ConditionTrue: corev1.TaintNodeMemoryPressure},
	corev1.NodeDiskPressure:       {corev1.ConditionTrue: corev1.TaintNodeDiskPressure},
	corev1.NodePIDPressure:        {corev1.ConditionTrue: corev1.TaintNodePIDPressure},
	corev1.NodeNetworkUnavailable: {corev1.ConditionTrue: corev1.TaintNodeNetworkUnavailable},
}

// managedNoSchedule are the NoSchedule taint keys this controller owns.
var managedNoSchedule = map[string]bool{
	corev1.TaintNodeNotReady:           true,
	corev1.TaintNodeUnreachable:        true,
	corev1.TaintNodeMemoryPressure:     true,
	corev1.TaintNodeDiskPressure:       true,
	corev1.TaintNodePIDPressure:        true,
	corev1.TaintNodeNetworkUnavailable: true,
	corev1.TaintNodeUnschedulable:      true,
}

// managedNoExecute are the NoExecute taint keys this controller owns.
var managedNoExecute = map[string]bool{
	corev1.TaintNodeNotReady:    true,
	corev1.TaintNodeUnreachable: true,
}

func condition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// readyStatus is the node's Ready status; a node that never posted one is Unknown.
func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	if c := condition(n, corev1.NodeReady); c != nil {
		return c.Status
	}
	return corev1.ConditionUnknown
}

// noScheduleTaints are the NoSchedule taint keys a node's conditions and spec call for.
func noScheduleTaints(n *corev1.Node) map[string]bool {
	out := map[string]bool{}
	for _, c := range n.Status.Conditions {
		if key, ok := conditionTaints[c.Type][c.Status]; ok {
			out[key] = true
		}
	}
	if n.Spec.Unschedulable {
		out[corev1.TaintNodeUnschedulable] = true
	}
	return out
}

// noExecuteTaint is the NoExecute taint key a node's readiness calls for ("" for none).
func noExecuteTaint(n *corev1.Node) string {
	c := condition(n, corev1.NodeReady)
	if c == nil {
		return ""
	}
	switch c.Status {
	case corev1.ConditionFalse:
		return corev1.TaintNodeNotReady
	case corev1.ConditionUnknown:
		return corev1.TaintNodeUnreachable
	}
	return ""
}

// currentNoExecute is the managed NoExecute taint the node carries ("" for none).
func currentNoExecute(n *corev1.Node) string {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute && managedNoExecute[t.Key] {
			return t.Key
		}
	}
	return ""
}

// desiredTaints returns the node's taints with the managed ones replaced: NoSchedule taints
// for wantNoSchedule and at most one managed NoExecute taint, wantNoExecute. Taints that stay
// keep their timeAdded; new NoExecute taints get now. Unmanaged taints are untouched.
func desiredTaints(cur []corev1.Taint, wantNoSchedule map[string]bool, wantNoExecute string, now time.Time) []corev1.Taint {
	out := make([]corev1.Taint, 0, len(cur)+2)
	haveNS := map[string]bool{}
	haveNE := false
	for _, t := range cur {
		switch {
		case t.Effect == corev1.TaintEffectNoSchedule && managedNoSchedule[t.Key]:
			if !wantNoSchedule[t.Key] || haveNS[t.Key] {
				continue
			}
			haveNS[t.Key] = true
		case t.Effect == corev1.TaintEffectNoExecute && managedNoExecute[t.Key]:
			if t.Key != wantNoExecute || haveNE {
				continue
			}
			haveNE = true
		}
		out = append(out, t)
	}
	for _, k := range sortedKeys(wantNoSchedule) {
		if !haveNS[k] {
			out = append(out, corev1.Taint{Key: k, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if wantNoExecute != "" && !haveNE {
		at := metav1.NewTime(now)
		out = append(out, corev1.Taint{Key: wantNoExecute, Effect: corev1.TaintEffectNoExecute, TimeAdded: &at})
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func taintsEqual(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Value != b[i].Value || a[i].Effect != b[i].Effect {
			return false
		}
		ta, tb := a[i].TimeAdded, b[i].TimeAdded
		if (ta == nil) != (tb == nil) || (ta != nil && !ta.Equal(tb)) {
			return false
		}
	}
	return true
}

// tolerates reports whether a toleration tolerates a taint.
func tolerates(tol *corev1.Toleration, t *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case "", corev1.TolerationOpEqual:
		return tol.Value == t.Value
	case corev1.TolerationOpGt, corev1.TolerationOpLt:
		tv, err1 := strconv.ParseInt(tol.Value, 10, 64)
		nv, err2 := strconv.ParseInt(t.Value, 10, 64)
		if tol.Key == "" || err1 != nil || err2 != nil {
			return false
		}
		if tol.Operator == corev1.TolerationOpGt {
			return nv > tv
		}
		return nv < tv
	}
	return false
}

// evictionTime decides when a pod must leave a node with the given NoExecute taints. A taint
// the pod does not tolerate evicts it at once; one tolerated for tolerationSeconds evicts it
// that long after the taint was added (noticed stands in for a missing timeAdded). Each
// taint counts the first toleration that matches it, as Kubernetes does. ok is false when
// the pod may stay for good.
func evictionTime(tolerations []corev1.Toleration, taints []corev1.Taint, noticed time.Time) (at time.Time, ok bool) {
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		var match *corev1.Toleration
		for j := range tolerations {
			if tolerates(&tolerations[j], t) {
				match = &tolerations[j]
				break
			}
		}
		if match == nil {
			return time.Time{}, true
		}
		if match.TolerationSeconds == nil {
			continue
		}
		secs := *match.TolerationSeconds
		if secs < 0 {
			secs = 0
		}
		added := noticed
		if t.TimeAdded != nil && !t.TimeAdded.IsZero() {
			added = t.TimeAdded.Time
		}
		when := added.Add(time.Duration(secs) * time.Second)
		if !ok || when.Before(at) {
			at, ok = when, true
		}
	}
	return at, ok
}

func noExecuteTaints(n *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

// unknownConditions marks the kubelet's conditions Unknown, as when it stops posting status.
// Conditions it never posted are added. It reports whether anything changed.
func unknownConditions(n *corev1.Node, now metav1.Time) ([]corev1.NodeCondition, bool) {
	conds := append([]corev1.NodeCondition(nil), n.Status.Conditions...)
	changed := false
	for _, t := range []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		found := false
		for i := range conds {
			c := &conds[i]
			if c.Type != t {
				continue
			}
			found = true
			if c.Status != corev1.ConditionUnknown {
				c.Status = corev1.ConditionUnknown
				c.Reason = "NodeStatusUnknown"
				c.Message = "Kubelet stopped posting node status."
				c.LastTransitionTime = now
				changed = true
			}
		}
		if !found {
			conds = append(conds, corev1.NodeCondition{Type: t, Status: corev1.ConditionUnknown,
				Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.",
				LastHeartbeatTime: n.CreationTimestamp, LastTransitionTime: now})
			changed = true
		}
	}
	return conds, changed
}
