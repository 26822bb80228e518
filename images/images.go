// Package images holds the sources of skiff's demo and test images, embedded so that the
// image builder (internal/agent/images) can compile them from any working directory:
//
//	pause/   skiff.local/pause:3.10   the pod sandbox process
//	web/     skiff.local/web:v1, v2   HTTP demo server and in-pod HTTP/DNS/TCP client
//
// skiff.local/busybox:latest is packed from Debian's busybox-static (/bin/busybox).
// Build every image with `go run ./images/build.go -out DIR`.
package images

import "embed"

// Sources holds the Go sources of the image binaries, one directory per binary. Each
// binary uses only the standard library.
//
//go:embed pause/*.go web/*.go
var Sources embed.FS
