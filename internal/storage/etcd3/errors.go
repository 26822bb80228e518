package etcd3

import "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

var rpcCompacted = rpctypes.ErrCompacted
