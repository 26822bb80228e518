// Command netbench measures HTTP throughput to a real pod straight to its IP, through a
// ClusterIP Service (skiff's nftables proxy) and through the ingress controller, in the same
// run, with wrk (Debian's package) as the load, and prints the ratios. Runs as root with
// containerd installed; it starts its own `skiff server` with a node agent.
//
//	sudo go run ./bench/cmd/netbench [-skiff bin/skiff] [-images bin/images] [-duration 8s] [-connections 32] [-rounds 2]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/bench/internal/benchutil"
	"github.com/skiff-sh/skiff/internal/agent/runtime"
)

func main() {
	skiff := flag.String("skiff", "bin/skiff", "skiff binary")
	imgDir := flag.String("images", "bin/images", "prebuilt image tarballs (make test-images)")
	duration := flag.Duration("duration", 8*time.Second, "wrk duration per target")
	conns := flag.Int("connections", 32, "wrk connections")
	rounds := flag.Int("rounds", 2, "rounds over the targets")
	flag.Parse()
	if _, err := exec.LookPath("wrk"); err != nil {
		fail(fmt.Errorf("wrk not found: apt-get install wrk"))
	}
	fmt.Printf("# skiff service data path benchmark — %s, %d CPUs, load average %s\n\n", time.Now().UTC().Format(time.RFC3339), benchutil.NumCPU(), benchutil.LoadAvg())

	dir, err := os.MkdirTemp("", "netbench")
	fail(err)
	defer os.RemoveAll(dir)
	fail(benchutil.LinkImages(*imgDir, filepath.Join(dir, "agent", "images")))
	ingressPort := mustPort()
	cmd := exec.Command(*skiff, "server", "--data-dir", dir, "--https-listen-port", "0", "--log-level", "warn",
		"--kubelet-port", strconv.Itoa(mustPort()), "--ingress-http-port", strconv.Itoa(ingressPort), "--ingress-https-port", "0")
	cmd.Stderr = os.Stderr
	fail(cmd.Start())
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_, _ = cmd.Process.Wait()
		_, _ = runtime.KillShims(filepath.Join(dir, "agent", "containerd", "containerd.sock"))
		_ = runtime.UnmountUnder(dir)
	}()
	kc := filepath.Join(dir, "kubeconfig.yaml")
	waitFor(2*time.Minute, func() bool { _, err := os.Stat(kc); return err == nil })
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	fail(err)
	cs, err := kubernetes.NewForConfig(rc)
	fail(err)
	ctx := context.Background()
	waitFor(2*time.Minute, func() bool {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})

	labels := map[string]string{"app": "bench"}
	one := int32(1)
	_, err = cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "skiff.local/web:v1"}}}}},
	}, metav1.CreateOptions{})
	fail(err)
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}}},
	}, metav1.CreateOptions{})
	fail(err)
	prefix := networkingv1.PathTypePrefix
	_, err = cs.NetworkingV1().Ingresses("default").Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "bench.local", IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "bench", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}},
	}, metav1.CreateOptions{})
	fail(err)
	var podIP string
	waitFor(2*time.Minute, func() bool {
		eps, err := cs.CoreV1().Endpoints("default").Get(ctx, "bench", metav1.GetOptions{})
		if err != nil || len(eps.Subsets) == 0 || len(eps.Subsets[0].Addresses) == 0 {
			return false
		}
		podIP = eps.Subsets[0].Addresses[0].IP
		return true
	})
	time.Sleep(2 * time.Second) // rules and routes programmed

	targets := []struct {
		name string
		args []string
	}{
		{"pod IP", []string{"http://" + podIP + "/"}},
		{"ClusterIP service", []string{"http://" + svc.Spec.ClusterIP + "/"}},
		{"ingress (Host: bench.local)", []string{"-H", "Host: bench.local", fmt.Sprintf("http://127.0.0.1:%d/", ingressPort)}},
	}
	results := make([][]float64, len(targets))
	for r := 0; r < *rounds; r++ {
		for i, t := range targets {
			rps := wrk(*duration, *conns, t.args)
			results[i] = append(results[i], rps)
		}
	}
	fmt.Printf("wrk -t2 -c%d -d%s, %d rounds, one web pod (skiff.local/web:v1)\n\n", *conns, *duration, *rounds)
	fmt.Printf("| target | req/s per round | best | ratio to pod IP (best) |\n|---|---|---|---|\n")
	base := best(results[0])
	for i, t := range targets {
		var cells []string
		for _, v := range results[i] {
			cells = append(cells, fmt.Sprintf("%.0f", v))
		}
		fmt.Printf("| %s | %s | %.0f | %.2f |\n", t.name, strings.Join(cells, ", "), best(results[i]), best(results[i])/base)
	}
	zero := int64(0)
	_ = cs.AppsV1().Deployments("default").Delete(ctx, "bench", metav1.DeleteOptions{})
	_ = cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: "app=bench"})
	waitFor(time.Minute, func() bool {
		l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0
	})
}

var rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(d time.Duration, conns int, args []string) float64 {
	a := append([]string{"-t2", "-c" + strconv.Itoa(conns), "-d" + d.String()}, args...)
	out, err := exec.Command("wrk", a...).CombinedOutput()
	fail(err)
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		fail(fmt.Errorf("wrk output: %s", out))
	}
	if strings.Contains(string(out), "Non-2xx") {
		fail(fmt.Errorf("wrk saw errors: %s", out))
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func best(v []float64) float64 {
	b := 0.0
	for _, x := range v {
		if x > b {
			b = x
		}
	}
	return b
}

func waitFor(d time.Duration, f func() bool) {
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("timed out after %v", d))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(1)
	}
}

func mustPort() int {
	p, err := benchutil.FreePort()
	fail(err)
	return p
}
