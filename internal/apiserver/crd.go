package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/apiextensions"
	"github.com/skiff-sh/skiff/internal/registry/customresource"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/cacher"
	"github.com/skiff-sh/skiff/internal/storage/etcd3"
)

// Custom resources: the server follows its CustomResourceDefinitions and, for each one whose
// names do not clash, serves the versions it declares beside the built-in resources (with a
// store and watch cache of their own), marks it NamesAccepted and Established, and on deletion
// removes every custom resource before letting the definition go — what Kubernetes'
// apiextensions server and its controllers do.

// crdSyncedCheck is the /readyz check that waits for the definitions present at start.
const crdSyncedCheck = "crd-informer-synced"

// crdKey is the endpoint key of the definitions themselves.
const crdKey = "apiextensions.k8s.io/v1/customresourcedefinitions"

// customAPI holds the endpoints served for definitions.
type customAPI struct {
	mu         sync.RWMutex
	generation uint64               // moves whenever what is served changes
	endpoints  map[string]*endpoint // gvr key → endpoint
	defs       map[string]*servedDef
}

// servedDef is what one definition serves.
type servedDef struct {
	uid       string
	storage   string // storage version of the store below
	store     *cacher.Cacher
	stop      context.CancelFunc
	base      *endpoint // the storage version's, served or not
	prefix    string
	keys      []string
	resources []*registry.Resource
}

func (c *customAPI) lookup(key string) *endpoint {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.endpoints[key]
}

// CustomResources returns the custom resources served now and a generation that changes
// whenever they do (the OpenAPI handler rebuilds its documents on a change).
func (s *Server) CustomResources() (uint64, []*registry.Resource) {
	s.custom.mu.RLock()
	gen := s.custom.generation
	s.custom.mu.RUnlock()
	return gen, s.custom.resources()
}

func (c *customAPI) resources() []*registry.Resource {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := make([]string, 0, len(c.defs))
	for n := range c.defs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*registry.Resource
	for _, n := range names {
		out = append(out, c.defs[n].resources...)
	}
	return out
}

// isCustom reports whether res is a custom resource (its objects are unstructured).
func isCustom(res *registry.Resource) bool {
	_, ok := res.New().(*unstructured.Unstructured)
	return ok
}

// endpoint returns the endpoint of a built-in or custom resource.
func (s *Server) endpoint(group, version, resource string) *endpoint {
	key := gvrKey(group, version, resource)
	if ep := s.endpoints[key]; ep != nil {
		return ep
	}
	return s.custom.lookup(key)
}

// allResources lists the built-in resources, then the custom ones.
func (s *Server) allResources() []*registry.Resource {
	custom := s.custom.resources()
	if len(custom) == 0 {
		return s.resources
	}
	return append(append([]*registry.Resource{}, s.resources...), custom...)
}

// runCustomResources follows the definitions until ctx ends. /readyz waits for the
// definitions that exist at start to be served, as Kubernetes' crd-informer-synced check does.
func (s *Server) runCustomResources(ctx context.Context) {
	ep := s.endpoints[crdKey]
	if ep == nil {
		return
	}
	for ctx.Err() == nil {
		list := &apiextensionsv1.CustomResourceDefinitionList{}
		if err := ep.store.GetList(ctx, ep.prefix, storageListAll(), list); err != nil {
			s.log.Error("list custom resource definitions", "err", err)
			time.Sleep(time.Second)
			continue
		}
		f := &definitionFollower{s: s, terminating: map[string]*apiextensionsv1.CustomResourceDefinition{},
			refused: map[string]*apiextensionsv1.CustomResourceDefinition{}}
		for i := range list.Items {
			f.sync(ctx, &list.Items[i])
		}
		s.SetPending(crdSyncedCheck, false)
		w, err := ep.store.Watch(ctx, ep.prefix, storage.ListOptions{Recursive: true, ResourceVersion: list.ResourceVersion})
		if err != nil {
			s.log.Error("watch custom resource definitions", "err", err)
			time.Sleep(time.Second)
			continue
		}
		f.follow(ctx, w)
		w.Stop()
	}
}

// definitionFollower applies the definitions' changes. It keeps those being deleted, retried
// every second while their custom resources go, and those whose names clashed, retried when
// another definition goes.
type definitionFollower struct {
	s           *Server
	terminating map[string]*apiextensionsv1.CustomResourceDefinition
	refused     map[string]*apiextensionsv1.CustomResourceDefinition
}

func (f *definitionFollower) sync(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) {
	delete(f.terminating, crd.Name)
	delete(f.refused, crd.Name)
	if !f.s.syncDefinition(ctx, crd) {
		f.terminating[crd.Name] = crd
	}
	f.s.custom.mu.RLock()
	_, served := f.s.custom.defs[crd.Name]
	f.s.custom.mu.RUnlock()
	if !served && crd.DeletionTimestamp == nil {
		f.refused[crd.Name] = crd
	}
}

func (f *definitionFollower) follow(ctx context.Context, w watch.Interface) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for _, crd := range f.terminating {
				f.sync(ctx, crd)
			}
		case ev, ok := <-w.ResultChan():
			if !ok {
				return
			}
			crd, isCRD := ev.Object.(*apiextensionsv1.CustomResourceDefinition)
			if !isCRD {
				continue
			}
			if ev.Type != watch.Deleted {
				f.sync(ctx, crd)
				continue
			}
			delete(f.terminating, crd.Name)
			delete(f.refused, crd.Name)
			f.s.unserve(crd.Name)
			// Its names are free now: a definition refused for them may be served.
			for _, other := range f.refused {
				f.sync(ctx, other)
			}
		}
	}
}

// syncDefinition brings the served endpoints and the status of crd up to date; for a
// definition being deleted it reports false until its custom resources are gone.
func (s *Server) syncDefinition(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) bool {
	crd = crd.DeepCopy()
	accepted, conflict := s.namesAccepted(crd)
	if accepted {
		if err := s.serve(ctx, crd); err != nil {
			s.log.Error("serve custom resources", "crd", crd.Name, "err", err)
			conflict = err.Error()
			accepted = false
		}
	}
	if err := s.updateDefinitionStatus(ctx, crd.Name, accepted, conflict); err != nil && !apierrors.IsNotFound(err) {
		s.log.Error("update custom resource definition status", "crd", crd.Name, "err", err)
	}
	if crd.DeletionTimestamp == nil {
		return true
	}
	return s.cleanupDefinition(ctx, crd)
}

// namesAccepted reports whether crd's resource and kind names are free in its group: not
// served by a built-in resource nor by an older definition.
func (s *Server) namesAccepted(crd *apiextensionsv1.CustomResourceDefinition) (bool, string) {
	g, n := crd.Spec.Group, crd.Spec.Names
	for _, r := range s.resources {
		if r.Group == g && r.Resource == n.Plural {
			return false, fmt.Sprintf("%q is already in use", n.Plural)
		}
		if r.Group == g && r.Kind == n.Kind {
			return false, fmt.Sprintf("%q is already in use", n.Kind)
		}
	}
	s.custom.mu.RLock()
	defer s.custom.mu.RUnlock()
	for name, d := range s.custom.defs {
		if name == crd.Name || len(d.resources) == 0 {
			continue
		}
		r := d.resources[0]
		if r.Group == g && r.Kind == n.Kind {
			return false, fmt.Sprintf("%q is already in use", n.Kind)
		}
	}
	return true, ""
}

// serve installs or refreshes crd's endpoints. The store and watch cache are kept while the
// storage version stays.
func (s *Server) serve(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	view := crd.DeepCopy()
	view.Status.AcceptedNames = crd.Spec.Names
	resources, err := customresource.Resources(view)
	if err != nil {
		return err
	}
	storageVersion := customresource.StorageVersion(crd)
	var storageRes *registry.Resource
	for _, r := range resources {
		if r.Version == storageVersion {
			storageRes = r
		}
	}
	if storageRes == nil {
		return fmt.Errorf("no storage version")
	}
	s.custom.mu.RLock()
	prev := s.custom.defs[crd.Name]
	s.custom.mu.RUnlock()

	def := &servedDef{uid: string(crd.UID), storage: storageVersion, prefix: storagePrefix(storageRes)}
	if prev != nil && prev.storage == storageVersion && prev.uid == def.uid {
		def.store, def.stop = prev.store, prev.stop
	} else {
		st := etcd3.New(s.cfg.Etcd, unstructured.UnstructuredJSONScheme, storageRes.GroupVersionKind(), storageRes.New)
		cctx, cancel := context.WithCancel(ctx)
		c := cacher.New(cacher.Config{Store: st, Prefix: def.prefix, NewFunc: storageRes.New, NewListFunc: storageRes.NewList,
			GetAttrs: attrsFunc(storageRes), Logger: s.log})
		go c.Run(cctx)
		if err := c.Ready(ctx); err != nil {
			cancel()
			return err
		}
		def.store, def.stop = c, cancel
	}
	endpoints := map[string]*endpoint{}
	base := &endpoint{res: storageRes, store: def.store, prefix: def.prefix, fields: supportedFields(storageRes), cacher: def.store}
	def.base = base
	for _, r := range resources {
		key := gvrKey(r.Group, r.Version, r.Resource)
		if r == storageRes {
			endpoints[key] = base
		} else {
			endpoints[key] = &endpoint{res: r, prefix: def.prefix, fields: supportedFields(r),
				store: &convertingStore{inner: def.store, conv: r.Stored, attrs: attrsFunc(storageRes)}, cacher: noStats{}}
		}
		def.keys = append(def.keys, key)
		if r.Verbs == nil || len(r.Verbs) > 0 {
			def.resources = append(def.resources, r)
		}
	}
	s.custom.mu.Lock()
	if prev != nil {
		for _, k := range prev.keys {
			delete(s.custom.endpoints, k)
		}
		if prev.stop != nil && prev.store != def.store {
			prev.stop()
		}
	}
	for k, ep := range endpoints {
		if len(ep.res.SupportedVerbs()) == 0 {
			continue // the storage version when it is not served
		}
		s.custom.endpoints[k] = ep
	}
	s.custom.defs[crd.Name] = def
	s.custom.generation++
	s.custom.mu.Unlock()
	return nil
}

// unserve stops serving a definition's resources.
func (s *Server) unserve(name string) {
	s.custom.mu.Lock()
	defer s.custom.mu.Unlock()
	def := s.custom.defs[name]
	if def == nil {
		return
	}
	for _, k := range def.keys {
		delete(s.custom.endpoints, k)
	}
	if def.stop != nil {
		def.stop()
	}
	delete(s.custom.defs, name)
	s.custom.generation++
}

// updateDefinitionStatus records the accepted names and the NamesAccepted and Established
// conditions (and, while deleting, Terminating) as Kubernetes' controllers do.
func (s *Server) updateDefinitionStatus(ctx context.Context, name string, accepted bool, conflict string) error {
	ep := s.endpoints[crdKey]
	out := &apiextensionsv1.CustomResourceDefinition{}
	err := ep.store.GuaranteedUpdate(ctx, ep.key("", name), out, nil, func(cur runtime.Object) (runtime.Object, error) {
		crd := cur.(*apiextensionsv1.CustomResourceDefinition).DeepCopy()
		st := &crd.Status
		before := st.DeepCopy()
		now := metav1.NewTime(s.now())
		if accepted {
			st.AcceptedNames = crd.Spec.Names
			setCondition(st, apiextensionsv1.NamesAccepted, apiextensionsv1.ConditionTrue, "NoConflicts", "no conflicts found", now)
			setCondition(st, apiextensionsv1.Established, apiextensionsv1.ConditionTrue, "InitialNamesAccepted", "the initial names have been accepted", now)
			sv := customresource.StorageVersion(crd)
			found := false
			for _, v := range st.StoredVersions {
				found = found || v == sv
			}
			if !found && sv != "" {
				st.StoredVersions = append(st.StoredVersions, sv)
			}
		} else {
			setCondition(st, apiextensionsv1.NamesAccepted, apiextensionsv1.ConditionFalse, "NameConflict", conflict, now)
			if establishedCondition(st) == nil {
				setCondition(st, apiextensionsv1.Established, apiextensionsv1.ConditionFalse, "NotAccepted", "not all names are accepted", now)
			}
		}
		if crd.DeletionTimestamp != nil {
			setCondition(st, apiextensionsv1.Terminating, apiextensionsv1.ConditionTrue, "InstanceDeletionInProgress", "CustomResource deletion is in progress", now)
		}
		if apiequality.Semantic.DeepEqual(before, st) { // transition times move only with a status
			return nil, errNoChange
		}
		return crd, nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

// errNoChange ends a GuaranteedUpdate that has nothing to write.
var errNoChange = errors.New("no change")

func establishedCondition(st *apiextensionsv1.CustomResourceDefinitionStatus) *apiextensionsv1.CustomResourceDefinitionCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == apiextensionsv1.Established {
			return &st.Conditions[i]
		}
	}
	return nil
}

func setCondition(st *apiextensionsv1.CustomResourceDefinitionStatus, t apiextensionsv1.CustomResourceDefinitionConditionType,
	status apiextensionsv1.ConditionStatus, reason, msg string, now metav1.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message = status, reason, msg
		return
	}
	st.Conditions = append(st.Conditions, apiextensionsv1.CustomResourceDefinitionCondition{
		Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: now})
}

// cleanupDefinition deletes the custom resources of a definition being deleted; once none is
// left it removes the cleanup finalizer (the definition then goes) and reports true.
func (s *Server) cleanupDefinition(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) bool {
	hasFinalizer := false
	for _, f := range crd.Finalizers {
		hasFinalizer = hasFinalizer || f == apiextensions.CleanupFinalizer
	}
	if !hasFinalizer {
		return true
	}
	s.custom.mu.RLock()
	def := s.custom.defs[crd.Name]
	s.custom.mu.RUnlock()
	if def != nil {
		if base := def.base; base != nil {
			list := base.res.NewList()
			if err := base.store.GetList(ctx, base.prefix, storageListAll(), list); err != nil {
				s.log.Error("list custom resources", "crd", crd.Name, "err", err)
				return false
			}
			items := list.(*unstructured.UnstructuredList).Items
			if len(items) > 0 {
				bg := metav1.DeletePropagationBackground
				for _, it := range items {
					if it.GetDeletionTimestamp() != nil {
						continue
					}
					if _, _, err := s.delete(ctx, base, it.GetNamespace(), it.GetName(), &metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
						s.log.Error("delete custom resource", "crd", crd.Name, "name", it.GetName(), "err", err)
					}
				}
				return false
			}
		}
	}
	s.unserve(crd.Name)
	ep := s.endpoints[crdKey]
	out := &apiextensionsv1.CustomResourceDefinition{}
	err := ep.store.GuaranteedUpdate(ctx, ep.key("", crd.Name), out, nil, func(cur runtime.Object) (runtime.Object, error) {
		c := cur.(*apiextensionsv1.CustomResourceDefinition).DeepCopy()
		c.Finalizers = removeString(c.Finalizers, apiextensions.CleanupFinalizer)
		return c, nil
	})
	if err != nil && !apierrors.IsNotFound(err) {
		s.log.Error("remove custom resource cleanup finalizer", "crd", crd.Name, "err", err)
		return false
	}
	if err == nil && len(out.Finalizers) == 0 && out.DeletionTimestamp != nil {
		// The last finalizer is gone: the definition goes, as an update that empties the
		// finalizers of a deleted object does.
		if err := ep.store.Delete(ctx, ep.key("", crd.Name), &apiextensionsv1.CustomResourceDefinition{}, nil, nil); err != nil && !apierrors.IsNotFound(err) {
			s.log.Error("delete custom resource definition", "crd", crd.Name, "err", err)
			return false
		}
	}
	return true
}
