package procstat

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ov-init/ov-init/internal/emulation"
)

// tail is a real line's fields after ppid, pgrp and session: tty_nr,
// tpgid, flags, four fault counts, then utime 5 and stime 7, and the rest.
const tail = " 0 -1 4194560 120 0 0 0 5 7 0 0 20 0 1 0 1234 5000000 300 18446744073709551615\n"

func TestParseSplitsAtTheLastParenthesis(t *testing.T) {
	for _, c := range []struct {
		line string
		want Stat
	}{
		{"4242 (sleep) S 77 4242 4241" + tail, Stat{4242, "sleep", 'S', 77, 4242, 4241, 5, 7}},
		// A name made to look like the fields that follow it.
		{"4242 (x) Z 1 (y) S 77 4242 4241" + tail, Stat{4242, "x) Z 1 (y", 'S', 77, 4242, 4241, 5, 7}},
		{"7 (a b  c) T 1 7 7" + tail, Stat{7, "a b  c", 'T', 1, 7, 7, 5, 7}},
		{"7 ((()) R 0 0 0" + tail, Stat{7, "(()", 'R', 0, 0, 0, 5, 7}},
		{"7 () Z 1 7 7" + tail, Stat{7, "", 'Z', 1, 7, 7, 5, 7}},
	} {
		got, err := Parse([]byte(c.line))
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.line, got, err, c.want)
		}
	}
}

func TestParseRefusesWhatIsNotAStatLine(t *testing.T) {
	for _, line := range []string{
		"",
		"4242 sleep S 77 4242 4241" + tail, // no parentheses
		"4242 (sleep S 77 4242 4241" + tail,
		"4242 sleep) S 77 4242 4241" + tail,
		"4242 (sleep) S 77 4242",                                   // cut short
		"pid (sleep) S 77 4242 4241" + tail,                        // pid not a number
		"4242 (sleep) S x 4242 4241" + tail,                        // ppid not a number
		"4242 (sleep) SS 77 4242 4241" + tail,                      // state not one letter
		"4242 (sleep) S 77 4242 4241 0 -1 4194560 120 0 0 0 x 7 0", // utime
	} {
		if got, err := Parse([]byte(line)); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", line, got)
		}
	}
}

func TestReadOwnProcess(t *testing.T) {
	emulation.Skip(t, runtime.GOARCH, "qemu-user writes the /proc/PID/stat of the program it runs itself, with the state, group, session and times as 0")
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	comm := filepath.Base(os.Args[0])
	comm = comm[:min(len(comm), 15)] // the kernel keeps 15 bytes
	if s.PID != os.Getpid() || s.PPID != os.Getppid() || s.Comm != comm || s.PGRP != syscall.Getpgrp() {
		t.Errorf("Read(self) = %+v, want pid %d, ppid %d, comm %q, pgrp %d", s, os.Getpid(), os.Getppid(), comm, syscall.Getpgrp())
	}
}

// A live child whose name is built to fool a parser that stops at the first
// ')': Read gives its real name, state and parent through its life.
func TestReadChildNamedLikeStatFields(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("this test runs sleep(1): %v", err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	const name = "x) Z 1 (y"
	bin := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	defer cmd.Process.Kill()

	s := waitState(t, pid, 'S')
	if s.Comm != name || s.PPID != os.Getpid() || s.PID != pid {
		t.Errorf("Read(child) = %+v, want comm %q and parent %d", s, name, os.Getpid())
	}
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, func(a Stat) bool { return a.PID == pid && a.Comm == name }) {
		t.Errorf("All() lacks the child %d", pid)
	}
	ns, err := InPIDNamespaceOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ns, func(a Stat) bool { return a.PID == pid }) || !slices.ContainsFunc(ns, func(a Stat) bool { return a.PID == os.Getpid() }) {
		t.Errorf("InPIDNamespaceOf(self) lacks this process or its child")
	}

	cmd.Process.Kill()
	waitState(t, pid, 'Z') // dead, not yet reaped: still in the table
	cmd.Wait()
	if s, err := Read(pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(reaped child) = %+v, %v; want an error that wraps fs.ErrNotExist", s, err)
	}
}

func waitState(t *testing.T, pid int, state byte) Stat {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := Read(pid)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d is in state %c, not %c", pid, s.State, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
