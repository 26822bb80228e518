package auth

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigName names the cluster, user and context in generated
// kubeconfigs.
const kubeconfigName = "skiff"

// WriteKubeconfig writes a kubeconfig for server that authenticates with the
// given client certificate. Credentials are embedded rather than referenced
// by path so the file stays valid when copied to another machine.
func WriteKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte) error {
	return writeKubeconfig(path, server, caPEM, &clientcmdapi.AuthInfo{
		ClientCertificateData: certPEM,
		ClientKeyData:         keyPEM,
	})
}

// WriteTokenKubeconfig writes a kubeconfig for server that authenticates
// with a bearer token.
func WriteTokenKubeconfig(path, server string, caPEM []byte, token string) error {
	return writeKubeconfig(path, server, caPEM, &clientcmdapi.AuthInfo{Token: token})
}

func writeKubeconfig(path, server string, caPEM []byte, user *clientcmdapi.AuthInfo) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[kubeconfigName] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthorityData: caPEM,
	}
	cfg.AuthInfos[kubeconfigName] = user
	cfg.Contexts[kubeconfigName] = &clientcmdapi.Context{
		Cluster:  kubeconfigName,
		AuthInfo: kubeconfigName,
	}
	cfg.CurrentContext = kubeconfigName

	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}
	// 0600: the file holds a private key or token.
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
