package agent

import (
	"context"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// relistPeriod is how often the runtime is listed to notice changes (containerd 1.6 has
// no CRI event stream).
const relistPeriod = time.Second

// relistLoop lists the runtime's sandboxes and containers every second and wakes the
// worker of every pod whose set or states changed (a container exited, a sandbox died).
// Pods the runtime has but no worker knows are orphans: a worker is started for them,
// finds no pod and removes what is left.
func (a *Agent) relistLoop(ctx context.Context) {
	prev := map[types.UID]string{}
	t := time.NewTicker(relistPeriod)
	defer t.Stop()
	for {
		cur, names, err := a.relist(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Debug("relist failed", "err", err)
		} else {
			for uid, fp := range cur {
				if prev[uid] == fp {
					continue
				}
				if a.workers.has(uid) {
					a.workers.poke(uid)
				} else {
					n := names[uid]
					a.workers.ensure(uid, n[0], n[1])
				}
			}
			for uid := range prev {
				if _, ok := cur[uid]; !ok {
					a.workers.poke(uid)
				}
			}
			prev = cur
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// relist returns a fingerprint of each pod's runtime objects, and the pods' names.
func (a *Agent) relist(ctx context.Context) (map[types.UID]string, map[types.UID][2]string, error) {
	sel := map[string]string{labelNode: a.cfg.NodeName}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sbs, err := a.rt.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return nil, nil, err
	}
	cs, err := a.rt.ListContainers(lctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		return nil, nil, err
	}
	parts := map[types.UID][]string{}
	names := map[types.UID][2]string{}
	for _, sb := range sbs.Items {
		uid := types.UID(sb.Labels[labelPodUID])
		if uid == "" {
			continue
		}
		names[uid] = [2]string{sb.Labels[labelPodNamespace], sb.Labels[labelPodName]}
		parts[uid] = append(parts[uid], "s"+sb.Id+sb.State.String())
	}
	for _, c := range cs.Containers {
		uid := types.UID(c.Labels[labelPodUID])
		if uid == "" {
			continue
		}
		if _, ok := names[uid]; !ok {
			names[uid] = [2]string{c.Labels[labelPodNamespace], c.Labels[labelPodName]}
		}
		parts[uid] = append(parts[uid], "c"+c.Id+c.State.String())
	}
	out := make(map[types.UID]string, len(parts))
	for uid, p := range parts {
		sort.Strings(p)
		out[uid] = strings.Join(p, ",")
	}
	return out, names, nil
}
