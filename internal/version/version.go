// Package version holds skiff's version and the Kubernetes API version it serves.
package version

import (
	"fmt"
	"runtime"

	"k8s.io/apimachinery/pkg/version"
)

// These are set at build time with -ldflags "-X github.com/skiff-sh/skiff/internal/version.GitCommit=...".
var (
	// Version is skiff's own version.
	Version = "v0.1.0"
	// GitCommit is the commit the binary was built from.
	GitCommit = "unknown"
	// BuildDate is when the binary was built.
	BuildDate = "1970-01-01T00:00:00Z"
)

// KubeMajor and KubeMinor are the Kubernetes API version served (that of k8s.io/api).
const (
	KubeMajor = "1"
	KubeMinor = "37"
)

// Info is what /version reports.
func Info() version.Info {
	return version.Info{
		Major: KubeMajor, Minor: KubeMinor,
		GitVersion:   fmt.Sprintf("v%s.%s.2+skiff-%s", KubeMajor, KubeMinor, Version),
		GitCommit:    GitCommit,
		GitTreeState: "clean",
		BuildDate:    BuildDate,
		GoVersion:    runtime.Version(),
		Compiler:     runtime.Compiler,
		Platform:     runtime.GOOS + "/" + runtime.GOARCH,
	}
}
