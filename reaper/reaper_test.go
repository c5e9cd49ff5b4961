package reaper

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/internal/emulation"
)

// The test binary doubles as a PID 1 when REAPER_TEST_PID1 is set: it runs
// that shell script as its child, as a plain app or, with
// REAPER_TEST_AS_STAGE set, as an exec stage that gets the hand-off socket
// at fd 3 (see Config.StageFD) and REAPER_TEST_STAGE_CONFIG through it.
func TestMain(m *testing.M) {
	if script := os.Getenv("REAPER_TEST_PID1"); script != "" {
		sigs := Listen()
		cfg := Config{
			Path:        "/bin/sh",
			Argv:        []string{"sh", "-c", script},
			Env:         os.Environ(),
			StageFD:     stageFD(),
			StageConfig: []byte(os.Getenv("REAPER_TEST_STAGE_CONFIG")),
			Log:         os.Stderr,
		}
		if code, err := strconv.Atoi(os.Getenv("REAPER_TEST_REMAP")); err == nil {
			cfg.RemapExit = map[int]bool{code: true}
		}
		os.Exit(Run(cfg, sigs))
	}
	os.Exit(m.Run())
}

func stageFD() int {
	if os.Getenv("REAPER_TEST_AS_STAGE") == "" {
		return 0
	}
	return 3
}

// slowStage stands in for the exec stage: it says it runs, then for half a
// second it cannot take USR1 (it would die of it), then it traps it, writes
// the 0 byte that says the app starts and closes fd 3 (as execve would).
const slowStage = `echo stage; sleep 0.5; trap 'echo got USR1; exit 0' USR1; printf '\000' >&3; exec 3>&-; while :; do sleep 0.05; done`

// runEarlySignal runs slowStage under a PID 1, as an exec stage or as a
// plain app, and sends PID 1 a USR1 before the script traps it.
func runEarlySignal(t *testing.T, asStage bool) (int, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for CLONE_NEWPID")
	}
	emulation.Skip(t, runtime.GOARCH, "qemu-user refuses clone(2) with CLONE_NEWPID (EINVAL), so the test cannot start itself as PID 1; integration/ runs the arm64 PID 1 instead")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REAPER_TEST_PID1="+slowStage)
	if asStage {
		cmd.Env = append(cmd.Env, "REAPER_TEST_AS_STAGE=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The stage runs, so PID 1 has subscribed to signals (it does before it
	// starts anything), and the stage has not said the app starts: a fixed
	// sleep here lost the signal on a loaded machine, before PID 1 listened.
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); line != "stage\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the stage's first line: %q, %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	var out strings.Builder
	copied := make(chan struct{})
	go func() { io.Copy(&out, r); close(copied) }()
	done := make(chan struct{})
	go func() { <-copied; cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("the held signal never reached the child")
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

func TestSignalsBeforeTheAppRunsAreHeldThenDelivered(t *testing.T) {
	code, out := runEarlySignal(t, true)
	if code != 0 || out != "got USR1\n" {
		t.Errorf("exit %d, output %q; want the USR1 delivered once the stage said the app starts", code, out)
	}
}

// Negative control: to a plain app, which runs at once, the early USR1 is
// forwarded at once and kills it.
func TestSignalsAreForwardedAtOnceToAPlainApp(t *testing.T) {
	code, _ := runEarlySignal(t, false)
	if code != 128+int(syscall.SIGUSR1) {
		t.Errorf("exit %d, want %d: a plain app gets the early signal at once and dies of it", code, 128+int(syscall.SIGUSR1))
	}
}

func TestExitStatus(t *testing.T) {
	cases := []struct {
		ws   syscall.WaitStatus
		want int
	}{
		{0, 0},
		{3 << 8, 3},
		{255 << 8, 255},
		{syscall.WaitStatus(syscall.SIGKILL), 137},
		{syscall.WaitStatus(syscall.SIGTERM), 143},
		{syscall.WaitStatus(syscall.SIGSEGV) | 0x80, 139}, // core dumped
	}
	for _, c := range cases {
		if got := exitStatus(c.ws); got != c.want {
			t.Errorf("exitStatus(%#x) = %d, want %d", uint32(c.ws), got, c.want)
		}
	}
}

func TestForwardable(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGURG, syscall.SIGCHLD, syscall.SIGSEGV, syscall.SIGBUS,
		syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGABRT} {
		if Forwardable(sig) {
			t.Errorf("%v must not be forwarded", sig)
		}
	}
	for _, sig := range []syscall.Signal{1, 2, 3, 10, 12, 14, 15, 18, 20, 21, 22, 28, 34, 40, 64} {
		if !Forwardable(sig) {
			t.Errorf("%v must be forwarded", sig)
		}
	}
}

// runStage runs script as the exec stage of a PID 1 with --remap-exit
// remap, and returns PID 1's status and the child's stdout.
func runStage(t *testing.T, script string, remap int, stage string) (int, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for CLONE_NEWPID")
	}
	emulation.Skip(t, runtime.GOARCH, "qemu-user refuses clone(2) with CLONE_NEWPID (EINVAL), so the test cannot start itself as PID 1; integration/ runs the arm64 PID 1 instead")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REAPER_TEST_PID1="+script, "REAPER_TEST_AS_STAGE=1",
		"REAPER_TEST_REMAP="+strconv.Itoa(remap), "REAPER_TEST_STAGE_CONFIG="+stage)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, _ := cmd.Output()
	return cmd.ProcessState.ExitCode(), string(out)
}

// The stage reads its configuration from the socket, then fails: one
// status byte back (078 octal is not 78; \116 is). PID 1 exits with that
// status, which --remap-exit must not touch.
func TestStageFailureIsNeverRemapped(t *testing.T) {
	script := `cat <&3; printf '\116' >&3; exit 78`
	code, out := runStage(t, script, 78, "the config")
	if code != 78 || out != "the config" {
		t.Errorf("exit %d, stage read %q; want 78 and the config", code, out)
	}
}

// Control: a stage that says the app starts (a 0 byte, then the socket
// closed as execve closes it) is the app, and the app's 78 is remapped.
func TestAppStatusIsRemappedAfterTheStage(t *testing.T) {
	code, _ := runStage(t, `printf '\000' >&3; exec 3>&-; exit 78`, 78, "")
	if code != 0 {
		t.Errorf("exit %d, want 0: the app's 78 remapped", code)
	}
}

// A stage that ends without a word (killed, or unable to write) never
// passes for the app: its status is ov-init's, not remapped.
func TestSilentStageIsNeverTakenForTheApp(t *testing.T) {
	code, _ := runStage(t, `exec 3>&-; kill -PIPE $$`, 141, "")
	if code != 141 {
		t.Errorf("exit %d, want 141 unremapped", code)
	}
	code, _ = runStage(t, `exec 3>&-; exit 0`, 0, "")
	if code != exitcode.Internal {
		t.Errorf("a stage that exits 0 without a word: exit %d, want %d", code, exitcode.Internal)
	}
}
