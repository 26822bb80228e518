// Package all lists every resource the API server serves and connects the groups that share
// logic (workload pod templates are defaulted and validated as core pods).
package all

import (
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/apiextensions"
	"github.com/skiff-sh/skiff/internal/registry/apps"
	"github.com/skiff-sh/skiff/internal/registry/authentication"
	"github.com/skiff-sh/skiff/internal/registry/authorization"
	"github.com/skiff-sh/skiff/internal/registry/autoscaling"
	"github.com/skiff-sh/skiff/internal/registry/batch"
	"github.com/skiff-sh/skiff/internal/registry/certificates"
	"github.com/skiff-sh/skiff/internal/registry/coordination"
	"github.com/skiff-sh/skiff/internal/registry/core"
	"github.com/skiff-sh/skiff/internal/registry/discovery"
	"github.com/skiff-sh/skiff/internal/registry/events"
	"github.com/skiff-sh/skiff/internal/registry/networking"
	"github.com/skiff-sh/skiff/internal/registry/policy"
	"github.com/skiff-sh/skiff/internal/registry/rbac"
	"github.com/skiff-sh/skiff/internal/registry/scheduling"
	"github.com/skiff-sh/skiff/internal/registry/storageapi"
)

func init() {
	apps.DefaultPodTemplate = core.DefaultPodTemplateSpec
	apps.ValidatePodTemplate = core.ValidatePodTemplateSpec
	batch.DefaultPodTemplate = core.DefaultPodTemplateSpec
	batch.ValidatePodTemplate = core.ValidatePodTemplateSpec
}

// Resources returns every served resource, core/v1 first.
func Resources() []*registry.Resource {
	var out []*registry.Resource
	for _, group := range [][]*registry.Resource{
		core.Resources(), apps.Resources(), batch.Resources(), autoscaling.Resources(),
		coordination.Resources(), discovery.Resources(), events.Resources(), networking.Resources(),
		policy.Resources(), rbac.Resources(), storageapi.Resources(), authentication.Resources(),
		authorization.Resources(), scheduling.Resources(), apiextensions.Resources(), certificates.Resources(),
	} {
		out = append(out, group...)
	}
	return out
}
