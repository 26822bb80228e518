package cache

import v1 "k8s.io/api/core/v1"

// nodeTree orders node names so that consecutive nodes come from different zones: the
// scheduler evaluates nodes from a rotating start and stops after finding enough feasible
// ones, and interleaving zones keeps that sample spread across zones.
type nodeTree struct {
	zones    map[string][]string
	zoneList []string
	numNodes int
}

func newNodeTree() *nodeTree { return &nodeTree{zones: map[string][]string{}} }

// zoneKey is region and zone, as Kubernetes groups nodes.
func zoneKey(n *v1.Node) string {
	region, zone := n.Labels[v1.LabelTopologyRegion], n.Labels[v1.LabelTopologyZone]
	if region == "" && zone == "" {
		return ""
	}
	return region + ":\x00:" + zone
}

func (t *nodeTree) add(n *v1.Node) {
	z := zoneKey(n)
	names, ok := t.zones[z]
	if !ok {
		t.zoneList = append(t.zoneList, z)
	}
	for _, name := range names {
		if name == n.Name {
			return
		}
	}
	t.zones[z] = append(names, n.Name)
	t.numNodes++
}

func (t *nodeTree) remove(n *v1.Node) {
	z := zoneKey(n)
	names := t.zones[z]
	for i, name := range names {
		if name != n.Name {
			continue
		}
		t.zones[z] = append(names[:i:i], names[i+1:]...)
		t.numNodes--
		if len(t.zones[z]) == 0 {
			delete(t.zones, z)
			for j, zz := range t.zoneList {
				if zz == z {
					t.zoneList = append(t.zoneList[:j:j], t.zoneList[j+1:]...)
					break
				}
			}
		}
		return
	}
}

// update reports whether the node moved zones.
func (t *nodeTree) update(old, n *v1.Node) bool {
	if old != nil && zoneKey(old) == zoneKey(n) {
		return false
	}
	if old != nil {
		t.remove(old)
	}
	t.add(n)
	return true
}

// list interleaves the zones: first node of each zone, then second, ...
func (t *nodeTree) list() []string {
	out := make([]string, 0, t.numNodes)
	for i := 0; len(out) < t.numNodes; i++ {
		for _, z := range t.zoneList {
			if names := t.zones[z]; i < len(names) {
				out = append(out, names[i])
			}
		}
	}
	return out
}
