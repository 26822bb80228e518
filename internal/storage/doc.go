// Package storage defines the store that the API server keeps objects in: an etcd v3
// implementation (package etcd3), a watch cache in front of it (package cacher), and an
// embedded etcd for single-binary clusters. resourceVersion is always the etcd revision.
package storage
