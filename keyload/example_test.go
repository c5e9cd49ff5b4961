//go:build linux

package keyload_test

import (
	"fmt"
	"os"

	"github.com/ov-init/ov-init/keyload"
)

func ExampleLoad() {
	key, err := keyload.Load("/run/secrets/machine.kek")
	if err != nil {
		// One line: what is wrong, the quoted path, the fix.
		fmt.Fprintln(os.Stderr, "ov-init:", err)
		os.Exit(1)
	}
	defer key.Wipe()

	// Keys derived from it live in locked memory too.
	appKey, free, err := keyload.Locked(keyload.Size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ov-init:", err)
		os.Exit(1)
	}
	defer free()
	_ = key.Bytes() // derive into appKey; never copy into ordinary memory
	_ = appKey
}
