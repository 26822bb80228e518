package apiserver

import (
	"context"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// convertingStore serves one version of a resource from the storage of another version
// (autoscaling/v1 over v2), so that both versions show the same objects, as in Kubernetes.
type convertingStore struct {
	inner storage.Interface
	conv  *registry.StorageConversion
	attrs storage.AttrFunc // of the stored version
}

// storedOptions expresses list and watch options in the stored version: its field labels and
// its attribute function.
func (c *convertingStore) storedOptions(opts storage.ListOptions) (storage.ListOptions, error) {
	p := &opts.Predicate
	p.GetAttrs = c.attrs
	if c.conv.FieldLabel != nil && p.Field != nil && !p.Field.Empty() {
		f, err := p.Field.Transform(func(label, value string) (string, string, error) {
			return c.conv.FieldLabel(label), value, nil
		})
		if err != nil {
			return opts, err
		}
		p.Field = f
	}
	return opts, nil
}

var _ storage.Interface = (*convertingStore)(nil)

func setInto(out, obj runtime.Object) {
	reflect.ValueOf(out).Elem().Set(reflect.ValueOf(obj).Elem())
}

func (c *convertingStore) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	so := c.conv.NewStored()
	if err := c.inner.Create(ctx, key, c.conv.ToStorage(obj, nil), so); err != nil {
		return err
	}
	if out != nil {
		setInto(out, c.conv.FromStorage(so))
	}
	return nil
}

func (c *convertingStore) Get(ctx context.Context, key string, out runtime.Object) error {
	so := c.conv.NewStored()
	if err := c.inner.Get(ctx, key, so); err != nil {
		return err
	}
	setInto(out, c.conv.FromStorage(so))
	return nil
}

func (c *convertingStore) GetList(ctx context.Context, prefix string, opts storage.ListOptions, listObj runtime.Object) error {
	sl := c.conv.NewList()
	opts, err := c.storedOptions(opts)
	if err != nil {
		return err
	}
	if err := c.inner.GetList(ctx, prefix, opts, sl); err != nil {
		return err
	}
	items, err := meta.ExtractList(sl)
	if err != nil {
		return err
	}
	conv := make([]runtime.Object, 0, len(items))
	for _, it := range items {
		conv = append(conv, c.conv.FromStorage(it))
	}
	if err := meta.SetList(listObj, conv); err != nil {
		return err
	}
	src, _ := meta.ListAccessor(sl)
	dst, _ := meta.ListAccessor(listObj)
	dst.SetResourceVersion(src.GetResourceVersion())
	dst.SetContinue(src.GetContinue())
	dst.SetRemainingItemCount(src.GetRemainingItemCount())
	return nil
}

func (c *convertingStore) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, f storage.UpdateFunc) error {
	so := c.conv.NewStored()
	err := c.inner.GuaranteedUpdate(ctx, key, so, pre, func(cur runtime.Object) (runtime.Object, error) {
		res, err := f(c.conv.FromStorage(cur))
		if err != nil {
			return nil, err
		}
		return c.conv.ToStorage(res, cur), nil
	})
	if err != nil {
		return err
	}
	setInto(out, c.conv.FromStorage(so))
	return nil
}

func (c *convertingStore) Delete(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, validate func(runtime.Object) error) error {
	so := c.conv.NewStored()
	var v func(runtime.Object) error
	if validate != nil {
		v = func(cur runtime.Object) error { return validate(c.conv.FromStorage(cur)) }
	}
	if err := c.inner.Delete(ctx, key, so, pre, v); err != nil {
		return err
	}
	setInto(out, c.conv.FromStorage(so))
	return nil
}

func (c *convertingStore) Watch(ctx context.Context, prefix string, opts storage.ListOptions) (watch.Interface, error) {
	opts, err := c.storedOptions(opts)
	if err != nil {
		return nil, err
	}
	w, err := c.inner.Watch(ctx, prefix, opts)
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(ev watch.Event) (watch.Event, bool) {
		ev.Object = c.conv.FromStorage(ev.Object)
		return ev, true
	}), nil
}

// noStats stands in for the cache of a converted view (its objects are counted once, under
// the stored version).
type noStats struct{}

func (noStats) Stats() (int, int, int64) { return 0, 0, 0 }
