package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/execstage"
)

// The test binary is ov-init when INIT_TEST_MAIN is set: TestMain runs
// main() itself, with the arguments the test gave. INIT_TEST_NOFILE, when
// set, first lowers RLIMIT_NOFILE (soft and hard) to that many descriptors.
func TestMain(m *testing.M) {
	if os.Getenv("INIT_TEST_MAIN") != "" {
		if os.Getenv("INIT_TEST_NOFILE") == "3" {
			lim := unix.Rlimit{Cur: 3, Max: 3}
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
				os.Stderr.WriteString("setrlimit: " + err.Error() + "\n")
				os.Exit(99)
			}
		}
		main()
	}
	os.Exit(m.Run())
}

// ovInit runs this binary as ov-init with args and returns its status and
// stderr.
func ovInit(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Args[0] = "ov-init"
	cmd.Env = append([]string{"INIT_TEST_MAIN=1", "PATH=/usr/bin:/bin"}, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// 125 is ov-init's own failure, with one line that says what failed.
func TestOwnFailureExits125(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		args []string
		msg  string
	}{
		// Three descriptors only: no room for the exec stage's socket.
		{"NoDescriptorForTheStageSocket", []string{"INIT_TEST_NOFILE=3"},
			[]string{"--app", "web", "--vault", "/nonexistent", "--", "true"},
			`ov-init: starting "ov-init": creating the exec-stage socket: too many open files`},
		// The exec stage started by hand, without PID 1's socket.
		{"ExecStageWithoutPID1", nil,
			[]string{"__ov_exec_stage", "3", "true"},
			"ov-init: exec stage started without a valid configuration"},
	} {
		code, stderr := ovInit(t, c.env, c.args...)
		if code != 125 || stderr != c.msg+"\n" {
			t.Errorf("%s: exit %d, stderr %q; want 125 and %q", c.name, code, stderr, c.msg)
		}
	}
}

// A stage whose socket comes from anyone but its parent takes nothing from
// it: here the test's end holds a valid configuration naming a command
// that would leave a mark, and the stage must refuse before reading it.
func TestExecStageRefusesASocketFromAnotherPeer(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer, stageEnd := os.NewFile(uintptr(fds[0]), "peer"), os.NewFile(uintptr(fds[1]), "stage")
	defer peer.Close()
	config, err := execstage.Config{App: "web", MachineKey: "/nonexistent", Vault: "/nonexistent"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	peer.Write(config)
	unix.Shutdown(fds[0], unix.SHUT_WR)
	// The stage's parent is a shell, not the socket's maker (this test).
	marker := t.TempDir() + "/ran"
	cmd := exec.Command("/bin/sh", "-c", `"$0" "$@"; echo "exit $?"`, os.Args[0], execstage.Arg, "3", "/bin/touch", marker)
	cmd.Env = []string{"INIT_TEST_MAIN=1", "PATH=/usr/bin:/bin"}
	cmd.ExtraFiles = []*os.File{stageEnd}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	stageEnd.Close()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "exit 125\n" || stderr.String() != "ov-init: exec stage started without a valid configuration\n" {
		t.Errorf("stdout %q, stderr %q; want exit 125 and the one line", out, stderr.String())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the stage ran the command a foreign socket named")
	}
}

// Control: with descriptors to spare the same run gets past the socket and
// fails on the vault instead (78), so the 125 above is the socket's.
func TestOwnFailureControlReachesTheExecStage(t *testing.T) {
	code, stderr := ovInit(t, nil, "--app", "web", "--vault", "/nonexistent", "--machine-key", "/nonexistent", "--", "true")
	if code != 78 || !strings.Contains(stderr, "/nonexistent") {
		t.Errorf("exit %d, stderr %q; want 78 from the exec stage", code, stderr)
	}
}
