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

func TestSignalsSentToPID1ReachTheApp(t *testing.T) {
	p := pid1(t, "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	sigs := []syscall.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2,
		unix.SIGWINCH, unix.SIGALRM, unix.SIGCONT, unix.SIGTERM, syscall.Signal(37), syscall.Signal(64)}
	for _, sig := range sigs {
		p.signal(sig)
		line := p.expect("", 2*time.Second)
		if want := "|" + strconv.Itoa(int(sig)); !strings.HasSuffix(line, want) {
			t.Errorf("sent %v (%d) to PID 1, app got %q", sig, sig, line)
		}
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
	ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, _ := os.Readlink("/proc/" + e.Name() + "/ns/pid"); l != ns {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		out[n] = fields[0]
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
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

func TestStopSignalsDoNotStopPID1(t *testing.T) {
	p := pid1(t, "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	for _, sig := range []syscall.Signal{unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU} {
		p.signal(sig)
		if line := p.expect("", 2*time.Second); !strings.HasSuffix(line, "|"+strconv.Itoa(int(sig))) {
			t.Errorf("sent %v to PID 1, app got %q", sig, line)
		}
		if state := procState(p.cmd.Process.Pid); state == "T" {
			t.Fatalf("%v stopped PID 1", sig)
		}
	}
	p.signal(unix.SIGUSR1)
	p.expect("SIGUSR1", 2*time.Second) // PID 1 still forwards
}
