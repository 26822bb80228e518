// Package bench holds skiff's benchmarks. Each is a program under bench/cmd that prints its
// figures and, where a peer can run on the same machine (an etcd binary), the ratio to it
// measured in the same run. Recorded results are in RESULTS.md with the command that made them.
package bench
