# skiff — see README.md. `make run` brings up a cluster; `make test` runs every test.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
KUBE_VERSION := v1.37.2
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w \
  -X github.com/skiff-sh/skiff/internal/version.GitCommit=$(COMMIT) \
  -X github.com/skiff-sh/skiff/internal/version.BuildDate=$(DATE) \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=37 \
  -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
  -X k8s.io/component-base/version.gitCommit=$(COMMIT) \
  -X k8s.io/component-base/version.gitTreeState=clean \
  -X k8s.io/component-base/version.buildDate=$(DATE)
DATA_DIR ?= /var/lib/skiff

.PHONY: build run setup test unit integration e2e etcd helm bench clean images test-images

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/skiff ./cmd/skiff

# Demo and test images (pause, web v1/v2, busybox), built from source as image tarballs.
images:
	$(GO) run ./images/build.go -out $(DATA_DIR)/agent/images

# The same images for the e2e tests, built once (binaries are cached by source hash).
test-images:
	$(GO) run ./images/build.go -out bin/images

etcd:
	@test -x bin/etcd || $(GO) build -o bin/etcd go.etcd.io/etcd/server/v3

# The real helm (v4, server-side apply by default), built from the Go module proxy, for the
# e2e tests that install, upgrade, roll back and uninstall a chart.
HELM_VERSION := v4.3.2
helm:
	@test -x bin/helm || GOBIN=$(CURDIR)/bin GOFLAGS= $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

# Installs what a cluster needs on this machine, builds skiff and runs it in the foreground.
run: setup build
	./bin/skiff server --data-dir $(DATA_DIR)

setup:
	bash hack/setup.sh

# Every test: unit, integration (in-process control plane), storage against an external etcd,
# and end to end with the built binary and the real kubectl.
test: setup build etcd helm test-images
	bash hack/test.sh

unit:
	$(GO) test ./internal/... ./pkg/...

integration:
	$(GO) test ./test/integration/...

e2e: build helm
	$(GO) test -count=1 ./test/e2e/...

bench: build etcd
	$(GO) run ./bench/cmd/apibench

clean:
	rm -rf bin
