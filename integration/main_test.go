// Package integration runs the built binaries as a user would: ov-init as
// PID 1 of a fresh PID namespace, with the helper program as its app.
package integration

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/internal/emulation"
	"github.com/ov-init/ov-init/internal/procstat"
)

// Paths of the binaries TestMain builds once.
var (
	ovInit string
	ovBin  string
	helper string
)

// binGOARCH is the architecture TestMain builds the binaries for: this
// test's own, or OV_TEST_GOARCH's. make test-arm64 sets OV_TEST_GOARCH=arm64
// on an amd64 machine, where qemu-user runs them (scripts/qemu-arm64), and
// runs this test natively, as a container runtime would start them: under
// qemu-user the test itself could not start ov-init as PID 1, since
// qemu-user refuses clone(2) with CLONE_NEWPID.
var binGOARCH = runtime.GOARCH

// elfMachine is what a binary built for GOARCH says it is.
var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration: these tests need root (CLONE_NEWPID, chown, mknod); run them as root")
		os.Exit(1)
	}
	if emulation.Arm64OnX86(runtime.GOARCH) {
		fmt.Fprintln(os.Stderr, "integration: this test runs under qemu-user, which refuses clone(2) with CLONE_NEWPID, so it could start no PID 1; run it natively with OV_TEST_GOARCH=arm64 (make test-arm64)")
		os.Exit(1)
	}
	if a := os.Getenv("OV_TEST_GOARCH"); a != "" {
		binGOARCH = a
	}
	if underQemu() {
		resetHiddenSignals()
	}
	dir, err := os.MkdirTemp("", "ov-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ovInit = filepath.Join(dir, "ov-init")
	ovBin = filepath.Join(dir, "ov")
	helper = filepath.Join(dir, "helper")
	for out, pkg := range map[string]string{ovInit: "../init", ovBin: "../ov", helper: "./helper"} {
		if _, err := os.Stat(pkg); err != nil {
			continue
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+binGOARCH)
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
		if err := checkMachine(out, binGOARCH); err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// underQemu reports whether the binaries are arm64 that qemu-user runs here.
func underQemu() bool { return emulation.Arm64OnX86(binGOARCH) }

// skipEmulated skips t, saying why, when the binaries are arm64 that
// qemu-user runs here (make test-arm64); TESTING.md, "arm64 under
// qemu-user", lists every test that calls it.
func skipEmulated(t *testing.T, why string) {
	t.Helper()
	emulation.Skip(t, binGOARCH, why)
}

// Why the subreaper tests cannot pass under qemu-user.
const noSubreaperUnderQemu = "qemu-user answers prctl(PR_SET_CHILD_SUBREAPER) with EINVAL, so ov-init outside PID 1 is no subreaper (it says so at -v) and orphans go to the host's init"

// Why 5000 forks cannot finish in time under qemu-user.
const slowForksUnderQemu = "each fork of the emulated helper takes about 10 ms under qemu-user, so 5000 orphans take about a minute, beyond the test's deadline"

// Why only the standard signals are checked under qemu-user.
const rtSignalsUnderQemu = "the real-time signals were not sent (the others reached the app): qemu-user keeps two for itself and renumbers the rest, so the app, emulated too, would report 35 for the 37 sent"

// resetHiddenSignals gives this test's host signals 32 and 33 their default
// action. A program that make starts (through glibc's posix_spawn) has them
// ignored, and qemu-user hides them from the programs it runs: an emulated
// ov-init could not undo that, and the apps of the signal-state tests, the
// host's /bin/grep, would inherit it. Natively ov-init resets 32 itself.
func resetHiddenSignals() {
	for _, sig := range []uintptr{32, 33} {
		var dfl [4]uint64 // struct kernel_sigaction: handler SIG_DFL, flags, restorer, mask
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
}

// checkMachine makes sure the binary at path is built for goarch, so that
// the suite runs the architecture it says it does.
func checkMachine(path, goarch string) error {
	want, ok := elfMachine[goarch]
	if !ok {
		return nil
	}
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %v, not %s (%v)", path, f.Machine, goarch, want)
	}
	return nil
}

// proc is ov-init running under a test.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	done   chan struct{}
	start  time.Time
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// pid1 starts ov-init ARGS as PID 1 of a new PID namespace.
func pid1(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProc(t, newPIDNamespace(), nil, args...)
}

// newPIDNamespace makes the process it starts PID 1 of a new PID namespace.
func newPIDNamespace() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
}

// startProc starts ov-init ARGS with attr, and with env as its whole
// environment (the test's own when nil).
func startProc(t *testing.T, attr *syscall.SysProcAttr, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, ovInit, attr, env, args...)
}

// startCmd starts bin ARGS as startProc starts ov-init: for the negative
// controls, which put a program that lacks one of ov-init's behaviours in
// its place.
func startCmd(t *testing.T, bin string, attr *syscall.SysProcAttr, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = attr
	cmd.Env = env
	p := &proc{t: t, cmd: cmd, lines: make(chan string, 1024), stderr: newSyncBuffer(), done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		// As PID 1 of a namespace, SIGKILL ends everything in it.
		// Otherwise kill its descendants too: killing ov-init alone
		// would leave its app running and holding the output pipe.
		if attr != nil && attr.Cloneflags&syscall.CLONE_NEWPID != 0 {
			cmd.Process.Kill()
			<-p.done
			return
		}
		killTree(cmd.Process.Pid)
		<-p.done
	})
	return p
}

// expect waits for a stdout line that starts with prefix and returns it.
func (p *proc) expect(prefix string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("stdout closed before a line starting %q; stderr: %s", prefix, p.stderr)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-deadline:
			p.t.Fatalf("no line starting %q within %v; stderr: %s", prefix, timeout, p.stderr)
		}
	}
}

// next returns the next stdout line if one comes within timeout.
func (p *proc) next(timeout time.Duration) (string, bool) {
	select {
	case line, ok := <-p.lines:
		return line, ok
	case <-time.After(timeout):
		return "", false
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signalling ov-init: %v", err)
	}
}

// wait returns ov-init's exit status and how long it ran.
func (p *proc) wait(timeout time.Duration) (int, time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("ov-init still running after %v; stderr: %s", timeout, p.stderr)
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		p.t.Fatalf("ov-init itself was killed by %v; stderr: %s", ws.Signal(), p.stderr)
	}
	return ws.ExitStatus(), time.Since(p.start)
}

// runPID1 runs ov-init ARGS as PID 1 to completion and returns its status,
// stdout and stderr.
func runPID1(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(ovInit, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running ov-init: %v", err)
		}
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		t.Fatalf("ov-init was killed by %v; stderr: %s", ws.Signal(), stderr.String())
	}
	return ws.ExitStatus(), stdout.String(), stderr.String()
}

// killTree SIGKILLs pid and every process descended from it.
func killTree(pid int) {
	all, _ := procstat.All()
	children := map[int][]int{}
	for _, s := range all {
		children[s.PPID] = append(children[s.PPID], s.PID)
	}
	var kill func(int)
	kill = func(p int) {
		syscall.Kill(p, syscall.SIGSTOP) // no more forks while we look
		for _, c := range children[p] {
			kill(c)
		}
		syscall.Kill(p, syscall.SIGKILL)
	}
	kill(pid)
}

// procState is the state letter of process pid (R, S, T, Z…), or "gone"
// once it has been reaped.
func procState(pid int) string {
	s, err := procstat.Read(pid)
	if err != nil {
		return "gone"
	}
	return string(s.State)
}

// waitState waits until the state of process pid is one of the letters in
// states ("T": stopped; "RS": running or sleeping).
func waitState(t *testing.T, pid int, states string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for state := procState(pid); !strings.Contains(states, state); state = procState(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is in state %s, not %s", pid, state, states)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
