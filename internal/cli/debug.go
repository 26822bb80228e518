package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/storage"
)

// newDebugCmd reads objects straight from etcd and decodes skiff's protobuf encoding.
func newDebugCmd() *cobra.Command {
	dbg := &cobra.Command{Use: "debug", Short: "Inspect a cluster's storage directly"}
	var dataDir, endpoints, output string
	var keysOnly bool
	get := &cobra.Command{
		Use:   "etcd-get KEY-OR-PREFIX",
		Short: "Print stored objects under an etcd key prefix, e.g. /registry/core/pods/default/",
		Long: `Print stored objects decoded from skiff's protobuf storage encoding. With embedded etcd the
server must be stopped (the data directory is locked) or --etcd-endpoints must point at it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := storage.EtcdConfig{DataDir: dataDir + "/etcd"}
			if endpoints != "" {
				cfg.Endpoints = strings.Split(endpoints, ",")
			}
			e, err := storage.StartEtcd(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer e.Close()
			resp, err := e.Client.Get(cmd.Context(), args[0], clientv3.WithPrefix())
			if err != nil {
				return err
			}
			codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
			for _, kv := range resp.Kvs {
				if keysOnly {
					fmt.Fprintln(cmd.OutOrStdout(), string(kv.Key))
					continue
				}
				obj, _, err := codec.Decode(kv.Value, nil, nil)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s: %v\n", kv.Key, err)
					continue
				}
				printObj(cmd, string(kv.Key), kv.ModRevision, obj, output)
			}
			return nil
		},
	}
	get.Flags().StringVar(&dataDir, "data-dir", DefaultDataDir, "the server's data directory")
	get.Flags().StringVar(&endpoints, "etcd-endpoints", "", "etcd endpoints (default: open the embedded etcd's data)")
	get.Flags().StringVarP(&output, "output", "o", "yaml", "yaml or json")
	get.Flags().BoolVar(&keysOnly, "keys-only", false, "print keys only")
	dbg.AddCommand(get)
	return dbg
}

func printObj(cmd *cobra.Command, key string, rev int64, obj runtime.Object, output string) {
	b, _ := json.Marshal(obj)
	fmt.Fprintf(cmd.OutOrStdout(), "# %s (revision %d)\n", key, rev)
	if output == "json" {
		fmt.Fprintln(cmd.OutOrStdout(), string(b))
		return
	}
	y, _ := yaml.JSONToYAML(b)
	fmt.Fprintf(cmd.OutOrStdout(), "---\n%s", y)
}
