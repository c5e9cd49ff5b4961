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
		} else if path, ok := os.LookupEnv(name + "_FILE"); ok {
			// The NAME_FILE convention (ov-init --secrets-as files or
			// memfd): the value is in the file, never in the environment.
			b, err := os.ReadFile(path)
			if err != nil {
				fmt.Printf("server: %s_FILE is set, but: %v\n", name, err)
				continue
			}
			fmt.Printf("server: %s_FILE is set (%s, %d characters)\n", name, path, len(b))
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
