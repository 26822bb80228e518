package proxy

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"
)

// BenchmarkCompute1000 times the Go side of a partial sync with 1,000 services of 3
// endpoints: resolving services and slices, building the ruleset, diffing it.
func BenchmarkCompute1000(b *testing.B) {
	var svcs []*corev1.Service
	var slices []*discoveryv1.EndpointSlice
	for i := 0; i < 1000; i++ {
		svcs = append(svcs, service("bench", fmt.Sprintf("s%d", i), fmt.Sprintf("10.43.%d.%d", 100+i/250, 1+i%250), 80))
		slices = append(slices, slice("bench", fmt.Sprintf("s%d", i), fmt.Sprintf("s%d-1", i), 8080,
			ep{ip: fmt.Sprintf("10.42.%d.%d", i/80, 1+3*(i%80))}, ep{ip: fmt.Sprintf("10.42.%d.%d", i/80, 2+3*(i%80))}, ep{ip: fmt.Sprintf("10.42.%d.%d", i/80, 3+3*(i%80))}))
	}
	nft := knftables.NewFake(knftables.IPv4Family, testTable)
	p := &Proxier{cfg: Config{MasqueradeMark: DefaultMasqueradeMark}, clusterCIDR: DefaultClusterCIDR, nft: nft}
	p.programmed = p.buildRuleset(buildServicePorts(svcs, slices, ""), nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := p.buildRuleset(buildServicePorts(svcs, slices, ""), nil)
		if _, err := p.transaction(context.Background(), want, false, false); err != nil {
			b.Fatal(err)
		}
	}
}
