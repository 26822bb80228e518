// Package integration tests the API server through client-go against an in-process control
// plane (pkg/skifftest) on embedded etcd.
package integration
