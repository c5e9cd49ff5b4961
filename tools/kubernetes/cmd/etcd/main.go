// Command etcd is the etcd server at the version k8s.io/kubernetes itself
// depends on, so the cluster's store comes from the same module graph.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
