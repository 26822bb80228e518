package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// editorScript writes an EDITOR script that keeps a copy of every file kubectl hands it (in order, in
// dir/seen) and then runs sedExpr on it. It returns the environment that selects it.
func editorScript(t *testing.T, sedExpr string) (env []string, seen func() []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "seen")
	if err := os.Mkdir(log, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nset -e\nn=$(ls %q | wc -l)\ncp \"$1\" %q/$n.yaml\nsed -i '%s' \"$1\"\n", log, log, sedExpr)
	path := writeTemp(t, dir, "editor.sh", script)
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"EDITOR=" + path, "KUBE_EDITOR=" + path}, func() []string {
		var files []string
		for i := 0; ; i++ {
			b, err := os.ReadFile(filepath.Join(log, fmt.Sprintf("%d.yaml", i)))
			if err != nil {
				return files
			}
			files = append(files, string(b))
		}
	}
}

// kubectl edit: a valid edit is saved; an invalid one is reported the way kubectl reports
// Kubernetes' validation errors (the file is reopened with the causes) and nothing is stored.
func TestKubectlEdit(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			ns := "edit-" + k.name
			k.run("create", "namespace", ns)
			k.run("apply", "-n", ns, "-f", filepath.Join("testdata", "deployment.yaml"))
			get := func(q string) string {
				t.Helper()
				return k.run("get", "deployment", "web", "-n", ns, "-o", "jsonpath="+q)
			}

			// spec.replicas only: status has a replicas field at the same indentation.
			env, seen := editorScript(t, `/^spec:/,/^status:/s/^  replicas: 3$/  replicas: 2/`)
			out, errOut, err := k.tryEnv(env, "", "edit", "deployment/web", "-n", ns)
			if err != nil || out != "deployment.apps/web edited\n" {
				t.Fatalf("edit replicas 3 -> 2: err=%v stdout=%q stderr=%s", err, out, errOut)
			}
			if files := seen(); len(files) != 1 || !strings.HasPrefix(files[0], "# Please edit the object below.") || !strings.Contains(files[0], "\n  replicas: 3\n") || !strings.Contains(files[0], "\nkind: Deployment\n") {
				t.Fatalf("editor saw %d files; first:\n%s", len(files), strings.Join(files, "\n---\n"))
			}
			if got := get("{.spec.replicas} {.metadata.generation}"); got != "2 2" {
				t.Fatalf("after edit: replicas generation = %q, want %q", got, "2 2")
			}

			// Saving an unchanged file changes nothing.
			env, _ = editorScript(t, `s/^kind: Deployment$/kind: Deployment/`)
			out, errOut, err = k.tryEnv(env, "", "edit", "deployment/web", "-n", ns)
			if err != nil || out != "" || !strings.Contains(errOut, "Edit cancelled, no changes made.") {
				t.Fatalf("no-op edit: err=%v stdout=%q stderr=%s", err, out, errOut)
			}

			// replicas: -1 is invalid. kubectl reopens the file with the causes; the script changes
			// nothing the second time, so kubectl gives up and keeps a copy.
			env, seen = editorScript(t, `/^spec:/,/^status:/s/^  replicas: 2$/  replicas: -1/`)
			out, errOut, err = k.tryEnv(env, "", "edit", "deployment/web", "-n", ns)
			if err == nil {
				t.Fatalf("invalid edit succeeded: stdout=%q stderr=%s", out, errOut)
			}
			mustContain(t, errOut,
				`error: deployments.apps "web" is invalid`,
				`A copy of your changes has been stored to "`,
				"error: Edit cancelled, no valid changes were saved.")
			files := seen()
			if len(files) != 2 {
				t.Fatalf("editor opened %d times, want 2 (the edit, then the file with the errors)", len(files))
			}
			mustContain(t, files[1],
				"# deployments.apps \"web\" was not valid:\n# * spec.replicas: Invalid value: -1: must be greater than or equal to 0\n",
				"\n  replicas: -1\n")
			if got := get("{.spec.replicas} {.metadata.generation}"); got != "2 2" {
				t.Fatalf("after invalid edit: replicas generation = %q, want %q (nothing stored)", got, "2 2")
			}
		})
	}
}

// kubectl get -w prints the header once, then a row per change.
func TestKubectlGetWatchDeployments(t *testing.T) {
	s := startServer(t)
	deployment, err := os.ReadFile(filepath.Join("testdata", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	api := strings.Replace(string(deployment), "\n  name: web\n", "\n  name: api\n", 1)
	for _, k := range s.kubectls() {
		for _, events := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/output-watch-events=%v", k.name, events), func(t *testing.T) {
				k := k.forTest(t)
				ns := fmt.Sprintf("watch-%s-%v", k.name, events)
				k.run("create", "namespace", ns)
				k.stdin(string(deployment), "apply", "-n", ns, "-f", "-")

				args := []string{"get", "deployments", "-n", ns, "-w"}
				header := []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}
				if events {
					args = append(args, "--output-watch-events")
					header = append([]string{"EVENT"}, header...)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
				c := k.cmd(ctx, "", args...)
				var out, errOut syncBuffer
				c.Stdout, c.Stderr = &out, &errOut
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				defer func() { cancel(); _ = c.Wait() }()
				// row finds, from index from on, the first row whose cells start with prefix.
				row := func(ls []string, from int, prefix ...string) int {
					for i := max(from, 1); i < len(ls); i++ {
						if f := strings.Fields(ls[i]); len(f) >= len(prefix) && slices.Equal(f[:len(prefix)], prefix) {
							return i
						}
					}
					return -1
				}
				ev := func(typ string, rest ...string) []string {
					if events {
						return append([]string{typ}, rest...)
					}
					return rest
				}
				eventually(t, 15*time.Second, func() error {
					if row(outLines(out.String()), 1, ev("ADDED", "web")...) < 0 {
						return fmt.Errorf("no row for the existing deployment:\n%s\nstderr: %s", out.String(), errOut.String())
					}
					return nil
				})
				k.stdin(api, "apply", "-n", ns, "-f", "-")
				k.run("scale", "deployment", "web", "-n", ns, "--replicas=5")
				k.run("delete", "deployment", "api", "-n", ns)

				var ls []string
				eventually(t, 15*time.Second, func() error {
					ls = outLines(out.String())
					i := row(ls, 1, ev("ADDED", "web")...)
					j := row(ls, i+1, ev("ADDED", "api")...)
					if i < 0 || j < 0 {
						return fmt.Errorf("want rows for web then api:\n%s", out.String())
					}
					// The scale shows as web with 5 desired replicas (READY x/5).
					m := -1
					for x := j + 1; x < len(ls); x++ {
						f := strings.Fields(ls[x])
						if n := len(ev("MODIFIED")); len(f) > n+1 && slices.Equal(f[:n+1], ev("MODIFIED", "web")) && strings.HasSuffix(f[n+1], "/5") {
							m = x
							break
						}
					}
					if m < 0 {
						return fmt.Errorf("no row for web with READY x/5 after the scale:\n%s", out.String())
					}
					if events && row(ls, m+1, "DELETED", "api") < 0 {
						return fmt.Errorf("no DELETED api row:\n%s", out.String())
					}
					return nil
				})
				if got := columnSep.Split(strings.TrimSpace(ls[0]), -1); !reflect.DeepEqual(got, header) {
					t.Fatalf("watch header: got %q, want %q\n%s", got, header, out.String())
				}
				for _, l := range ls[1:] {
					if strings.HasPrefix(l, header[0]+" ") {
						t.Fatalf("header printed more than once:\n%s", out.String())
					}
				}
				if events {
					for _, l := range ls[1:] {
						if f := strings.Fields(l); len(f) != 6 || !slices.Contains([]string{"ADDED", "MODIFIED", "DELETED"}, f[0]) {
							t.Fatalf("watch row %q: want EVENT NAME READY UP-TO-DATE AVAILABLE AGE\n%s", l, out.String())
						}
					}
				}
			})
		}
	}
}

// api-resources, categories, get all, explain, raw discovery and version, as against Kubernetes.
func TestKubectlDiscovery(t *testing.T) {
	s := startServer(t)
	type res struct{ short, namespaced, kind string }
	want := map[string]res{ // "name apiversion" -> what kubectl api-resources prints
		"configmaps v1":                                     {"cm", "true", "ConfigMap"},
		"endpoints v1":                                      {"ep", "true", "Endpoints"},
		"events v1":                                         {"ev", "true", "Event"},
		"limitranges v1":                                    {"limits", "true", "LimitRange"},
		"namespaces v1":                                     {"ns", "false", "Namespace"},
		"nodes v1":                                          {"no", "false", "Node"},
		"persistentvolumeclaims v1":                         {"pvc", "true", "PersistentVolumeClaim"},
		"persistentvolumes v1":                              {"pv", "false", "PersistentVolume"},
		"pods v1":                                           {"po", "true", "Pod"},
		"podtemplates v1":                                   {"", "true", "PodTemplate"},
		"replicationcontrollers v1":                         {"rc", "true", "ReplicationController"},
		"resourcequotas v1":                                 {"quota", "true", "ResourceQuota"},
		"secrets v1":                                        {"", "true", "Secret"},
		"serviceaccounts v1":                                {"sa", "true", "ServiceAccount"},
		"services v1":                                       {"svc", "true", "Service"},
		"controllerrevisions apps/v1":                       {"", "true", "ControllerRevision"},
		"daemonsets apps/v1":                                {"ds", "true", "DaemonSet"},
		"deployments apps/v1":                               {"deploy", "true", "Deployment"},
		"replicasets apps/v1":                               {"rs", "true", "ReplicaSet"},
		"statefulsets apps/v1":                              {"sts", "true", "StatefulSet"},
		"horizontalpodautoscalers autoscaling/v2":           {"hpa", "true", "HorizontalPodAutoscaler"},
		"cronjobs batch/v1":                                 {"cj", "true", "CronJob"},
		"jobs batch/v1":                                     {"", "true", "Job"},
		"leases coordination.k8s.io/v1":                     {"", "true", "Lease"},
		"endpointslices discovery.k8s.io/v1":                {"", "true", "EndpointSlice"},
		"events events.k8s.io/v1":                           {"ev", "true", "Event"},
		"ingressclasses networking.k8s.io/v1":               {"", "false", "IngressClass"},
		"ingresses networking.k8s.io/v1":                    {"ing", "true", "Ingress"},
		"networkpolicies networking.k8s.io/v1":              {"netpol", "true", "NetworkPolicy"},
		"poddisruptionbudgets policy/v1":                    {"pdb", "true", "PodDisruptionBudget"},
		"clusterrolebindings rbac.authorization.k8s.io/v1":  {"", "false", "ClusterRoleBinding"},
		"clusterroles rbac.authorization.k8s.io/v1":         {"", "false", "ClusterRole"},
		"rolebindings rbac.authorization.k8s.io/v1":         {"", "true", "RoleBinding"},
		"roles rbac.authorization.k8s.io/v1":                {"", "true", "Role"},
		"storageclasses storage.k8s.io/v1":                  {"sc", "false", "StorageClass"},
		"priorityclasses scheduling.k8s.io/v1":              {"pc", "false", "PriorityClass"},
		"customresourcedefinitions apiextensions.k8s.io/v1": {"crd,crds", "false", "CustomResourceDefinition"},
		"certificatesigningrequests certificates.k8s.io/v1": {"csr", "false", "CertificateSigningRequest"},
		"selfsubjectreviews authentication.k8s.io/v1":       {"", "false", "SelfSubjectReview"},
		"tokenreviews authentication.k8s.io/v1":             {"", "false", "TokenReview"},
		"localsubjectaccessreviews authorization.k8s.io/v1": {"", "true", "LocalSubjectAccessReview"},
		"selfsubjectaccessreviews authorization.k8s.io/v1":  {"", "false", "SelfSubjectAccessReview"},
		"selfsubjectrulesreviews authorization.k8s.io/v1":   {"", "false", "SelfSubjectRulesReview"},
		"subjectaccessreviews authorization.k8s.io/v1":      {"", "false", "SubjectAccessReview"},
	}
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)

			t.Run("api-resources", func(t *testing.T) {
				k := k.forTest(t)
				out := k.run("api-resources")
				wantHeader(t, out, []string{"NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"})
				got := map[string]res{}
				for _, r := range parseTable(out) {
					got[r["NAME"]+" "+r["APIVERSION"]] = res{r["SHORTNAMES"], r["NAMESPACED"], r["KIND"]}
				}
				for key, w := range want {
					if g, ok := got[key]; !ok || g != w {
						t.Errorf("api-resources %s: got %+v (listed: %v), want %+v", key, g, ok, w)
					}
				}
				// Verbs as Kubernetes lists them.
				wide := parseTable(k.run("api-resources", "-o", "wide", "--api-group="))
				for _, r := range wide {
					if _, ok := want[r["NAME"]+" v1"]; !ok {
						continue
					}
					wantVerbs := "create,delete,deletecollection,get,list,patch,update,watch"
					if r["NAME"] == "namespaces" {
						wantVerbs = "create,delete,get,list,patch,update,watch"
					}
					if r["VERBS"] != wantVerbs {
						t.Errorf("api-resources -o wide %s: VERBS %q, want %q", r["NAME"], r["VERBS"], wantVerbs)
					}
				}
				// The "all" category is what `kubectl get all` shows.
				all := strings.Fields(k.run("api-resources", "--categories=all", "-o", "name"))
				sort.Strings(all)
				wantAll := []string{"cronjobs.batch", "daemonsets.apps", "deployments.apps", "horizontalpodautoscalers.autoscaling", "jobs.batch", "pods", "replicasets.apps", "replicationcontrollers", "services", "statefulsets.apps"}
				if !slices.Equal(all, wantAll) {
					t.Errorf("api-resources --categories=all: got %q, want %q", all, wantAll)
				}
				if got := k.run("api-resources", "--api-group=authorization.k8s.io", "--verbs=get", "-o", "name"); got != "" {
					t.Errorf("reviews are create-only, but these list get: %q", got)
				}
				if got := k.run("api-resources", "--namespaced=false", "--api-group=storage.k8s.io", "-o", "name"); got != "storageclasses.storage.k8s.io\n" {
					t.Errorf("api-resources --namespaced=false --api-group=storage.k8s.io: got %q", got)
				}
			})

			t.Run("get all", func(t *testing.T) {
				k := k.forTest(t)
				ns := "all-" + k.name
				k.run("create", "namespace", ns)
				args := []string{"apply", "-n", ns}
				for _, f := range []string{"pod", "service", "deployment", "replicaset", "statefulset", "daemonset", "job", "cronjob", "horizontalpodautoscaler", "replicationcontroller", "configmap", "secret", "role"} {
					args = append(args, "-f", filepath.Join("testdata", f+".yaml"))
				}
				k.run(args...)
				out := k.run("get", "all", "-n", ns)
				// One table per resource, separated by blank lines, rows named type/name.
				headers := map[string][]string{
					"pod/web":                                 {"NAME", "READY", "STATUS", "RESTARTS", "AGE"},
					"service/web":                             {"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"},
					"replicationcontroller/legacy-web":        {"NAME", "DESIRED", "CURRENT", "READY", "AGE"},
					"daemonset.apps/node-exporter":            {"NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"},
					"deployment.apps/web":                     {"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"},
					"replicaset.apps/frontend":                {"NAME", "DESIRED", "CURRENT", "READY", "AGE"},
					"statefulset.apps/db":                     {"NAME", "READY", "AGE"},
					"horizontalpodautoscaler.autoscaling/web": {"NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"},
					"cronjob.batch/nightly-backup":            {"NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"},
					"job.batch/pi":                            {"NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"},
				}
				seen := map[string]bool{}
				for _, block := range strings.Split(strings.TrimSpace(out), "\n\n") {
					for _, r := range tableRows(block) {
						name := strings.Fields(r)[0]
						if strings.HasPrefix(name, "configmap/") || strings.HasPrefix(name, "secret/") || strings.HasPrefix(name, "role.") {
							t.Errorf("get all lists %s, which is not in the \"all\" category", name)
						}
						if h, ok := headers[name]; ok {
							seen[name] = true
							if got := tableHeader(block); !reflect.DeepEqual(got, h) {
								t.Errorf("get all: %s table header %q, want %q", name, got, h)
							}
						}
					}
				}
				for name := range headers {
					if !seen[name] {
						t.Errorf("get all: no row %s in:\n%s", name, out)
					}
				}
			})

			t.Run("explain", func(t *testing.T) {
				k := k.forTest(t)
				for _, tc := range []struct {
					args  []string
					wants []string
				}{
					{[]string{"pods.spec.containers.image"}, []string{"KIND:       Pod\nVERSION:    v1\n\nFIELD: image <string>\n", "DESCRIPTION:\n    Container image name."}},
					{[]string{"deployments.spec.strategy"}, []string{"GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: strategy <DeploymentStrategy>\n", "FIELDS:\n  rollingUpdate\t<RollingUpdateDeployment>\n", "  type\t<string>\n  enum: Recreate, RollingUpdate\n"}},
					{[]string{"cronjobs.spec"}, []string{"GROUP:      batch\nKIND:       CronJob\nVERSION:    v1\n\nFIELD: spec <CronJobSpec>\n", "  jobTemplate\t<JobTemplateSpec> -required-\n", "  schedule\t<string> -required-\n", "  timeZone\t<string>\n"}},
					{[]string{"svc"}, []string{"KIND:       Service\nVERSION:    v1\n", "FIELDS:\n  apiVersion\t<string>\n", "  spec\t<ServiceSpec>\n", "  status\t<ServiceStatus>\n"}},
					{[]string{"hpa.spec.metrics.resource.target"}, []string{"GROUP:      autoscaling\nKIND:       HorizontalPodAutoscaler\nVERSION:    v2\n", "FIELD: target <MetricTarget>\n", "  averageUtilization\t<integer>\n"}},
					{[]string{"ingresses.spec.rules.http.paths.pathType"}, []string{"GROUP:      networking.k8s.io\nKIND:       Ingress\nVERSION:    v1\n", "FIELD: pathType <string>\nENUM:\n    Exact\n    ImplementationSpecific\n    Prefix\n"}},
				} {
					mustContain(t, k.run(append([]string{"explain"}, tc.args...)...), tc.wants...)
				}
				errOut := k.mustFail("", "explain", "pods.spec.bogus")
				mustContain(t, errOut, `error: field "bogus" does not exist`)
				errOut = k.mustFail("", "explain", "nosuchthings")
				mustContain(t, errOut, `the server doesn't have a resource type "nosuchthings"`)
			})

			t.Run("raw discovery", func(t *testing.T) {
				k := k.forTest(t)
				var groups struct {
					Kind   string
					Groups []struct {
						Name      string
						Versions  []struct{ GroupVersion, Version string }
						Preferred struct{ GroupVersion string } `json:"preferredVersion"`
					}
				}
				if err := json.Unmarshal([]byte(k.run("get", "--raw", "/apis")), &groups); err != nil {
					t.Fatal(err)
				}
				if groups.Kind != "APIGroupList" {
					t.Fatalf("/apis kind %q", groups.Kind)
				}
				gotGroups := map[string]string{}
				for _, g := range groups.Groups {
					var vs []string
					for _, v := range g.Versions {
						vs = append(vs, v.GroupVersion)
					}
					gotGroups[g.Name] = g.Preferred.GroupVersion + " " + strings.Join(vs, ",")
				}
				for name, w := range map[string]string{
					"apps": "apps/v1 apps/v1", "batch": "batch/v1 batch/v1", "autoscaling": "autoscaling/v2 autoscaling/v2,autoscaling/v1",
					"coordination.k8s.io": "coordination.k8s.io/v1 coordination.k8s.io/v1", "discovery.k8s.io": "discovery.k8s.io/v1 discovery.k8s.io/v1",
					"events.k8s.io": "events.k8s.io/v1 events.k8s.io/v1", "networking.k8s.io": "networking.k8s.io/v1 networking.k8s.io/v1",
					"policy": "policy/v1 policy/v1", "rbac.authorization.k8s.io": "rbac.authorization.k8s.io/v1 rbac.authorization.k8s.io/v1",
					"storage.k8s.io": "storage.k8s.io/v1 storage.k8s.io/v1",
				} {
					if gotGroups[name] != w {
						t.Errorf("/apis group %s: preferred and versions %q, want %q", name, gotGroups[name], w)
					}
				}
				var versions struct {
					Kind     string
					Versions []string
				}
				if err := json.Unmarshal([]byte(k.run("get", "--raw", "/api")), &versions); err != nil || versions.Kind != "APIVersions" || !slices.Equal(versions.Versions, []string{"v1"}) {
					t.Errorf("/api: %+v %v", versions, err)
				}
				type apiResource struct {
					Name, Kind, Group, Version string
					Namespaced                 bool
					Verbs, ShortNames          []string
					Categories                 []string
				}
				list := func(path string) map[string]apiResource {
					var l struct {
						Kind, GroupVersion string
						Resources          []apiResource
					}
					if err := json.Unmarshal([]byte(k.run("get", "--raw", path)), &l); err != nil {
						t.Fatal(err)
					}
					if l.Kind != "APIResourceList" || l.GroupVersion != strings.TrimPrefix(strings.TrimPrefix(path, "/apis/"), "/api/") {
						t.Fatalf("%s: kind %q groupVersion %q", path, l.Kind, l.GroupVersion)
					}
					m := map[string]apiResource{}
					for _, r := range l.Resources {
						m[r.Name] = r
					}
					return m
				}
				all := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
				core := list("/api/v1")
				if p := core["pods"]; p.Kind != "Pod" || !p.Namespaced || !slices.Equal(p.Verbs, all) || !slices.Equal(p.ShortNames, []string{"po"}) || !slices.Equal(p.Categories, []string{"all"}) {
					t.Errorf("/api/v1 pods: %+v", p)
				}
				if n := core["namespaces"]; n.Namespaced || !slices.Equal(n.ShortNames, []string{"ns"}) {
					t.Errorf("/api/v1 namespaces: %+v", n)
				}
				for _, sub := range []string{"pods/status", "pods/binding", "pods/eviction", "replicationcontrollers/scale", "namespaces/finalize", "serviceaccounts/token"} {
					if _, ok := core[sub]; !ok {
						t.Errorf("/api/v1 lacks %s", sub)
					}
				}
				apps := list("/apis/apps/v1")
				for _, sub := range []string{"deployments/scale", "replicasets/scale", "statefulsets/scale"} {
					if sc := apps[sub]; sc.Kind != "Scale" || sc.Group != "autoscaling" || sc.Version != "v1" || !slices.Equal(sc.Verbs, []string{"get", "patch", "update"}) {
						t.Errorf("/apis/apps/v1 %s: %+v (want Scale autoscaling/v1, get,patch,update)", sub, sc)
					}
				}
				if d := apps["deployments"]; !slices.Equal(d.ShortNames, []string{"deploy"}) || !slices.Equal(d.Categories, []string{"all"}) {
					t.Errorf("/apis/apps/v1 deployments: %+v", d)
				}
				errOut := k.mustFail("", "get", "--raw", "/apis/nosuch.example.com/v1")
				mustContain(t, errOut, "Error from server (NotFound): the server could not find the requested resource")
			})

			t.Run("version", func(t *testing.T) {
				k := k.forTest(t)
				var v struct {
					ClientVersion, ServerVersion *struct {
						Major, Minor, GitVersion, GoVersion, Platform string
					}
				}
				out, errOut, err := k.try("", "version", "-o", "json")
				if jerr := json.Unmarshal([]byte(out), &v); jerr != nil {
					t.Fatalf("version -o json: %v %v\n%s\n%s", err, jerr, out, errOut)
				}
				var clientBug string
				if err != nil {
					// `go build` without the Makefile's -ldflags leaves the embedded kubectl without a
					// version; kubectl then refuses to compare it with the server's.
					if k.name == "skiff-kubectl" && strings.Contains(errOut, `client version error: could not parse pre-release/metadata (-master+$Format:%H$) in version "v0.0.0-master+$Format:%H$"`) {
						clientBug = strings.TrimSpace(errOut)
					} else {
						t.Fatalf("version -o json: %v\n%s", err, errOut)
					}
				}
				sv := v.ServerVersion
				if v.ClientVersion == nil || sv == nil {
					t.Fatalf("version -o json: %+v", v)
				}
				if sv.Major != "1" || !regexp.MustCompile(`^[0-9]+\+?$`).MatchString(sv.Minor) ||
					!strings.HasPrefix(sv.GitVersion, "v1."+strings.TrimSuffix(sv.Minor, "+")+".") ||
					!strings.HasPrefix(sv.GoVersion, "go") || sv.Platform != runtime.GOOS+"/"+runtime.GOARCH {
					t.Fatalf("serverVersion: %+v", *sv)
				}
				var raw struct{ Major, GitVersion string }
				if err := json.Unmarshal([]byte(k.run("get", "--raw", "/version")), &raw); err != nil || raw.Major != "1" || raw.GitVersion != sv.GitVersion {
					t.Fatalf("/version: %+v %v", raw, err)
				}
				if clientBug != "" {
					t.Skipf("skiff kubectl is not version-stamped (bin/skiff built without `make build`), so `skiff kubectl version` exits 1: %s", clientBug)
				}
				mustContain(t, k.run("version"), "Client Version: v1.", "Server Version: "+sv.GitVersion+"\n")
			})
		})
	}
}

// A request body over 3 MiB is refused before decoding, as by Kubernetes' apiserver.
func TestKubectlRequestTooLarge(t *testing.T) {
	s := startServer(t)
	huge := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge\ndata:\n  blob: " + strings.Repeat("x", 3<<20+512<<10) + "\n"
	big := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: " + strings.Repeat("x", 1<<20+100) + "\n"
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			ns := "large-" + k.name
			k.run("create", "namespace", ns)
			errOut := k.mustFail(huge, "create", "-n", ns, "-f", "-")
			mustContain(t, errOut, `Error from server (RequestEntityTooLarge): error when creating "STDIN": Request entity too large: limit is 3145728`)
			file := writeTemp(t, t.TempDir(), "huge.yaml", huge)
			errOut = k.mustFail("", "apply", "-n", ns, "-f", file)
			mustContain(t, errOut, fmt.Sprintf(`Error from server (RequestEntityTooLarge): error when creating %q: Request entity too large: limit is 3145728`, file))
			// Under the request limit, over a ConfigMap's 1 MiB: validation refuses it.
			errOut = k.mustFail(big, "create", "-n", ns, "-f", "-")
			mustContain(t, errOut, `The ConfigMap "big" is invalid: []: Too long: `, "1048576 bytes")
			if out := k.run("get", "configmaps", "-n", ns, "-o", "name"); strings.Contains(out, "huge") || strings.Contains(out, "big") {
				t.Fatalf("refused requests stored objects: %s", out)
			}
		})
	}
}

// Field selectors: the supported ones filter; unsupported ones get Kubernetes' error.
func TestKubectlFieldSelectors(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			ns := "fields-" + k.name
			k.run("create", "namespace", ns)
			k.run("apply", "-n", ns, "-f", filepath.Join("testdata", "pod.yaml"), "-f", filepath.Join("testdata", "ingress.yaml"), "-f", filepath.Join("testdata", "secret.yaml"))
			// A suspended job: it has no successful pod whether or not a job controller runs.
			job, err := os.ReadFile(filepath.Join("testdata", "job.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			k.stdin(strings.Replace(string(job), "\nspec:\n", "\nspec:\n  suspend: true\n", 1), "apply", "-n", ns, "-f", "-")
			k.run("wait", "-n", ns, "pod/web", "--for=jsonpath={.status.phase}=Pending")

			out, errOut, err := k.try("", "get", "pods", "-n", ns, "--field-selector", "status.phase=Running")
			if err != nil || out != "" || errOut != fmt.Sprintf("No resources found in %s namespace.\n", ns) {
				t.Fatalf("--field-selector status.phase=Running: err=%v stdout=%q stderr=%q", err, out, errOut)
			}
			for _, tc := range []struct{ resource, selector, want string }{
				{"pods", "status.phase=Pending", "pod/web\n"},
				{"pods", "status.phase!=Running,spec.restartPolicy=Always", "pod/web\n"},
				{"pods", "spec.nodeName=", "pod/web\n"},
				{"pods", "metadata.name=web", "pod/web\n"},
				{"pods", "metadata.name!=web", ""},
				{"pods", "spec.schedulerName=default-scheduler", "pod/web\n"},
				{"pods", "spec.serviceAccountName=default", "pod/web\n"},
				{"jobs", "status.successful=0", "job.batch/pi\n"},
				{"secrets", "type=Opaque", "secret/db-credentials\n"},
				{"secrets", "type=kubernetes.io/tls", ""},
				{"ingresses", "metadata.namespace=" + ns, "ingress.networking.k8s.io/web\n"},
			} {
				if got := k.run("get", tc.resource, "-n", ns, "--field-selector", tc.selector, "-o", "name"); got != tc.want {
					t.Errorf("get %s --field-selector %s: got %q, want %q", tc.resource, tc.selector, got, tc.want)
				}
			}
			if got := k.run("get", "namespaces", "--field-selector", "metadata.name="+ns+",status.phase=Active", "-o", "name"); got != "namespace/"+ns+"\n" {
				t.Errorf("namespaces --field-selector status.phase=Active: got %q", got)
			}

			// Unsupported field labels: kubectl prefixes the server's message.
			for _, tc := range []struct{ resource, selector, gvr, msg, bug string }{
				{"pods", "foo=bar", "/v1, Resource=pods", "field label not supported: foo", ""},
				{"jobs", "foo=bar", "batch/v1, Resource=jobs", `field label "foo" not supported for batchv1.Job`, "field label not supported: foo"},
				{"ingresses", "foo.bar=baz", "networking.k8s.io/v1, Resource=ingresses", `"foo.bar" is not a known field selector: only "metadata.name", "metadata.namespace"`, "field label not supported: foo.bar"},
			} {
				t.Run(tc.resource, func(t *testing.T) {
					k := k.forTest(t)
					errOut := k.mustFail("", "get", tc.resource, "-n", ns, "--field-selector", tc.selector)
					prefix := fmt.Sprintf(`Error from server (BadRequest): Unable to find %q that match label selector "", field selector %q: `, tc.gvr, tc.selector)
					if want := prefix + tc.msg + "\n"; errOut != want {
						if tc.bug != "" && errOut == prefix+tc.bug+"\n" {
							t.Skipf("server bug: get %s --field-selector %s says %q; Kubernetes says %q", tc.resource, tc.selector, tc.bug, tc.msg)
						}
						t.Fatalf("get %s --field-selector %s:\n got  %q\n want %q", tc.resource, tc.selector, errOut, want)
					}
				})
			}
		})
	}
}
