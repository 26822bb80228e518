package e2e

import (
	"strings"
	"testing"
)

func crdManifest(group string) string {
	return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.` + group + `
spec:
  group: ` + group + `
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
              replicas: {type: integer, default: 1, minimum: 0}
          status:
            type: object
            properties:
              replicas: {type: integer}
`
}

// The CustomResourceDefinition walkthrough of the Kubernetes documentation with kubectl:
// create the definition, wait for it, create, list, change and scale custom objects (printer
// columns, defaults, validation), then delete the definition and with it its objects.
func TestKubectlCustomResources(t *testing.T) {
	s := startServer(t)
	for _, k := range s.kubectls() {
		t.Run(k.name, func(t *testing.T) {
			k := k.forTest(t)
			group := k.shortName() + ".stable.example.com"
			crd := "crontabs." + group
			mustContain(t, k.stdin(crdManifest(group), "apply", "-f", "-"), "customresourcedefinition.apiextensions.k8s.io/"+crd+" created")
			mustContain(t, k.run("wait", "--for=condition=Established", "crd/"+crd, "--timeout=30s"), "condition met")
			mustContain(t, k.run("get", "crd", crd), "NAME", "CREATED AT", crd)
			mustContain(t, k.run("api-resources", "--api-group="+group), "crontabs", "ct", group+"/v1", "true", "CronTab")

			obj := func(spec string) string {
				return "apiVersion: " + group + "/v1\nkind: CronTab\nmetadata: {name: my-cron}\nspec: " + spec + "\n"
			}
			mustContain(t, k.stdin(obj(`{cronSpec: "* * * * */5", image: my-image}`), "apply", "-f", "-"), "crontab."+group+"/my-cron created")
			out := k.run("get", "crontabs."+group)
			wantHeader(t, out, []string{"NAME", "SPEC", "REPLICAS", "AGE"})
			mustContain(t, out, "my-cron", "* * * * */5", "1")
			mustContain(t, k.stdin(obj(`{cronSpec: "*/2 * * * *", image: my-image}`), "apply", "-f", "-"), "crontab."+group+"/my-cron configured")
			if got := k.run("get", "crontabs."+group, "my-cron", "-o", "jsonpath={.spec.cronSpec} {.metadata.generation}"); got != "*/2 * * * * 2" {
				t.Fatalf("after apply: %q", got)
			}
			errOut := k.mustFail(obj(`{cronSpec: "x", bogus: 1}`), "apply", "-f", "-")
			mustContain(t, errOut, `unknown field "spec.bogus"`)
			errOut = k.mustFail(obj(`{cronSpec: "x", replicas: -1}`), "apply", "-f", "-")
			mustContain(t, errOut, "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0")

			// The schema is published: kubectl explain reads it.
			mustContain(t, k.run("explain", "crontabs."+group+".spec"), "KIND:       CronTab", "FIELD: spec <Object>", "cronSpec\t<string>", "replicas\t<integer>")

			mustContain(t, k.run("scale", "crontabs."+group+"/my-cron", "--replicas=3"), "scaled")
			if got := k.run("get", "crontabs."+group, "my-cron", "-o", "jsonpath={.spec.replicas}"); got != "3" {
				t.Fatalf("after scale: %q", got)
			}
			mustContain(t, k.run("patch", "crontabs."+group, "my-cron", "--subresource=status", "--type=merge", "-p", `{"status":{"replicas":3}}`), "patched")

			mustContain(t, k.run("delete", "crd", crd), `"`+crd+`" deleted`)
			_, errOut, err := k.try("", "get", "crontabs."+group)
			if err == nil || !strings.Contains(errOut, "the server doesn't have a resource type") {
				t.Fatalf("after deleting the definition: err=%v stderr=%s", err, errOut)
			}
		})
	}
}
