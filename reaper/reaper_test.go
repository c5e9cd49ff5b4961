package reaper

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a PID 1 when REAPER_TEST_PID1 is set, so the
// runtime can be driven with a child that is slow to become ready.
func TestMain(m *testing.M) {
	if script := os.Getenv("REAPER_TEST_PID1"); script != "" {
		sigs := Listen()
		cfg := Config{
			Path:    "/bin/sh",
			Argv:    []string{"sh", "-c", script},
			Env:     os.Environ(),
			ReadyFD: readyFD(),
			Stage:   []byte(os.Getenv("REAPER_TEST_STAGE")),
			Log:     os.Stderr,
		}
		if code, err := strconv.Atoi(os.Getenv("REAPER_TEST_REMAP")); err == nil {
			cfg.RemapExit = map[int]bool{code: true}
		}
		os.Exit(Run(cfg, sigs))
	}
	os.Exit(m.Run())
}

func readyFD() int {
	if os.Getenv("REAPER_TEST_WAIT_READY") == "" {
		return 0
	}
	return 3 // the script closes fd 3
}

// readyScript stands in for the exec stage: it is not ready to take USR1
// for half a second, then traps it and closes fd 3 (as execve would).
const readyScript = `sleep 0.5; trap 'echo got USR1; exit 0' USR1; printf '\000' >&3; exec 3>&-; while :; do sleep 0.05; done`

func runEarlySignal(t *testing.T, waitReady bool) (int, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for CLONE_NEWPID")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REAPER_TEST_PID1="+readyScript)
	if waitReady {
		cmd.Env = append(cmd.Env, "REAPER_TEST_WAIT_READY=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // PID 1 runs, the child is not ready
	cmd.Process.Signal(syscall.SIGUSR1)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
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
		t.Errorf("exit %d, output %q; want the USR1 delivered once the child was ready", code, out)
	}
}

// Negative control: forwarded at once, the early USR1 kills the child.
func TestSignalsAreForwardedAtOnceWithoutWaitReady(t *testing.T) {
	code, _ := runEarlySignal(t, false)
	if code != 128+int(syscall.SIGUSR1) {
		t.Errorf("exit %d, want %d: without WaitReady the early signal should kill the child", code, 128+int(syscall.SIGUSR1))
	}
}

func TestParseSignal(t *testing.T) {
	good := map[string]syscall.Signal{
		"TERM": 15, "SIGTERM": 15, "term": 15, "15": 15, "QUIT": 3, "usr1": 10,
		"RTMIN": 34, "RTMIN+3": 37, "SIGRTMAX": 64, "RTMAX-2": 62, "64": 64,
	}
	for in, want := range good {
		if got, err := ParseSignal(in, false); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "NOPE", "RTMIN-1", "RTMAX+1", "RTMIN+31", "SIG"} {
		if got, err := ParseSignal(in, false); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", in, got)
		}
	}
	if got, err := ParseSignal("0", true); err != nil || got != 0 {
		t.Errorf("ParseSignal(0, allowZero) = %v, %v", got, err)
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
		if forwardable(sig) {
			t.Errorf("%v must not be forwarded", sig)
		}
	}
	for _, sig := range []syscall.Signal{1, 2, 3, 10, 12, 14, 15, 18, 20, 21, 22, 28, 34, 40, 64} {
		if !forwardable(sig) {
			t.Errorf("%v must be forwarded", sig)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o644)
	env := []string{"PATH=/nonexistent:" + dir}

	if got, err := LookPath("tool", env); err != nil || got != exe {
		t.Errorf("LookPath(tool) = %q, %v", got, err)
	}
	status := func(name string) int {
		_, err := LookPath(name, env)
		if err == nil {
			return 0
		}
		return err.(*ExecError).Status()
	}
	for name, want := range map[string]int{"missing": 127, "plain": 126, plain: 126, dir: 126, "/no/such": 127, "": 127, exe: 0} {
		if got := status(name); got != want {
			t.Errorf("LookPath(%q): status %d, want %d", name, got, want)
		}
	}
	if got, err := LookPath("sh", nil); err != nil || !strings.HasSuffix(got, "/sh") {
		t.Errorf("without PATH, LookPath(sh) = %q, %v; want the default search path", got, err)
	}
}

// runStage runs script as the exec stage of a PID 1 with --remap-exit
// remap, and returns PID 1's status and the child's stdout.
func runStage(t *testing.T, script string, remap int, stage string) (int, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for CLONE_NEWPID")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REAPER_TEST_PID1="+script, "REAPER_TEST_WAIT_READY=1",
		"REAPER_TEST_REMAP="+strconv.Itoa(remap), "REAPER_TEST_STAGE="+stage)
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

// Control: a stage that execs (closes the socket without a byte) is the
// app, and the app's 78 is remapped.
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
	if code != ExitInternal {
		t.Errorf("a stage that exits 0 without a word: exit %d, want %d", code, ExitInternal)
	}
}
