package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/version"
)

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print skiff's version and the Kubernetes version it serves",
		RunE: func(cmd *cobra.Command, args []string) error {
			info := version.Info()
			if output == "json" {
				b, _ := json.MarshalIndent(info, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "skiff %s (commit %s, built %s)\nKubernetes API %s\n", version.Version, version.GitCommit, version.BuildDate, info.GitVersion)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}
