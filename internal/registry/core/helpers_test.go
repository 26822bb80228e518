package core

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func errStrings(errs field.ErrorList) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

// expectErrors checks that every wanted message is reported (exact match of an error, or of
// its beginning when the wanted message ends with "...").
func expectErrors(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	got := errStrings(errs)
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w || (strings.HasSuffix(w, "...") && strings.HasPrefix(g, strings.TrimSuffix(w, "..."))) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("missing error %q; got:\n  %s", w, strings.Join(got, "\n  "))
		}
	}
	if len(want) == 0 && len(got) != 0 {
		t.Errorf("unexpected errors:\n  %s", strings.Join(got, "\n  "))
	}
}

func resourceByName(t *testing.T, plural string) *registry.Resource {
	t.Helper()
	for _, r := range Resources() {
		if r.Resource == plural {
			return r
		}
	}
	t.Fatalf("resource %s not found", plural)
	return nil
}
