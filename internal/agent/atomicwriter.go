package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// fileData is one file of a ConfigMap, Secret, downward API or projected volume.
type fileData struct {
	Data []byte
	Mode os.FileMode
}

const dataLink = "..data"

// writeAtomic makes dir hold exactly files (relative path -> content), the way the
// kubelet's atomic writer does: the files go into a fresh hidden directory
// ..<timestamp>, the ..data symlink is swapped to it with one rename, and each top-level
// name is a symlink through ..data. A reader thus sees the old set or the new one, never
// a mix. gid, when set, becomes the files' group (fsGroup). It reports whether anything
// changed.
func writeAtomic(dir string, files map[string]fileData, gid *int64) (bool, error) {
	for p := range files {
		if err := validatePayloadPath(p); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	oldTS, _ := os.Readlink(filepath.Join(dir, dataLink))
	if oldTS != "" && sameContent(filepath.Join(dir, oldTS), files, gid) {
		return false, nil
	}
	tsDir, err := os.MkdirTemp(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05.")) // hidden: starts with ..
	if err != nil {
		return false, err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, err
	}
	for p, f := range files {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(full, f.Data, f.Mode); err != nil {
			return false, err
		}
		if err := os.Chmod(full, f.Mode); err != nil {
			return false, err
		}
		if gid != nil {
			if err := os.Lchown(full, -1, int(*gid)); err != nil {
				return false, err
			}
		}
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataLink)); err != nil {
		return false, err
	}
	// Top-level names point through ..data; names no longer present go.
	top := map[string]bool{}
	for p := range files {
		top[strings.SplitN(p, "/", 2)[0]] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataLink, name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return false, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataLink || name == filepath.Base(tsDir):
		case strings.HasPrefix(name, ".."):
			_ = os.RemoveAll(filepath.Join(dir, name)) // the previous data directories
		case !top[name] && e.Type()&os.ModeSymlink != 0:
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	return true, nil
}

// sameContent tells whether dataDir holds exactly files.
func sameContent(dataDir string, files map[string]fileData, gid *int64) bool {
	var have []string
	err := filepath.WalkDir(dataDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dataDir, p)
		have = append(have, rel)
		return nil
	})
	if err != nil || len(have) != len(files) {
		return false
	}
	sort.Strings(have)
	for _, rel := range have {
		f, ok := files[rel]
		if !ok {
			return false
		}
		full := filepath.Join(dataDir, rel)
		st, err := os.Stat(full)
		if err != nil || st.Mode().Perm() != f.Mode.Perm() {
			return false
		}
		if gid != nil && !hasGID(st, *gid) {
			return false
		}
		b, err := os.ReadFile(full)
		if err != nil || !bytes.Equal(b, f.Data) {
			return false
		}
	}
	return true
}

// validatePayloadPath rejects absolute paths, .. components and names starting with ..
// (which the writer uses itself).
func validatePayloadPath(p string) error {
	if p == "" || filepath.IsAbs(p) {
		return fmt.Errorf("invalid path %q", p)
	}
	if strings.HasPrefix(p, "..") {
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return errors.New("invalid path " + p + ": must not contain '..'")
		}
	}
	return nil
}
