// Package cache keeps the scheduler's view of nodes and the pods on them — bound pods from
// the informers plus pods the scheduler assumed onto a node before their binding
// completed — and copies it into a Snapshot at the start of each cycle. Only nodes changed
// since the previous snapshot are copied, so a cycle at 5,000 nodes costs what changed,
// not the cluster size.
package cache
