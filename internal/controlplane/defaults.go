package controlplane

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller/certificates"
	"github.com/skiff-sh/skiff/internal/controller/cronjob"
	"github.com/skiff-sh/skiff/internal/controller/daemonset"
	"github.com/skiff-sh/skiff/internal/controller/deployment"
	"github.com/skiff-sh/skiff/internal/controller/endpoints"
	"github.com/skiff-sh/skiff/internal/controller/endpointslice"
	"github.com/skiff-sh/skiff/internal/controller/garbagecollector"
	"github.com/skiff-sh/skiff/internal/controller/hpa"
	"github.com/skiff-sh/skiff/internal/controller/job"
	"github.com/skiff-sh/skiff/internal/controller/namespace"
	"github.com/skiff-sh/skiff/internal/controller/nodeipam"
	"github.com/skiff-sh/skiff/internal/controller/nodelifecycle"
	"github.com/skiff-sh/skiff/internal/controller/podgc"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
	"github.com/skiff-sh/skiff/internal/controller/resourcequota"
	"github.com/skiff-sh/skiff/internal/controller/rootca"
	"github.com/skiff-sh/skiff/internal/controller/serviceaccount"
	"github.com/skiff-sh/skiff/internal/controller/statefulset"
	"github.com/skiff-sh/skiff/internal/controller/volume"
	"github.com/skiff-sh/skiff/internal/proxy/servicelb"
	"github.com/skiff-sh/skiff/internal/scheduler"
)

// DefaultControllers is the leader-elected set `skiff server` runs.
func DefaultControllers() []ComponentFactory {
	return []ComponentFactory{
		replicaset.New, replicaset.NewRC, deployment.New, nodeipam.New, nodelifecycle.New, podgc.New,
		scheduler.New, garbagecollector.New, namespace.New, serviceaccount.New,
		endpoints.New, endpointslice.New, servicelb.New,
		job.New, cronjob.New,
		daemonset.New, statefulset.New,
		hpa.New, volume.New, rootca.New, resourcequota.New, certificates.New,
	}
}

func metav1ObjectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}
