package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeBlock is the first fenced block after the README heading.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no heading %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("README's %q has no fenced block", heading)
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("README's %q block is not closed", heading)
	}
	return block + "\n"
}

// The README's first recipe, "The flow", runs as written, /etc/ov and all:
// in a mount namespace of its own whose /etc is an overlay, so that the
// machine's /etc is untouched. The password comes from OV_PASSWORD_FILE,
// the value from stdin, as the README says they may; the last line must
// print the secret through ov-init with no prompt.
func TestTheFlowInTheREADMERunsAsWritten(t *testing.T) {
	block := readmeBlock(t, "## The flow")
	if !strings.Contains(block, "ov-init ") {
		t.Fatalf("the flow runs no ov-init:\n%s", block)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "home", "scratch"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ovInit, filepath.Join(dir, "bin/ov-init")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ovBin, filepath.Join(dir, "bin/ov")); err != nil {
		t.Fatal(err)
	}
	const value = "postgres://app:flow-9xQ2@db/app"
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "value"), []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The value is on stdin, which secret set, the only reader, drains.
	setup := `set -e
mount -t tmpfs tmpfs "$DIR/scratch"
mkdir "$DIR/scratch/upper" "$DIR/scratch/work"
mount -t overlay overlay -o lowerdir=/etc,upperdir="$DIR/scratch/upper",workdir="$DIR/scratch/work" /etc
rm -rf /etc/ov
exec sh -ec "$FLOW" <"$DIR/value"
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", setup)
	cmd.Env = []string{
		"PATH=" + filepath.Join(dir, "bin") + ":/usr/bin:/bin",
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_STATE_HOME=" + filepath.Join(dir, "home/state"),
		"OV_PASSWORD_FILE=" + filepath.Join(dir, "password"),
		"DIR=" + dir,
		"FLOW=" + block,
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the flow, as the README writes it, failed: %v\n%s\nstderr:\n%s", err, block, stderr.String())
	}
	if !strings.Contains(stdout.String(), "\nDATABASE_URL="+value+"\n") && !strings.HasPrefix(stdout.String(), "DATABASE_URL="+value+"\n") {
		t.Errorf("the flow's last line did not print DATABASE_URL:\n%s", stdout.String())
	}
	assertNoLeak(t, "stderr of the flow", stderr.String())
	if strings.Contains(stderr.String(), value) {
		t.Errorf("the flow's stderr holds the value")
	}
	if _, err := os.Stat("/etc/ov/machine.kek"); err == nil {
		t.Errorf("the flow wrote the machine's own /etc/ov")
	}
}
