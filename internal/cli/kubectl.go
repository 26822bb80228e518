package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
)

// DefaultDataDir is where `skiff server` keeps its data unless told otherwise.
const DefaultDataDir = "/var/lib/skiff"

// newKubectlCmd only documents the command: Execute dispatches `skiff kubectl` before cobra
// parses anything, so that every kubectl flag reaches kubectl.
func newKubectlCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl",
		Short:              "Run kubectl against this machine's skiff cluster",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := runKubectl(cmd.Context(), args); code != 0 {
				os.Exit(code)
			}
			return nil
		},
	}
}

// runKubectl runs the real kubectl (k8s.io/kubectl). Without KUBECONFIG or --kubeconfig it
// uses the local server's admin kubeconfig.
func runKubectl(ctx context.Context, args []string) int {
	if os.Getenv("KUBECONFIG") == "" && !hasFlag(args, "--kubeconfig") {
		dir := os.Getenv("SKIFF_DATA_DIR")
		if dir == "" {
			dir = DefaultDataDir
		}
		kc := filepath.Join(dir, "kubeconfig.yaml")
		if _, err := os.Stat(kc); err == nil {
			os.Setenv("KUBECONFIG", kc)
		}
	}
	os.Args = append([]string{"kubectl"}, args...)
	cmd := kubectlcmd.NewDefaultKubectlCommand()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || len(a) > len(name) && a[:len(name)+1] == name+"=" {
			return true
		}
	}
	return false
}
