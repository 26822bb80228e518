package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func readVolume(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		root, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			out[filepath.Join(e.Name(), rel)] = string(b)
			return nil
		})
	}
	return out
}

func TestWriteAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	v1 := map[string]fileData{"a": {Data: []byte("1"), Mode: 0o644}, "sub/b": {Data: []byte("2"), Mode: 0o600}}
	changed, err := writeAtomic(dir, v1, nil)
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	if got := readVolume(t, dir); !reflect.DeepEqual(got, map[string]string{"a": "1", "sub/b": "2"}) {
		t.Errorf("contents %v", got)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "a")); target != "..data/a" {
		t.Errorf("a -> %q, want a link through ..data", target)
	}
	if st, _ := os.Stat(filepath.Join(dir, "sub/b")); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	first, _ := os.Readlink(filepath.Join(dir, dataLink))

	// The same content changes nothing.
	if changed, err := writeAtomic(dir, v1, nil); err != nil || changed {
		t.Fatalf("same content: changed %v %v", changed, err)
	}
	// New content: a new data directory, the old one gone, removed names gone.
	v2 := map[string]fileData{"a": {Data: []byte("one"), Mode: 0o644}, "c": {Data: []byte("3"), Mode: 0o644}}
	if changed, err := writeAtomic(dir, v2, nil); err != nil || !changed {
		t.Fatalf("update: %v %v", changed, err)
	}
	if got := readVolume(t, dir); !reflect.DeepEqual(got, map[string]string{"a": "one", "c": "3"}) {
		t.Errorf("contents after update %v", got)
	}
	second, _ := os.Readlink(filepath.Join(dir, dataLink))
	if second == first {
		t.Error("..data did not move")
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Error("old data directory kept")
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Error("a name no longer in the volume was kept")
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 4 { // ..<ts>, ..data, a, c
		t.Errorf("entries %v", names)
	}

	for _, bad := range []string{"/abs", "../x", "a/../../x", "..data"} {
		if _, err := writeAtomic(dir, map[string]fileData{bad: {Data: nil, Mode: 0o644}}, nil); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	data := map[string][]byte{"k1": []byte("v1"), "k2": []byte("v2")}
	all, err := keyFiles(data, nil, 0o644, false, "configmap", "c")
	if err != nil || len(all) != 2 || all["k1"].Mode != 0o644 {
		t.Errorf("all keys: %v %v", all, err)
	}
	mode := int32(0o400)
	some, err := keyFiles(data, []corev1.KeyToPath{{Key: "k2", Path: "dir/two", Mode: &mode}}, 0o644, false, "configmap", "c")
	if err != nil || len(some) != 1 || string(some["dir/two"].Data) != "v2" || some["dir/two"].Mode != 0o400 {
		t.Errorf("items: %v %v", some, err)
	}
	if _, err := keyFiles(data, []corev1.KeyToPath{{Key: "nope", Path: "x"}}, 0o644, false, "configmap", "c"); err == nil {
		t.Error("missing key accepted")
	}
	if got, err := keyFiles(data, []corev1.KeyToPath{{Key: "nope", Path: "x"}}, 0o644, true, "configmap", "c"); err != nil || len(got) != 0 {
		t.Errorf("optional missing key: %v %v", got, err)
	}
}

func TestSubPath(t *testing.T) {
	base := t.TempDir()
	vol := filepath.Join(base, "vol")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "secret")
	_ = os.WriteFile(outside, []byte("x"), 0o600)
	_ = os.Symlink(outside, filepath.Join(vol, "escape"))
	_ = os.WriteFile(filepath.Join(vol, "file"), []byte("x"), 0o644)
	vp := volumePath{HostPath: vol, Owned: true}

	if p, err := subPath(vp, "file"); err != nil || p != filepath.Join(vol, "file") {
		t.Errorf("file: %q %v", p, err)
	}
	if p, err := subPath(vp, "new/dir"); err != nil || p != filepath.Join(vol, "new/dir") {
		t.Errorf("new dir: %q %v", p, err)
	} else if st, err := os.Stat(p); err != nil || !st.IsDir() {
		t.Errorf("new dir not created: %v", err)
	}
	for _, bad := range []string{"escape", "../secret", "/etc"} {
		if p, err := subPath(vp, bad); err == nil {
			t.Errorf("subPath %q accepted: %s", bad, p)
		}
	}
	if _, err := subPath(volumePath{HostPath: vol, ReadOnly: true}, "missing"); err == nil {
		t.Error("a missing subPath in a read-only volume was created")
	}
}

func TestPrepareHostPath(t *testing.T) {
	dir := t.TempDir()
	typ := func(t corev1.HostPathType) *corev1.HostPathType { return &t }
	file := filepath.Join(dir, "f")
	_ = os.WriteFile(file, nil, 0o644)
	tests := []struct {
		path string
		typ  *corev1.HostPathType
		ok   bool
	}{
		{filepath.Join(dir, "new/a"), typ(corev1.HostPathDirectoryOrCreate), true},
		{filepath.Join(dir, "new/b.txt"), typ(corev1.HostPathFileOrCreate), true},
		{dir, typ(corev1.HostPathDirectory), true},
		{file, typ(corev1.HostPathDirectory), false},
		{file, typ(corev1.HostPathFile), true},
		{dir, typ(corev1.HostPathFile), false},
		{filepath.Join(dir, "missing"), typ(corev1.HostPathDirectory), false},
		{filepath.Join(dir, "missing"), nil, true},
		{file, typ(corev1.HostPathSocket), false},
		{"/dev/null", typ(corev1.HostPathCharDev), true},
	}
	for _, tt := range tests {
		err := prepareHostPath(&corev1.HostPathVolumeSource{Path: tt.path, Type: tt.typ})
		if (err == nil) != tt.ok {
			t.Errorf("%s (%v): err %v", tt.path, tt.typ, err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "new/b.txt")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("FileOrCreate did not create a file: %v", err)
	}
}

func TestTailCRILog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.log")
	_ = os.WriteFile(p, []byte("2026-01-01T00:00:00Z stdout F first\n2026-01-01T00:00:01Z stderr P part\n2026-01-01T00:00:01Z stderr F ial\n"), 0o644)
	if got := tailCRILog(p, 80, 2048); got != "first\npartial\n" {
		t.Errorf("got %q", got)
	}
	if got := tailCRILog(p, 1, 2048); got != "ial\n" {
		t.Errorf("last line: %q", got)
	}
}
