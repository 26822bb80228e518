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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/polymorphichelpers"

	"github.com/skiff-sh/skiff/pkg/skifftest"
)

var wlDeploymentGK = schema.GroupKind{Group: "apps", Kind: "Deployment"}

func wlDeployment(name string, n int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
			"kubernetes.io/change-cause": "kubectl create --filename=pc-deployment.yaml --record=true",
		}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{
				MatchLabels:      map[string]string{"app": "nginx-pod"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"nginx-pod"}}},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "nginx-pod"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "skiff.local/web:v1"}}},
			},
		},
	}
}

// wlRolloutStatus is what `kubectl rollout status` prints for the deployment now.
func wlRolloutStatus(t *testing.T, c *skifftest.Cluster, ns, name string) (string, bool) {
	d, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	msg, done, err := (&polymorphichelpers.DeploymentStatusViewer{}).Status(&unstructured.Unstructured{Object: u}, 0)
	if err != nil {
		return err.Error(), false
	}
	return msg, done
}

func wlWaitRolledOut(t *testing.T, c *skifftest.Cluster, ns, name string) {
	t.Helper()
	want := fmt.Sprintf("deployment %q successfully rolled out\n", name)
	wlEventually(t, 60*time.Second, "rollout", func() (bool, string) {
		msg, done := wlRolloutStatus(t, c, ns, name)
		return done && msg == want, msg
	})
}

func wlUpdateDeployment(t *testing.T, c *skifftest.Cluster, ns, name string, mutate func(*appsv1.Deployment)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(d)
		_, err = c.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func wlSetImage(image, cause string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = image
		if cause != "" {
			d.Annotations["kubernetes.io/change-cause"] = cause
		}
	}
}

func wlReplicaSets(t *testing.T, c *skifftest.Cluster, ns string) []appsv1.ReplicaSet {
	l, err := c.Client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func wlCondition(d *appsv1.Deployment, ct appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == ct {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func TestDeploymentRollingUpdate(t *testing.T) {
	c := wlStart(t, "apps/v1/deployments", "apps/v1/replicasets", "v1/pods")
	ctx := context.Background()
	ns := "dev"
	wlNamespace(t, c, ns)
	wlStartKubelet(t, c, ns, 200*time.Millisecond)
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, wlDeployment("pc-deployment", 4), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlWaitRolledOut(t, c, ns, "pc-deployment")

	d, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, "pc-deployment", metav1.GetOptions{})
	if a := wlCondition(d, appsv1.DeploymentAvailable); a == nil || a.Status != corev1.ConditionTrue || a.Reason != "MinimumReplicasAvailable" {
		t.Fatalf("Available condition %+v", a)
	}
	sets := wlReplicaSets(t, c, ns)
	if len(sets) != 1 {
		t.Fatalf("%d ReplicaSets", len(sets))
	}
	rs1 := sets[0]
	hash := rs1.Labels["pod-template-hash"]
	if hash == "" || rs1.Name != "pc-deployment-"+hash || rs1.Spec.Selector.MatchLabels["pod-template-hash"] != hash ||
		rs1.Spec.Template.Labels["pod-template-hash"] != hash || rs1.Annotations["deployment.kubernetes.io/revision"] != "1" ||
		rs1.Annotations["kubernetes.io/change-cause"] == "" {
		t.Fatalf("ReplicaSet %s labels %v annotations %v", rs1.Name, rs1.Labels, rs1.Annotations)
	}
	if p := wlCondition(d, appsv1.DeploymentProgressing); p == nil || p.Reason != "NewReplicaSetAvailable" ||
		p.Message != fmt.Sprintf("ReplicaSet %q has successfully progressed.", rs1.Name) {
		t.Fatalf("Progressing condition %+v", p)
	}
	podName := regexp.MustCompile("^" + rs1.Name + `-[a-z0-9]{5}$`)
	for _, p := range wlActivePods(t, c, ns, "app=nginx-pod") {
		if !podName.MatchString(p.Name) {
			t.Fatalf("pod name %s", p.Name)
		}
	}
	wlEventually(t, 10*time.Second, "scaling event", func() (bool, string) {
		ev := wlEvents(t, c, ns, "ScalingReplicaSet")
		want := fmt.Sprintf("Scaled up replica set %s from 0 to 4", rs1.Name)
		for _, e := range ev {
			if e == want {
				return true, ""
			}
		}
		return false, fmt.Sprint(ev)
	})

	// Scale: 4 → 6 → 4.
	for _, n := range []int32{6, 4} {
		wlUpdateDeployment(t, c, ns, "pc-deployment", func(d *appsv1.Deployment) { d.Spec.Replicas = &n })
		wlWaitRolledOut(t, c, ns, "pc-deployment")
		if got := len(wlActivePods(t, c, ns, "app=nginx-pod")); got != int(n) {
			t.Fatalf("%d pods after scaling to %d", got, n)
		}
	}

	// Watch the rolling update: 4 replicas with 25%/25% → at most 5 desired, at least 3 ready.
	const replicas, maxTotal, minReady = 4, 5, 3
	var mu sync.Mutex
	var violations []string
	var maxSeen int32
	minSeen := 1 << 30
	rsList, _ := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	podList, _ := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	rsW, err := c.Client.AppsV1().ReplicaSets(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: rsList.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	podW, err := c.Client.CoreV1().Pods(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: podList.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int32{}
	for _, rs := range rsList.Items {
		sizes[rs.Name] = *rs.Spec.Replicas
	}
	ready := map[string]bool{}
	isReady := func(p *corev1.Pod) bool {
		if p.DeletionTimestamp != nil {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}
	for i := range podList.Items {
		ready[podList.Items[i].Name] = isReady(&podList.Items[i])
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev := range rsW.ResultChan() {
			rs, ok := ev.Object.(*appsv1.ReplicaSet)
			if !ok {
				continue
			}
			mu.Lock()
			if ev.Type == watch.Deleted {
				delete(sizes, rs.Name)
			} else {
				sizes[rs.Name] = *rs.Spec.Replicas
			}
			var total int32
			for _, n := range sizes {
				total += n
			}
			maxSeen = max(maxSeen, total)
			if total > maxTotal {
				violations = append(violations, fmt.Sprintf("ReplicaSets want %d pods: %v", total, sizes))
			}
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for ev := range podW.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			if ev.Type == watch.Deleted {
				delete(ready, p.Name)
			} else {
				ready[p.Name] = isReady(p)
			}
			n := 0
			for _, r := range ready {
				if r {
					n++
				}
			}
			minSeen = min(minSeen, n)
			if n < minReady {
				violations = append(violations, fmt.Sprintf("only %d ready pods", n))
			}
			mu.Unlock()
		}
	}()

	wlUpdateDeployment(t, c, ns, "pc-deployment", wlSetImage("skiff.local/web:v2", "kubectl set image deployment/pc-deployment web=skiff.local/web:v2 --record=true"))
	sawProgress := false
	wlEventually(t, 60*time.Second, "rolling update", func() (bool, string) {
		msg, done := wlRolloutStatus(t, c, ns, "pc-deployment")
		if strings.Contains(msg, "new replicas have been updated") || strings.Contains(msg, "old replicas are pending termination") {
			sawProgress = true
		}
		return done && len(wlReplicaSets(t, c, ns)) == 2, msg
	})
	stop()
	wg.Wait()
	mu.Lock()
	if len(violations) > 0 {
		t.Errorf("bounds violated: %v", violations)
	}
	t.Logf("rolling update: at most %d desired pods, at least %d ready pods; saw progress messages: %v", maxSeen, minSeen, sawProgress)
	mu.Unlock()

	d, _ = c.Client.AppsV1().Deployments(ns).Get(ctx, "pc-deployment", metav1.GetOptions{})
	if d.Annotations["deployment.kubernetes.io/revision"] != "2" || d.Status.UpdatedReplicas != replicas || d.Status.AvailableReplicas != replicas ||
		d.Status.UnavailableReplicas != 0 || d.Status.ObservedGeneration != d.Generation {
		t.Fatalf("deployment after update: annotations %v status %+v", d.Annotations, d.Status)
	}
	for _, rs := range wlReplicaSets(t, c, ns) {
		want := int32(0)
		if rs.Name != rs1.Name {
			want = replicas
		}
		if *rs.Spec.Replicas != want || rs.Status.Replicas != want {
			t.Fatalf("ReplicaSet %s: spec %d status %d, want %d", rs.Name, *rs.Spec.Replicas, rs.Status.Replicas, want)
		}
	}
	for _, p := range wlActivePods(t, c, ns, "app=nginx-pod") {
		if p.Spec.Containers[0].Image != "skiff.local/web:v2" {
			t.Fatalf("pod %s still runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
	wlEventually(t, 10*time.Second, "scale-down event", func() (bool, string) {
		ev := wlEvents(t, c, ns, "ScalingReplicaSet")
		for _, e := range ev {
			if strings.HasPrefix(e, "Scaled down replica set "+rs1.Name+" from ") {
				return true, ""
			}
		}
		return false, fmt.Sprint(ev)
	})
}

func TestDeploymentRecreateNeverOverlaps(t *testing.T) {
	c := wlStart(t, "apps/v1/deployments", "apps/v1/replicasets", "v1/pods")
	ctx := context.Background()
	ns := "recreate"
	wlNamespace(t, c, ns)
	wlStartKubelet(t, c, ns, 100*time.Millisecond)
	d := wlDeployment("web", 3)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlWaitRolledOut(t, c, ns, "web")

	podList, _ := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	w, err := c.Client.CoreV1().Pods(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: podList.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{}
	for _, p := range podList.Items {
		hashes[p.Name] = p.Labels["pod-template-hash"]
	}
	var violations []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(hashes, p.Name)
			} else {
				hashes[p.Name] = p.Labels["pod-template-hash"]
			}
			distinct := map[string]bool{}
			for _, h := range hashes {
				distinct[h] = true
			}
			if len(distinct) > 1 {
				violations = append(violations, fmt.Sprintf("pods of two templates at once: %v", hashes))
			}
		}
	}()
	wlUpdateDeployment(t, c, ns, "web", wlSetImage("skiff.local/web:v2", ""))
	wlEventually(t, 60*time.Second, "recreate", func() (bool, string) {
		msg, done := wlRolloutStatus(t, c, ns, "web")
		return done && len(wlReplicaSets(t, c, ns)) == 2, msg
	})
	stop()
	<-done
	if len(violations) > 0 {
		t.Fatalf("%d violations, first: %s", len(violations), violations[0])
	}
}

func TestDeploymentHistoryUndoAndRestart(t *testing.T) {
	c := wlStart(t, "apps/v1/deployments", "apps/v1/replicasets", "v1/pods")
	ctx := context.Background()
	ns := "history"
	wlNamespace(t, c, ns)
	wlStartKubelet(t, c, ns, 0)
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, wlDeployment("web", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlWaitRolledOut(t, c, ns, "web")
	wlUpdateDeployment(t, c, ns, "web", wlSetImage("skiff.local/web:v2", "kubectl set image deployment/web web=skiff.local/web:v2 --record=true"))
	wlWaitRolledOut(t, c, ns, "web")

	viewer, err := polymorphichelpers.HistoryViewerFor(wlDeploymentGK, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	history, err := viewer.ViewHistory(ns, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^1\s+kubectl create --filename=pc-deployment.yaml --record=true$`).MatchString(history) ||
		!regexp.MustCompile(`(?m)^2\s+kubectl set image deployment/web web=skiff.local/web:v2 --record=true$`).MatchString(history) {
		t.Fatalf("rollout history:\n%s", history)
	}

	// kubectl rollout undo --to-revision=1.
	rb, err := polymorphichelpers.RollbackerFor(wlDeploymentGK, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if _, err := rb.Rollback(d, nil, 1, util.DryRunNone); err != nil {
		t.Fatal(err)
	}
	wlWaitRolledOut(t, c, ns, "web")
	sets := wlReplicaSets(t, c, ns)
	if len(sets) != 2 {
		t.Fatalf("undo made a new ReplicaSet: %d", len(sets))
	}
	for _, rs := range sets {
		if rs.Spec.Template.Spec.Containers[0].Image == "skiff.local/web:v1" {
			if *rs.Spec.Replicas != 2 || rs.Annotations["deployment.kubernetes.io/revision"] != "3" || rs.Annotations["deployment.kubernetes.io/revision-history"] != "1" {
				t.Fatalf("first ReplicaSet after undo: replicas %d annotations %v", *rs.Spec.Replicas, rs.Annotations)
			}
		} else if *rs.Spec.Replicas != 0 {
			t.Fatalf("v2 ReplicaSet still has %d replicas", *rs.Spec.Replicas)
		}
	}
	d, _ = c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if d.Annotations["deployment.kubernetes.io/revision"] != "3" {
		t.Fatalf("deployment revision %q", d.Annotations["deployment.kubernetes.io/revision"])
	}
	history, _ = viewer.ViewHistory(ns, "web", 0)
	if !regexp.MustCompile(`(?m)^2\s+`).MatchString(history) || !regexp.MustCompile(`(?m)^3\s+`).MatchString(history) || regexp.MustCompile(`(?m)^1\s+`).MatchString(history) {
		t.Fatalf("history after undo:\n%s", history)
	}

	// kubectl rollout restart: a template annotation → a new ReplicaSet, every pod replaced.
	before := map[string]bool{}
	for _, p := range wlActivePods(t, c, ns, "app=nginx-pod") {
		before[p.Name] = true
	}
	wlUpdateDeployment(t, c, ns, "web", func(d *appsv1.Deployment) {
		if d.Spec.Template.Annotations == nil {
			d.Spec.Template.Annotations = map[string]string{}
		}
		d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = time.Now().Format(time.RFC3339)
	})
	wlEventually(t, 60*time.Second, "restart", func() (bool, string) {
		msg, done := wlRolloutStatus(t, c, ns, "web")
		pods := wlActivePods(t, c, ns, "app=nginx-pod")
		for _, p := range pods {
			if before[p.Name] {
				return false, "old pod " + p.Name + " still there"
			}
		}
		return done && len(pods) == 2 && len(wlReplicaSets(t, c, ns)) == 3, msg
	})
}

func TestDeploymentPauseResume(t *testing.T) {
	c := wlStart(t, "apps/v1/deployments", "apps/v1/replicasets", "v1/pods")
	ctx := context.Background()
	ns := "canary"
	wlNamespace(t, c, ns)
	wlStartKubelet(t, c, ns, 0)
	d := wlDeployment("pc-deployment", 3)
	d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{
		MaxSurge: &intstr.IntOrString{Type: intstr.String, StrVal: "25%"}, MaxUnavailable: &intstr.IntOrString{Type: intstr.String, StrVal: "25%"}}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlWaitRolledOut(t, c, ns, "pc-deployment")

	wlUpdateDeployment(t, c, ns, "pc-deployment", func(d *appsv1.Deployment) { d.Spec.Paused = true })
	wlUpdateDeployment(t, c, ns, "pc-deployment", wlSetImage("skiff.local/web:v2", ""))
	want := "Waiting for deployment \"pc-deployment\" rollout to finish: 0 out of 3 new replicas have been updated...\n"
	wlEventually(t, 20*time.Second, "paused status", func() (bool, string) {
		d, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, "pc-deployment", metav1.GetOptions{})
		p := wlCondition(d, appsv1.DeploymentProgressing)
		msg, _ := wlRolloutStatus(t, c, ns, "pc-deployment")
		return p != nil && p.Reason == "DeploymentPaused" && p.Status == corev1.ConditionUnknown && msg == want,
			fmt.Sprintf("%q %+v", msg, p)
	})
	// Paused: scaling still happens, the rollout does not.
	four := int32(4)
	wlUpdateDeployment(t, c, ns, "pc-deployment", func(d *appsv1.Deployment) { d.Spec.Replicas = &four })
	wlEventually(t, 20*time.Second, "scaling while paused", func() (bool, string) {
		pods := wlActivePods(t, c, ns, "app=nginx-pod")
		return len(pods) == 4, fmt.Sprintf("%d pods", len(pods))
	})
	time.Sleep(500 * time.Millisecond)
	if sets := wlReplicaSets(t, c, ns); len(sets) != 1 {
		t.Fatalf("paused deployment rolled out: %d ReplicaSets", len(sets))
	}

	wlUpdateDeployment(t, c, ns, "pc-deployment", func(d *appsv1.Deployment) { d.Spec.Paused = false })
	wlWaitRolledOut(t, c, ns, "pc-deployment")
	d, _ = c.Client.AppsV1().Deployments(ns).Get(ctx, "pc-deployment", metav1.GetOptions{})
	if p := wlCondition(d, appsv1.DeploymentProgressing); p == nil || p.Reason != "NewReplicaSetAvailable" || p.Status != corev1.ConditionTrue {
		t.Fatalf("Progressing after resume %+v", p)
	}
	for _, p := range wlActivePods(t, c, ns, "app=nginx-pod") {
		if p.Spec.Containers[0].Image != "skiff.local/web:v2" {
			t.Fatalf("pod %s still runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
}

func TestDeploymentProgressDeadline(t *testing.T) {
	c := wlStart(t, "apps/v1/deployments", "apps/v1/replicasets", "v1/pods")
	ctx := context.Background()
	ns := "deadline"
	wlNamespace(t, c, ns)
	// No kubelet: pods never become ready.
	d := wlDeployment("stuck", 2)
	one := int32(1)
	d.Spec.ProgressDeadlineSeconds = &one
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "ProgressDeadlineExceeded", func() (bool, string) {
		d, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, "stuck", metav1.GetOptions{})
		p := wlCondition(d, appsv1.DeploymentProgressing)
		a := wlCondition(d, appsv1.DeploymentAvailable)
		ok := p != nil && p.Status == corev1.ConditionFalse && p.Reason == "ProgressDeadlineExceeded" &&
			strings.HasSuffix(p.Message, "has timed out progressing.") && a != nil && a.Reason == "MinimumReplicasUnavailable"
		return ok, fmt.Sprintf("%+v", d.Status.Conditions)
	})
	if msg, _ := wlRolloutStatus(t, c, ns, "stuck"); msg != `deployment "stuck" exceeded its progress deadline` {
		t.Fatalf("rollout status: %q", msg)
	}
}
