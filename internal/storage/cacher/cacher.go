// Package cacher is the watch cache: an in-memory copy of one resource kept current by an etcd
// watch, that serves every watch and the lists that need not be paged through etcd. It keeps a
// window of recent events so that watches can resume from a resourceVersion; older ones get
// 410 Gone, as in Kubernetes.
package cacher

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/etcd3"
)

// Config describes the resource a Cacher keeps.
type Config struct {
	Store       *etcd3.Store
	Prefix      string // resource prefix ending in "/", e.g. /registry/core/pods/
	NewFunc     func() runtime.Object
	NewListFunc func() runtime.Object
	GetAttrs    storage.AttrFunc
	// EventCapacity bounds the window of events kept for resuming watches (default 4096).
	EventCapacity int
	Logger        *slog.Logger
}

type entry struct {
	key    string
	obj    runtime.Object
	labels labels.Set
	fields fields.Set
}

type event struct {
	typ  watch.EventType
	key  string
	cur  *entry // nil for deletes
	prev *entry // nil for adds
	obj  runtime.Object
	rv   int64
}

// Cacher implements storage.Interface: writes and single reads go to etcd, lists and watches
// are served from memory.
type Cacher struct {
	cfg Config
	log *slog.Logger

	mu       sync.RWMutex
	cond     *sync.Cond
	ready    bool
	rv       int64
	items    map[string]*entry
	ring     []*event
	start    int
	count    int
	oldestRV int64 // every event with rv > oldestRV is in the ring
	watchers map[int]*cacheWatcher
	nextID   int
}

var _ storage.Interface = (*Cacher)(nil)

// New returns a cacher; Run fills and maintains it.
func New(cfg Config) *Cacher {
	if cfg.EventCapacity == 0 {
		cfg.EventCapacity = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cacher{cfg: cfg, log: cfg.Logger.With("cache", cfg.Prefix), items: map[string]*entry{},
		ring: make([]*event, cfg.EventCapacity), watchers: map[int]*cacheWatcher{}}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Run lists and watches etcd until ctx ends, relisting after compaction or watch failure.
func (c *Cacher) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.listAndWatch(ctx)
		if ctx.Err() != nil {
			break
		}
		c.log.Warn("watch cache restarting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
	c.mu.Lock()
	for id, w := range c.watchers {
		w.stopLocked()
		delete(c.watchers, id)
	}
	c.mu.Unlock()
}

// Ready blocks until the first list is loaded or ctx ends.
func (c *Cacher) Ready(ctx context.Context) error {
	return c.waitFresh(ctx, 0, 0)
}

func (c *Cacher) listAndWatch(ctx context.Context) error {
	client := c.cfg.Store.Client()
	items := map[string]*entry{}
	var rev int64
	key := c.cfg.Prefix
	end := clientv3.GetPrefixRangeEnd(c.cfg.Prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1000)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := client.Get(ctx, key, opts...)
		if err != nil {
			return err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			e, err := c.newEntry(string(kv.Key), kv.Value, kv.ModRevision)
			if err != nil {
				c.log.Error("skipping undecodable object", "key", string(kv.Key), "err", err)
				continue
			}
			items[e.key] = e
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}

	c.mu.Lock()
	// Watchers cannot be carried over a gap in the event stream: end them, they re-watch.
	for id, w := range c.watchers {
		w.stopLocked()
		delete(c.watchers, id)
	}
	c.items = items
	c.rv = rev
	c.oldestRV = rev
	c.start, c.count = 0, 0
	c.ready = true
	c.cond.Broadcast()
	c.mu.Unlock()

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := client.Watch(wctx, c.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify(), clientv3.WithPrevKV())
	bookmarks := time.NewTicker(time.Second)
	defer bookmarks.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-bookmarks.C:
			c.sendBookmarks()
		case resp, ok := <-wch:
			if !ok {
				return errors.New("etcd watch channel closed")
			}
			if err := resp.Err(); err != nil {
				return err
			}
			if resp.IsProgressNotify() {
				c.advance(resp.Header.Revision)
				continue
			}
			for _, ev := range resp.Events {
				c.apply(ev)
			}
			c.advance(resp.Header.Revision)
		}
	}
}

func (c *Cacher) newEntry(key string, data []byte, rv int64) (*entry, error) {
	obj, err := c.cfg.Store.Decode(data, rv)
	if err != nil {
		return nil, err
	}
	return c.entryFor(key, obj)
}

func (c *Cacher) entryFor(key string, obj runtime.Object) (*entry, error) {
	e := &entry{key: key, obj: obj}
	if c.cfg.GetAttrs != nil {
		ls, fs, err := c.cfg.GetAttrs(obj)
		if err != nil {
			return nil, err
		}
		e.labels, e.fields = ls, fs
	}
	return e, nil
}

func (c *Cacher) advance(rev int64) {
	c.mu.Lock()
	if rev > c.rv {
		c.rv = rev
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

func (c *Cacher) apply(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	rev := ev.Kv.ModRevision
	var e *event
	c.mu.RLock()
	prev := c.items[key]
	c.mu.RUnlock()
	switch ev.Type {
	case clientv3.EventTypePut:
		cur, err := c.newEntry(key, ev.Kv.Value, rev)
		if err != nil {
			c.log.Error("skipping undecodable object", "key", key, "err", err)
			return
		}
		typ := watch.Modified
		if prev == nil {
			typ = watch.Added
		}
		e = &event{typ: typ, key: key, cur: cur, prev: prev, obj: cur.obj, rv: rev}
	case clientv3.EventTypeDelete:
		rev = ev.Kv.ModRevision
		var last runtime.Object
		if ev.PrevKv != nil {
			o, err := c.cfg.Store.Decode(ev.PrevKv.Value, rev)
			if err == nil {
				last = o
			}
		}
		if last == nil && prev != nil {
			last = prev.obj.DeepCopyObject()
			setRV(last, rev)
		}
		if last == nil {
			return
		}
		if prev == nil {
			p, err := c.entryFor(key, last)
			if err != nil {
				return
			}
			prev = p
		}
		e = &event{typ: watch.Deleted, key: key, prev: prev, obj: last, rv: rev}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if e.cur != nil {
		c.items[key] = e.cur
	} else {
		delete(c.items, key)
	}
	c.push(e)
	if rev > c.rv {
		c.rv = rev
	}
	for id, w := range c.watchers {
		if !strings.HasPrefix(key, w.prefix) {
			continue
		}
		if !w.offer(e) {
			// A watcher that cannot keep up is ended; its client re-watches from its last
			// resourceVersion, which the ring most likely still holds.
			w.stopLocked()
			delete(c.watchers, id)
		}
	}
	c.cond.Broadcast()
}

func (c *Cacher) push(e *event) {
	capacity := len(c.ring)
	if c.count == capacity {
		c.oldestRV = c.ring[c.start].rv
		c.start = (c.start + 1) % capacity
		c.count--
	}
	c.ring[(c.start+c.count)%capacity] = e
	c.count++
}

func (c *Cacher) sendBookmarks() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, w := range c.watchers {
		if !w.bookmarks || w.lastSentRV() >= c.rv {
			continue
		}
		bm := c.cfg.NewFunc()
		setRV(bm, c.rv)
		if !w.offer(&event{typ: watch.Bookmark, obj: bm, rv: c.rv}) {
			w.stopLocked()
			delete(c.watchers, id)
		}
	}
}

func setRV(obj runtime.Object, rv int64) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetResourceVersion(strconv.FormatInt(rv, 10))
	}
}

// progressRequestInterval is how often a reader waiting for a revision asks etcd again.
const progressRequestInterval = 100 * time.Millisecond

// waitFresh waits until the cache has seen revision rv (0: until it is loaded). When it has not
// got there, it asks etcd for a progress notification, which advances the cache's revision
// even when nothing of this resource changed.
func (c *Cacher) waitFresh(ctx context.Context, rv int64, timeout time.Duration) error {
	c.mu.RLock()
	fresh := c.ready && c.rv >= rv
	c.mu.RUnlock()
	if fresh {
		return nil
	}
	requestProgress := func() {
		if c.isReady() && rv > 0 {
			_ = c.cfg.Store.Client().RequestProgress(clientv3.WithRequireLeader(ctx))
		}
	}
	requestProgress()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	done := make(chan struct{})
	defer close(done)
	expired := false
	go func() {
		// A progress request made before the cache's etcd watch is registered reaches no
		// watcher; ask again while waiting, as Kubernetes' progress requester does.
		tick := time.NewTicker(progressRequestInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				requestProgress()
				continue
			case <-ctx.Done():
			case <-deadline:
			}
			c.mu.Lock()
			expired = true
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !(c.ready && c.rv >= rv) {
		if expired {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &storage.Error{Code: storage.ErrCodeTooLargeResourceVersion, ResourceVersion: rv}
		}
		c.cond.Wait()
	}
	return nil
}

func (c *Cacher) isReady() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ready
}

// Create, Get, GuaranteedUpdate and Delete go to etcd; GuaranteedUpdate starts from the cached
// copy of the object, as Kubernetes' cacher does, so that an update of a current object is one
// etcd transaction (a stale copy costs the read it would have cost anyway).
func (c *Cacher) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	return c.cfg.Store.Create(ctx, key, obj, out)
}
func (c *Cacher) Get(ctx context.Context, key string, out runtime.Object) error {
	return c.cfg.Store.Get(ctx, key, out)
}
func (c *Cacher) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, f storage.UpdateFunc) error {
	var cached runtime.Object
	c.mu.RLock()
	if e := c.items[key]; e != nil && c.ready {
		cached = e.obj
	}
	c.mu.RUnlock()
	return c.cfg.Store.GuaranteedUpdateFrom(ctx, key, out, pre, f, cached)
}
func (c *Cacher) Delete(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, validate func(runtime.Object) error) error {
	return c.cfg.Store.Delete(ctx, key, out, pre, validate)
}

// GetList serves from memory unless the request pages through etcd (limit or continue with an
// exact or consistent read), mirroring when Kubernetes' cacher delegates.
func (c *Cacher) GetList(ctx context.Context, prefix string, opts storage.ListOptions, listObj runtime.Object) error {
	pred := opts.Predicate
	rvStr := opts.ResourceVersion
	if pred.Continue != "" || opts.ResourceVersionMatch == "Exact" || (pred.Limit > 0 && rvStr != "0") {
		return c.cfg.Store.GetList(ctx, prefix, opts, listObj)
	}
	switch rvStr {
	case "0":
		if err := c.waitFresh(ctx, 0, 3*time.Second); err != nil {
			return err
		}
	case "":
		// A consistent read: served from memory only once the cache has caught up with etcd's
		// current revision; otherwise from etcd.
		cur, err := c.cfg.Store.CurrentRevision(ctx)
		if err != nil {
			return err
		}
		if err := c.waitFresh(ctx, cur, 250*time.Millisecond); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return c.cfg.Store.GetList(ctx, prefix, opts, listObj)
		}
	default:
		rv, err := etcd3.ParseRV(rvStr)
		if err != nil {
			return err
		}
		if err := c.waitFresh(ctx, rv, 3*time.Second); err != nil {
			return err
		}
	}
	listPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return err
	}
	v, err := conversion.EnforcePtr(listPtr)
	if err != nil {
		return err
	}
	c.mu.RLock()
	rv := c.rv
	matched := make([]*entry, 0, len(c.items))
	for k, e := range c.items {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if !pred.Empty() && !pred.MatchesAttrs(e.labels, e.fields) {
			continue
		}
		matched = append(matched, e)
	}
	c.mu.RUnlock()
	sort.Slice(matched, func(i, j int) bool { return matched[i].key < matched[j].key })
	v.Set(reflect.MakeSlice(v.Type(), 0, len(matched)))
	for _, e := range matched {
		v.Set(reflect.Append(v, reflect.ValueOf(e.obj).Elem()))
	}
	lm, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(strconv.FormatInt(rv, 10))
	return nil
}

// Watch starts a watch from the cache. ResourceVersion "" and "0" begin with the current state
// as ADDED events; a specific one resumes after it, or answers 410 Gone when the window no
// longer reaches back that far.
func (c *Cacher) Watch(ctx context.Context, prefix string, opts storage.ListOptions) (watch.Interface, error) {
	rvStr := opts.ResourceVersion
	var rv int64
	initial := rvStr == "" || rvStr == "0"
	if opts.SendInitialEvents != nil {
		initial = *opts.SendInitialEvents
	}
	switch rvStr {
	case "":
		cur, err := c.cfg.Store.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		if err := c.waitFresh(ctx, cur, 3*time.Second); err != nil {
			return nil, err
		}
	case "0":
		if err := c.waitFresh(ctx, 0, 3*time.Second); err != nil {
			return nil, err
		}
	default:
		r, err := etcd3.ParseRV(rvStr)
		if err != nil {
			return nil, err
		}
		rv = r
		if err := c.waitFresh(ctx, rv, 3*time.Second); err != nil {
			return nil, err
		}
	}
	if !opts.Recursive && !strings.HasSuffix(prefix, "/") {
		// A single-object watch: match the key exactly by requiring the name's end.
		prefix = prefix + "\x00"
	}
	w := newCacheWatcher(prefix, opts.Predicate, opts.AllowBookmarks)
	c.mu.Lock()
	var initEvents []*event
	if initial {
		matched := make([]*entry, 0)
		for k, e := range c.items {
			if w.keyMatches(k) {
				matched = append(matched, e)
			}
		}
		sort.Slice(matched, func(i, j int) bool { return matched[i].key < matched[j].key })
		for _, e := range matched {
			initEvents = append(initEvents, &event{typ: watch.Added, key: e.key, cur: e, obj: e.obj, rv: c.rv})
		}
		if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
			bm := c.cfg.NewFunc()
			setRV(bm, c.rv)
			if m, err := meta.Accessor(bm); err == nil {
				m.SetAnnotations(map[string]string{"k8s.io/initial-events-end": "true"})
			}
			initEvents = append(initEvents, &event{typ: watch.Bookmark, obj: bm, rv: c.rv, key: "initial-events-end"})
		}
		if rv == 0 || rv > c.rv {
			rv = c.rv
		}
	} else {
		if rv < c.oldestRV {
			oldest := c.oldestRV
			c.mu.Unlock()
			return nil, storage.NewExpiredError(rv, oldest)
		}
		for i := 0; i < c.count; i++ {
			e := c.ring[(c.start+i)%len(c.ring)]
			if e.rv > rv && w.keyMatches(e.key) {
				initEvents = append(initEvents, e)
			}
		}
	}
	w.lastRV = rv
	id := c.nextID
	c.nextID++
	c.watchers[id] = w
	c.mu.Unlock()

	go w.run(ctx, initEvents, func() {
		c.mu.Lock()
		if c.watchers[id] == w {
			delete(c.watchers, id)
		}
		c.mu.Unlock()
	})
	return w, nil
}

// Stats reports the number of cached objects and watchers (for metrics).
func (c *Cacher) Stats() (objects, watchers int, rv int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items), len(c.watchers), c.rv
}

// Peek returns the cached object at key without copying it; callers must not modify it.
func (c *Cacher) Peek(key string) (runtime.Object, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	return e.obj, true
}
