package integration

// ov's command line, tested as a user's sessions: the txtar scripts in
// testdata/ov, run by testscript (its package doc lists the built-in
// commands: exec, stdin, stdout, stderr, cmp, exists, symlink…).
//
// Each script starts in a new, empty $WORK holding the files of its archive,
// with this environment:
//
//	PATH            the directory of the ov, ov-init and helper that
//	                TestMain built, then /usr/bin:/bin
//	HOME            $WORK: ov's default vault is $WORK/.config/ov/vault.json
//	XDG_STATE_HOME  $WORK/.local/state: the vault generations ov records
//	                stay in the script's directory
//
// and no OV_* variable: a script sets its own (env OV_VAULT=…), as a user
// exports them.
//
// Commands added to testscript's (a failing command is expected with !):
//
//	[!] ov ARGS...       runs the ov on PATH, with the script's environment
//	                     and stdin, in a new session (setsid(1)), so without
//	                     a controlling terminal, as under cron or CI: a
//	                     script cannot hang on a prompt. Prompts on a
//	                     terminal are Go tests (ov_test.go), on a
//	                     pseudo-terminal.
//	[!] ov-init ARGS...  runs the ov-init on PATH as PID 1 of a new PID
//	                     namespace, as a container runtime starts it, with
//	                     PATH and HOME as its whole environment (the rest
//	                     by flags) and no stdin.
//	status N             the last ov or ov-init (not exec) exited with status
//	                     N. A failing ov or ov-init must be followed by
//	                     status before the next one and before the script
//	                     ends: testscript's ! only says "not 0".
//
// Secret values: each file under $WORK/secrets holds one value, as it is
// piped to `ov secret set` (stdin secrets/NAME). Less one trailing "\n" and
// then one "\r", no value may appear in what ov prints (save the app's own
// stdout under `ov run`) nor in what ov-init prints on stderr: ov and
// ov-init check this after each run. exec'd commands (used for a umask or
// another uid) are not checked.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestOvScripts(t *testing.T) {
	bin := filepath.Dir(ovBin)
	for _, b := range []string{ovBin, ovInit, helper} {
		if filepath.Dir(b) != bin {
			t.Fatalf("%s is not in %s with the other binaries", b, bin)
		}
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("TestMain did not build %s: %v", filepath.Base(b), err)
		}
	}
	testscript.Run(t, testscript.Params{
		Dir:                "testdata/ov",
		RequireUniqueNames: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", bin+string(filepath.ListSeparator)+"/usr/bin:/bin")
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, ".local", "state"))
			s := &scriptState{}
			env.Values[scriptStateKey{}] = s
			env.Defer(func() {
				t := env.T().(interface {
					Errorf(string, ...any)
					Failed() bool
				})
				if s.unchecked != "" && !t.Failed() {
					t.Errorf("the script ends without a status line after the failing %s", s.unchecked)
				}
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"ov":      cmdOv,
			"ov-init": cmdOvInit,
			"status":  cmdStatus,
		},
	})
}

type scriptStateKey struct{}

// scriptState is what a script's ov, ov-init and status commands share.
type scriptState struct {
	last      string // "ov ARGS" or "ov-init ARGS", as last run
	status    int    // its exit status
	unchecked string // a failing command whose status no status line has checked yet
}

func stateOf(ts *testscript.TestScript) *scriptState {
	return ts.Value(scriptStateKey{}).(*scriptState)
}

// cmdOv runs ov ARGS through setsid(1), which makes a new session: ov has
// no controlling terminal. Unlike ov-init's, its environment is the
// script's, and stdin what the script's stdin command gave.
func cmdOv(ts *testscript.TestScript, neg bool, args []string) {
	s := stateOf(ts)
	s.begin(ts, "ov", args)
	var err error
	if underQemu() && slices.Contains(args, "run") {
		err = execOvRunUnderQemu(ts, args)
	} else {
		err = ts.Exec("setsid", append([]string{"--wait", lookPath(ts, "ov")}, args...)...)
	}
	out := ts.ReadFile("stdout")
	if slices.Contains(args, "run") {
		out = "" // the app's: helper env prints its secrets
	}
	checkNoSecretShown(ts, out+ts.ReadFile("stderr"))
	s.end(ts, neg, err)
}

// qemuHangAfter is how long an emulated ov run may take before it counts
// as qemu-user's hang: the scripts' ov run commands end in seconds.
const qemuHangAfter = 90 * time.Second

// execOvRunUnderQemu runs ov ARGS (an ov run) as cmdOv does, for the arm64
// suite. qemu-user 7.2 now and then deadlocks the forked child of an
// emulated ov before execve (TESTING.md, "arm64 under qemu-user"): the
// script would wait for the suite's deadline. So ov runs in a PID namespace
// of its own, under timeout(1): killing the namespace's PID 1 (setsid,
// ov's parent, through --kill-child) ends every process in it, the hung
// child too. A command that hung runs once more, saying so; ov run only
// runs its app, so running it again changes nothing. stdin is the script's
// for the first try only.
func execOvRunUnderQemu(ts *testscript.TestScript, args []string) error {
	secs := strconv.Itoa(int(qemuHangAfter / time.Second))
	argv := append([]string{"-s", "KILL", secs, "unshare", "--pid", "--fork", "--kill-child", "setsid", "--fork", "--wait", lookPath(ts, "ov")}, args...)
	for try := 1; ; try++ {
		start := time.Now()
		err := ts.Exec("timeout", argv...)
		if time.Since(start) < qemuHangAfter || try == 2 {
			return err
		}
		ts.Logf("ov %s: still running after %v under qemu-user, whose forked children can hang; running it again", strings.Join(args, " "), qemuHangAfter)
	}
}

// cmdOvInit runs ov-init ARGS as PID 1 of a new PID namespace.
func cmdOvInit(ts *testscript.TestScript, neg bool, args []string) {
	s := stateOf(ts)
	s.begin(ts, "ov-init", args)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lookPath(ts, "ov-init"), args...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = []string{"PATH=" + ts.Getenv("PATH"), "HOME=" + ts.Getenv("HOME")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setsid: true}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = ts.Stdout(), &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	ts.Stderr().Write(stderr.Bytes())
	if cmd.ProcessState == nil { // never started: no status to read
		ts.Fatalf("starting ov-init: %v", err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ts.Fatalf("ov-init was killed by %v", ws.Signal())
	}
	checkNoSecretShown(ts, stderr.String())
	s.end(ts, neg, err)
}

// begin refuses to run a command while an earlier failure's status is
// unchecked.
func (s *scriptState) begin(ts *testscript.TestScript, name string, args []string) {
	if s.unchecked != "" {
		ts.Fatalf("no status line after the failing %s", s.unchecked)
	}
	s.last = strings.Join(append([]string{name}, args...), " ")
}

// end records how the command ended, and fails the script unless that is
// what neg says.
func (s *scriptState) end(ts *testscript.TestScript, neg bool, err error) {
	var exit *exec.ExitError
	switch {
	case err == nil:
		s.status = 0
	case errors.As(err, &exit) && exit.Exited():
		s.status = exit.ExitCode()
		ts.Logf("[exit status %d]", s.status)
	default:
		ts.Fatalf("running %s: %v", s.last, err)
	}
	switch {
	case neg && s.status == 0:
		ts.Fatalf("unexpected success")
	case !neg && s.status != 0:
		ts.Fatalf("unexpected failure")
	case neg:
		s.unchecked = s.last
	}
}

// cmdStatus checks the last ov's or ov-init's exit status.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: status N")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	s := stateOf(ts)
	if s.last == "" {
		ts.Fatalf("status: no ov or ov-init has run")
	}
	s.unchecked = ""
	if s.status != want {
		ts.Fatalf("%s exited with status %d, want %d", s.last, s.status, want)
	}
}

// lookPath finds name on the script's PATH.
func lookPath(ts *testscript.TestScript, name string) string {
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	ts.Fatalf("%s is not on the script's PATH", name)
	return ""
}

// checkNoSecretShown fails the script if out holds a value from a file
// under $WORK/secrets.
func checkNoSecretShown(ts *testscript.TestScript, out string) {
	dir := filepath.Join(ts.Getenv("WORK"), "secrets")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	ts.Check(err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		ts.Check(err)
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v != "" && strings.Contains(out, v) {
			ts.Fatalf("the output above shows the secret value of secrets/%s", e.Name())
		}
	}
}
