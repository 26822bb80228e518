package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

func hasGID(st os.FileInfo, gid int64) bool {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int64(s.Gid) == gid
	}
	return true
}

// isMountPoint tells whether dir is mounted on (its device differs from its parent's).
func isMountPoint(dir string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || syscall.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// mountTmpfs mounts a tmpfs on dir unless one is there; size 0 means the kernel's default.
func mountTmpfs(dir string, size int64) error {
	if isMountPoint(dir) {
		return nil
	}
	opts := "mode=0755"
	if size > 0 {
		opts += ",size=" + strconv.FormatInt(size, 10)
	}
	return syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts)
}
