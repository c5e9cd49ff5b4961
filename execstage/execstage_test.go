package execstage

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/vault"
)

func TestSecretsReplaceEveryInheritedCopyUnlessPreserved(t *testing.T) {
	inherited := []string{"PATH=/bin", "DB=old", "HOME=/root", "DB=older"}
	before := slices.Clone(inherited)
	secrets := []vault.Secret{{Name: "DB", Value: []byte("s3cret")}, {Name: "API", Value: []byte("k=v")}}
	if got, want := appEnv(inherited, secrets, false), []string{"PATH=/bin", "DB=s3cret", "HOME=/root", "API=k=v"}; !slices.Equal(got, want) {
		t.Errorf("appEnv = %q, want %q", got, want)
	}
	if got, want := appEnv(inherited, secrets, true), []string{"PATH=/bin", "DB=old", "HOME=/root", "DB=older", "API=k=v"}; !slices.Equal(got, want) {
		t.Errorf("appEnv with --preserve-env = %q, want %q", got, want)
	}
	if !slices.Equal(inherited, before) {
		t.Errorf("appEnv changed the inherited environment: %q", inherited)
	}
}

// quietStderr sends fd 2 to /dev/null for the rest of the test: Main
// writes its one line there with write(2).
func quietStderr(t *testing.T) {
	t.Helper()
	saved, err := unix.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Dup2(int(null.Fd()), 2)
	null.Close()
	t.Cleanup(func() { unix.Dup2(saved, 2); unix.Close(saved) })
}

// A stage started by hand, without PID 1's socket, exits 125 and never
// reads or writes the descriptor it was given.
func TestStageStartedByHandExits125(t *testing.T) {
	quietStderr(t)
	f, err := os.CreateTemp(t.TempDir(), "not-a-socket")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, fd := range []string{"x", "2", "03", "999", strconv.Itoa(int(f.Fd()))} {
		if got := Main([]string{"ov-init", Arg, fd, "app"}); got != exitcode.Internal {
			t.Errorf("fd %q: status %d, want %d", fd, got, exitcode.Internal)
		}
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Errorf("the stage wrote %d bytes into a file that is not its socket", fi.Size())
	}
}

// stageOver runs Main on one end of a socket pair, PID 1's side writing
// config, and returns Main's status and the bytes the stage sent back.
func stageOver(t *testing.T, config []byte) (int, []byte) {
	t.Helper()
	quietStderr(t)
	saved := parent
	parent = os.Getpid // the test made the socket pair: it stands for PID 1
	t.Cleanup(func() { parent = saved })
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pid1 := os.NewFile(uintptr(fds[0]), "pid1")
	defer pid1.Close()
	defer unix.Close(fds[1])
	pid1.Write(config)
	unix.Shutdown(fds[0], unix.SHUT_WR)
	status := make(chan int, 1)
	// Main locks its goroutine to a thread it may leave restricted: give
	// it one of its own.
	go func() { status <- Main([]string{"ov-init", Arg, strconv.Itoa(fds[1]), "app"}) }()
	got := <-status
	unix.Shutdown(fds[1], unix.SHUT_WR)
	answer := make([]byte, 16)
	n, _ := pid1.Read(answer)
	return got, answer[:n]
}

func TestStageWithoutAValidConfigAnswers125(t *testing.T) {
	status, answer := stageOver(t, []byte("shell\x00/bin/sh\x00"))
	if status != exitcode.Internal || string(answer) != string([]byte{exitcode.Internal}) {
		t.Errorf("status %d, answer %v; want %d twice", status, answer, exitcode.Internal)
	}
}

func TestStageWithAnUnusableKeyAnswers78BeforeAnythingElse(t *testing.T) {
	config, err := Config{App: "web", MachineKey: "/nonexistent/machine.kek", Vault: "/nonexistent/vault.json"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	status, answer := stageOver(t, config)
	if status != exitcode.Config || string(answer) != string([]byte{exitcode.Config}) {
		t.Errorf("status %d, answer %v; want %d and no 0 byte before it", status, answer, exitcode.Config)
	}
}

// The retired list comes from the file, which a machine key cannot
// authenticate: the line reports what the vault says, and its fix (with
// --force over the refused key file) writes a current key, rotating nothing.
func TestRetiredKeyMessagesSayWhatTheVaultSays(t *testing.T) {
	cfg := Config{App: "web", MachineKey: "/run/secrets/machine.kek", Vault: "/etc/ov/vault.json"}
	for _, c := range []struct {
		reason string
		want   []string
	}{
		{vault.ReasonRevoked, []string{
			`machine key "/run/secrets/machine.kek" is refused: the vault says deployment "blue" of app "web" (generation 3) was revoked on 2025-01-02T03:04:05Z; fix: `,
			"`ov auth derive-machine-key --out /run/secrets/machine.kek --app web --deployment NAME --force`",
		}},
		{vault.ReasonRotated, []string{
			`machine key "/run/secrets/machine.kek" is refused: the vault says deployment "blue" of app "web" (generation 3) was rotated on 2025-01-02T03:04:05Z, to a newer key; fix: `,
			"`ov auth derive-machine-key --out /run/secrets/machine.kek --app web --deployment blue --force`",
		}},
	} {
		err := vaultError(cfg, &vault.RetiredKeyError{App: "web", Deployment: "blue", Generation: 3, Date: "2025-01-02T03:04:05Z", Reason: c.reason})
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v\nwant it to contain %q", c.reason, err, w)
			}
		}
		if strings.Contains(err.Error(), "on purpose") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", c.reason, err)
		}
	}
}
