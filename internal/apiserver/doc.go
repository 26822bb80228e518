// Package apiserver serves the Kubernetes REST API over the registry's resources: discovery,
// OpenAPI, get/list/watch/create/update/patch/delete/deletecollection, the status, scale,
// binding and eviction subresources, server-side tables, and metav1.Status errors as kubectl
// expects them.
package apiserver
