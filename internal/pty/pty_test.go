package pty

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary the session leader of
// TestOpenNeverTakesAControllingTerminal.
const childEnv = "PTY_TEST_SESSION_LEADER"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		sessionLeader()
		os.Exit(0) // before anything closes the terminal and hangs up
	}
	os.Exit(m.Run())
}

// A pair carries bytes both ways, and the slave is a terminal: it turns
// the newline written to it into CR LF, as a line discipline does.
func TestOpenGivesAWorkingPair(t *testing.T) {
	master, slave, err := Open()
	if err != nil {
		t.Fatal(err) // no skip: every machine these tests run on has /dev/ptmx
	}
	defer master.Close()
	defer slave.Close()
	if _, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS); err != nil {
		t.Errorf("the slave is not a terminal: %v", err)
	}
	if _, err := slave.WriteString("to the master\n"); err != nil {
		t.Fatal(err)
	}
	if got := readSome(t, master, len("to the master\r\n")); got != "to the master\r\n" {
		t.Errorf("master read %q", got)
	}
	if _, err := master.WriteString("to the slave\n"); err != nil {
		t.Fatal(err)
	}
	if got := readSome(t, slave, len("to the slave\n")); got != "to the slave\n" {
		t.Errorf("slave read %q", got)
	}
}

// A session leader without a terminal takes the first one it opens as its
// controlling terminal unless O_NOCTTY says no. Open must say no; the same
// slave opened without O_NOCTTY is the control that the check can tell.
func TestOpenNeverTakesAControllingTerminal(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("session leader: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "after Open: none; after a plain open: controlling" {
		t.Errorf("session leader said %q", got)
	}
}

// sessionLeader reports whether it has a controlling terminal after Open,
// then after opening the same slave without O_NOCTTY.
func sessionLeader() {
	master, slave, err := Open()
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	ctty := func() string {
		// TIOCGSID answers only on the caller's controlling terminal.
		if _, err := unix.IoctlGetInt(int(slave.Fd()), unix.TIOCGSID); err != nil {
			return "none"
		}
		return "controlling"
	}
	before := ctty()
	plain, err := os.OpenFile(slave.Name(), os.O_RDWR, 0)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Printf("after Open: %s; after a plain open: %s\n", before, ctty())
	// Open until the process exits: a finalizer must not hang up first.
	runtime.KeepAlive(master)
	runtime.KeepAlive(plain)
}

func readSome(t *testing.T, f *os.File, n int) string {
	t.Helper()
	if err := f.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	buf := make([]byte, 64)
	for b.Len() < n {
		k, err := f.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			t.Fatalf("reading %s after %q: %v", f.Name(), b.String(), err)
		}
	}
	return b.String()
}
