// Package cli holds skiff's subcommands, one file each.
package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string) int {
	// `skiff kubectl ...` hands every argument to kubectl untouched, flags included.
	if len(args) > 0 && args[0] == "kubectl" {
		return runKubectl(ctx, args[1:])
	}
	root := newRoot()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}

func newRoot() *cobra.Command {
	var logLevel, logFormat string
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "skiff: a small Kubernetes-compatible cluster in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return setupLogging(logLevel, logFormat)
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newServerCmd(), newVersionCmd(), newKubectlCmd(), newDebugCmd(), newSimnodesCmd(), newAgentCmd(), newTokenCmd())
	return root
}

func setupLogging(level, format string) error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	default:
		return fmt.Errorf("--log-format: unknown format %q", format)
	}
	slog.SetDefault(slog.New(h))
	routeKlog()
	return nil
}
