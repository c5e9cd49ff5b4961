// Command ov-init is a container init (PID 1) that injects sealed secrets
// into the app it starts. See the README.
package main

import (
	"os"

	"github.com/ov-init/ov-init/execstage"
	"github.com/ov-init/ov-init/initcmd"
	"github.com/ov-init/ov-init/reaper"
)

func main() {
	if execstage.Requested(os.Args) {
		os.Exit(execstage.Main(os.Args))
	}
	// Subscribe before anything else: until then a TERM would kill PID 1.
	sigs := reaper.Listen()
	os.Exit(initcmd.Main(sigs))
}
