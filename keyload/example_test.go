//go:build linux

package keyload_test

import (
	"fmt"
	"os"

	"github.com/ov-init/ov-init/keyload"
)

// The exec stage's use: load, hand the view to what derives from it (the
// vault's Open), wipe as soon as that returns.
func ExampleLoad() {
	key, err := keyload.Load("/run/secrets/machine.kek")
	if err != nil {
		// One line: what is wrong, the quoted path, the fix.
		fmt.Fprintln(os.Stderr, "ov-init:", err)
		os.Exit(78)
	}
	defer key.Wipe() // safe twice: the early Wipe below is the one that counts

	// Bytes is a view into the locked page, not a copy: pass it on, never
	// keep it or copy it into ordinary memory.
	open(key.Bytes())
	key.Wipe()
}

func open(machineKey []byte) { _ = machineKey }
