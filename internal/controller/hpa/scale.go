package hpa

import (
	"context"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// getScale reads the target's /scale subresource.
func (c *Controller) getScale(ctx context.Context, ns string, ref autoscalingv2.CrossVersionObjectReference) (*autoscalingv1.Scale, error) {
	opts := metav1.GetOptions{}
	switch targetKind(ref) {
	case "apps/Deployment":
		return c.client.AppsV1().Deployments(ns).GetScale(ctx, ref.Name, opts)
	case "apps/ReplicaSet":
		return c.client.AppsV1().ReplicaSets(ns).GetScale(ctx, ref.Name, opts)
	case "apps/StatefulSet":
		return c.client.AppsV1().StatefulSets(ns).GetScale(ctx, ref.Name, opts)
	case "/ReplicationController":
		return c.client.CoreV1().ReplicationControllers(ns).GetScale(ctx, ref.Name, opts)
	}
	return nil, fmt.Errorf("no scale subresource known for %s %q (apiVersion %q)", ref.Kind, ref.Name, ref.APIVersion)
}

// updateScale writes the target's /scale subresource.
func (c *Controller) updateScale(ctx context.Context, ns string, ref autoscalingv2.CrossVersionObjectReference, scale *autoscalingv1.Scale) error {
	opts := metav1.UpdateOptions{}
	var err error
	switch targetKind(ref) {
	case "apps/Deployment":
		_, err = c.client.AppsV1().Deployments(ns).UpdateScale(ctx, ref.Name, scale, opts)
	case "apps/ReplicaSet":
		_, err = c.client.AppsV1().ReplicaSets(ns).UpdateScale(ctx, ref.Name, scale, opts)
	case "apps/StatefulSet":
		_, err = c.client.AppsV1().StatefulSets(ns).UpdateScale(ctx, ref.Name, scale, opts)
	case "/ReplicationController":
		_, err = c.client.CoreV1().ReplicationControllers(ns).UpdateScale(ctx, ref.Name, scale, opts)
	default:
		err = fmt.Errorf("no scale subresource known for %s %q", ref.Kind, ref.Name)
	}
	return err
}

// targetKind is "<group>/<Kind>" of the reference; the old extensions group counts as apps.
func targetKind(ref autoscalingv2.CrossVersionObjectReference) string {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return ""
	}
	group := gv.Group
	if group == "extensions" {
		group = "apps"
	}
	return group + "/" + ref.Kind
}

func equalityDeep(a, b interface{}) bool { return equality.Semantic.DeepEqual(a, b) }
