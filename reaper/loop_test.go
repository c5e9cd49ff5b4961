package reaper

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/execpath"
	"github.com/ov-init/ov-init/exitcode"
)

// Unit tests of the loop's parts, one supervisor at a time and no child:
// the end-to-end behaviour is tested as PID 1 in reaper_test.go and
// integration/.

func quiet(cfg Config) *supervisor {
	return &supervisor{cfg: cfg, stageFail: stageExeced}
}

// stage runs handOff against a fake exec stage that reads the config and
// then writes answer (closing its end after it) and returns the verdict
// and the config the stage read.
func stage(t *testing.T, answer []byte) (int, string) {
	t.Helper()
	v, config, _ := stageLeaving(t, answer)
	return v, config
}

// stageLeaving is stage, and whether handOff saw StageLeavesFiles.
func stageLeaving(t *testing.T, answer []byte) (int, string, bool) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "stage")
	var left bool
	verdict := handOff(os.NewFile(uintptr(fds[0]), "pid1"), []byte("the config"), &left)
	config, err := io.ReadAll(child)
	if err != nil {
		t.Fatal(err)
	}
	child.Write(answer)
	child.Close()
	select {
	case v := <-verdict:
		return v, string(config), left
	case <-time.After(5 * time.Second):
		t.Fatal("no verdict")
		return 0, "", false
	}
}

func TestHandOffVerdicts(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer []byte
		want   int
	}{
		{"AppStarts", []byte{0}, stageExeced},
		{"StageFailed", []byte{exitcode.Config}, exitcode.Config},
		{"ExecveFailed", []byte{0, exitcode.NotFound}, exitcode.NotFound},
		{"Silence", nil, stageSilent},
	} {
		v, config := stage(t, c.answer)
		if v != c.want || config != "the config" {
			t.Errorf("%s: verdict %d, stage read %q; want %d and the config", c.name, v, config, c.want)
		}
	}
}

// The stage's notice that it leaves files for the app is no verdict: it
// comes before the 0 of execve, or before a failure status (issue 12).
func TestHandOffNoticeOfFilesIsNoVerdict(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer []byte
		want   int
		left   bool
	}{
		{"AppStarts", []byte{StageLeavesFiles, 0}, stageExeced, true},
		{"FailsAfterWriting", []byte{StageLeavesFiles, exitcode.Config}, exitcode.Config, true},
		{"ExecveFailed", []byte{StageLeavesFiles, 0, exitcode.NotFound}, exitcode.NotFound, true},
		{"DiesAfterTheNotice", []byte{StageLeavesFiles}, stageSilent, true},
		{"NoNotice", []byte{0}, stageExeced, false},
		{"FailsBeforeWriting", []byte{exitcode.Config}, exitcode.Config, false},
	} {
		v, _, left := stageLeaving(t, c.answer)
		if v != c.want || left != c.left {
			t.Errorf("%s: verdict %d, left %v; want %d, %v", c.name, v, left, c.want, c.left)
		}
	}
	for _, s := range exitcode.Table {
		if s.Code == StageLeavesFiles {
			t.Errorf("StageLeavesFiles is status %d of ov-init's own (%s)", s.Code, s.Help)
		}
	}
}

// finish runs StageCleanup when, and only when, the stage sent its notice,
// whatever the verdict; and before the exit status is decided.
func TestStageCleanupRunsOnlyAfterTheNotice(t *testing.T) {
	for _, c := range []struct {
		name    string
		left    bool
		verdict int
		want    bool
	}{
		{"AppRan", true, stageExeced, true},
		{"StageFailedAfterWriting", true, exitcode.Config, true},
		{"StageDiedAfterWriting", true, stageSilent, true},
		{"StageRefusedBeforeWriting", false, exitcode.Config, false},
		{"PlainApp", false, stageExeced, false},
	} {
		ran := 0
		r := quiet(Config{StageCleanup: func(func(int, string, ...any)) { ran++ }})
		r.sigs = &Signals{c: make(chan os.Signal, 1), chld: make(chan os.Signal, 1)}
		r.stageLeft = c.left
		r.takeVerdict(c.verdict)
		r.exited = true
		r.finish()
		if (ran == 1) != c.want || ran > 1 {
			t.Errorf("%s: StageCleanup ran %d times, want %v", c.name, ran, c.want)
		}
	}
}

func TestSignalsAreHeldOnceEachUntilTheAppRuns(t *testing.T) {
	r := quiet(Config{})
	for _, sig := range []syscall.Signal{unix.SIGUSR1, unix.SIGHUP, unix.SIGUSR1, unix.SIGCHLD, unix.SIGURG, unix.SIGSEGV} {
		r.handle(sig)
	}
	if want := []syscall.Signal{unix.SIGUSR1, unix.SIGHUP}; !slices.Equal(r.held, want) {
		t.Errorf("held %v, want %v (once each, nothing unforwardable)", r.held, want)
	}
	// The stage fails: the app never runs, and nothing is delivered.
	r.stageVerdict(exitcode.Config)
	if r.running || r.held != nil || r.stageFail != exitcode.Config || r.verdict != nil {
		t.Errorf("after a failed stage: running %v, held %v, stageFail %d", r.running, r.held, r.stageFail)
	}
}

func TestOwnSIGPIPEIsSwallowedOnce(t *testing.T) {
	r := quiet(Config{})
	r.ownSIGPIPE = true
	r.handle(unix.SIGPIPE)
	if r.ownSIGPIPE || len(r.held) != 0 {
		t.Errorf("own SIGPIPE: still pending %v, held %v", r.ownSIGPIPE, r.held)
	}
	r.handle(unix.SIGPIPE) // a SIGPIPE someone sent: the app's
	if !slices.Equal(r.held, []syscall.Signal{unix.SIGPIPE}) {
		t.Errorf("a sent SIGPIPE was not held for the app: %v", r.held)
	}
}

func TestTermDelayHoldsOneTermThenPassesItOn(t *testing.T) {
	r := quiet(Config{TermDelay: time.Hour})
	r.handle(unix.SIGTERM)
	first := r.termTimer
	r.handle(unix.SIGTERM)
	if first == nil || r.termTimer != first || len(r.held) != 0 {
		t.Fatalf("TERM under --term-delay: timer %v then %v, held %v", first, r.termTimer, r.held)
	}
	first.Stop()
	r.termDelayOver()
	if r.termTimer != nil || !slices.Equal(r.held, []syscall.Signal{unix.SIGTERM}) {
		t.Errorf("after the delay: timer %v, held %v; want none and the TERM passed on", r.termTimer, r.held)
	}
	if expiry(nil) != nil {
		t.Error("an unarmed timer must never be ready")
	}
}

func TestExitCodeRules(t *testing.T) {
	exited := func(code int) syscall.WaitStatus { return syscall.WaitStatus(code << 8) }
	for _, c := range []struct {
		name      string
		stageFail int
		status    syscall.WaitStatus
		remap     int
		want      int
	}{
		{"App", stageExeced, exited(3), -1, 3},
		{"AppRemapped", stageExeced, exited(143), 143, 0},
		{"AppKilled", stageExeced, syscall.WaitStatus(syscall.SIGTERM), -1, 143},
		{"AppKilledRemapped", stageExeced, syscall.WaitStatus(syscall.SIGTERM), 143, 0},
		{"StageFailedNotRemapped", exitcode.Config, exited(exitcode.Config), exitcode.Config, exitcode.Config},
		{"SilentStageKilled", stageSilent, syscall.WaitStatus(syscall.SIGKILL), 137, 137},
		{"SilentStageExited0", stageSilent, exited(0), 0, exitcode.Internal},
	} {
		r := quiet(Config{RemapExit: map[int]bool{c.remap: true}})
		r.stageFail, r.status = c.stageFail, c.status
		if got := r.exitCode(); got != c.want {
			t.Errorf("%s: exit %d, want %d", c.name, got, c.want)
		}
	}
}

func TestForkErrorSaysWhoseFailureItIs(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{syscall.ENOENT, exitcode.NotFound},
		{syscall.EACCES, exitcode.NotExecutable},
		{syscall.ENOEXEC, exitcode.NotExecutable},
		{syscall.EAGAIN, exitcode.Internal},
		{syscall.ENOMEM, exitcode.Internal},
		{privError{errors.New("prctl")}, exitcode.Internal},
	} {
		var log strings.Builder
		r := quiet(Config{Argv: []string{"app"}, Log: &log})
		if got := r.startFailed(forkError("app", c.err)); got != c.want {
			t.Errorf("%v: status %d, want %d", c.err, got, c.want)
		}
		if strings.Count(log.String(), "\n") != 1 || !strings.HasPrefix(log.String(), "ov-init: ") {
			t.Errorf("%v: log %q, want one ov-init: line", c.err, log.String())
		}
	}
	var ee *execpath.Error
	if !errors.As(forkError("app", syscall.ENOENT), &ee) || ee.Command != "app" {
		t.Errorf("a missing command is not an *execpath.Error naming it")
	}
}

// `ov run` is ov-init under another name: its lines say "ov: " (issue 11).
// Unset, Prog is ov-init's.
func TestLogLinesStartWithProg(t *testing.T) {
	for prog, want := range map[string]string{"": "ov-init: ", "ov-init": "ov-init: ", "ov": "ov: "} {
		var log strings.Builder
		r := quiet(Config{Argv: []string{"app"}, Log: &log, Prog: prog, Verbose: 1})
		r.startFailed(forkError("app", syscall.EAGAIN))
		r.logf(1, "a diagnostic with a %% in it")
		lines := strings.SplitAfter(log.String(), "\n")
		if len(lines) != 3 || lines[2] != "" || lines[1] != want+"a diagnostic with a % in it\n" {
			t.Errorf("Prog %q: log %q, want two lines starting %q", prog, log.String(), want)
		}
		for _, l := range lines[:2] {
			if !strings.HasPrefix(l, want) {
				t.Errorf("Prog %q: line %q, want it to start %q", prog, l, want)
			}
		}
	}
}

func TestStageSocketPassesInheritedDescriptorsFirst(t *testing.T) {
	r := quiet(Config{StageFD: 5})
	attr := r.procAttr()
	stage, child, err := r.stageSocket(attr)
	if err != nil {
		t.Fatal(err)
	}
	defer stage.Close()
	defer unix.Close(child)
	if want := []uintptr{3, 4, uintptr(child)}; !slices.Equal(attr.Files[3:], want) {
		t.Errorf("files from 3 on: %v, want %v", attr.Files[3:], want)
	}
	if !attr.Sys.Setpgid {
		t.Error("the app must get its own process group")
	}
}

// The configuration goes into the socket before the fork; what does not
// fit without blocking follows from handOff, and the stage reads it whole.
func TestConfigIsSentAheadAndTheRestAfter(t *testing.T) {
	for _, size := range []int{0, 100, 8 << 20} {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		pid1, child := os.NewFile(uintptr(fds[0]), "pid1"), os.NewFile(uintptr(fds[1]), "stage")
		config := bytes.Repeat([]byte("c"), size)
		rest := sendAhead(pid1, config)
		if size <= 100 && len(rest) != 0 {
			t.Errorf("%d bytes: %d left after sendAhead, want all sent ahead", size, len(rest))
		}
		if size == 8<<20 && len(rest) == 0 {
			t.Errorf("%d bytes all sent ahead: the socket buffer cannot hold that, so sendAhead blocked", size)
		}
		var left bool
		verdict := handOff(pid1, rest, &left)
		got, err := io.ReadAll(child)
		if err != nil || !bytes.Equal(got, config) {
			t.Errorf("%d bytes: the stage read %d bytes (%v)", size, len(got), err)
		}
		child.Write([]byte{0})
		child.Close()
		if v := <-verdict; v != stageExeced {
			t.Errorf("%d bytes: verdict %d", size, v)
		}
	}
}
