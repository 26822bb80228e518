// Command skiff is a whole Kubernetes-compatible cluster in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/skiff-sh/skiff/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
