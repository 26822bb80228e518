package apiserver

import (
	"net/http"
	"sort"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/registry"
)

// subresource is one subresource as discovery lists it.
type subresource struct {
	name                 string
	group, version, kind string // response kind; empty group/version: the resource's own
	verbs                []string
}

// subresourcesOf lists a resource's subresources.
func subresourcesOf(res *registry.Resource) []subresource {
	var out []subresource
	if res.HasStatus {
		out = append(out, subresource{name: "status", kind: res.Kind, verbs: []string{"get", "patch", "update"}})
	}
	if res.Approval != nil {
		out = append(out, subresource{name: "approval", kind: res.Kind, verbs: []string{"get", "patch", "update"}})
	}
	if res.Scale != nil {
		out = append(out, subresource{name: "scale", group: "autoscaling", version: "v1", kind: "Scale", verbs: []string{"get", "patch", "update"}})
	}
	switch {
	case res.Group == "" && res.Resource == "pods":
		out = append(out,
			subresource{name: "binding", kind: "Binding", verbs: []string{"create"}},
			subresource{name: "eviction", group: "policy", version: "v1", kind: "Eviction", verbs: []string{"create"}},
			subresource{name: "log", kind: "Pod", verbs: []string{"get"}},
			subresource{name: "exec", kind: "PodExecOptions", verbs: []string{"create", "get"}},
			subresource{name: "attach", kind: "PodAttachOptions", verbs: []string{"create", "get"}},
			subresource{name: "portforward", kind: "PodPortForwardOptions", verbs: []string{"create", "get"}},
		)
	case res.Group == "" && res.Resource == "serviceaccounts":
		out = append(out, subresource{name: "token", group: "authentication.k8s.io", version: "v1", kind: "TokenRequest", verbs: []string{"create"}})
	case res.Group == "" && res.Resource == "namespaces":
		out = append(out, subresource{name: "finalize", kind: "Namespace", verbs: []string{"update"}})
	}
	return out
}

// versionOrder sorts versions as Kubernetes prefers them (v2 before v1, GA before beta).
func versionLess(a, b string) bool { return a > b }

type groupInfo struct {
	name     string
	versions []string // preferred first
}

func (s *Server) groups() []groupInfo {
	seen := map[string]map[string]bool{}
	var order []string
	for _, r := range s.allResources() {
		if r.Group == "" {
			continue
		}
		if seen[r.Group] == nil {
			seen[r.Group] = map[string]bool{}
			order = append(order, r.Group)
		}
		seen[r.Group][r.Version] = true
	}
	out := make([]groupInfo, 0, len(order))
	for _, g := range order {
		var vs []string
		for v := range seen[g] {
			vs = append(vs, v)
		}
		sort.Slice(vs, func(i, j int) bool { return versionLess(vs[i], vs[j]) })
		out = append(out, groupInfo{name: g, versions: vs})
	}
	return out
}

func (s *Server) apiResourceList(group, version string) *metav1.APIResourceList {
	gv := version
	if group != "" {
		gv = group + "/" + version
	}
	l := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv}
	for _, r := range s.allResources() {
		if r.Group != group || r.Version != version {
			continue
		}
		l.APIResources = append(l.APIResources, metav1.APIResource{
			Name: r.Resource, SingularName: r.SingularName, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: r.SupportedVerbs(), ShortNames: r.ShortNames, Categories: r.Categories,
		})
		for _, sr := range subresourcesOf(r) {
			l.APIResources = append(l.APIResources, metav1.APIResource{
				Name: r.Resource + "/" + sr.name, Namespaced: r.Namespaced, Group: sr.group, Version: sr.version,
				Kind: sr.kind, Verbs: sr.verbs,
			})
		}
	}
	return l
}

func wantsAggregated(r *http.Request) (bool, string) {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.Contains(part, "as=APIGroupDiscoveryList") && strings.Contains(part, "g=apidiscovery.k8s.io") {
			if strings.Contains(part, "v=v2beta1") {
				return true, "v2beta1"
			}
			if strings.Contains(part, "v=v2") {
				return true, "v2"
			}
		}
	}
	return false, ""
}

func (s *Server) aggregatedGroup(group string, versions []string) apidiscoveryv2.APIGroupDiscovery {
	g := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: group}}
	for _, v := range versions {
		vd := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, r := range s.allResources() {
			if r.Group != group || r.Version != v {
				continue
			}
			scope := apidiscoveryv2.ScopeCluster
			if r.Namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			rd := apidiscoveryv2.APIResourceDiscovery{
				Resource: r.Resource, Scope: scope, SingularResource: r.SingularName, Verbs: r.SupportedVerbs(),
				ShortNames: r.ShortNames, Categories: r.Categories,
				ResponseKind: &metav1.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind},
			}
			for _, sr := range subresourcesOf(r) {
				gvk := &metav1.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: sr.kind}
				if sr.version != "" {
					gvk = &metav1.GroupVersionKind{Group: sr.group, Version: sr.version, Kind: sr.kind}
				}
				rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{Subresource: sr.name, ResponseKind: gvk, Verbs: sr.verbs})
			}
			vd.Resources = append(vd.Resources, rd)
		}
		g.Versions = append(g.Versions, vd)
	}
	return g
}

func (s *Server) writeAggregated(w http.ResponseWriter, version string, items []apidiscoveryv2.APIGroupDiscovery) {
	l := apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/" + version}, Items: items}
	w.Header().Set("Vary", "Accept")
	writeJSONType(w, http.StatusOK, "application/json;g=apidiscovery.k8s.io;v="+version+";as=APIGroupDiscoveryList", &l)
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	if ok, v := wantsAggregated(r); ok {
		s.writeAggregated(w, v, []apidiscoveryv2.APIGroupDiscovery{s.aggregatedGroup("", []string{"v1"})})
		return
	}
	writeJSON(w, http.StatusOK, &metav1.APIVersions{
		TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
		Versions:                   []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: s.cfg.ExternalAddress}},
	})
}

func (s *Server) apiGroup(g groupInfo) metav1.APIGroup {
	ag := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: g.name}
	for _, v := range g.versions {
		ag.Versions = append(ag.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g.name + "/" + v, Version: v})
	}
	ag.PreferredVersion = ag.Versions[0]
	return ag
}

func (s *Server) handleAPIs(w http.ResponseWriter, r *http.Request) {
	if ok, v := wantsAggregated(r); ok {
		var items []apidiscoveryv2.APIGroupDiscovery
		for _, g := range s.groups() {
			items = append(items, s.aggregatedGroup(g.name, g.versions))
		}
		for _, g := range s.cfg.ExtraGroups {
			items = append(items, g.Aggregated)
		}
		s.writeAggregated(w, v, items)
		return
	}
	l := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range s.groups() {
		ag := s.apiGroup(g)
		ag.TypeMeta = metav1.TypeMeta{}
		l.Groups = append(l.Groups, ag)
	}
	for _, g := range s.cfg.ExtraGroups {
		ag := g.Legacy
		ag.TypeMeta = metav1.TypeMeta{}
		l.Groups = append(l.Groups, ag)
	}
	writeJSON(w, http.StatusOK, l)
}

// handleDiscoveryPath serves /apis/<group> and /api/v1, /apis/<group>/<version>; false when the
// path is not one of those.
func (s *Server) handleDiscoveryPath(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "api" && parts[1] == "v1":
		writeJSON(w, http.StatusOK, s.apiResourceList("", "v1"))
		return true
	case len(parts) == 2 && parts[0] == "apis":
		for _, g := range s.groups() {
			if g.name == parts[1] {
				ag := s.apiGroup(g)
				writeJSON(w, http.StatusOK, &ag)
				return true
			}
		}
		notFoundPath(w)
		return true
	case len(parts) == 3 && parts[0] == "apis":
		l := s.apiResourceList(parts[1], parts[2])
		if len(l.APIResources) == 0 {
			notFoundPath(w)
			return true
		}
		writeJSON(w, http.StatusOK, l)
		return true
	}
	return false
}
