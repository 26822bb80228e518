package storageapi

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStorageClass(t *testing.T) {
	r := Resources()[0]
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "standard"}, Provisioner: "rancher.io/local-path"}
	r.Default(sc)
	if *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || *sc.VolumeBindingMode != storagev1.VolumeBindingImmediate {
		t.Errorf("defaults %+v", sc)
	}
	if errs := r.Validate(sc); len(errs) != 0 {
		t.Errorf("errors %v", errs)
	}
	tests := []struct {
		name   string
		mutate func(*storagev1.StorageClass)
		want   []string
	}{
		{"provisioner required", func(s *storagev1.StorageClass) { s.Provisioner = "" }, []string{"provisioner: Required value"}},
		{"bad reclaim policy", func(s *storagev1.StorageClass) { s.ReclaimPolicy = new(corev1.PersistentVolumeReclaimRecycle) },
			[]string{`reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"`}},
		{"bad binding mode", func(s *storagev1.StorageClass) { s.VolumeBindingMode = new(storagev1.VolumeBindingMode("Later")) },
			[]string{`volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sc.DeepCopy()
			tt.mutate(c)
			var got []string
			for _, e := range r.Validate(c) {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors %q, want %q", got, tt.want)
			}
		})
	}
	upd := sc.DeepCopy()
	upd.Parameters = map[string]string{"type": "ssd"}
	upd.Provisioner = "other.io/x"
	upd.ReclaimPolicy = new(corev1.PersistentVolumeReclaimRetain)
	var got []string
	for _, e := range r.ValidateUpdate(upd, sc) {
		got = append(got, e.Error())
	}
	want := []string{
		"parameters: Forbidden: updates to parameters are forbidden.",
		"provisioner: Forbidden: updates to provisioner are forbidden.",
		"reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("update errors %q, want %q", got, want)
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sc.CreationTimestamp = metav1.NewTime(now.Add(-10 * 24 * time.Hour))
	sc.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	if got, want := r.Row(sc, now), []interface{}{"standard (default)", "rancher.io/local-path", "Delete", "Immediate", false, "10d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row %v, want %v", got, want)
	}
}
