package e2e

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// resourceCase is one served resource and its testdata manifest.
type resourceCase struct {
	file       string // testdata/<file>
	resource   string // what the test types after `kubectl get`
	gr         string // resource.group as the server names it in errors (deployments.apps)
	apiVersion string
	kind       string
	name       string // metadata.name in the manifest
	namespaced bool
	cols       []string // `kubectl get` header, as printed against Kubernetes
	wide       []string // `-o wide` header; nil when it equals cols
	dropped    []string // JSON path the second apply removes (it must be gone)
	kept       []string // JSON path that stays
	row        string   // text a table row must contain (default: the row starts with the name)
	rowFields  []string // or: the first cells of the row
	waitFor    string   // a `kubectl wait --for=jsonpath=` condition that holds after create
	scale      int      // `kubectl scale --replicas` target, 0 if not scalable

	// check runs extra read-only checks; extra runs extra checks that write.
	check, extra func(r *caseRun, nsArgs []string, name string)

	// bugCols: a known server bug, the server prints this header instead of cols. The case still
	// runs everything and is skipped at the end with the symptom (it passes once fixed).
	bugCols []string
}

// caseRun is one resourceCase run with one kubectl.
type caseRun struct {
	t    *testing.T
	k    kubectl
	bugs []string
}

// bug records a known server bug; the case is skipped with it at the end.
func (r *caseRun) bug(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.t.Logf("known server bug: %s", msg)
	r.bugs = append(r.bugs, msg)
}

// kindGroup is how kubectl names an object of this kind: deployment.apps, configmap.
func (c resourceCase) kindGroup() string {
	group, _, found := strings.Cut(c.apiVersion, "/")
	if !found {
		return strings.ToLower(c.kind)
	}
	return strings.ToLower(c.kind) + "." + group
}

var (
	containersImagesSelector = []string{"CONTAINERS", "IMAGES", "SELECTOR"}
	eventCols                = []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}
	eventWide                = []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"}
	createdAtCols            = []string{"NAME", "CREATED AT"}
	bindingCols              = []string{"NAME", "ROLE", "AGE"}
	bindingWide              = []string{"NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"}
)

var rfc3339 = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

func appendCols(a []string, b ...string) []string { return append(append([]string{}, a...), b...) }

func fieldPath(path ...string) []string { return path }

// resourceCases: every served resource. Columns are the ones Kubernetes' printers
// (pkg/printers/internalversion) and the default table convertor ("NAME  CREATED AT") produce.
var resourceCases = []resourceCase{
	{file: "namespace.yaml", resource: "namespaces", gr: "namespaces", apiVersion: "v1", kind: "Namespace", name: "team-a",
		cols: []string{"NAME", "STATUS", "AGE"}, dropped: fieldPath("metadata", "labels", "env"), kept: fieldPath("metadata", "labels", "team"),
		waitFor: "{.status.phase}=Active"},
	{file: "pod.yaml", resource: "pods", gr: "pods", apiVersion: "v1", kind: "Pod", name: "web", namespaced: true,
		cols:    []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"},
		wide:    []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"},
		dropped: fieldPath("metadata", "labels", "release"), kept: fieldPath("spec", "containers", "0", "ports", "0", "containerPort"),
		// Nothing schedules the pod: it stays Pending.
		waitFor: "{.status.phase}=Pending",
		check: func(r *caseRun, nsArgs []string, name string) {
			out := r.k.run(append([]string{"get", "pods", name}, nsArgs...)...)
			if f := strings.Fields(tableRows(out)[0]); len(f) < 4 || f[1] != "0/1" || f[2] != "Pending" || f[3] != "0" {
				r.t.Fatalf("pod row: want READY 0/1 STATUS Pending RESTARTS 0:\n%s", out)
			}
			// Defaulted serviceAccountName, mirrored into the deprecated serviceAccount field.
			if got := r.k.run(append([]string{"get", "pod", name, "-o", "jsonpath={.spec.serviceAccountName}|{.spec.serviceAccount}"}, nsArgs...)...); got != "default|default" {
				r.t.Fatalf("pod serviceAccountName|serviceAccount: got %q, want %q", got, "default|default")
			}
		}},
	{file: "node.yaml", resource: "nodes", gr: "nodes", apiVersion: "v1", kind: "Node", name: "worker-1",
		cols:    []string{"NAME", "STATUS", "ROLES", "AGE", "VERSION"},
		wide:    []string{"NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"},
		dropped: fieldPath("metadata", "labels", "disktype"), kept: fieldPath("spec", "podCIDR"),
		check: func(r *caseRun, _ []string, name string) {
			out := r.k.run("get", "nodes", name)
			if f := strings.Fields(tableRows(out)[0]); len(f) < 3 || f[2] != "worker" {
				r.t.Fatalf("node row: want ROLES worker (node-role.kubernetes.io/worker label):\n%s", out)
			}
		}},
	{file: "service.yaml", resource: "services", gr: "services", apiVersion: "v1", kind: "Service", name: "web", namespaced: true,
		cols: []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"},
		wide: []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"},
		// ports merge by port: the second apply deletes the metrics port and keeps http.
		dropped: fieldPath("spec", "ports", "1"), kept: fieldPath("spec", "ports", "0", "name"),
		check: func(r *caseRun, nsArgs []string, name string) {
			out := r.k.run(append([]string{"get", "svc", name, "-o", "wide"}, nsArgs...)...)
			f := strings.Fields(tableRows(out)[0])
			if len(f) != 7 || f[1] != "ClusterIP" || f[3] != "<none>" || f[4] != "80/TCP" || f[6] != "app=web" {
				r.t.Fatalf("service row: want ClusterIP <none> 80/TCP ... app=web:\n%s", out)
			}
		}},
	{file: "endpoints.yaml", resource: "endpoints", gr: "endpoints", apiVersion: "v1", kind: "Endpoints", name: "external-db", namespaced: true,
		cols: []string{"NAME", "ENDPOINTS", "AGE"}, dropped: fieldPath("metadata", "labels", "tier"), kept: fieldPath("subsets", "0", "addresses", "1", "ip"),
		row: "10.0.0.10:5432,10.0.0.11:5432"},
	{file: "configmap.yaml", resource: "configmaps", gr: "configmaps", apiVersion: "v1", kind: "ConfigMap", name: "app-config", namespaced: true,
		cols: []string{"NAME", "DATA", "AGE"}, dropped: fieldPath("data", "FEATURE_FLAGS"), kept: fieldPath("data", "app.properties"),
		rowFields: []string{"app-config", "2"}, extra: labelAnnotateEdgeCases},
	{file: "secret.yaml", resource: "secrets", gr: "secrets", apiVersion: "v1", kind: "Secret", name: "db-credentials", namespaced: true,
		cols: []string{"NAME", "TYPE", "DATA", "AGE"}, dropped: fieldPath("data", "api-token"), kept: fieldPath("data", "password"),
		rowFields: []string{"db-credentials", "Opaque", "2"}},
	{file: "serviceaccount.yaml", resource: "serviceaccounts", gr: "serviceaccounts", apiVersion: "v1", kind: "ServiceAccount", name: "builder", namespaced: true,
		cols: []string{"NAME", "SECRETS", "AGE"}, dropped: fieldPath("automountServiceAccountToken"), kept: fieldPath("metadata", "labels", "app"),
		rowFields: []string{"builder", "0"}},
	{file: "event.yaml", resource: "events", gr: "events", apiVersion: "v1", kind: "Event", name: "web.17f1a2b3c4d5e6f7", namespaced: true,
		cols: eventCols, wide: eventWide, dropped: fieldPath("source", "host"), kept: fieldPath("source", "component"), row: "pod/web"},
	{file: "persistentvolume.yaml", resource: "persistentvolumes", gr: "persistentvolumes", apiVersion: "v1", kind: "PersistentVolume", name: "pv-local-1",
		cols:    []string{"NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"},
		wide:    []string{"NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE", "VOLUMEMODE"},
		dropped: fieldPath("metadata", "labels", "speed"), kept: fieldPath("spec", "hostPath", "path")},
	{file: "persistentvolumeclaim.yaml", resource: "persistentvolumeclaims", gr: "persistentvolumeclaims", apiVersion: "v1", kind: "PersistentVolumeClaim", name: "data-claim", namespaced: true,
		cols:    []string{"NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"},
		wide:    []string{"NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE", "VOLUMEMODE"},
		dropped: fieldPath("metadata", "labels", "backup"), kept: fieldPath("spec", "resources", "requests", "storage")},
	{file: "replicationcontroller.yaml", resource: "replicationcontrollers", gr: "replicationcontrollers", apiVersion: "v1", kind: "ReplicationController", name: "legacy-web", namespaced: true,
		cols: []string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"}, wide: appendCols([]string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"}, containersImagesSelector...),
		dropped: fieldPath("spec", "minReadySeconds"), kept: fieldPath("spec", "template", "spec", "containers", "0", "image"), scale: 4},
	{file: "limitrange.yaml", resource: "limitranges", gr: "limitranges", apiVersion: "v1", kind: "LimitRange", name: "cpu-mem-limits", namespaced: true,
		cols: createdAtCols, dropped: fieldPath("spec", "limits", "0", "max"), kept: fieldPath("spec", "limits", "0", "defaultRequest", "cpu")},
	{file: "resourcequota.yaml", resource: "resourcequotas", gr: "resourcequotas", apiVersion: "v1", kind: "ResourceQuota", name: "compute-quota", namespaced: true,
		cols: []string{"NAME", "AGE", "REQUEST", "LIMIT"}, dropped: fieldPath("spec", "hard", "configmaps"), kept: fieldPath("spec", "hard", "pods")},

	{file: "deployment.yaml", resource: "deployments", gr: "deployments.apps", apiVersion: "apps/v1", kind: "Deployment", name: "web", namespaced: true,
		cols: []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}, wide: appendCols([]string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}, containersImagesSelector...),
		dropped: fieldPath("spec", "minReadySeconds"), kept: fieldPath("spec", "revisionHistoryLimit"), scale: 5, waitFor: "{.spec.strategy.type}=RollingUpdate", extra: deploymentPatchSemantics},
	{file: "replicaset.yaml", resource: "replicasets", gr: "replicasets.apps", apiVersion: "apps/v1", kind: "ReplicaSet", name: "frontend", namespaced: true,
		cols: []string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"}, wide: appendCols([]string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"}, containersImagesSelector...),
		dropped: fieldPath("metadata", "labels", "track"), kept: fieldPath("metadata", "labels", "tier"), scale: 3},
	{file: "statefulset.yaml", resource: "statefulsets", gr: "statefulsets.apps", apiVersion: "apps/v1", kind: "StatefulSet", name: "db", namespaced: true,
		cols: []string{"NAME", "READY", "AGE"}, wide: []string{"NAME", "READY", "AGE", "CONTAINERS", "IMAGES"},
		dropped: fieldPath("spec", "minReadySeconds"), kept: fieldPath("spec", "volumeClaimTemplates", "0", "metadata", "name"), scale: 2},
	{file: "daemonset.yaml", resource: "daemonsets", gr: "daemonsets.apps", apiVersion: "apps/v1", kind: "DaemonSet", name: "node-exporter", namespaced: true,
		cols:    []string{"NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"},
		wide:    appendCols([]string{"NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"}, containersImagesSelector...),
		dropped: fieldPath("spec", "minReadySeconds"), kept: fieldPath("spec", "template", "spec", "nodeSelector"), row: "kubernetes.io/os=linux"},
	{file: "controllerrevision.yaml", resource: "controllerrevisions", gr: "controllerrevisions.apps", apiVersion: "apps/v1", kind: "ControllerRevision", name: "cache-6d9f8b7c5", namespaced: true,
		cols: []string{"NAME", "CONTROLLER", "REVISION", "AGE"}, dropped: fieldPath("metadata", "labels", "stale"), kept: fieldPath("data", "spec", "template"),
		rowFields: []string{"cache-6d9f8b7c5", "<none>", "1"}},
	{file: "job.yaml", resource: "jobs", gr: "jobs.batch", apiVersion: "batch/v1", kind: "Job", name: "pi", namespaced: true,
		cols: []string{"NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"}, wide: appendCols([]string{"NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"}, containersImagesSelector...),
		dropped: fieldPath("spec", "ttlSecondsAfterFinished"), kept: fieldPath("spec", "backoffLimit"),
		check: func(r *caseRun, nsArgs []string, name string) {
			// Kubernetes generates the selector and labels the template with it.
			sel := r.k.run(append([]string{"get", "job", name, "-o", "jsonpath={.spec.selector.matchLabels.batch\\.kubernetes\\.io/controller-uid}|{.spec.template.metadata.labels.batch\\.kubernetes\\.io/job-name}|{.metadata.uid}"}, nsArgs...)...)
			f := strings.Split(sel, "|")
			if len(f) != 3 || f[0] == "" || f[0] != f[2] || f[1] != name {
				r.t.Fatalf("job selector/template labels: want controller-uid=<uid> and job-name=%s, got %q", name, sel)
			}
		}},
	{file: "cronjob.yaml", resource: "cronjobs", gr: "cronjobs.batch", apiVersion: "batch/v1", kind: "CronJob", name: "nightly-backup", namespaced: true,
		cols:    []string{"NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"},
		wide:    appendCols([]string{"NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"}, containersImagesSelector...),
		dropped: fieldPath("spec", "startingDeadlineSeconds"), kept: fieldPath("spec", "timeZone"), row: "0 2 * * *"},
	{file: "horizontalpodautoscaler.yaml", resource: "horizontalpodautoscalers", gr: "horizontalpodautoscalers.autoscaling", apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler", name: "web", namespaced: true,
		cols:    []string{"NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"},
		dropped: fieldPath("spec", "metrics", "1"), kept: fieldPath("spec", "metrics", "0", "resource", "name"), row: "Deployment/web"},
	{file: "horizontalpodautoscaler-v1.yaml", resource: "horizontalpodautoscalers.v1.autoscaling", gr: "horizontalpodautoscalers.autoscaling", apiVersion: "autoscaling/v1", kind: "HorizontalPodAutoscaler", name: "api", namespaced: true,
		cols:    []string{"NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"},
		dropped: fieldPath("metadata", "labels", "owner"), kept: fieldPath("spec", "targetCPUUtilizationPercentage"), row: "Deployment/api",
		check: func(r *caseRun, nsArgs []string, name string) {
			// One object, two versions: read through autoscaling/v2 it carries the CPU target as a metric.
			got, errOut, err := r.k.try("", append([]string{"get", "horizontalpodautoscalers.v2.autoscaling", name, "-o", "jsonpath={.apiVersion} {.spec.metrics[0].resource.name} {.spec.metrics[0].resource.target.averageUtilization}"}, nsArgs...)...)
			if err != nil && strings.Contains(errOut, `horizontalpodautoscalers.autoscaling "`+name+`" not found`) {
				r.bug("an HPA created through autoscaling/v1 is not found through autoscaling/v2 (`kubectl get hpa` does not list it): %s", strings.TrimSpace(errOut))
				return
			}
			if err != nil || got != "autoscaling/v2 cpu 60" {
				r.t.Fatalf("v1 HPA read as v2: got %q (%v %s), want %q", got, err, errOut, "autoscaling/v2 cpu 60")
			}
		}},
	{file: "lease.yaml", resource: "leases", gr: "leases.coordination.k8s.io", apiVersion: "coordination.k8s.io/v1", kind: "Lease", name: "my-operator-leader", namespaced: true,
		cols: []string{"NAME", "HOLDER", "AGE"}, dropped: fieldPath("spec", "leaseTransitions"), kept: fieldPath("spec", "holderIdentity"), row: "my-operator-6d5f8c7b9-x2x4p"},
	{file: "endpointslice.yaml", resource: "endpointslices", gr: "endpointslices.discovery.k8s.io", apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", name: "web-abc12", namespaced: true,
		cols: []string{"NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"}, dropped: fieldPath("ports", "1"), kept: fieldPath("ports", "0", "name"), row: "10.244.1.5,10.244.2.7"},
	{file: "event-events.k8s.io.yaml", resource: "events.events.k8s.io", gr: "events.events.k8s.io", apiVersion: "events.k8s.io/v1", kind: "Event", name: "web.scaled.17f1a2b3c4d5", namespaced: true,
		cols: eventCols, wide: eventWide, dropped: fieldPath("metadata", "labels", "extra"), kept: fieldPath("note"), row: "deployment/web"},
	{file: "ingress.yaml", resource: "ingresses", gr: "ingresses.networking.k8s.io", apiVersion: "networking.k8s.io/v1", kind: "Ingress", name: "web", namespaced: true,
		cols:    []string{"NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"},
		dropped: fieldPath("metadata", "annotations", "nginx.ingress.kubernetes.io/rewrite-target"), kept: fieldPath("spec", "tls", "0", "secretName"), row: "80, 443"},
	{file: "ingressclass.yaml", resource: "ingressclasses", gr: "ingressclasses.networking.k8s.io", apiVersion: "networking.k8s.io/v1", kind: "IngressClass", name: "nginx",
		cols:    []string{"NAME", "CONTROLLER", "PARAMETERS", "AGE"},
		dropped: fieldPath("metadata", "annotations", "ingressclass.kubernetes.io/is-default-class"), kept: fieldPath("spec", "controller"), row: "k8s.io/ingress-nginx"},
	{file: "networkpolicy.yaml", resource: "networkpolicies", gr: "networkpolicies.networking.k8s.io", apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", name: "allow-frontend", namespaced: true,
		cols: []string{"NAME", "POD-SELECTOR", "AGE"}, dropped: fieldPath("metadata", "labels", "audit"), kept: fieldPath("spec", "ingress", "0", "ports", "0", "port"), row: "app=web"},
	{file: "poddisruptionbudget.yaml", resource: "poddisruptionbudgets", gr: "poddisruptionbudgets.policy", apiVersion: "policy/v1", kind: "PodDisruptionBudget", name: "web-pdb", namespaced: true,
		cols:    []string{"NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"},
		dropped: fieldPath("spec", "unhealthyPodEvictionPolicy"), kept: fieldPath("spec", "minAvailable"), rowFields: []string{"web-pdb", "2", "N/A", "0"}},
	{file: "role.yaml", resource: "roles", gr: "roles.rbac.authorization.k8s.io", apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", name: "pod-reader", namespaced: true,
		cols: createdAtCols, dropped: fieldPath("rules", "1"), kept: fieldPath("rules", "0", "verbs", "2")},
	{file: "rolebinding.yaml", resource: "rolebindings", gr: "rolebindings.rbac.authorization.k8s.io", apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", name: "read-pods", namespaced: true,
		cols: bindingCols, wide: bindingWide, dropped: fieldPath("subjects", "1"), kept: fieldPath("subjects", "0", "name"), row: "Role/pod-reader"},
	{file: "clusterrole.yaml", resource: "clusterroles", gr: "clusterroles.rbac.authorization.k8s.io", apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", name: "secret-reader",
		cols: createdAtCols, dropped: fieldPath("metadata", "labels", "team"), kept: fieldPath("rules", "0", "resources", "0")},
	{file: "clusterrolebinding.yaml", resource: "clusterrolebindings", gr: "clusterrolebindings.rbac.authorization.k8s.io", apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", name: "read-secrets-global",
		cols: bindingCols, wide: bindingWide, dropped: fieldPath("metadata", "labels", "team"), kept: fieldPath("subjects", "1", "namespace"), row: "ClusterRole/secret-reader"},
	{file: "storageclass.yaml", resource: "storageclasses", gr: "storageclasses.storage.k8s.io", apiVersion: "storage.k8s.io/v1", kind: "StorageClass", name: "fast-ssd",
		cols:    []string{"NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"},
		dropped: fieldPath("allowVolumeExpansion"), kept: fieldPath("volumeBindingMode"), row: "kubernetes.io/no-provisioner"},
}

// Every served resource, with both kubectls: apply (create), apply again without a field (three-way
// merge removes it), get in every output format with Kubernetes' table columns, describe, label,
// annotate, the three patch types, scale, wait and delete.
func TestResourceMatrix(t *testing.T) {
	s := startServer(t)
	start := time.Now()
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			ns := "matrix-" + k.name
			k.run("create", "namespace", ns)
			for _, c := range resourceCases {
				t.Run(strings.TrimSuffix(c.file, ".yaml"), func(t *testing.T) {
					r := &caseRun{t: t, k: k.forTest(t)}
					r.run(c, ns)
					if len(r.bugs) > 0 {
						t.Skip("server bug: " + strings.Join(r.bugs, "; "))
					}
				})
			}
		})
	}
	t.Logf("matrix took %v", time.Since(start).Round(time.Millisecond))
}

func (r *caseRun) run(c resourceCase, ns string) {
	t, k := r.t, r.k
	name, rename, nsArgs := c.name, "", []string{"-n", ns}
	if !c.namespaced {
		name, rename, nsArgs = c.name+"-"+k.shortName(), c.name+"-"+k.shortName(), nil
	}
	full, dropped := manifestVersions(t, c.file, c.name, rename, ns)
	dir := t.TempDir()
	v1 := writeTemp(t, dir, "v1.yaml", full)
	v2 := writeTemp(t, dir, "v2.yaml", dropped)
	ref := c.kindGroup() + "/" + name
	run := func(args ...string) string { t.Helper(); return k.run(append(args, nsArgs...)...) }

	// apply creates; apply of the manifest without the marked field removes that field.
	if got := run("apply", "-f", v1); got != ref+" created\n" {
		t.Fatalf("apply (create): got %q, want %q", got, ref+" created\n")
	}
	if got := run("apply", "-f", v2); got != ref+" configured\n" {
		t.Fatalf("apply (field removed): got %q, want %q", got, ref+" configured\n")
	}

	obj := decodeObject(t, run("get", c.resource, name, "-o", "json"))
	for path, want := range map[string]string{"apiVersion": c.apiVersion, "kind": c.kind} {
		if v, _ := jsonLookup(obj, path); v != want {
			t.Fatalf("-o json: %s = %v, want %s", path, v, want)
		}
	}
	if v, _ := jsonLookup(obj, "metadata", "name"); v != name {
		t.Fatalf("-o json: metadata.name = %v, want %s", v, name)
	}
	if v, _ := jsonLookup(obj, "metadata", "namespace"); c.namespaced && v != ns || !c.namespaced && v != nil {
		t.Fatalf("-o json: metadata.namespace = %v (namespaced: %v)", v, c.namespaced)
	}
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp"} {
		if v, _ := jsonLookup(obj, "metadata", f); v == nil || v == "" {
			t.Fatalf("-o json: metadata.%s missing", f)
		}
	}
	if _, ok := jsonLookup(obj, c.kept...); !ok {
		t.Fatalf("-o json: %s missing", strings.Join(c.kept, "."))
	}
	if v, ok := jsonLookup(obj, c.dropped...); ok {
		t.Fatalf("apply without %s: the field is still there (%v); the three-way merge must delete it", strings.Join(c.dropped, "."), v)
	}
	la, _ := jsonLookup(obj, "metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration")
	if s, _ := la.(string); s == "" {
		t.Fatalf("no last-applied-configuration annotation")
	} else if _, ok := jsonLookup(decodeObject(t, s), c.dropped...); ok {
		t.Fatalf("last-applied-configuration still has %s: %s", strings.Join(c.dropped, "."), s)
	}
	mustContain(t, run("get", c.resource, name, "-o", "yaml"),
		"apiVersion: "+c.apiVersion+"\n", "kind: "+c.kind+"\n", "\n  name: "+name+"\n", "\n  uid: ", "\n  resourceVersion: ")

	// Tables: the list, and one object with -o wide.
	table := run("get", c.resource)
	if c.bugCols != nil && reflect.DeepEqual(tableHeader(table), c.bugCols) {
		r.bug("`kubectl get %s` prints the columns %q; Kubernetes prints %q", c.resource, strings.Join(c.bugCols, "  "), strings.Join(c.cols, "  "))
	} else {
		wantHeader(t, table, c.cols)
	}
	found := false
	for _, row := range tableRows(table) {
		f := strings.Fields(row)
		switch {
		case c.rowFields != nil:
			found = found || len(f) >= len(c.rowFields) && slices.Equal(f[:len(c.rowFields)], c.rowFields)
		case c.row != "":
			found = found || strings.Contains(row, c.row)
		default:
			found = found || f[0] == name
		}
		// The default table convertor prints creationTimestamp as RFC 3339.
		if slices.Equal(c.cols, createdAtCols) && f[0] == name && (len(f) != 2 || !rfc3339.MatchString(f[1])) {
			t.Fatalf("CREATED AT: want an RFC 3339 time in %q", row)
		}
	}
	if !found {
		t.Fatalf("no table row with %q %q:\n%s", c.row, c.rowFields, table)
	}
	wide := c.wide
	if wide == nil {
		wide = c.cols
	}
	if out := run("get", c.resource, name, "-o", "wide"); c.wide != nil || c.bugCols == nil || !reflect.DeepEqual(tableHeader(out), c.bugCols) {
		wantHeader(t, out, wide)
	}
	if got := run("get", c.resource, name, "-o", "name"); got != ref+"\n" {
		t.Fatalf("-o name: got %q, want %q", got, ref+"\n")
	}
	if d := run("describe", c.resource, name); !strings.HasPrefix(d, "Name:") || strings.TrimSpace(strings.TrimPrefix(outLines(d)[0], "Name:")) != name {
		t.Fatalf("describe: want a first line `Name:  %s`:\n%s", name, d)
	}
	if c.waitFor != "" {
		run("wait", c.resource+"/"+name, "--for=jsonpath="+c.waitFor, "--timeout=20s")
	}
	if c.check != nil {
		c.check(r, nsArgs, name)
	}

	if got := run("label", c.resource, name, "stage=labeled"); got != ref+" labeled\n" {
		t.Fatalf("label: got %q, want %q", got, ref+" labeled\n")
	}
	if got := run("annotate", c.resource, name, "note=hello"); got != ref+" annotated\n" {
		t.Fatalf("annotate: got %q, want %q", got, ref+" annotated\n")
	}
	for _, pt := range []struct{ typ, patch string }{
		{"strategic", `{"metadata":{"labels":{"sp":"1"}}}`},
		{"merge", `{"metadata":{"labels":{"mp":"2"}}}`},
		{"json", fmt.Sprintf(`[{"op":"test","path":"/metadata/name","value":%q},{"op":"add","path":"/metadata/labels/jp","value":"3"}]`, name)},
	} {
		if got := run("patch", c.resource, name, "--type="+pt.typ, "-p", pt.patch); got != ref+" patched\n" {
			t.Fatalf("patch --type=%s: got %q, want %q", pt.typ, got, ref+" patched\n")
		}
	}
	const q = "jsonpath={.metadata.name}|{.metadata.labels.stage},{.metadata.labels.sp},{.metadata.labels.mp},{.metadata.labels.jp},{.metadata.annotations.note}"
	if got, want := run("get", c.resource, name, "-o", q), name+"|labeled,1,2,3,hello"; got != want {
		t.Fatalf("-o %s after label/annotate/patches: got %q, want %q", q, got, want)
	}
	if c.scale > 0 {
		if got := run("scale", c.resource, name, fmt.Sprintf("--replicas=%d", c.scale)); got != ref+" scaled\n" {
			t.Fatalf("scale: got %q, want %q", got, ref+" scaled\n")
		}
		run("wait", c.resource+"/"+name, fmt.Sprintf("--for=jsonpath={.spec.replicas}=%d", c.scale), "--timeout=20s")
		// --current-replicas is a precondition: a wrong one is refused and nothing changes.
		errOut := k.mustFail("", append([]string{"scale", c.resource, name, "--current-replicas=1", "--replicas=7"}, nsArgs...)...)
		mustContain(t, errOut, fmt.Sprintf("Expected replicas to be 1, was %d", c.scale))
		if got := run("get", c.resource, name, "-o", "jsonpath={.spec.replicas}"); got != fmt.Sprint(c.scale) {
			t.Fatalf("after scale: spec.replicas = %s, want %d", got, c.scale)
		}
	}
	if c.extra != nil {
		c.extra(r, nsArgs, name)
	}

	if c.kind == "Namespace" {
		namespaceDelete(t, k, v2, name)
		return
	}
	if got, want := run("delete", "-f", v2), fmt.Sprintf("%s %q deleted", c.kindGroup(), name); !strings.HasPrefix(got, want) {
		t.Fatalf("delete -f: got %q, want %q", got, want)
	}
	if c.kind == "Pod" {
		run("wait", "--for=delete", "pod/"+name, "--timeout=40s")
	}
	errOut := k.mustFail("", append([]string{"get", c.resource, name}, nsArgs...)...)
	if want := fmt.Sprintf("Error from server (NotFound): %s %q not found", c.gr, name); !strings.Contains(errOut, want) {
		t.Fatalf("get after delete: want %q, got:\n%s", want, errOut)
	}
}

// namespaceDelete: without a namespace controller a deleted namespace stays Terminating (its
// "kubernetes" finalizer); Kubernetes' namespace controller would empty and remove it.
func namespaceDelete(t *testing.T, k kubectl, file, name string) {
	want := fmt.Sprintf("namespace %q deleted", name)
	if got := k.run("delete", "--wait=false", "-f", file); !strings.HasPrefix(got, want) {
		t.Fatalf("delete -f: got %q, want %q", got, want)
	}
	out, errOut, err := k.try("", "get", "namespace", name, "-o", "jsonpath={.status.phase} {.metadata.deletionTimestamp}")
	switch {
	case err != nil && strings.Contains(errOut, fmt.Sprintf("namespaces %q not found", name)):
		t.Logf("namespace %s removed", name)
	case err == nil && strings.HasPrefix(out, "Terminating 2"):
		t.Logf("namespace %s is Terminating (no namespace controller)", name)
		// A terminating namespace refuses new objects, as in Kubernetes.
		errOut := k.mustFail("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n", "create", "-n", name, "-f", "-")
		mustContain(t, errOut, fmt.Sprintf("unable to create new content in namespace %s because it is being terminated", name))
	default:
		t.Fatalf("namespace after delete: want NotFound, or Terminating with a deletionTimestamp; got %q err=%v %s", out, err, errOut)
	}
}

// labelAnnotateEdgeCases: label removal, --overwrite, a patch that changes nothing.
func labelAnnotateEdgeCases(r *caseRun, nsArgs []string, name string) {
	t, k := r.t, r.k
	run := func(args ...string) string { t.Helper(); return k.run(append(args, nsArgs...)...) }
	errOut := k.mustFail("", append([]string{"label", "configmap", name, "stage=again"}, nsArgs...)...)
	mustContain(t, errOut, "'stage' already has a value (labeled), and --overwrite is false")
	run("label", "configmap", name, "stage=again", "--overwrite")
	run("label", "configmap", name, "sp-", "mp-")
	run("annotate", "configmap", name, "note-")
	if got := run("patch", "configmap", name, "--type=merge", "-p", `{"metadata":{"labels":{"jp":"3"}}}`); got != "configmap/"+name+" patched (no change)\n" {
		t.Fatalf("no-op patch: got %q", got)
	}
	const q = "jsonpath={.metadata.labels.stage},{.metadata.labels.sp},{.metadata.labels.mp},{.metadata.labels.jp},{.metadata.annotations.note}"
	if got := run("get", "configmap", name, "-o", q); got != "again,,,3," {
		t.Fatalf("after label removal/overwrite: got %q, want %q", got, "again,,,3,")
	}
}

// deploymentPatchSemantics: strategic merge patches merge containers by name, merge patches
// replace the list, JSON patches address list elements.
func deploymentPatchSemantics(r *caseRun, nsArgs []string, name string) {
	t, k := r.t, r.k
	run := func(args ...string) string { t.Helper(); return k.run(append(args, nsArgs...)...) }
	const q = "jsonpath={.spec.template.spec.containers[0].image}|{.spec.template.spec.containers[0].ports[0].containerPort}|{.spec.template.spec.containers[0].resources.requests.cpu}"
	run("patch", "deployment", name, "--type=strategic", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27.1"}]}}}}`)
	if got := run("get", "deployment", name, "-o", q); got != "nginx:1.27.1|80|100m" {
		t.Fatalf("strategic patch of one container field: got %q, want %q", got, "nginx:1.27.1|80|100m")
	}
	run("patch", "deployment", name, "--type=json", "-p", `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.27.2"}]`)
	if got := run("get", "deployment", name, "-o", q); got != "nginx:1.27.2|80|100m" {
		t.Fatalf("json patch of the image: got %q, want %q", got, "nginx:1.27.2|80|100m")
	}
	run("patch", "deployment", name, "--type=merge", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.28"}]}}}}`)
	// The list is replaced; the new container is defaulted like on create.
	const q2 = "jsonpath={.spec.template.spec.containers[0].image}|{.spec.template.spec.containers[0].ports}|{.spec.template.spec.containers[0].imagePullPolicy}|{.spec.template.spec.containers[0].terminationMessagePath}"
	if got, want := run("get", "deployment", name, "-o", q2), "nginx:1.28||IfNotPresent|/dev/termination-log"; got != want {
		t.Fatalf("merge patch replaces the containers list: got %q, want %q", got, want)
	}
	// An invalid patch is refused with Kubernetes' validation message and changes nothing.
	errOut := k.mustFail("", append([]string{"patch", "deployment", name, "--type=merge", "-p", `{"spec":{"replicas":-1}}`}, nsArgs...)...)
	mustContain(t, errOut, `The Deployment "`+name+`" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0`)
}
