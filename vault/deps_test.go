package vault

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsOnlyStdlibAndXCrypto holds STYLE.md: vault imports neither
// reaper nor keyload, nor anything but the standard library and x/crypto
// (whose chacha20poly1305 brings golang.org/x/sys/cpu).
func TestImportsOnlyStdlibAndXCrypto(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test needs the go command on PATH: %v", err)
	}
	out, err := exec.Command(gotool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == "github.com/ov-init/ov-init/vault",
			strings.HasPrefix(dep, "golang.org/x/crypto/"),
			dep == "golang.org/x/sys/cpu":
		default:
			t.Errorf("vault depends on %s", dep)
		}
	}
}
