package defaultbinder

import (
	"context"
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	fwkruntime "github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
	st "github.com/skiff-sh/skiff/internal/scheduler/internal/schedtest"
)

func TestBind(t *testing.T) {
	for _, fail := range []bool{false, true} {
		client := fake.NewClientset()
		var got *v1.Binding
		client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "binding" {
				return false, nil, nil
			}
			if fail {
				return true, nil, errors.New("boom")
			}
			got = a.(clienttesting.CreateAction).GetObject().(*v1.Binding)
			return true, got, nil
		})
		f, err := fwkruntime.New(st.One(Name, New), fwkruntime.Options{Client: client})
		if err != nil {
			t.Fatal(err)
		}
		pod := st.MakePod("p").Obj()
		s := f.RunBindPlugins(context.Background(), framework.NewCycleState(), pod, "n1")
		if fail {
			if s.IsSuccess() {
				t.Fatal("bind error not reported")
			}
			continue
		}
		if !s.IsSuccess() {
			t.Fatal(s.AsError())
		}
		if got == nil || got.Name != "p" || got.Namespace != "default" || got.UID != pod.UID || got.Target.Kind != "Node" || got.Target.Name != "n1" {
			t.Fatalf("binding %+v", got)
		}
	}
}
