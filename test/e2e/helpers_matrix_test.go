package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dropMarker marks the manifest lines that the second `kubectl apply` leaves out.
const dropMarker = "# e2e:drop"

// manifestVersions reads testdata/<file> and returns the manifest as written and the same
// manifest without its dropMarker lines. rename, when set, replaces the object's metadata.name
// (cluster-scoped objects get a per-kubectl name); every "namespace: demo" reference is pointed
// at ns.
func manifestVersions(t testing.TB, file, name, rename, ns string) (full, dropped string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	full = string(data)
	if rename != "" {
		from := "\nmetadata:\n  name: " + name + "\n"
		if !strings.Contains(full, from) {
			t.Fatalf("%s: metadata.name %q is not the first metadata field", file, name)
		}
		full = strings.Replace(full, from, "\nmetadata:\n  name: "+rename+"\n", 1)
	}
	if ns != "" {
		full = strings.ReplaceAll(full, "namespace: demo", "namespace: "+ns)
	}
	var kept []string
	n := 0
	for _, line := range strings.SplitAfter(full, "\n") {
		if strings.Contains(line, dropMarker) {
			n++
			continue
		}
		kept = append(kept, line)
	}
	if n == 0 {
		t.Fatalf("%s: no %q line", file, dropMarker)
	}
	return full, strings.Join(kept, "")
}

func writeTemp(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var columnSep = regexp.MustCompile(`\s{2,}`)

// tableHeader returns the column names of the first line of a kubectl table ("LAST SEEN" stays
// one column: kubectl separates columns by at least three spaces).
func tableHeader(out string) []string {
	line, _, _ := strings.Cut(strings.TrimLeft(out, "\n"), "\n")
	return columnSep.Split(strings.TrimSpace(line), -1)
}

func wantHeader(t testing.TB, out string, want []string) {
	t.Helper()
	if got := tableHeader(out); !reflect.DeepEqual(got, want) {
		t.Fatalf("table header:\n got  %q\n want %q\noutput:\n%s", got, want, out)
	}
}

// tableRows returns the lines after the header.
func tableRows(out string) []string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		return nil
	}
	return lines[1:]
}

// jsonLookup walks a decoded JSON object; numeric elements index into lists.
func jsonLookup(obj any, path ...string) (any, bool) {
	cur := obj
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[p]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func decodeObject(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("invalid JSON (%v):\n%s", err, s)
	}
	return m
}

// mustFail runs kubectl, expects it to fail, and returns stderr.
func (k kubectl) mustFail(stdin string, args ...string) string {
	k.t.Helper()
	out, errOut, err := k.try(stdin, args...)
	if err == nil {
		k.t.Fatalf("%s %s: succeeded, want an error\nstdout: %s\nstderr: %s", k.name, strings.Join(args, " "), out, errOut)
	}
	return errOut
}

// forTest returns k reporting to t (subtests must not fail their parent's t).
func (k kubectl) forTest(t testing.TB) kubectl {
	k.t = t
	return k
}

// shortName is a short per-kubectl suffix for cluster-scoped names.
func (k kubectl) shortName() string {
	if k.name == "kubectl" {
		return "kc"
	}
	return "sk"
}

func outLines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// tryEnv is try with extra environment variables (EDITOR=...).
func (k kubectl) tryEnv(env []string, stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := k.cmd(ctx, stdin, args...)
	c.Env = append(c.Env, env...)
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	return out.String(), errOut.String(), err
}

var headerCell = regexp.MustCompile(`\S+( \S+)*`)

// parseTable splits a kubectl table into rows keyed by header; cells are cut at the header's
// column positions, so empty cells (no SHORTNAMES) stay empty.
func parseTable(out string) []map[string]string {
	ls := outLines(out)
	if len(ls) == 0 {
		return nil
	}
	cols := headerCell.FindAllStringIndex(ls[0], -1)
	var rows []map[string]string
	for _, l := range ls[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		row := map[string]string{}
		for i, c := range cols {
			start, end := c[0], len(l)
			if i+1 < len(cols) {
				end = min(cols[i+1][0], len(l))
			}
			cell := ""
			if start < len(l) {
				cell = strings.TrimSpace(l[start:end])
			}
			row[ls[0][c[0]:c[1]]] = cell
		}
		rows = append(rows, row)
	}
	return rows
}
