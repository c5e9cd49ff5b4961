package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ttyReader collects what the terminal shows.
type ttyReader struct {
	c chan string
}

func readTTY(m *os.File) *ttyReader {
	r := &ttyReader{c: make(chan string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			if n > 0 {
				r.c <- string(buf[:n])
			}
			if err != nil {
				close(r.c)
				return
			}
		}
	}()
	return r
}

func (r *ttyReader) waitFor(t *testing.T, seen *strings.Builder, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !strings.Contains(seen.String(), want) {
		select {
		case s, ok := <-r.c:
			if !ok {
				t.Fatalf("terminal closed before %q; it showed %q", want, seen.String())
			}
			seen.WriteString(s)
		case <-deadline:
			t.Fatalf("terminal never showed %q; it showed %q", want, seen.String())
		}
	}
}

// startOnTTY runs ov-init ARGS as PID 1 of a new namespace and session whose
// controlling terminal is the slave, as `docker run -it` does.
func startOnTTY(t *testing.T, slave *os.File, args ...string) *exec.Cmd {
	cmd := exec.Command(ovInit, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
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
	return cmd
}

func TestCtrlCOnTheTerminalReachesTheApp(t *testing.T) {
	m, s := openPTY(t)
	cmd := startOnTTY(t, s, "--", helper, "signals")
	r := readTTY(m)
	var seen strings.Builder
	r.waitFor(t, &seen, "ready")
	m.Write([]byte{0x03})
	r.waitFor(t, &seen, "SIGINT|2")
	m.Write([]byte{0x1c}) // Ctrl-\ is SIGQUIT
	r.waitFor(t, &seen, "SIGQUIT|3")
	cmd.Process.Signal(syscall.SIGKILL)
}

func TestAppIsTheForegroundProcessGroupOfTheTerminal(t *testing.T) {
	m, s := openPTY(t)
	cmd := startOnTTY(t, s, "--", helper, "status")
	r := readTTY(m)
	var seen strings.Builder
	r.waitFor(t, &seen, "foreground: ")
	r.waitFor(t, &seen, "\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ov-init did not exit after the app did")
	}
	out := strings.ReplaceAll(seen.String(), "\r", "")
	pgid, fg := field(out, "pgid:"), field(out, "foreground:")
	if pgid == "" || fg != pgid {
		t.Errorf("foreground group %q, app's group %q: the app is not in the foreground\n%s", fg, pgid, out)
	}
}
