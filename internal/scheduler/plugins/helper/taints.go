package helper

import (
	"strconv"

	v1 "k8s.io/api/core/v1"
)

// ToleratesTaint reports whether a toleration matches a taint: an empty effect matches
// every effect, an empty key (with Exists) every key; Equal compares values, Exists
// ignores them, Lt/Gt compare them as integers (taint value below/above the toleration's).
func ToleratesTaint(t *v1.Toleration, taint *v1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", v1.TolerationOpEqual:
		return t.Value == taint.Value
	case v1.TolerationOpExists:
		return true
	case v1.TolerationOpLt, v1.TolerationOpGt:
		tv, err1 := strconv.ParseInt(t.Value, 10, 64)
		nv, err2 := strconv.ParseInt(taint.Value, 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if t.Operator == v1.TolerationOpLt {
			return nv < tv
		}
		return nv > tv
	}
	return false
}

// TolerationsTolerateTaint reports whether any toleration matches the taint.
func TolerationsTolerateTaint(tols []v1.Toleration, taint *v1.Taint) bool {
	for i := range tols {
		if ToleratesTaint(&tols[i], taint) {
			return true
		}
	}
	return false
}

// DoNotScheduleTaint selects the taints that keep pods off a node: NoSchedule and
// NoExecute.
func DoNotScheduleTaint(t *v1.Taint) bool {
	return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
}

// FindMatchingUntoleratedTaint returns the first taint selected by filter that no
// toleration matches.
func FindMatchingUntoleratedTaint(taints []v1.Taint, tols []v1.Toleration, filter func(*v1.Taint) bool) (v1.Taint, bool) {
	for i := range taints {
		if filter != nil && !filter(&taints[i]) {
			continue
		}
		if !TolerationsTolerateTaint(tols, &taints[i]) {
			return taints[i], true
		}
	}
	return v1.Taint{}, false
}
