package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller/deployment"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// wlStart starts a control plane running the ReplicaSet, ReplicationController and
// Deployment controllers, and skips the test when the API server does not serve what it
// needs yet.
func wlStart(t *testing.T, need ...string) *skifftest.Cluster {
	t.Helper()
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{replicaset.New, replicaset.NewRC, deployment.New}})
	for _, gvr := range need {
		i := strings.LastIndex(gvr, "/")
		gv, res := gvr[:i], gvr[i+1:]
		list, err := c.Client.Discovery().ServerResourcesForGroupVersion(gv)
		found := false
		if err == nil {
			for _, r := range list.APIResources {
				if r.Name == res {
					found = true
				}
			}
		}
		if !found {
			t.Skipf("%s not served yet (%v)", gvr, err)
		}
	}
	return c
}

func wlNamespace(t *testing.T, c *skifftest.Cluster, name string) {
	t.Helper()
	if _, err := c.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// wlKubelet plays the node side for the pods of a namespace, since the test cluster has no
// nodes: it binds every new pod to a node, reports it Running and Ready readyAfter later,
// and finishes graceful deletions at once.
type wlKubelet struct {
	client     kubernetes.Interface
	ns         string
	readyAfter time.Duration
	queue      workqueue.TypedRateLimitingInterface[string]
	mu         sync.Mutex
	boundAt    map[types.UID]time.Time
}

func wlStartKubelet(t *testing.T, c *skifftest.Cluster, ns string, readyAfter time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	k := &wlKubelet{client: c.Client, ns: ns, readyAfter: readyAfter, boundAt: map[types.UID]time.Time{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	f := informers.NewSharedInformerFactoryWithOptions(c.Client, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	enqueue := func(obj interface{}) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			k.queue.Add(key)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o interface{}) { enqueue(o) }})
	f.Start(ctx.Done())
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, quit := k.queue.Get()
				if quit {
					return
				}
				if err := k.handle(ctx, key); err != nil && ctx.Err() == nil {
					k.queue.AddRateLimited(key)
				} else {
					k.queue.Forget(key)
				}
				k.queue.Done(key)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		k.queue.ShutDown()
		wg.Wait()
		f.Shutdown()
	})
}

func (k *wlKubelet) handle(ctx context.Context, key string) error {
	_, name, _ := cache.SplitMetaNamespaceKey(key)
	pods := k.client.CoreV1().Pods(k.ns)
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pod.DeletionTimestamp != nil {
		zero := int64(0)
		err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	if pod.Spec.NodeName == "" {
		err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name, UID: pod.UID},
			Target: corev1.ObjectReference{Kind: "Node", Name: "fake-node"}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsConflict(err) {
			return err
		}
		k.mu.Lock()
		k.boundAt[pod.UID] = time.Now()
		k.mu.Unlock()
		k.queue.AddAfter(key, k.readyAfter)
		return nil
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	k.mu.Lock()
	bound, ok := k.boundAt[pod.UID]
	if !ok {
		bound = time.Now()
		k.boundAt[pod.UID] = bound
	}
	k.mu.Unlock()
	if wait := k.readyAfter - time.Since(bound); wait > 0 {
		k.queue.AddAfter(key, wait)
		return nil
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.StartTime = &now
	pod.Status.PodIP = "10.0.0.1"
	for _, t := range []corev1.PodConditionType{corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		wlSetCondition(&pod.Status, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	pod.Status.ContainerStatuses = nil
	for _, ctr := range pod.Spec.Containers {
		started := true
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: ctr.Name, Image: ctr.Image, Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func wlSetCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// wlActivePods lists the pods of a namespace matching selector that are not being deleted.
func wlActivePods(t *testing.T, c *skifftest.Cluster, ns, selector string) []corev1.Pod {
	t.Helper()
	l, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

func wlEventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, msg := cond()
		last = msg
		return ok, nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s: %s", what, last)
	}
}

func wlReplicaSet(name string, n int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "tier": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "skiff.local/web:v1"}}},
			},
		},
	}
}

func wlEvents(t *testing.T, c *skifftest.Cluster, ns, reason string) []string {
	l, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range l.Items {
		if e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

func TestReplicaSetCreatesScalesAndReplacesPods(t *testing.T) {
	c := wlStart(t, "apps/v1/replicasets", "v1/pods")
	ctx := context.Background()
	ns := "rs-basic"
	wlNamespace(t, c, ns)
	wlStartKubelet(t, c, ns, 50*time.Millisecond)
	rsc := c.Client.AppsV1().ReplicaSets(ns)
	if _, err := rsc.Create(ctx, wlReplicaSet("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	status := func(want int32) func() (bool, string) {
		return func() (bool, string) {
			rs, err := rsc.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			pods := wlActivePods(t, c, ns, "app=web")
			st := rs.Status
			return len(pods) == int(want) && st.Replicas == want && st.ReadyReplicas == want && st.AvailableReplicas == want &&
					st.FullyLabeledReplicas == want && st.ObservedGeneration == rs.Generation,
				fmt.Sprintf("%d pods, status %+v", len(pods), st)
		}
	}
	wlEventually(t, 20*time.Second, "3 ready pods", status(3))

	pods := wlActivePods(t, c, ns, "app=web")
	name := regexp.MustCompile(`^web-[a-z0-9]{5}$`)
	for _, p := range pods {
		ref := metav1.GetControllerOf(&p)
		if !name.MatchString(p.Name) || ref == nil || ref.Kind != "ReplicaSet" || ref.Name != "web" ||
			ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion || p.Labels["tier"] != "web" {
			t.Fatalf("pod %s: labels %v owners %+v", p.Name, p.Labels, p.OwnerReferences)
		}
	}

	// A deleted pod is replaced.
	victim := pods[0].Name
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 20*time.Second, "a replacement pod", func() (bool, string) {
		ok, msg := status(3)()
		if !ok {
			return false, msg
		}
		for _, p := range wlActivePods(t, c, ns, "app=web") {
			if p.Name == victim {
				return false, "victim still there"
			}
		}
		return true, ""
	})

	// Scaling up and down.
	for _, n := range []int32{5, 1, 0, 2} {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			scale, err := rsc.GetScale(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			scale.Spec.Replicas = n
			_, err = rsc.UpdateScale(ctx, "web", scale, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		wlEventually(t, 20*time.Second, fmt.Sprintf("%d pods", n), status(n))
	}

	wlEventually(t, 10*time.Second, "events", func() (bool, string) {
		created, deleted := wlEvents(t, c, ns, "SuccessfulCreate"), wlEvents(t, c, ns, "SuccessfulDelete")
		ok := len(created) > 0 && len(deleted) > 0 && strings.HasPrefix(created[0], "Created pod: web-") && strings.HasPrefix(deleted[0], "Deleted pod: web-")
		return ok, fmt.Sprintf("created %v deleted %v", created, deleted)
	})
}

func TestReplicaSetAdoptsAndReleases(t *testing.T) {
	c := wlStart(t, "apps/v1/replicasets", "v1/pods")
	ctx := context.Background()
	ns := "rs-adopt"
	wlNamespace(t, c, ns)
	wlStartKubelet(t, c, ns, 0)
	rs := wlReplicaSet("web", 2)
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: rs.Spec.Template.Labels}, Spec: rs.Spec.Template.Spec}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created, err := c.Client.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 20*time.Second, "adoption", func() (bool, string) {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ref := metav1.GetControllerOf(p)
		pods := wlActivePods(t, c, ns, "app=web")
		return ref != nil && ref.UID == created.UID && len(pods) == 2, fmt.Sprintf("owners %+v, %d pods", p.OwnerReferences, len(pods))
	})
	// Relabelled out of the selector: released, and replaced.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Labels = map[string]string{"app": "elsewhere"}
		_, err = c.Client.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 20*time.Second, "release and replacement", func() (bool, string) {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pods := wlActivePods(t, c, ns, "app=web")
		return metav1.GetControllerOf(p) == nil && len(pods) == 2, fmt.Sprintf("owners %+v, %d pods", p.OwnerReferences, len(pods))
	})
}

func TestReplicaSetLogicForReplicationControllers(t *testing.T) {
	c := wlStart(t, "v1/replicationcontrollers", "v1/pods")
	ctx := context.Background()
	ns := "rc-basic"
	wlNamespace(t, c, ns)
	wlStartKubelet(t, c, ns, 0)
	n := int32(3)
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec: corev1.ReplicationControllerSpec{Replicas: &n, Selector: map[string]string{"app": "legacy"},
			Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "legacy"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "skiff.local/web:v1"}}}}},
	}
	if _, err := c.Client.CoreV1().ReplicationControllers(ns).Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 20*time.Second, "3 ready pods", func() (bool, string) {
		got, err := c.Client.CoreV1().ReplicationControllers(ns).Get(ctx, "legacy", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pods := wlActivePods(t, c, ns, "app=legacy")
		for _, p := range pods {
			if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "ReplicationController" || !strings.HasPrefix(p.Name, "legacy-") {
				return false, fmt.Sprintf("pod %s owners %+v", p.Name, p.OwnerReferences)
			}
		}
		return len(pods) == 3 && got.Status.Replicas == 3 && got.Status.ReadyReplicas == 3 && got.Status.AvailableReplicas == 3,
			fmt.Sprintf("%d pods, status %+v", len(pods), got.Status)
	})
}
