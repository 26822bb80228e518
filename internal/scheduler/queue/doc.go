// Package queue holds pods waiting to be scheduled: an active heap ordered by priority
// and age, a backoff heap of pods retrying after a failure (1s doubling to 10s per pod),
// and a set of unschedulable pods that wait for a cluster event that may help them — or
// for five minutes. It also tracks pods nominated to nodes by preemption.
package queue
