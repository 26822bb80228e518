// Package framework defines the scheduler's vocabulary: one interface per extension point
// (PreFilter, Filter, PostFilter, PreScore, Score, Bind), the Status plugins return, the
// per-cycle CycleState, and the NodeInfo/PodInfo views of the cluster a decision is made
// against. It has no behaviour of its own beyond bookkeeping on those types; the runtime
// package runs plugins and the core package turns a snapshot and a pod into a decision.
package framework
