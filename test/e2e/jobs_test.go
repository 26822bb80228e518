package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

const jobsManifest = `
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  completions: 3
  parallelism: 2
  template:
    metadata:
      annotations:
        skiff.dev/sim-exit-code: "0"
        skiff.dev/sim-exit-after: "1s"
    spec:
      restartPolicy: Never
      containers:
      - name: pi
        image: skiff.local/busybox
        command: ["sh", "-c", "echo 3.14159"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: fail
spec:
  backoffLimit: 1
  template:
    metadata:
      annotations:
        skiff.dev/sim-exit-code: "1"
        skiff.dev/sim-exit-after: "500ms"
    spec:
      restartPolicy: Never
      containers:
      - name: fail
        image: skiff.local/busybox
        command: ["false"]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            skiff.dev/sim-exit-code: "0"
            skiff.dev/sim-exit-after: "500ms"
        spec:
          restartPolicy: OnFailure
          containers:
          - name: tick
            image: skiff.local/busybox
            command: ["date"]
`

// TestJobsWithKubectl drives Jobs and CronJobs through the real kubectl on simulated nodes.
func TestJobsWithKubectl(t *testing.T) {
	s := startServer(t, "--simulated-nodes", "3", "--simulated-pod-start-delay", "200ms")
	k := s.kubectls()[0]
	eventually(t, 30*time.Second, func() error {
		out, _, err := k.try("", "get", "nodes", "--no-headers")
		if err != nil || strings.Count(out, " Ready ") != 3 {
			return fmt.Errorf("nodes: %v %s", err, out)
		}
		return nil
	})
	mustContain(t, k.stdin(jobsManifest, "apply", "-f", "-"), "job.batch/pi created", "job.batch/fail created", "cronjob.batch/tick created")

	// completions 3, parallelism 2.
	k.run("wait", "--for=condition=complete", "job/pi", "--timeout=60s")
	out := k.run("get", "jobs", "pi")
	if !regexp.MustCompile(`(?m)^NAME\s+STATUS\s+COMPLETIONS\s+DURATION\s+AGE$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^pi\s+Complete\s+3/3\s+\d+s\s+\d+s$`).MatchString(out) {
		t.Fatalf("kubectl get jobs:\n%s", out)
	}
	out = k.run("describe", "job", "pi")
	mustContain(t, out, "Completions:", "3", "Parallelism:", "2",
		"Pods Statuses:    0 Active (0 Ready) / 3 Succeeded / 0 Failed",
		"SuccessfulCreate", "Created pod: pi-", "Completed", "Job completed")
	pods := k.run("get", "pods", "-l", "batch.kubernetes.io/job-name=pi", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.finalizers}{\"\\n\"}{end}")
	if n := strings.Count(pods, " Succeeded"); n != 3 || strings.Contains(pods, "job-tracking") {
		t.Fatalf("pods of pi:\n%s", pods)
	}

	// A failing job reaches its backoff limit.
	k.run("wait", "--for=condition=failed", "job/fail", "--timeout=90s")
	reason := k.run("get", "job", "fail", "-o", `jsonpath={.status.conditions[?(@.type=="Failed")].reason}`)
	if reason != "BackoffLimitExceeded" {
		t.Fatalf("Failed reason %q", reason)
	}
	out = k.run("get", "jobs", "fail", "--no-headers")
	if !regexp.MustCompile(`^fail\s+Failed\s+0/1\s`).MatchString(out) {
		t.Fatalf("kubectl get jobs fail: %s", out)
	}
	mustContain(t, k.run("describe", "job", "fail"), "BackoffLimitExceeded", "Job has reached the specified backoff limit",
		"0 Active (0 Ready) / 0 Succeeded / 2 Failed")

	// kubectl create job: its pod runs until the job is deleted.
	mustContain(t, k.run("create", "job", "sleeper", "--image=skiff.local/busybox", "--", "sleep", "3600"), "job.batch/sleeper created")
	eventually(t, 30*time.Second, func() error {
		out, _, err := k.try("", "get", "jobs", "sleeper", "--no-headers")
		if err != nil || !regexp.MustCompile(`^sleeper\s+Running\s+0/1\s`).MatchString(out) {
			return fmt.Errorf("%v %s", err, out)
		}
		out, _, _ = k.try("", "get", "pods", "-l", "job-name=sleeper", "--no-headers")
		if !strings.Contains(out, "Running") {
			return fmt.Errorf("pods: %s", out)
		}
		return nil
	})
	k.run("delete", "job", "sleeper", "--wait=true", "--timeout=30s")
	eventually(t, 30*time.Second, func() error {
		out, _, _ := k.try("", "get", "pods", "-l", "job-name=sleeper", "--no-headers")
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("pods left: %s", out)
		}
		return nil
	})

	// A job made from the CronJob by hand.
	mustContain(t, k.run("create", "job", "tick-manual", "--from=cronjob/tick"), "job.batch/tick-manual created")
	k.run("wait", "--for=condition=complete", "job/tick-manual", "--timeout=60s")

	// The CronJob runs on its own within about a minute.
	var scheduled string
	eventually(t, 80*time.Second, func() error {
		out, _, err := k.try("", "get", "jobs", "--no-headers", "-o", "custom-columns=NAME:.metadata.name")
		if err != nil {
			return err
		}
		scheduled = regexp.MustCompile(`(?m)^tick-\d{8,}$`).FindString(out)
		if scheduled == "" {
			return fmt.Errorf("no scheduled job yet:\n%s", out)
		}
		return nil
	})
	out = k.run("get", "cronjob", "tick")
	if !regexp.MustCompile(`(?m)^NAME\s+SCHEDULE\s+TIMEZONE\s+SUSPEND\s+ACTIVE\s+LAST SCHEDULE\s+AGE$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^tick\s+\*/1 \* \* \* \*\s+<none>\s+False\s+[01]\s+\d+s\s+`).MatchString(out) {
		t.Fatalf("kubectl get cronjob:\n%s", out)
	}
	ts := k.run("get", "job", scheduled, "-o", `jsonpath={.metadata.annotations.batch\.kubernetes\.io/cronjob-scheduled-timestamp}`)
	if _, err := time.Parse(time.RFC3339, ts); err != nil {
		t.Fatalf("scheduled timestamp %q: %v", ts, err)
	}
	k.run("wait", "--for=condition=complete", "job/"+scheduled, "--timeout=60s")
	eventually(t, 30*time.Second, func() error {
		out := k.run("describe", "cronjob", "tick")
		for _, w := range []string{"SuccessfulCreate", "Created job " + scheduled, "SawCompletedJob"} {
			if !strings.Contains(out, w) {
				return fmt.Errorf("describe lacks %q:\n%s", w, out)
			}
		}
		return nil
	})
}
