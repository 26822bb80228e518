package cache

import (
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// item links NodeInfos from most to least recently changed, so UpdateSnapshot can stop
// at the first node the snapshot already has.
type item struct {
	info       *framework.NodeInfo
	prev, next *item
}

// Cache is safe for concurrent use: informer handlers write, the scheduling loop reads.
type Cache struct {
	mu sync.RWMutex
	// pods by UID; assumed holds the UIDs of pods placed by the scheduler whose bound
	// version the informer has not delivered yet.
	pods        map[string]*v1.Pod
	assumed     sets.Set[string]
	nodes       map[string]*item
	head        *item
	tree        *nodeTree
	listVersion int64
}

// New returns an empty cache.
func New() *Cache {
	return &Cache{pods: map[string]*v1.Pod{}, assumed: sets.New[string](), nodes: map[string]*item{}, tree: newNodeTree()}
}

func (c *Cache) moveToHead(it *item) {
	if c.head == it {
		return
	}
	if it.prev != nil {
		it.prev.next = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	}
	it.prev, it.next = nil, c.head
	if c.head != nil {
		c.head.prev = it
	}
	c.head = it
}

func (c *Cache) unlink(name string, it *item) {
	if it.prev != nil {
		it.prev.next = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	}
	if c.head == it {
		c.head = it.next
	}
	delete(c.nodes, name)
}

func (c *Cache) itemFor(name string) *item {
	it, ok := c.nodes[name]
	if !ok {
		it = &item{info: framework.NewNodeInfo()}
		c.nodes[name] = it
	}
	return it
}

func (c *Cache) addPodLocked(pod *v1.Pod) {
	it := c.itemFor(pod.Spec.NodeName)
	it.info.AddPodInfo(framework.NewPodInfo(pod))
	c.moveToHead(it)
	c.pods[string(pod.UID)] = pod
}

func (c *Cache) removePodLocked(pod *v1.Pod) error {
	delete(c.pods, string(pod.UID))
	c.assumed.Delete(string(pod.UID))
	it, ok := c.nodes[pod.Spec.NodeName]
	if !ok {
		return fmt.Errorf("node %q of pod %s not in cache", pod.Spec.NodeName, framework.PodKey(pod))
	}
	if err := it.info.RemovePod(pod); err != nil {
		return err
	}
	if len(it.info.Pods) == 0 && it.info.Node() == nil {
		c.unlink(pod.Spec.NodeName, it)
		return nil
	}
	c.moveToHead(it)
	return nil
}

// AssumePod places a pod (with spec.nodeName set) on its node before binding, so the
// next decision already sees it.
func (c *Cache) AssumePod(pod *v1.Pod) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[string(pod.UID)]; ok {
		return fmt.Errorf("pod %s (%s) is in the cache, so can't be assumed", framework.PodKey(pod), pod.UID)
	}
	c.addPodLocked(pod)
	c.assumed.Insert(string(pod.UID))
	return nil
}

// ForgetPod undoes AssumePod after a failed binding.
func (c *Cache) ForgetPod(pod *v1.Pod) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := string(pod.UID)
	cur, ok := c.pods[uid]
	if !ok || !c.assumed.Has(uid) {
		return nil
	}
	return c.removePodLocked(cur)
}

// IsAssumedPod reports whether the pod is assumed and not yet seen bound.
func (c *Cache) IsAssumedPod(pod *v1.Pod) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.assumed.Has(string(pod.UID))
}

// AddPod records a bound pod; it confirms an assumed one (moving it if it was bound
// elsewhere than assumed).
func (c *Cache) AddPod(pod *v1.Pod) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.pods[string(pod.UID)]; ok {
		if err := c.removePodLocked(cur); err != nil {
			return err
		}
	}
	c.addPodLocked(pod)
	return nil
}

// UpdatePod replaces a bound pod (labels, requests or ports may have changed).
func (c *Cache) UpdatePod(oldPod, newPod *v1.Pod) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.pods[string(newPod.UID)]; ok {
		if err := c.removePodLocked(cur); err != nil {
			return err
		}
	} else if oldPod != nil && oldPod.UID != newPod.UID {
		if cur, ok := c.pods[string(oldPod.UID)]; ok {
			if err := c.removePodLocked(cur); err != nil {
				return err
			}
		}
	}
	c.addPodLocked(newPod)
	return nil
}

// RemovePod forgets a pod (deleted, finished, or assumed and then deleted).
func (c *Cache) RemovePod(pod *v1.Pod) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.pods[string(pod.UID)]
	if !ok {
		return nil
	}
	return c.removePodLocked(cur)
}

// AddNode records a node.
func (c *Cache) AddNode(node *v1.Node) {
	c.UpdateNode(nil, node)
}

// UpdateNode records a node's new version.
func (c *Cache) UpdateNode(oldNode, node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.itemFor(node.Name)
	prev := it.info.Node()
	if prev == nil {
		c.tree.add(node)
		c.listVersion++
	} else if c.tree.update(prev, node) {
		c.listVersion++
	}
	it.info.SetNode(node)
	c.moveToHead(it)
}

// RemoveNode forgets a node; its pods stay until they are deleted.
func (c *Cache) RemoveNode(node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.nodes[node.Name]
	if !ok || it.info.Node() == nil {
		return
	}
	c.tree.remove(it.info.Node())
	c.listVersion++
	it.info.RemoveNode()
	if len(it.info.Pods) == 0 {
		c.unlink(node.Name, it)
		return
	}
	c.moveToHead(it)
}

// UpdateSnapshot brings s up to date, copying only the nodes changed since s was last
// updated; the node order is rebuilt only when nodes come, go or change zones.
func (c *Cache) UpdateSnapshot(s *Snapshot) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	rebuildAffinity := false
	for it := c.head; it != nil; it = it.next {
		if it.info.Generation <= s.generation {
			break
		}
		node := it.info.Node()
		if node == nil {
			continue
		}
		clone := it.info.Snapshot()
		existing, ok := s.nodeInfoMap[node.Name]
		if !ok {
			s.nodeInfoMap[node.Name] = clone
			rebuildAffinity = true
			continue
		}
		if (len(existing.PodsWithAffinity) > 0) != (len(clone.PodsWithAffinity) > 0) ||
			(len(existing.PodsWithRequiredAntiAffinity) > 0) != (len(clone.PodsWithRequiredAntiAffinity) > 0) {
			rebuildAffinity = true
		}
		*existing = *clone
	}
	if c.head != nil {
		s.generation = c.head.info.Generation
	}
	if s.listVersion != c.listVersion {
		names := c.tree.list()
		if len(s.nodeInfoMap) != len(names) {
			keep := sets.New(names...)
			for name := range s.nodeInfoMap {
				if !keep.Has(name) {
					delete(s.nodeInfoMap, name)
				}
			}
		}
		s.nodeInfoList = s.nodeInfoList[:0]
		for _, name := range names {
			ni, ok := s.nodeInfoMap[name]
			if !ok {
				// Unreachable while generations are monotonic; copy it to stay correct.
				ni = c.nodes[name].info.Snapshot()
				s.nodeInfoMap[name] = ni
			}
			s.nodeInfoList = append(s.nodeInfoList, ni)
		}
		s.listVersion = c.listVersion
		rebuildAffinity = true
	}
	if rebuildAffinity {
		s.rebuildAffinityLists()
	}
}

// NodeInfo returns a copy of a node's info (tests, debugging).
func (c *Cache) NodeInfo(name string) *framework.NodeInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if it, ok := c.nodes[name]; ok {
		return it.info.Snapshot()
	}
	return nil
}

// Counts returns the numbers of nodes, pods and assumed pods.
func (c *Cache) Counts() (nodes, pods, assumed int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tree.numNodes, len(c.pods), c.assumed.Len()
}
