package scheduler

import (
	"github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/balancedallocation"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/defaultbinder"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/defaultpreemption"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/interpodaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/leastallocated"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodename"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeports"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/noderesourcesfit"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeunschedulable"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/podtopologyspread"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/schedulinggates"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/tainttoleration"
)

// DefaultSchedulerName is the schedulerName pods get by default.
const DefaultSchedulerName = "default-scheduler"

// DefaultPlugins is Kubernetes' default profile: Filter plugins in Kubernetes' order (a
// node is reported with the first plugin that rejects it, so the order shapes the
// failure message) and Kubernetes' score weights.
func DefaultPlugins() []runtime.PluginSpec {
	return []runtime.PluginSpec{
		{Name: schedulinggates.Name, Factory: schedulinggates.New},
		{Name: nodeunschedulable.Name, Factory: nodeunschedulable.New},
		{Name: nodename.Name, Factory: nodename.New},
		{Name: tainttoleration.Name, Factory: tainttoleration.New, Weight: 3},
		{Name: nodeaffinity.Name, Factory: nodeaffinity.New, Weight: 2},
		{Name: nodeports.Name, Factory: nodeports.New},
		{Name: noderesourcesfit.Name, Factory: noderesourcesfit.New},
		{Name: podtopologyspread.Name, Factory: podtopologyspread.New, Weight: 2},
		{Name: interpodaffinity.Name, Factory: interpodaffinity.New, Weight: 2},
		{Name: defaultpreemption.Name, Factory: defaultpreemption.New},
		{Name: leastallocated.Name, Factory: leastallocated.New, Weight: 1},
		{Name: balancedallocation.Name, Factory: balancedallocation.New, Weight: 1},
		{Name: defaultbinder.Name, Factory: defaultbinder.New},
	}
}
