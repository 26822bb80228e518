package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
)

// ErrFull is returned when every subnet of a cluster CIDR is taken.
var ErrFull = errors.New("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range")

// maxSubnetBits bounds the number of node subnets in a cluster CIDR (2^16, as Kubernetes).
const maxSubnetBits = 16

// cidrSet hands out the subnets of size maskSize of a cluster CIDR, in order, each once
// until it is released. Not safe for concurrent use.
type cidrSet struct {
	cluster  netip.Prefix
	maskSize int
	count    uint64         // number of subnets
	used     map[uint64]int // subnet index → holders
	next     uint64         // where the next search starts
}

func newCIDRSet(cluster netip.Prefix, maskSize int) (*cidrSet, error) {
	cluster = cluster.Masked()
	bits := cluster.Addr().BitLen()
	if maskSize < cluster.Bits() || maskSize > bits {
		return nil, fmt.Errorf("node mask size /%d does not fit cluster CIDR %s", maskSize, cluster)
	}
	if maskSize-cluster.Bits() > maxSubnetBits {
		return nil, fmt.Errorf("node mask size /%d is too small for cluster CIDR %s: at most %d bits between them", maskSize, cluster, maxSubnetBits)
	}
	return &cidrSet{cluster: cluster, maskSize: maskSize, count: 1 << uint(maskSize-cluster.Bits()), used: map[uint64]int{}}, nil
}

func addrInt(a netip.Addr) *big.Int {
	b := a.AsSlice()
	return new(big.Int).SetBytes(b)
}

func intAddr(i *big.Int, is4 bool) netip.Addr {
	n := 16
	if is4 {
		n = 4
	}
	b := i.FillBytes(make([]byte, n))
	a, _ := netip.AddrFromSlice(b)
	return a
}

// subnet returns the subnet with index i.
func (s *cidrSet) subnet(i uint64) netip.Prefix {
	shift := uint(s.cluster.Addr().BitLen() - s.maskSize)
	v := new(big.Int).Lsh(new(big.Int).SetUint64(i), shift)
	v.Add(v, addrInt(s.cluster.Addr()))
	return netip.PrefixFrom(intAddr(v, s.cluster.Addr().Is4()), s.maskSize)
}

// indexes returns the subnet indexes p covers (p inside the cluster CIDR; a p larger than a
// node subnet covers several, a smaller one the subnet containing it).
func (s *cidrSet) indexes(p netip.Prefix) (first, last uint64, ok bool) {
	p = p.Masked()
	if p.Addr().Is4() != s.cluster.Addr().Is4() || !s.cluster.Overlaps(p) {
		return 0, 0, false
	}
	if p.Bits() < s.cluster.Bits() {
		return 0, s.count - 1, true // p contains the whole cluster CIDR
	}
	shift := uint(s.cluster.Addr().BitLen() - s.maskSize)
	off := new(big.Int).Sub(addrInt(p.Addr()), addrInt(s.cluster.Addr()))
	first = new(big.Int).Rsh(off, shift).Uint64()
	last = first
	if p.Bits() < s.maskSize {
		last = first + (1 << uint(s.maskSize-p.Bits())) - 1
	}
	return first, last, true
}

// allocate takes the next free subnet.
func (s *cidrSet) allocate() (netip.Prefix, error) {
	for n := uint64(0); n < s.count; n++ {
		i := (s.next + n) % s.count
		if s.used[i] == 0 {
			s.used[i] = 1
			s.next = (i + 1) % s.count
			return s.subnet(i), nil
		}
	}
	return netip.Prefix{}, ErrFull
}

// occupy marks the subnets p covers as used (once more); false when p is outside the set.
func (s *cidrSet) occupy(p netip.Prefix) bool {
	first, last, ok := s.indexes(p)
	if !ok {
		return false
	}
	for i := first; i <= last; i++ {
		s.used[i]++
	}
	return true
}

// release undoes one occupy (or allocate) of p.
func (s *cidrSet) release(p netip.Prefix) {
	first, last, ok := s.indexes(p)
	if !ok {
		return
	}
	for i := first; i <= last; i++ {
		if s.used[i] > 1 {
			s.used[i]--
		} else {
			delete(s.used, i)
		}
	}
}

// free counts the subnets left.
func (s *cidrSet) free() uint64 { return s.count - uint64(len(s.used)) }

func (s *cidrSet) contains(p netip.Prefix) bool {
	_, _, ok := s.indexes(p)
	return ok
}
