package openapi

import (
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// The query parameters Kubernetes declares on its operations. Clients read
// them: kubectl only sends fieldValidation=Strict after finding the
// parameter on the kind's PATCH operation, so the write operations must
// declare fieldValidation (and dryRun/fieldManager, which kubectl's
// --dry-run=server and --field-manager rely on the server honouring).
// Descriptions are ours; names and types follow the Kubernetes API.

func queryParam(name, typ, description string) spec.Parameter {
	return spec.Parameter{
		SimpleSchema: spec.SimpleSchema{Type: typ},
		ParamProps:   spec.ParamProps{Name: name, In: "query", Description: description},
	}
}

func pathParam(name, description string) spec.Parameter {
	return spec.Parameter{
		SimpleSchema: spec.SimpleSchema{Type: "string"},
		ParamProps:   spec.ParamProps{Name: name, In: "path", Required: true, Description: description},
	}
}

// bodyParam is the request body of a v2 operation. It must be named "body":
// that is what kube-openapi's v2→v3 conversion turns into a requestBody.
func bodyParam(model string, required bool) spec.Parameter {
	return spec.Parameter{ParamProps: spec.ParamProps{
		Name:     "body",
		In:       "body",
		Required: required,
		Schema:   spec.RefSchema(v2RefPrefix + common.EscapeJsonPointer(model)),
	}}
}

var (
	paramNamespace = pathParam("namespace", "object name and auth scope, such as for teams and projects")
	paramPretty    = queryParam("pretty", "string", "If 'true', the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).")

	paramDryRun          = queryParam("dryRun", "string", "When present, the request is processed but nothing is persisted. The only valid value is 'All' (all dry-run stages are run); anything else is rejected.")
	paramFieldManager    = queryParam("fieldManager", "string", "Name of the actor or entity making these changes, recorded in managedFields. At most 128 printable characters. Required for apply patches (application/apply-patch+yaml), optional otherwise.")
	paramFieldValidation = queryParam("fieldValidation", "string", "How the server treats unknown or duplicate fields in the request body: 'Ignore' drops them silently, 'Warn' drops them and returns a warning for each, 'Strict' fails the request with a BadRequest listing them. Defaults to 'Warn'.")
	paramForce           = queryParam("force", "boolean", "Force an apply patch to take ownership of conflicting fields from other managers. Only valid for apply patches (application/apply-patch+yaml).")

	paramGracePeriod       = queryParam("gracePeriodSeconds", "integer", "Seconds to wait before the object is deleted; must be non-negative, zero means immediately. Unset uses the kind's default.")
	paramIgnoreStoreErrors = queryParam("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean", "If true, deletes an object whose stored data cannot be read (for instance cannot be decoded), skipping finalizers and other safety checks. Dangerous; requires the 'unsafe-delete-ignore-read-errors' permission.")
	paramOrphan            = queryParam("orphanDependents", "boolean", "Deprecated: use propagationPolicy. If true, dependents are orphaned; if false, they are deleted.")
	paramPropagation       = queryParam("propagationPolicy", "string", "Whether and how dependents are garbage collected: 'Orphan', 'Background' or 'Foreground'. Unset uses the finalizers already on the object, then the kind's default.")

	paramAllowBookmarks       = queryParam("allowWatchBookmarks", "boolean", "Ask a watch for BOOKMARK events, which carry only a resourceVersion. The server may send them at its discretion; ignored unless watching.")
	paramContinue             = queryParam("continue", "string", "The continue token of the previous page of a paginated list.")
	paramFieldSelector        = queryParam("fieldSelector", "string", "Restrict the returned objects by their fields. Defaults to everything.")
	paramLabelSelector        = queryParam("labelSelector", "string", "Restrict the returned objects by their labels. Defaults to everything.")
	paramLimit                = queryParam("limit", "integer", "Maximum number of items to return in one page; if more exist, the list's metadata.continue is set to fetch the rest.")
	paramResourceVersion      = queryParam("resourceVersion", "string", "Constrains which resource versions a list or watch may be served from; see resourceVersionMatch. Defaults to the most recent.")
	paramResourceVersionMatch = queryParam("resourceVersionMatch", "string", "How resourceVersion applies to a list: 'Exact' or 'NotOlderThan'. Only valid with resourceVersion set.")
	paramSendInitialEvents    = queryParam("sendInitialEvents", "boolean", "With watch=true, first send synthetic ADDED events for the current state, then a bookmark annotated with k8s.io/initial-events-end. Requires resourceVersionMatch=NotOlderThan.")
	paramTimeoutSeconds       = queryParam("timeoutSeconds", "integer", "Timeout for the list or watch call, regardless of activity.")
	paramWatch                = queryParam("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update and remove notifications.")
)

// writeParams are declared by create, update and patch requests.
var writeParams = []spec.Parameter{paramDryRun, paramFieldManager, paramFieldValidation}

// patchParams add force for server-side apply.
var patchParams = []spec.Parameter{paramDryRun, paramFieldManager, paramFieldValidation, paramForce}

var deleteParams = []spec.Parameter{paramDryRun, paramGracePeriod, paramIgnoreStoreErrors, paramOrphan, paramPropagation}

// listParams are the list/watch options of a collection read.
var listParams = []spec.Parameter{
	paramAllowBookmarks, paramContinue, paramFieldSelector, paramLabelSelector, paramLimit,
	paramResourceVersion, paramResourceVersionMatch, paramSendInitialEvents, paramTimeoutSeconds, paramWatch,
}

// deleteCollectionParams combine delete options with the list options that
// pick what is deleted (no watch/bookmarks: deletecollection does not stream).
var deleteCollectionParams = []spec.Parameter{
	paramContinue, paramDryRun, paramFieldSelector, paramGracePeriod, paramIgnoreStoreErrors,
	paramLabelSelector, paramLimit, paramOrphan, paramPropagation, paramResourceVersion,
	paramResourceVersionMatch, paramSendInitialEvents, paramTimeoutSeconds,
}

// logParams are the PodLogOptions of pods/log.
var logParams = []spec.Parameter{
	queryParam("container", "string", "The container to stream logs of. Defaults to the only container if there is one."),
	queryParam("follow", "boolean", "Follow the log stream of the pod."),
	queryParam("insecureSkipTLSVerifyBackend", "boolean", "Do not verify the serving certificate of the node's log endpoint."),
	queryParam("limitBytes", "integer", "Stop after this many bytes of log output."),
	queryParam("previous", "boolean", "Return the logs of the previous, terminated instance of the container."),
	queryParam("sinceSeconds", "integer", "Only return logs newer than this many seconds before now."),
	queryParam("stream", "string", "Which stream to return: 'All', 'Stdout' or 'Stderr'. Defaults to 'All'."),
	queryParam("tailLines", "integer", "Return only this many lines from the end of the log."),
	queryParam("timestamps", "boolean", "Prefix every line with an RFC3339 timestamp."),
}

// Media types of request and response bodies.
var (
	mediaAny     = []string{"*/*"}
	mediaObjects = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	mediaLists   = []string{
		"application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
		"application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch",
	}
	mediaWatch = []string{
		"application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
		"application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch",
	}
	// mediaPatch lists the patch formats. kubectl apply (client-side)
	// computes a strategic merge patch from the v3 schema only when the
	// PATCH request body offers application/strategic-merge-patch+json.
	mediaPatch = []string{
		"application/json-patch+json", "application/merge-patch+json",
		"application/strategic-merge-patch+json", "application/apply-patch+yaml",
	}
	// mediaPatchCustom is what custom resources accept: no strategic merge patch, so that
	// kubectl apply sends them a merge patch, as Kubernetes declares them.
	mediaPatchCustom = []string{
		"application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml",
	}
	mediaText = []string{"text/plain", "application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
)
