#!/usr/bin/env bash
# Regenerates internal/apiserver/openapi/zz_generated.openapi.go: the OpenAPI
# schema definitions for every API type skiff serves, produced by kube-openapi's
# openapi-gen from the k8s.io/api and k8s.io/apimachinery versions pinned in
# go.mod. Output is deterministic, so running this on a clean tree must leave
# `git diff` empty (use that as a staleness check).
#
# Usage: hack/update-openapi.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

MODULE="$(go list -m)"
OUT_PKG="${MODULE}/internal/apiserver/openapi"
OUT_DIR="internal/apiserver/openapi"

# Use exactly the kube-openapi version go.mod pins, so the generator agrees
# with the k8s.io/kube-openapi/pkg/common types the generated code compiles
# against.
KUBE_OPENAPI_VERSION="$(go list -m -f '{{.Version}}' k8s.io/kube-openapi)"

# Build the generator into a private bin dir rather than `go run` so the
# generator's own dependencies (gengo, x/tools) are resolved from
# kube-openapi's go.mod and never touch ours.
# (The build cache makes repeated installs cheap.)
GEN_BIN="$(mktemp -d)"
trap 'rm -rf "${GEN_BIN}"' EXIT
GOBIN="${GEN_BIN}" GOWORK=off \
  go install "k8s.io/kube-openapi/cmd/openapi-gen@${KUBE_OPENAPI_VERSION}"

# The API group/versions skiff serves plus the apimachinery packages their
# types reference. Any type referenced from here but missing from this list
# would produce a dangling $ref, so keep it in sync with what the server
# registers.
PKGS=(
  k8s.io/api/core/v1
  k8s.io/api/apps/v1
  k8s.io/api/batch/v1
  k8s.io/api/autoscaling/v1
  k8s.io/api/autoscaling/v2
  k8s.io/api/coordination/v1
  k8s.io/api/discovery/v1
  k8s.io/api/events/v1
  k8s.io/api/networking/v1
  k8s.io/api/policy/v1
  k8s.io/api/rbac/v1
  k8s.io/api/storage/v1
  k8s.io/api/authentication/v1
  k8s.io/api/authorization/v1
  # batch/v1 (JobSpec.scheduling) references types from
  # scheduling/v1alpha3; without it those $refs would dangle.
  k8s.io/api/scheduling/v1alpha3
  k8s.io/api/scheduling/v1
  k8s.io/api/certificates/v1
  k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1
  k8s.io/apimachinery/pkg/apis/meta/v1
  k8s.io/apimachinery/pkg/runtime
  k8s.io/apimachinery/pkg/util/intstr
  k8s.io/apimachinery/pkg/api/resource
  k8s.io/apimachinery/pkg/version
)

# API rule violations (missing list-type tags etc.) are upstream's business;
# record them in a report instead of failing. With a file (not "-") as the
# report target openapi-gen does not fail on violations.
"${GEN_BIN}/openapi-gen" \
  --go-header-file hack/boilerplate.go.txt \
  --output-dir "${OUT_DIR}" \
  --output-pkg "${OUT_PKG}" \
  --output-file zz_generated.openapi.go \
  --report-filename hack/openapi-api-violations.report \
  "${PKGS[@]}"

echo "wrote ${OUT_DIR}/zz_generated.openapi.go"
