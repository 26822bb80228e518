package apiserver

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/storage"
)

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	obj := ep.res.New()
	if err := ep.store.Get(r.Context(), ep.key(info.Namespace, info.Name), obj); err != nil {
		writeError(w, r, err, ep.res.GroupResource(), info.Name)
		return
	}
	s.writeObject(w, r, ep, http.StatusOK, obj)
}

// listOptions parses the list and watch query parameters.
func (s *Server) listOptions(r *http.Request, ep *endpoint) (storage.ListOptions, error) {
	q := r.URL.Query()
	opts := storage.ListOptions{
		ResourceVersion:      q.Get("resourceVersion"),
		ResourceVersionMatch: q.Get("resourceVersionMatch"),
		Recursive:            true,
		AllowBookmarks:       q.Get("allowWatchBookmarks") == "true",
	}
	if v := q.Get("sendInitialEvents"); v != "" {
		b := v == "true"
		opts.SendInitialEvents = &b
	}
	pred := storage.SelectionPredicate{GetAttrs: attrsFunc(ep.res)}
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return opts, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	pred.Label = ls
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	supported := ep.fields
	for _, req := range fs.Requirements() {
		if !supported[req.Field] {
			return opts, apierrors.NewBadRequest(unsupportedFieldMessage(ep, req.Field))
		}
	}
	pred.Field = fs
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid limit %q", v))
		}
		pred.Limit = n
	}
	pred.Continue = q.Get("continue")
	if pred.Continue != "" && opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
		return opts, apierrors.NewBadRequest("specifying resource version is not allowed when using continue")
	}
	switch opts.ResourceVersionMatch {
	case "", "NotOlderThan", "Exact":
	default:
		return opts, apierrors.NewBadRequest(fmt.Sprintf("resourceVersionMatch: Unsupported value: %q", opts.ResourceVersionMatch))
	}
	if opts.ResourceVersion != "" {
		if _, err := strconv.ParseUint(opts.ResourceVersion, 10, 64); err != nil {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("resourceVersion: Invalid value: %q: must be a valid resource version", opts.ResourceVersion))
		}
	}
	opts.Predicate = pred
	return opts, nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	opts, err := s.listOptions(r, ep)
	if err != nil {
		writeError(w, r, err, ep.res.GroupResource(), "")
		return
	}
	list := ep.res.NewList()
	if err := ep.store.GetList(r.Context(), ep.listPrefix(info.Namespace), opts, list); err != nil {
		writeError(w, r, err, ep.res.GroupResource(), "")
		return
	}
	list.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersion().WithKind(ep.res.ListKind))
	s.writeObject(w, r, ep, http.StatusOK, list)
}

func storageListAll() storage.ListOptions {
	return storage.ListOptions{ResourceVersion: "", Recursive: true}
}

// unsupportedFieldMessage words a refused field selector as Kubernetes does: core resources
// with their own selectable fields, other groups' ones, and resources with only metadata.
func unsupportedFieldMessage(ep *endpoint, label string) string {
	res := ep.res
	if res.Fields == nil {
		only := `"metadata.name"`
		if res.Namespaced {
			only += `, "metadata.namespace"`
		}
		return fmt.Sprintf("%q is not a known field selector: only %s", label, only)
	}
	if res.Group == "" {
		return fmt.Sprintf("field label not supported: %s", label)
	}
	return fmt.Sprintf("field label %q not supported for %s%s.%s", label, strings.Split(res.Group, ".")[0], res.Version, res.Kind)
}
