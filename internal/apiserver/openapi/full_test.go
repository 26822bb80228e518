package openapi

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	kubectlopenapi "k8s.io/kubectl/pkg/util/openapi"
)

// fullResources is every resource Kubernetes serves in the group/versions
// zz_generated.openapi.go covers, so a kind whose schema is missing from
// the generated file fails here rather than at server start.
var fullResources = func() []Resource {
	all := []string(nil) // nil: every verb
	create := []string{"create"}
	r := func(group, version, kind, resource string, namespaced bool, verbs []string, subs ...string) Resource {
		return Resource{Group: group, Version: version, Kind: kind, Resource: resource,
			Namespaced: namespaced, Verbs: verbs, Subresources: subs}
	}
	return []Resource{
		r("", "v1", "Pod", "pods", true, all, "status", "binding", "eviction", "log", "ephemeralcontainers", "resize", "exec", "attach", "portforward"),
		r("", "v1", "Node", "nodes", false, all, "status", "proxy"),
		r("", "v1", "Namespace", "namespaces", false, []string{"create", "delete", "get", "list", "patch", "update", "watch"}, "status", "finalize"),
		r("", "v1", "Service", "services", true, all, "status", "proxy"),
		r("", "v1", "Endpoints", "endpoints", true, all),
		r("", "v1", "ConfigMap", "configmaps", true, all),
		r("", "v1", "Secret", "secrets", true, all),
		r("", "v1", "ServiceAccount", "serviceaccounts", true, all, "token"),
		r("", "v1", "Event", "events", true, all),
		r("", "v1", "PersistentVolume", "persistentvolumes", false, all, "status"),
		r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, all, "status"),
		r("", "v1", "LimitRange", "limitranges", true, all),
		r("", "v1", "ResourceQuota", "resourcequotas", true, all, "status"),
		r("", "v1", "ReplicationController", "replicationcontrollers", true, all, "status", "scale"),
		r("", "v1", "PodTemplate", "podtemplates", true, all),
		r("", "v1", "ComponentStatus", "componentstatuses", false, []string{"get", "list"}),
		r("", "v1", "Binding", "bindings", true, create),
		r("apps", "v1", "Deployment", "deployments", true, all, "status", "scale"),
		r("apps", "v1", "ReplicaSet", "replicasets", true, all, "status", "scale"),
		r("apps", "v1", "StatefulSet", "statefulsets", true, all, "status", "scale"),
		r("apps", "v1", "DaemonSet", "daemonsets", true, all, "status"),
		r("apps", "v1", "ControllerRevision", "controllerrevisions", true, all),
		r("batch", "v1", "Job", "jobs", true, all, "status"),
		r("batch", "v1", "CronJob", "cronjobs", true, all, "status"),
		r("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, all, "status"),
		r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, all, "status"),
		r("coordination.k8s.io", "v1", "Lease", "leases", true, all),
		r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, all),
		r("events.k8s.io", "v1", "Event", "events", true, all),
		r("networking.k8s.io", "v1", "Ingress", "ingresses", true, all, "status"),
		r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, all),
		r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, all),
		r("networking.k8s.io", "v1", "IPAddress", "ipaddresses", false, all),
		r("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", false, all, "status"),
		r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, all, "status"),
		r("rbac.authorization.k8s.io", "v1", "Role", "roles", true, all),
		r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, all),
		r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, all),
		r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, all),
		r("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, all),
		r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", false, all),
		r("storage.k8s.io", "v1", "CSINode", "csinodes", false, all),
		r("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", true, all),
		r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", false, all, "status"),
		r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", false, create),
		r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", false, create),
		r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", false, create),
		r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", false, create),
		r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", false, create),
		r("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", true, create),
	}
}()

func TestFullResourceList(t *testing.T) {
	start := time.Now()
	v2, err := BuildV2(fullResources)
	if err != nil {
		t.Fatalf("BuildV2: %v", err)
	}
	v3, err := BuildV3(fullResources)
	if err != nil {
		t.Fatalf("BuildV3: %v", err)
	}
	size := 0
	for _, b := range v3 {
		size += len(b)
	}
	t.Logf("v2 %d KiB, v3 %d documents %d KiB, built in %v", len(v2)>>10, len(v3), size>>10, time.Since(start))
	if len(v3) != 14 {
		t.Errorf("%d v3 documents, want 14", len(v3))
	}

	resources, err := kubectlopenapi.NewOpenAPIData(parseV2(t, v2))
	if err != nil {
		t.Fatalf("kubectl cannot use the v2 document: %v", err)
	}
	for _, r := range fullResources {
		gvk := schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
		if resources.LookupResource(gvk) == nil {
			t.Errorf("no schema for %s", gvk)
		}
	}
	for _, doc := range v3 {
		checkRefs(t, doc)
	}

	// The documents' hashes are their cache keys: the same resources in
	// another order must give the same bytes.
	reversed := slices.Clone(fullResources)
	slices.Reverse(reversed)
	again, err := BuildV2(reversed)
	if err != nil || !bytes.Equal(again, v2) {
		t.Errorf("BuildV2 depends on resource order (err %v)", err)
	}
	again3, err := BuildV3(reversed)
	if err != nil {
		t.Fatal(err)
	}
	for gv, b := range v3 {
		if !bytes.Equal(again3[gv], b) {
			t.Errorf("BuildV3 %s depends on resource order", gv)
		}
	}
}
