package integration

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ov-init/ov-init/internal/pty"
)

// openPTY returns a new pseudo-terminal pair, closed when the test ends.
// It fails rather than skips: every machine these tests run on, as root,
// has /dev/ptmx.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// onTTY is ov-init running as PID 1 of a new namespace and session whose
// controlling terminal is a new pseudo-terminal, as `docker run -it` runs
// it, and what that terminal has shown so far.
type onTTY struct {
	cmd    *exec.Cmd
	master *os.File
	shown  chan string // what the terminal shows, as it comes
	seen   strings.Builder
}

func startOnTTY(t *testing.T, args ...string) *onTTY {
	t.Helper()
	m, s := openPTY(t)
	cmd := exec.Command(ovInit, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID,
		Setsid:     true,
		Setctty:    true,
		Ctty:       0,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	o := &onTTY{cmd: cmd, master: m, shown: make(chan string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			if n > 0 {
				o.shown <- string(buf[:n])
			}
			if err != nil {
				close(o.shown)
				return
			}
		}
	}()
	return o
}

// waitFor waits until the terminal has shown want.
func (o *onTTY) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !strings.Contains(o.seen.String(), want) {
		select {
		case s, ok := <-o.shown:
			if !ok {
				t.Fatalf("terminal closed before %q; it showed %q", want, o.seen.String())
			}
			o.seen.WriteString(s)
		case <-deadline:
			t.Fatalf("terminal never showed %q; it showed %q", want, o.seen.String())
		}
	}
}

func TestCtrlCOnTheTerminalReachesTheApp(t *testing.T) {
	o := startOnTTY(t, "--", helper, "signals")
	o.waitFor(t, "ready")
	o.master.Write([]byte{0x03})
	o.waitFor(t, "SIGINT|2")
	o.master.Write([]byte{0x1c}) // Ctrl-\ is SIGQUIT
	o.waitFor(t, "SIGQUIT|3")
}

func TestAppIsTheForegroundProcessGroupOfTheTerminal(t *testing.T) {
	o := startOnTTY(t, "--", helper, "status")
	o.waitFor(t, "foreground: ")
	o.waitFor(t, "\n")
	done := make(chan error, 1)
	go func() { done <- o.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ov-init did not exit after the app did")
	}
	out := strings.ReplaceAll(o.seen.String(), "\r", "")
	pgid, fg := field(out, "pgid:"), field(out, "foreground:")
	if pgid == "" || fg != pgid {
		t.Errorf("foreground group %q, app's group %q: the app is not in the foreground\n%s", fg, pgid, out)
	}
}
