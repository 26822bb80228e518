package apiserver

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/registry"
)

// MaxRequestBodyBytes is Kubernetes' limit on request bodies (3 MiB).
const MaxRequestBodyBytes = 3 * 1024 * 1024

// readBody reads a request body up to the limit; a larger one answers 413.
func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if len(data) > MaxRequestBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", MaxRequestBodyBytes))
	}
	return data, nil
}

// toJSON converts a YAML body to JSON; JSON bodies pass through.
func toJSON(contentType string, data []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/yaml" || mt == "application/apply-patch+yaml" {
		j, err := yaml.YAMLToJSONStrict(data)
		if err != nil {
			return nil, err
		}
		return j, nil
	}
	return data, nil
}

// fieldValidation is the directive of the fieldValidation query parameter.
type fieldValidation string

const (
	validationStrict fieldValidation = "Strict"
	validationWarn   fieldValidation = "Warn"
	validationIgnore fieldValidation = "Ignore"
)

func parseFieldValidation(r *http.Request) (fieldValidation, error) {
	v := r.URL.Query().Get("fieldValidation")
	switch v {
	case "":
		return validationWarn, nil
	case "Strict", "Warn", "Ignore":
		return fieldValidation(v), nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation parameter unsupported: %v", v))
}

// decodeInto decodes a JSON document into obj, a new object of res. Unknown and duplicate
// fields are reported as fieldValidation asks: an error, warnings, or nothing.
func decodeInto(data []byte, obj runtime.Object, res *registry.Resource, fv fieldValidation) ([]string, error) {
	gvk := res.GroupVersionKind()
	var tm metav1.TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
	}
	if tm.APIVersion != "" && tm.APIVersion != gvk.GroupVersion().String() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", tm.APIVersion, gvk.GroupVersion().String()))
	}
	if tm.Kind != "" && tm.Kind != gvk.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", tm.Kind, gvk.Kind))
	}
	var msgs []string
	if u, ok := obj.(*unstructured.Unstructured); ok {
		// A custom resource: any JSON object, then cut to its schema.
		var m map[string]interface{}
		strictErrs, err := sigsjson.UnmarshalStrict(data, &m, sigsjson.DisallowDuplicateFields)
		if err != nil || m == nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
		}
		u.Object = m
		for _, e := range strictErrs {
			msgs = append(msgs, e.Error())
		}
		if res.Prune != nil {
			for _, p := range res.Prune(u) {
				msgs = append(msgs, fmt.Sprintf("unknown field %q", p))
			}
		}
	} else {
		strictErrs, err := sigsjson.UnmarshalStrict(data, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
		}
		for _, e := range strictErrs {
			msgs = append(msgs, e.Error())
		}
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if len(msgs) == 0 || fv == validationIgnore {
		return nil, nil
	}
	if fv == validationStrict {
		return nil, apierrors.NewBadRequest("strict decoding error: " + strings.Join(msgs, ", "))
	}
	return msgs, nil
}

// addWarnings sets Warning headers the way kubectl prints them ("Warning: ...").
func addWarnings(w http.ResponseWriter, warnings []string) {
	for _, m := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", m))
	}
}

// protobufType is Kubernetes' protobuf media type, which client-go sends for built-in types.
const protobufType = "application/vnd.kubernetes.protobuf"

var protoCodec = protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)

// decodeRequest decodes a request body in JSON, YAML or protobuf into obj, a new object of res.
func decodeRequest(r *http.Request, body []byte, obj runtime.Object, res *registry.Resource, fv fieldValidation) ([]string, error) {
	gvk := res.GroupVersionKind()
	ct := r.Header.Get("Content-Type")
	if mediaType(ct) == protobufType {
		out, actual, err := protoCodec.Decode(body, &gvk, obj)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
		}
		if out != obj {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v", gvk.Kind, actual))
		}
		obj.GetObjectKind().SetGroupVersionKind(gvk)
		return nil, nil
	}
	data, err := toJSON(ct, body)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error converting YAML to JSON: %v", err))
	}
	return decodeInto(data, obj, res, fv)
}

// decodeLoose decodes an options-like body (DeleteOptions, Binding, Eviction) without field
// validation.
func decodeLoose(r *http.Request, body []byte, obj runtime.Object, gvk schema.GroupVersionKind) error {
	if mediaType(r.Header.Get("Content-Type")) == protobufType {
		if _, _, err := protoCodec.Decode(body, &gvk, obj); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("decode %s: %v", gvk.Kind, err))
		}
		return nil
	}
	data, err := toJSON(r.Header.Get("Content-Type"), body)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	if err := json.Unmarshal(data, obj); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("decode %s: %v", gvk.Kind, err))
	}
	return nil
}
