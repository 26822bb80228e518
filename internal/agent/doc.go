// Package agent is skiff's node agent (the kubelet's counterpart): it registers the Node
// and keeps its status and Lease fresh, and runs the pods bound to the node through the
// CRI RuntimeService and ImageService of containerd.
//
// Shape, after the kubelet: one worker goroutine per pod. A sync reads the pod from the
// informer and the pod's sandboxes and containers from the runtime (found by the standard
// io.kubernetes.* labels), computes a plan — what to create, start, kill (actions.go) —
// and then carries it out (sandbox.go, container.go), before writing the pod's status
// (status.go) when it changed. A relist loop (pleg.go) notices runtime changes (a
// container exiting) and wakes the worker of the pod concerned; probe workers (probes.go)
// do the same when a result flips. Volumes live under <data-dir>/pods/<uid>/volumes
// (volumes.go), and gc.go removes dead containers, orphaned sandboxes and unused images.
//
// On-disk layout under Config.DataDir:
//
//	images/                      image tarballs imported at start (images-imported: what was)
//	containerd/                  the managed containerd (see internal/agent/runtime)
//	cni/                         CNI config (net.d) and IPAM state (networks)
//	pods/<uid>/<container>/<n>.log  CRI container logs (n = restart count)
//	pods/<uid>/volumes/<plugin>/<volume>
//	pods/<uid>/.run/             etc-hosts and termination-message files
package agent
