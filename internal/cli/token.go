package cli

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/apiserver"
)

const tokenChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomToken returns n characters of [a-z0-9] from crypto/rand.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = tokenChars[int(b[i])%len(tokenChars)]
	}
	return string(b), nil
}

// caCertHash is the kubeadm-style pin of a CA: sha256 of its SubjectPublicKeyInfo.
func caCertHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func adminClient(kubeconfig string) (*rest.Config, kubernetes.Interface, error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig == "" {
		kubeconfig = filepath.Join(DefaultDataDir, "kubeconfig.yaml")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	return rc, cs, err
}

// newTokenCmd manages bootstrap tokens, with which other machines join (`skiff agent`).
func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage bootstrap tokens for joining nodes"}
	var kubeconfig, description string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a bootstrap token and print the command that joins a node with it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < 0 {
				return errors.New("--ttl must not be negative")
			}
			rc, cs, err := adminClient(kubeconfig)
			if err != nil {
				return err
			}
			id, err := randomToken(6)
			if err != nil {
				return err
			}
			secret, err := randomToken(16)
			if err != nil {
				return err
			}
			data := map[string][]byte{
				"token-id":                       []byte(id),
				"token-secret":                   []byte(secret),
				"usage-bootstrap-authentication": []byte("true"),
				"usage-bootstrap-signing":        []byte("true"),
				"auth-extra-groups":              []byte("system:bootstrappers:skiff:default-node-token"),
			}
			if description != "" {
				data["description"] = []byte(description)
			}
			if ttl > 0 {
				data["expiration"] = []byte(time.Now().Add(ttl).UTC().Format(time.RFC3339))
			}
			_, err = cs.CoreV1().Secrets("kube-system").Create(cmd.Context(), &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id},
				Type:       apiserver.BootstrapTokenSecretType,
				Data:       data,
			}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			token := id + "." + secret
			hash := ""
			if block, _ := pem.Decode(rc.CAData); block != nil {
				if ca, err := x509.ParseCertificate(block.Bytes); err == nil {
					hash = caCertHash(ca)
				}
			} else if rc.CAFile != "" {
				if b, err := os.ReadFile(rc.CAFile); err == nil {
					if block, _ := pem.Decode(b); block != nil {
						if ca, err := x509.ParseCertificate(block.Bytes); err == nil {
							hash = caCertHash(ca)
						}
					}
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), token)
			join := fmt.Sprintf("skiff agent --server %s --token %s", rc.Host, token)
			if hash != "" {
				join += " --ca-cert-hash " + hash
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Join a machine with (use an address of this server it can reach):\n  %s\n", join)
			return nil
		},
	}
	create.Flags().StringVar(&kubeconfig, "kubeconfig", "", "admin kubeconfig (default $KUBECONFIG or <data-dir>/kubeconfig.yaml)")
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid (0: forever)")
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	cmd.AddCommand(create)
	return cmd
}
