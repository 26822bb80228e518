package core

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

func serviceAccounts() *registry.Resource {
	r := newResource("serviceaccounts", "ServiceAccount", "serviceaccount", true,
		func() runtime.Object { return &corev1.ServiceAccount{} },
		func() runtime.Object { return &corev1.ServiceAccountList{} })
	r.ShortNames = []string{"sa"}
	r.NoGeneration = true
	r.Columns = []metav1.TableColumnDefinition{
		registry.NameCol,
		col("Secrets", "string", corev1.ServiceAccount{}.SwaggerDoc()["secrets"], 0),
		registry.AgeCol,
	}
	r.Row = func(obj runtime.Object, now time.Time) []interface{} {
		sa := obj.(*corev1.ServiceAccount)
		return []interface{}{sa.Name, int64(len(sa.Secrets)), registry.Age(sa.CreationTimestamp, now)}
	}
	return r
}
