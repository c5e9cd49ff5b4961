// Command server is the example app of examples/myapp: it reports which of
// its secrets it received (never their values) and shuts down cleanly on
// SIGTERM, as a real server would.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fmt.Printf("server: pid %d, uid %d\n", os.Getpid(), os.Getuid())
	for _, name := range []string{"DATABASE_URL", "API_TOKEN"} {
		if v, ok := os.LookupEnv(name); ok {
			fmt.Printf("server: %s is set (%d characters)\n", name, len(v))
		} else {
			fmt.Printf("server: %s is not set\n", name)
		}
	}
	if len(os.Args) > 1 && os.Args[1] == "--once" {
		return
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("server: ready")
	sig := <-c
	fmt.Printf("server: %v, shutting down\n", sig)
}
