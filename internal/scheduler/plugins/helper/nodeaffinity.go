package helper

import (
	"slices"
	"strconv"

	v1 "k8s.io/api/core/v1"
)

type requirement struct {
	key    string
	op     v1.NodeSelectorOperator
	values []string
	num    int64
}

func (r *requirement) matchValue(v string, has bool) bool {
	switch r.op {
	case v1.NodeSelectorOpIn:
		return has && slices.Contains(r.values, v)
	case v1.NodeSelectorOpNotIn:
		return !has || !slices.Contains(r.values, v)
	case v1.NodeSelectorOpExists:
		return has
	case v1.NodeSelectorOpDoesNotExist:
		return !has
	case v1.NodeSelectorOpGt, v1.NodeSelectorOpLt:
		if !has {
			return false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false
		}
		if r.op == v1.NodeSelectorOpGt {
			return n > r.num
		}
		return n < r.num
	}
	return false
}

func parseRequirement(e v1.NodeSelectorRequirement, field bool) (requirement, bool) {
	r := requirement{key: e.Key, op: e.Operator, values: e.Values}
	if field {
		// Only metadata.name with In/NotIn and one value is a valid field requirement.
		return r, e.Key == "metadata.name" && (e.Operator == v1.NodeSelectorOpIn || e.Operator == v1.NodeSelectorOpNotIn) && len(e.Values) == 1
	}
	switch e.Operator {
	case v1.NodeSelectorOpIn, v1.NodeSelectorOpNotIn:
		return r, len(e.Values) > 0
	case v1.NodeSelectorOpExists, v1.NodeSelectorOpDoesNotExist:
		return r, len(e.Values) == 0
	case v1.NodeSelectorOpGt, v1.NodeSelectorOpLt:
		if len(e.Values) != 1 {
			return r, false
		}
		n, err := strconv.ParseInt(e.Values[0], 10, 64)
		r.num = n
		return r, err == nil
	}
	return r, false
}

// NodeSelectorTerm is a parsed v1.NodeSelectorTerm. A term with no requirement, or with
// an invalid one, matches no node.
type NodeSelectorTerm struct {
	exprs  []requirement
	fields []requirement
	valid  bool
}

// ParseNodeSelectorTerm parses a term.
func ParseNodeSelectorTerm(t *v1.NodeSelectorTerm) NodeSelectorTerm {
	out := NodeSelectorTerm{valid: len(t.MatchExpressions)+len(t.MatchFields) > 0}
	for _, e := range t.MatchExpressions {
		r, ok := parseRequirement(e, false)
		out.valid = out.valid && ok
		out.exprs = append(out.exprs, r)
	}
	for _, e := range t.MatchFields {
		r, ok := parseRequirement(e, true)
		out.valid = out.valid && ok
		out.fields = append(out.fields, r)
	}
	return out
}

// Match reports whether the node satisfies every requirement of the term.
func (t *NodeSelectorTerm) Match(node *v1.Node) bool {
	if !t.valid {
		return false
	}
	for i := range t.exprs {
		v, has := node.Labels[t.exprs[i].key]
		if !t.exprs[i].matchValue(v, has) {
			return false
		}
	}
	for i := range t.fields {
		if !t.fields[i].matchValue(node.Name, true) {
			return false
		}
	}
	return true
}

// RequiredNodeAffinity is a pod's nodeSelector plus its required node affinity terms.
type RequiredNodeAffinity struct {
	nodeSelector map[string]string
	// terms is nil when the pod has no required node affinity.
	terms       []NodeSelectorTerm
	hasAffinity bool
}

// GetRequiredNodeAffinity parses a pod's node constraints.
func GetRequiredNodeAffinity(pod *v1.Pod) RequiredNodeAffinity {
	r := RequiredNodeAffinity{nodeSelector: pod.Spec.NodeSelector}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		r.hasAffinity = true
		for i := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			r.terms = append(r.terms, ParseNodeSelectorTerm(&a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[i]))
		}
	}
	return r
}

// Match reports whether the node has every nodeSelector label and satisfies at least
// one required term (terms are ORed; an empty term list matches nothing).
func (r *RequiredNodeAffinity) Match(node *v1.Node) bool {
	for k, v := range r.nodeSelector {
		if got, ok := node.Labels[k]; !ok || got != v {
			return false
		}
	}
	if !r.hasAffinity {
		return true
	}
	for i := range r.terms {
		if r.terms[i].Match(node) {
			return true
		}
	}
	return false
}

// MatchNodeNames returns the node names the required terms pin the pod to through
// matchFields metadata.name In, or nil when every term can match any name. Kubernetes
// uses this to filter only those nodes (DaemonSet pods).
func MatchNodeNames(pod *v1.Pod) []string {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	var names []string
	for _, t := range terms {
		found := false
		for _, f := range t.MatchFields {
			if f.Key == "metadata.name" && f.Operator == v1.NodeSelectorOpIn && len(f.Values) == 1 {
				names = append(names, f.Values[0])
				found = true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return names
}
