package cli

import (
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

// routeKlog sends the logs of client-go and friends (klog) into slog.
func routeKlog() {
	klog.SetLogger(logr.FromSlogHandler(slog.Default().Handler()))
}
