package simnode

import (
	"fmt"
	"math/bits"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// Simulated addresses come from fixed private ranges: node i has InternalIP nodeBase+i+1 and
// the i-th podCIDR of podBase. Neither overlaps the usual service range (10.96.0.0/12).
var (
	nodeBase = netip.MustParsePrefix("10.64.0.0/11")
	podBase  = netip.MustParsePrefix("10.128.0.0/9")
)

// hostBitsFor is the size of a node's pod range: at least a /24, more when a node holds more
// pods than a /24 has addresses (network, gateway and broadcast are never handed out).
func hostBitsFor(maxPods int64) int {
	b := bits.Len64(uint64(maxPods + 2))
	if b < 8 {
		b = 8
	}
	return b
}

// maxIndex is how many nodes the ranges can number with pod ranges of 2^hostBits addresses.
func maxIndex(hostBits int) int {
	n := 1 << (32 - podBase.Bits() - hostBits)
	if m := 1<<(32-nodeBase.Bits()) - 2; m < n {
		n = m
	}
	return n
}

func addToAddr(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func addrOffset(base, a netip.Addr) uint32 {
	x, y := base.As4(), a.As4()
	bv := uint32(x[0])<<24 | uint32(x[1])<<16 | uint32(x[2])<<8 | uint32(x[3])
	av := uint32(y[0])<<24 | uint32(y[1])<<16 | uint32(y[2])<<8 | uint32(y[3])
	return av - bv
}

// nodeAddrs returns node i's InternalIP and podCIDR.
func nodeAddrs(i, hostBits int) (netip.Addr, netip.Prefix) {
	ip := addToAddr(nodeBase.Addr(), uint32(i+1))
	cidr := netip.PrefixFrom(addToAddr(podBase.Addr(), uint32(i)<<hostBits), 32-hostBits)
	return ip, cidr
}

// indexOf returns the index a node's podCIDR or InternalIP occupies, if it falls in the
// simulated ranges.
func indexOf(n *corev1.Node, hostBits int) []int {
	var out []int
	for _, c := range n.Spec.PodCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil || !p.Addr().Is4() || !podBase.Contains(p.Addr()) {
			continue
		}
		// Any range overlapping an index slot takes it.
		first := int(addrOffset(podBase.Addr(), p.Masked().Addr()) >> hostBits)
		size := 1
		if hb := 32 - p.Bits(); hb > hostBits {
			size = 1 << (hb - hostBits)
		}
		for k := 0; k < size; k++ {
			out = append(out, first+k)
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil || !ip.Is4() || !nodeBase.Contains(ip) {
			continue
		}
		if off := addrOffset(nodeBase.Addr(), ip); off > 0 {
			out = append(out, int(off)-1)
		}
	}
	return out
}

// indexAllocator hands out node indices not used by any node it has been told about.
type indexAllocator struct {
	mu       sync.Mutex
	hostBits int
	used     map[int]bool
	next     int
}

func newIndexAllocator(hostBits int) *indexAllocator {
	return &indexAllocator{hostBits: hostBits, used: map[int]bool{}}
}

// observe marks the indices a node uses.
func (a *indexAllocator) observe(n *corev1.Node) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, i := range indexOf(n, a.hostBits) {
		a.used[i] = true
	}
}

func (a *indexAllocator) allocate() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	limit := maxIndex(a.hostBits)
	for i := a.next; i < limit; i++ {
		if !a.used[i] {
			a.used[i] = true
			a.next = i + 1
			return i, nil
		}
	}
	return 0, fmt.Errorf("simulated address ranges exhausted (%d nodes)", limit)
}

func (a *indexAllocator) release(i int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.used, i)
	if i < a.next {
		a.next = i
	}
}

// podIPs allocates pod addresses in one node's podCIDR. It hands them out round-robin so a
// freed address is not reused at once, as real IPAM plugins do.
type podIPs struct {
	mu     sync.Mutex
	cidr   netip.Prefix
	size   uint32
	bitmap []uint64
	cursor uint32
	inUse  int
}

func newPodIPs(cidr netip.Prefix) *podIPs {
	cidr = cidr.Masked()
	size := uint32(1) << (32 - cidr.Bits())
	return &podIPs{cidr: cidr, size: size, bitmap: make([]uint64, (size+63)/64), cursor: 2}
}

func (p *podIPs) isSet(i uint32) bool { return p.bitmap[i/64]&(1<<(i%64)) != 0 }
func (p *podIPs) set(i uint32)        { p.bitmap[i/64] |= 1 << (i % 64) }
func (p *podIPs) clear(i uint32)      { p.bitmap[i/64] &^= 1 << (i % 64) }

// allocate returns a free address: never the network address, the gateway (.1) or the
// broadcast address.
func (p *podIPs) allocate() (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.size < 4 {
		return netip.Addr{}, false
	}
	usable := p.size - 3
	for k := uint32(0); k < usable; k++ {
		i := p.cursor
		p.cursor++
		if p.cursor >= p.size-1 {
			p.cursor = 2
		}
		if !p.isSet(i) {
			p.set(i)
			p.inUse++
			return addToAddr(p.cidr.Addr(), i), true
		}
	}
	return netip.Addr{}, false
}

// mark records an address already in use (a pod found running after a restart); it reports
// whether the address belongs to this range.
func (p *podIPs) mark(s string) bool {
	ip, err := netip.ParseAddr(s)
	if err != nil || !p.cidr.Contains(ip) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	i := addrOffset(p.cidr.Addr(), ip)
	if i >= 2 && i < p.size-1 && !p.isSet(i) {
		p.set(i)
		p.inUse++
	}
	return true
}

func (p *podIPs) release(s string) {
	ip, err := netip.ParseAddr(s)
	if err != nil || !p.cidr.Contains(ip) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	i := addrOffset(p.cidr.Addr(), ip)
	if i >= 2 && p.isSet(i) {
		p.clear(i)
		p.inUse--
	}
}

func (p *podIPs) used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}
