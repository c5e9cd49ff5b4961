package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/internal/procstat"
)

func TestExitCodesPassThrough(t *testing.T) {
	for _, code := range []int{0, 1, 3, 255} {
		got, _, stderr := runPID1(t, nil, "--", helper, "exit", strconv.Itoa(code))
		if got != code {
			t.Errorf("app exit %d: ov-init exited %d; stderr: %s", code, got, stderr)
		}
	}
}

func TestExitCodeIs128PlusSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{unix.SIGKILL, unix.SIGTERM, unix.SIGSEGV} {
		got, _, stderr := runPID1(t, nil, "--", helper, "die", strconv.Itoa(int(sig)))
		if want := 128 + int(sig); got != want {
			t.Errorf("app killed by %v: ov-init exited %d, want %d; stderr: %s", sig, got, want, stderr)
		}
	}
}

// forwardedSignals are what the forwarding tests send to PID 1: the
// ordinary ones, the stop signals of a terminal, and real-time signals.
var forwardedSignals = []syscall.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGWINCH, unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGTERM,
	syscall.Signal(37), syscall.Signal(64)}

// As PID 1 the stop signals among these could not stop ov-init whatever it
// did (the kernel protects a namespace's init): whether it would stop is
// TestStopSignalsNeitherStopOvInitNorAreLostOutsidePID1's to see.
func TestSignalsSentToPID1ReachTheApp(t *testing.T) {
	p := pid1(t, "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	for _, sig := range forwardedSignals {
		if sig >= 32 && underQemu() {
			continue
		}
		p.signal(sig)
		line := p.expect("", 2*time.Second)
		if want := "|" + strconv.Itoa(int(sig)); !strings.HasSuffix(line, want) {
			t.Errorf("sent %v (%d) to PID 1, app got %q", sig, sig, line)
		}
	}
	skipEmulated(t, rtSignalsUnderQemu)
}

// TestSignalsSentToAPID1ThatDoesNotForwardAreLost is the negative control
// of TestSignalsSentToPID1ReachTheApp: with sh as PID 1, waiting for the
// same app and forwarding nothing, the same signals never reach the app, and
// the check must see that. (The kernel drops them: a namespace's init gets
// from outside only the signals it handles.)
func TestSignalsSentToAPID1ThatDoesNotForwardAreLost(t *testing.T) {
	p := startCmd(t, "/bin/sh", newPIDNamespace(), nil, "-c", `"$0" signals; echo "app exited $?"`, helper)
	p.expect("ready", 5*time.Second)
	for _, sig := range forwardedSignals {
		p.signal(sig)
		if line, ok := p.next(200 * time.Millisecond); ok {
			t.Errorf("control: sent %s to a PID 1 that does not forward, the app said %q", unix.SignalName(sig), line)
		}
	}
	// The app was there to hear them all along.
	app := 0
	for pid := range nsProcesses(t, p.cmd.Process.Pid) {
		if pid != p.cmd.Process.Pid {
			app = pid
		}
	}
	if app == 0 {
		t.Fatal("control: found no app under sh")
	}
	unix.Kill(app, unix.SIGUSR1)
	if line := p.expect("", 2*time.Second); line != "SIGUSR1|10" {
		t.Errorf("control: the app, signalled itself, said %q", line)
	}
}

func TestUntrappedTermEndsAppAndExits143(t *testing.T) {
	p := pid1(t, "--", helper, "sleep")
	p.expect("ready", 5*time.Second)
	sent := time.Now()
	p.signal(unix.SIGTERM)
	code, _ := p.wait(5 * time.Second)
	if code != 143 {
		t.Errorf("exit %d, want 143", code)
	}
	if d := time.Since(sent); d > time.Second {
		t.Errorf("ov-init took %v to exit after SIGTERM, want under 1s", d)
	}
}

// nsProcesses lists the processes in the PID namespace of pid (host pids),
// with their state letter.
func nsProcesses(t *testing.T, pid int) map[int]string {
	t.Helper()
	procs, err := procstat.InPIDNamespaceOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, p := range procs {
		out[p.PID] = string(p.State)
	}
	return out
}

func zombies(t *testing.T, pid int) int {
	n := 0
	for _, state := range nsProcesses(t, pid) {
		if state == "Z" {
			n++
		}
	}
	return n
}

func TestOrphansAreReaped(t *testing.T) {
	for _, n := range []int{100, 5000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			if n > 100 {
				skipEmulated(t, slowForksUnderQemu)
			}
			p := startProc(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID},
				[]string{"HELPER_STAY=1"}, "--", helper, "orphans", strconv.Itoa(n))
			p.expect("done", 20*time.Second)
			if z := waitNoZombies(t, p.cmd.Process.Pid, 10*time.Second); z != 0 {
				t.Errorf("%d zombies left in the namespace", z)
			}
			if procs := nsProcesses(t, p.cmd.Process.Pid); len(procs) != 2 {
				t.Errorf("namespace holds %d processes, want ov-init and the app", len(procs))
			}
		})
	}
}

// TestOrphansStayZombiesWithoutAReaper is the negative control of
// TestOrphansAreReaped: with the helper itself as PID 1 nothing reaps, and
// the check must see the zombies.
func TestOrphansStayZombiesWithoutAReaper(t *testing.T) {
	cmd := exec.Command(helper, "orphans", "20")
	cmd.Env = []string{"HELPER_STAY=1"}
	cmd.SysProcAttr = newPIDNamespace()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	buf := make([]byte, 5)
	out.Read(buf)
	if z := waitNoZombies(t, cmd.Process.Pid, 500*time.Millisecond); z != 20 {
		t.Errorf("without a reaper the check saw %d zombies, want 20", z)
	}
}

func waitNoZombies(t *testing.T, pid int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		z := zombies(t, pid)
		if z == 0 || time.Now().After(deadline) {
			return z
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStdinAndStdoutPassUnchanged(t *testing.T) {
	data := make([]byte, 20<<20)
	rand.Read(data)
	code, out, stderr := runPID1(t, bytes.NewReader(data), "--", helper, "cat")
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	if !bytes.Equal([]byte(out), data) {
		t.Fatalf("20 MiB through the app came out different (%d bytes back)", len(out))
	}
}

func TestArgvPassesUnchanged(t *testing.T) {
	argv := []string{"with space", "", "ünïcødé ☃", "-v", "--help", "--", "-e", "143", "a=b", "not utf-8: \x80\xff"}
	// Without flags ov-init takes its fast path; with one, kong parses.
	for _, flags := range [][]string{{"--"}, {"-e", "7", "--"}} {
		code, out, stderr := runPID1(t, nil, append(append(flags, helper, "args"), argv...)...)
		if code != 0 {
			t.Fatalf("exit %d; stderr: %s", code, stderr)
		}
		var got []string
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		// encoding/json shows invalid bytes as U+FFFD: compare that way,
		// and check the raw bytes below.
		want := make([]string, len(argv))
		for i, a := range argv {
			want[i] = string([]rune(a))
		}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("ov-init %q: app got argv %q, want %q", flags, got, argv)
		}
		code, out, _ = runPID1(t, nil, append(flags, "/bin/sh", "-c", `printf %s "$1"`, "sh", "\x80\xff")...)
		if code != 0 || out != "\x80\xff" {
			t.Errorf("ov-init %q: bytes that are not UTF-8 came through as %q", flags, out)
		}
	}
}

func TestEnvironmentPassesUnchanged(t *testing.T) {
	env := []string{"PATH=/usr/bin:/bin", "A=1", "EMPTY=", "SPACES=a b  c", "UNICODE=☃", "EQUALS=x=y=z", "OVERLAY=keep"}
	cmd := exec.Command(ovInit, "--", helper, "env")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	json.Unmarshal(out, &got)
	if strings.Join(got, "\n") != strings.Join(env, "\n") {
		t.Errorf("app got environment %q, want %q", got, env)
	}
}

func TestOwnSettingsAreRemovedFromTheAppEnvironment(t *testing.T) {
	cmd := exec.Command(ovInit, "--", helper, "env")
	cmd.Env = []string{"OV_VERBOSE=0", "OV_GRACE=1s", "OV_OTHER=stays", "X=1"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	json.Unmarshal(out, &got)
	if strings.Join(got, " ") != "OV_OTHER=stays X=1" {
		t.Errorf("app got environment %q, want ov-init's own OV_VERBOSE and OV_GRACE removed", got)
	}
}

func TestAppParentIsPID1(t *testing.T) {
	code, out, stderr := runPID1(t, nil, "--", helper, "status")
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	if !strings.Contains(out, "ppid: 1\n") {
		t.Errorf("app's parent is not PID 1:\n%s", out)
	}
	pid := field(out, "pid:")
	if pgid := field(out, "pgid:"); pgid != pid {
		t.Errorf("app's process group is %s, want its own (%s)", pgid, pid)
	}
}

func field(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, key+" ") {
			return strings.TrimPrefix(line, key+" ")
		}
	}
	return ""
}

func TestMissingCommandExits127(t *testing.T) {
	code, _, stderr := runPID1(t, nil, "--", "no-such-command-ov")
	if code != 127 || !strings.Contains(stderr, `"no-such-command-ov": command not found`) {
		t.Errorf("exit %d, stderr %q; want 127 and a clear message", code, stderr)
	}
	code, _, stderr = runPID1(t, nil, "--", "/no/such/file")
	if code != 127 || !strings.Contains(stderr, "no such file or directory") {
		t.Errorf("exit %d, stderr %q; want 127 and a clear message", code, stderr)
	}
}

func TestNonExecutableCommandExits126(t *testing.T) {
	f := filepath.Join(t.TempDir(), "script")
	os.WriteFile(f, []byte("#!/bin/sh\necho hi\n"), 0o644)
	code, _, stderr := runPID1(t, nil, "--", f)
	if code != 126 || !strings.Contains(stderr, "permission denied") {
		t.Errorf("exit %d, stderr %q; want 126 and a clear message", code, stderr)
	}
	code, _, stderr = runPID1(t, nil, "--", t.TempDir())
	if code != 126 {
		t.Errorf("a directory: exit %d, stderr %q; want 126", code, stderr)
	}
}

func TestScriptWithoutShebangRunsThroughBinSh(t *testing.T) {
	f := filepath.Join(t.TempDir(), "script")
	os.WriteFile(f, []byte("echo \"from sh: $1\"\nexit 7\n"), 0o755)
	code, out, stderr := runPID1(t, nil, "--", f, "arg one")
	if code != 7 || out != "from sh: arg one\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 7 and the script's output", code, out, stderr)
	}
}

func TestUsageErrorExits2WithOneLine(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag", "--", "true"}, {}, {"--rewrite", "TERM", "--", "true"}, {"-e", "300", "--", "true"}} {
		code, _, stderr := runPID1(t, nil, args...)
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "ov-init: ") {
			t.Errorf("ov-init %q: exit %d, stderr %q; want 2 and one line", args, code, stderr)
		}
	}
}

// stopSignals are the stop signals a terminal sends, whose default action
// stops a process and which an init can catch (SIGSTOP it cannot).
var stopSignals = []syscall.Signal{unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU}

// The kernel never stops a namespace's init with a default-action stop
// signal, so whether ov-init itself would stop can only be seen outside PID
// 1. There, in a process group of its own that is not orphaned (the kernel
// discards these signals for an orphaned group), ov-init is a process the
// kernel would stop: it must not stop, and must pass each signal on.
func TestStopSignalsNeitherStopOvInitNorAreLostOutsidePID1(t *testing.T) {
	p := startProc(t, &syscall.SysProcAttr{Setpgid: true}, nil, "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	for _, sig := range stopSignals {
		p.signal(sig)
		if line := p.expect("", 2*time.Second); line != unix.SignalName(sig)+"|"+strconv.Itoa(int(sig)) {
			t.Errorf("sent %s to ov-init, app got %q", unix.SignalName(sig), line)
		}
		time.Sleep(50 * time.Millisecond)
		if state := procState(p.cmd.Process.Pid); state == "T" {
			t.Fatalf("%s stopped ov-init (state T)", unix.SignalName(sig))
		}
	}
	p.signal(unix.SIGUSR1)
	p.expect("SIGUSR1", 2*time.Second) // still forwarding
}

// TestStopSignalsStopAProcessWithDefaultDispositions is the negative
// control of the test above: sent the same way to a process started the
// same way, but with default dispositions (helper sleep), each of these
// signals stops it, so the check there can see a stop.
func TestStopSignalsStopAProcessWithDefaultDispositions(t *testing.T) {
	p := startCmd(t, helper, &syscall.SysProcAttr{Setpgid: true}, nil, "sleep")
	p.expect("ready", 5*time.Second)
	pid := p.cmd.Process.Pid
	for _, sig := range stopSignals {
		p.signal(sig)
		waitState(t, pid, "T")
		p.signal(unix.SIGCONT)
		waitState(t, pid, "RS")
	}
}

func TestInheritedDescriptorsReachTheApp(t *testing.T) {
	s := newSecretsSetup(t)
	app := []string{"/bin/sh", "-c", `read a <&3; read b <&4; echo "fd3=$a fd4=$b"`}
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"Plain", nil}, {"Secrets", s.flags("web", s.webKey)}} {
		t.Run(mode.name, func(t *testing.T) {
			var extra []*os.File
			for _, v := range []string{"three", "four"} {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				w.WriteString(v + "\n")
				w.Close()
				extra = append(extra, r)
			}
			cmd := exec.Command(ovInit, withApp(mode.flags, app...)...)
			cmd.ExtraFiles = extra // fds 3 and 4, as systemd socket activation passes them
			cmd.SysProcAttr = newPIDNamespace()
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "fd3=three fd4=four" {
				t.Errorf("app saw %q (%v), want fd3=three fd4=four", out, err)
			}
		})
	}
}
