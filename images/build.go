//go:build ignore

// Builds skiff's local images as docker-archive tarballs:
//
//	go run ./images/build.go -out /var/lib/skiff/agent/images
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/skiff-sh/skiff/internal/agent/images"
)

func main() {
	out := flag.String("out", "/var/lib/skiff/agent/images", "directory for the image tarballs")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := images.Build(ctx, images.Options{OutDir: *out, Log: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, "build images:", err)
		os.Exit(1)
	}
}
