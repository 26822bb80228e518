package integration

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// An informer outlives a server restart: its watch breaks, it re-watches from its last
// resourceVersion — which the restarted server's watch cache no longer reaches, so it gets
// 410 Gone and relists — and then it sees changes again. Its store ends equal to the server.
func TestInformerSurvivesRestartAndRelists(t *testing.T) {
	dir := t.TempDir()
	c := skifftest.Start(t, skifftest.Options{DataDir: dir, Controllers: []controlplane.ComponentFactory{}})
	u, _ := url.Parse(c.URL)
	port, _ := strconv.Atoi(u.Port())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	rc := *c.Config
	cs := kubernetes.NewForConfigOrDie(&rc)
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	inf := f.Core().V1().ConfigMaps().Informer()
	var mu sync.Mutex
	names := map[string]bool{}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { mu.Lock(); names[o.(*corev1.ConfigMap).Name] = true; mu.Unlock() },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			mu.Lock()
			delete(names, o.(*corev1.ConfigMap).Name)
			mu.Unlock()
		},
	})
	f.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
	for i := 0; i < 5; i++ {
		if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm(fmt.Sprintf("before-%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitNames(t, &mu, names, 5)
	// Writes the informer does not watch move etcd's revision past the informer's; then the
	// server goes away at once, before a bookmark could tell the informer.
	for i := 0; i < 3; i++ {
		if _, err := c.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Stop()
	time.Sleep(500 * time.Millisecond)
	c2 := skifftest.Start(t, skifftest.Options{DataDir: dir, Port: port, Controllers: []controlplane.ComponentFactory{}})
	if err := c2.Client.CoreV1().ConfigMaps("default").Delete(ctx, "before-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := c2.Client.CoreV1().ConfigMaps("default").Create(ctx, cm(fmt.Sprintf("after-%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitNames(t, &mu, names, 7)
	mu.Lock()
	defer mu.Unlock()
	if names["before-0"] || !names["after-2"] {
		t.Fatalf("informer state after restart: %v", names)
	}
}

func waitNames(t *testing.T, mu *sync.Mutex, names map[string]bool, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(names)
		mu.Unlock()
		if got == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Fatalf("informer holds %d objects, want %d: %v", len(names), n, names)
}

var _ = net.JoinHostPort
