package apiserver

import (
	"net/http"
	"strings"
)

// requestInfo is what a resource URL names.
type requestInfo struct {
	Group, Version string
	Namespace      string
	Resource       string
	Name           string
	Subresource    string
	Verb           string // get list watch create update patch delete deletecollection
	// req is the request, for what only some writes need (the field manager name, see
	// apply.go); applying is set for server-side apply, which computes managedFields itself.
	req      *http.Request
	applying bool
}

// parseResourcePath parses /api/v1/... and /apis/<group>/<version>/... paths. The second result
// is false when the path is not a resource path (discovery documents are handled earlier).
func parseResourcePath(r *http.Request, isNamespaced func(group, version, resource string) (bool, bool)) (*requestInfo, bool) {
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	info := &requestInfo{}
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		info.Version = parts[1]
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		info.Group, info.Version = parts[1], parts[2]
		parts = parts[3:]
	default:
		return nil, false
	}
	watchPrefix := false
	if parts[0] == "watch" {
		// The deprecated /watch/ path form.
		watchPrefix = true
		parts = parts[1:]
		if len(parts) == 0 {
			return nil, false
		}
	}
	// /namespaces/{ns}/{resource}... unless the path is the namespace object itself
	// (/namespaces/{name}[/status|/finalize]).
	if parts[0] == "namespaces" && len(parts) >= 3 {
		if nsd, ok := isNamespaced(info.Group, info.Version, parts[2]); ok && nsd {
			info.Namespace = parts[1]
			parts = parts[2:]
		}
	}
	info.Resource = parts[0]
	if len(parts) > 1 {
		info.Name = parts[1]
	}
	if len(parts) > 2 {
		info.Subresource = parts[2]
	}
	if len(parts) > 3 {
		return nil, false
	}
	q := r.URL.Query()
	isWatch := watchPrefix || q.Get("watch") == "true" || q.Get("watch") == "1"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case info.Name == "" && isWatch:
			info.Verb = "watch"
		case info.Name == "":
			info.Verb = "list"
		case isWatch:
			info.Verb = "watch"
		default:
			info.Verb = "get"
		}
	case http.MethodPost:
		info.Verb = "create"
	case http.MethodPut:
		info.Verb = "update"
	case http.MethodPatch:
		info.Verb = "patch"
	case http.MethodDelete:
		if info.Name == "" {
			info.Verb = "deletecollection"
		} else {
			info.Verb = "delete"
		}
	default:
		info.Verb = strings.ToLower(r.Method)
	}
	return info, true
}
