// Package etcd3 implements storage.Interface over etcd v3: one key per object, the etcd
// revision as resourceVersion, compare-and-swap transactions for optimistic concurrency.
package etcd3

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"reflect"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/storage"
)

// Codec encodes objects for etcd. The protobuf serializer of k8s.io/apimachinery is used in
// production; it needs the object's kind set, which Store does before encoding.
type Codec interface {
	runtime.Encoder
	runtime.Decoder
}

// Store is the etcd implementation of storage.Interface for one resource.
type Store struct {
	client   *clientv3.Client
	codec    Codec
	gvk      schema.GroupVersionKind
	newFunc  func() runtime.Object
	pageSize int64
}

// New returns a store for objects of kind gvk created by newFunc.
func New(client *clientv3.Client, codec Codec, gvk schema.GroupVersionKind, newFunc func() runtime.Object) *Store {
	return &Store{client: client, codec: codec, gvk: gvk, newFunc: newFunc, pageSize: 500}
}

// Client exposes the etcd client (the watch cache watches through it).
func (s *Store) Client() *clientv3.Client { return s.client }

// Encode serialises obj with its kind set.
func (s *Store) Encode(obj runtime.Object) ([]byte, error) {
	obj.GetObjectKind().SetGroupVersionKind(s.gvk)
	return runtime.Encode(s.codec, obj)
}

// Decode deserialises data into a new object stamped with revision rv.
func (s *Store) Decode(data []byte, rv int64) (runtime.Object, error) {
	obj := s.newFunc()
	if err := s.decodeInto(data, obj, rv); err != nil {
		return nil, err
	}
	return obj, nil
}

func (s *Store) decodeInto(data []byte, into runtime.Object, rv int64) error {
	if _, _, err := s.codec.Decode(data, nil, into); err != nil {
		return fmt.Errorf("decode %s: %w", s.gvk.Kind, err)
	}
	into.GetObjectKind().SetGroupVersionKind(s.gvk)
	return setRV(into, rv)
}

func setRV(obj runtime.Object, rv int64) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if rv == 0 {
		m.SetResourceVersion("")
	} else {
		m.SetResourceVersion(strconv.FormatInt(rv, 10))
	}
	return nil
}

// ParseRV parses a resourceVersion string; "" and "0" both mean 0.
func ParseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid resource version %q", rv)
	}
	return v, nil
}

func (s *Store) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if m.GetResourceVersion() != "" {
		return errors.New("resourceVersion should not be set on objects to be created")
	}
	data, err := s.Encode(obj)
	if err != nil {
		return err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return unreachable(key, err)
	}
	if !resp.Succeeded {
		return &storage.Error{Code: storage.ErrCodeKeyExists, Key: key}
	}
	if out != nil {
		return s.decodeInto(data, out, resp.Header.Revision)
	}
	return nil
}

func (s *Store) Get(ctx context.Context, key string, out runtime.Object) error {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return unreachable(key, err)
	}
	if len(resp.Kvs) == 0 {
		return &storage.Error{Code: storage.ErrCodeKeyNotFound, Key: key}
	}
	return s.decodeInto(resp.Kvs[0].Value, out, resp.Kvs[0].ModRevision)
}

func (s *Store) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, tryUpdate storage.UpdateFunc) error {
	return s.GuaranteedUpdateFrom(ctx, key, out, pre, tryUpdate, nil)
}

// GuaranteedUpdateFrom is GuaranteedUpdate starting from cached, a possibly stale copy of the
// object (resourceVersion set, never modified here), as Kubernetes' watch cache suggests one:
// when the copy is current the update costs one etcd transaction instead of a read and a
// transaction. Whatever could depend on the copy being stale — failed preconditions, an error
// from tryUpdate, an update that changes nothing — is decided again on the object read from
// etcd, and a transaction that finds a newer revision retries on the one it read.
func (s *Store) GuaranteedUpdateFrom(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, tryUpdate storage.UpdateFunc, cached runtime.Object) error {
	var (
		cur     runtime.Object // what the next attempt starts from
		value   []byte         // its stored bytes
		modRev  int64          // its revision
		current bool           // cur was read from etcd rather than suggested
	)
	load := func(resp *clientv3.GetResponse) error {
		if len(resp.Kvs) == 0 {
			return &storage.Error{Code: storage.ErrCodeKeyNotFound, Key: key}
		}
		kv := resp.Kvs[0]
		obj := s.newFunc()
		if err := s.decodeInto(kv.Value, obj, kv.ModRevision); err != nil {
			return err
		}
		cur, value, modRev, current = obj, kv.Value, kv.ModRevision, true
		return nil
	}
	fetch := func() error {
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			return unreachable(key, err)
		}
		return load(resp)
	}
	if rev := rvOf(cached); rev > 0 {
		cur, modRev = cached.DeepCopyObject(), rev
		stored := cur.DeepCopyObject()
		if err := setRV(stored, 0); err != nil {
			return err
		}
		data, err := s.Encode(stored)
		if err != nil {
			return err
		}
		value = data
	} else if err := fetch(); err != nil {
		return err
	}
	for {
		if err := checkPreconditions(key, pre, cur); err != nil {
			if !current {
				if err := fetch(); err != nil {
					return err
				}
				continue
			}
			return err
		}
		updated, err := tryUpdate(cur.DeepCopyObject())
		if err != nil && !current {
			// Perhaps only because the suggested copy is stale.
			if err := fetch(); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, storage.ErrNoChange) {
			return s.decodeInto(value, out, modRev)
		}
		if err != nil {
			return err
		}
		// The stored bytes never carry a resourceVersion: it is the revision itself.
		if err := setRV(updated, 0); err != nil {
			return err
		}
		data, err := s.Encode(updated)
		if err != nil {
			return err
		}
		if string(data) == string(value) {
			if !current {
				// No change to the suggested copy; etcd decides whether that is no change.
				if err := fetch(); err != nil {
					return err
				}
				continue
			}
			return s.decodeInto(value, out, modRev)
		}
		txn, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
			Then(clientv3.OpPut(key, string(data))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return unreachable(key, err)
		}
		if txn.Succeeded {
			return s.decodeInto(data, out, txn.Header.Revision)
		}
		// Lost a race (or the copy was stale): retry on the object the failed transaction read.
		if err := load((*clientv3.GetResponse)(txn.Responses[0].GetResponseRange())); err != nil {
			return err
		}
	}
}

// rvOf is obj's resourceVersion as a revision (0 when obj is nil or has none).
func rvOf(obj runtime.Object) int64 {
	if obj == nil {
		return 0
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return 0
	}
	rv, err := ParseRV(m.GetResourceVersion())
	if err != nil {
		return 0
	}
	return rv
}

func (s *Store) Delete(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, validate func(cur runtime.Object) error) error {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return unreachable(key, err)
	}
	for {
		if len(resp.Kvs) == 0 {
			return &storage.Error{Code: storage.ErrCodeKeyNotFound, Key: key}
		}
		kv := resp.Kvs[0]
		cur := s.newFunc()
		if err := s.decodeInto(kv.Value, cur, kv.ModRevision); err != nil {
			return err
		}
		if err := checkPreconditions(key, pre, cur); err != nil {
			return err
		}
		if validate != nil {
			if err := validate(cur); err != nil {
				return err
			}
		}
		txn, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return unreachable(key, err)
		}
		if txn.Succeeded {
			// Like Kubernetes, the deleted object carries the revision of its deletion.
			return s.decodeInto(kv.Value, out, txn.Header.Revision)
		}
		resp = (*clientv3.GetResponse)(txn.Responses[0].GetResponseRange())
	}
}

func checkPreconditions(key string, pre *storage.Preconditions, obj runtime.Object) error {
	if pre == nil {
		return nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if pre.UID != nil && *pre.UID != m.GetUID() {
		return &storage.Error{Code: storage.ErrCodeInvalidObj, Key: key,
			AdditionalErrorMsg: fmt.Sprintf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *pre.UID, m.GetUID())}
	}
	if pre.ResourceVersion != nil && *pre.ResourceVersion != m.GetResourceVersion() {
		return &storage.Error{Code: storage.ErrCodeInvalidObj, Key: key,
			AdditionalErrorMsg: fmt.Sprintf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pre.ResourceVersion, m.GetResourceVersion())}
	}
	return nil
}

// continueToken is the opaque value of metadata.continue: where the next page starts, and the
// revision the whole list is read at (so pages are consistent with each other).
type continueToken struct {
	APIVersion string `json:"v"`
	RV         int64  `json:"rv"`
	Start      string `json:"start"`
}

func encodeContinue(key, prefix string, rv int64) string {
	b, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", RV: rv, Start: strings.TrimPrefix(key, prefix)})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(tok, prefix string) (string, int64, error) {
	data, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", 0, fmt.Errorf("continue key is not valid: %w", err)
	}
	var c continueToken
	if err := json.Unmarshal(data, &c); err != nil || c.APIVersion != "meta.k8s.io/v1" {
		return "", 0, errors.New("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	if c.RV == 0 {
		return "", 0, errors.New("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	}
	clean := path.Clean("/" + c.Start)
	if clean == "/" || strings.Contains(c.Start, "..") {
		return "", 0, errors.New("continue key is not valid: path traversal")
	}
	return prefix + c.Start, c.RV, nil
}

// ErrInvalidContinue marks a malformed continue token (400 BadRequest).
var ErrInvalidContinue = errors.New("invalid continue")

// GetList reads from etcd, at a fixed revision when paging, filtering by the predicate.
func (s *Store) GetList(ctx context.Context, prefix string, opts storage.ListOptions, listObj runtime.Object) error {
	listPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return err
	}
	v, err := conversion.EnforcePtr(listPtr)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(prefix, "/") && opts.Recursive {
		prefix += "/"
	}
	pred := opts.Predicate
	key := prefix
	var rev int64
	if pred.Continue != "" {
		k, r, err := decodeContinue(pred.Continue, prefix)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidContinue, err)
		}
		key, rev = k, r
	} else if opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
		r, err := ParseRV(opts.ResourceVersion)
		if err != nil {
			return err
		}
		if opts.ResourceVersionMatch == "Exact" {
			rev = r
		}
	}
	rangeEnd := clientv3.GetPrefixRangeEnd(prefix)
	limit := pred.Limit
	var (
		more      bool
		lastKey   string
		readRev   int64
		remaining int64
	)
	for {
		ops := []clientv3.OpOption{clientv3.WithRange(rangeEnd)}
		if rev > 0 {
			ops = append(ops, clientv3.WithRev(rev))
		}
		page := s.pageSize
		if limit > 0 && limit < page && pred.Empty() {
			page = limit
		}
		if limit > 0 || page > 0 {
			ops = append(ops, clientv3.WithLimit(page))
		}
		resp, err := s.client.Get(ctx, key, ops...)
		if err != nil {
			if errors.Is(err, rpcCompacted) || strings.Contains(err.Error(), "required revision has been compacted") {
				if pred.Continue != "" {
					return &storage.Error{Code: storage.ErrCodeExpired, ResourceVersion: rev,
						AdditionalErrorMsg: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."}
				}
				return storage.NewExpiredError(rev, 0)
			}
			return unreachable(prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		readRev = rev
		for i, kv := range resp.Kvs {
			if limit > 0 && int64(v.Len()) >= limit {
				more = true
				remaining = resp.Count - int64(i)
				break
			}
			lastKey = string(kv.Key)
			obj, err := s.Decode(kv.Value, kv.ModRevision)
			if err != nil {
				return err
			}
			ok, err := pred.Matches(obj)
			if err != nil {
				return err
			}
			if ok {
				v.Set(reflect.Append(v, reflect.ValueOf(obj).Elem()))
			}
		}
		if more {
			break
		}
		if !resp.More {
			break
		}
		key = lastKey + "\x00"
		if limit > 0 && int64(v.Len()) >= limit {
			more = true
			// A count of what follows is only known exactly for unfiltered lists.
			remaining = resp.Count - int64(len(resp.Kvs))
			break
		}
	}
	lm, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(strconv.FormatInt(readRev, 10))
	if more {
		lm.SetContinue(encodeContinue(lastKey+"\x00", prefix, readRev))
		if pred.Empty() && remaining > 0 {
			lm.SetRemainingItemCount(&remaining)
		}
	}
	return nil
}

// Watch is not served by the raw store: the watch cache (package cacher) serves every watch.
func (s *Store) Watch(ctx context.Context, prefix string, opts storage.ListOptions) (watch.Interface, error) {
	return nil, errors.New("etcd3 store: watch is served by the watch cache")
}

// CurrentRevision returns the latest etcd revision (a cheap count-only read).
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, "/registry/health-revision", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

func unreachable(key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &storage.Error{Code: storage.ErrCodeUnreachable, Key: key, AdditionalErrorMsg: err.Error()}
}
