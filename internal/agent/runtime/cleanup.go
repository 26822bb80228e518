package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Last-resort cleanup, for when the runtime cannot tear pods down itself (tests that
// failed halfway, a containerd that died). The normal path is Client.RemoveAllPods before
// Containerd.Stop.

// KillShims SIGKILLs the shims started by the managed containerd (those whose command line
// names its socket) together with every process below them (the containers), and returns
// how many processes it killed.
func (c *Containerd) KillShims() (int, error) {
	if !c.managed {
		return 0, errors.New("not a managed containerd")
	}
	return KillShims(c.Socket())
}

// KillShims SIGKILLs every containerd shim whose command line has "-address socket", and
// all their descendants.
func KillShims(socket string) (int, error) {
	procs, err := listProcs()
	if err != nil {
		return 0, err
	}
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	var shims []int
	for pid, p := range procs {
		if !strings.Contains(filepath.Base(p.exe), "containerd-shim") {
			continue
		}
		for i, a := range p.args {
			if a == "-address" && i+1 < len(p.args) && p.args[i+1] == socket {
				shims = append(shims, pid)
			}
		}
	}
	killed := 0
	for _, shim := range shims {
		// Descendants first so that the shim cannot restart or reap them in between.
		var tree []int
		var walk func(int)
		walk = func(pid int) {
			for _, ch := range children[pid] {
				walk(ch)
			}
			tree = append(tree, pid)
		}
		walk(shim)
		for _, pid := range tree {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	for _, shim := range shims {
		for i := 0; i < 100 && alive(shim); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return killed, nil
}

type procInfo struct {
	ppid int
	exe  string
	args []string
}

func listProcs() (map[int]procInfo, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]procInfo{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		p := procInfo{ppid: ppid, args: args}
		if len(args) > 0 {
			p.exe = args[0]
		}
		out[pid] = p
	}
	return out, nil
}

// UnmountUnder lazily unmounts every mount point at or below dir, deepest first, so that
// the directory can be removed.
func UnmountUnder(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RemoveNetNS unmounts and removes a network namespace file such as
// /var/run/netns/cni-...; a missing one is no error.
func RemoveNetNS(path string) error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
