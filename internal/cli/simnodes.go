package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/simnode"
)

// newSimnodesCmd adds simulated nodes to a running cluster; the server's simulated kubelet
// adopts them.
func newSimnodesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "simnodes", Short: "Manage simulated nodes of a running cluster"}
	var kubeconfig, prefix string
	add := &cobra.Command{
		Use:   "add COUNT",
		Short: "Register COUNT more simulated nodes (the server keeps them alive)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n int
			if _, err := fmt.Sscan(args[0], &n); err != nil || n <= 0 {
				return fmt.Errorf("COUNT must be a positive number, got %q", args[0])
			}
			if kubeconfig == "" {
				kubeconfig = os.Getenv("KUBECONFIG")
			}
			if kubeconfig == "" {
				kubeconfig = filepath.Join(DefaultDataDir, "kubeconfig.yaml")
			}
			rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			names, err := simnode.Add(cmd.Context(), cs, simnode.Config{Count: n, Prefix: prefix})
			if err != nil {
				return err
			}
			for _, name := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "node/%s added\n", name)
			}
			return nil
		},
	}
	add.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default $KUBECONFIG or <data-dir>/kubeconfig.yaml)")
	add.Flags().StringVar(&prefix, "prefix", "sim-", "node name prefix")
	cmd.AddCommand(add)
	return cmd
}
