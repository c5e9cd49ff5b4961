package integration

import (
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

// drain reads the app's lines until none comes for quiet.
func (p *proc) drain(quiet time.Duration) []string {
	var lines []string
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return lines
			}
			lines = append(lines, line)
		case <-time.After(quiet):
			return lines
		}
	}
}

func rssAndThreads(t *testing.T, pid int) (int, int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var rss, threads int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(f[1])
		case "Threads:":
			threads, _ = strconv.Atoi(f[1])
		}
	}
	return rss, threads
}

func TestSignalStormDoesNotHurtPID1(t *testing.T) {
	p := pid1(t, "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	pid := p.cmd.Process.Pid
	// Warm up, so the runtime's one-time allocations are behind us.
	p.signal(unix.SIGUSR2)
	p.expect("SIGUSR2", 2*time.Second)
	rss0, threads0 := rssAndThreads(t, pid)

	sigs := []syscall.Signal{unix.SIGUSR1, unix.SIGHUP, unix.SIGWINCH, syscall.Signal(40)}
	for i := 0; i < 10000; i++ {
		if err := unix.Kill(pid, sigs[i%len(sigs)]); err != nil {
			t.Fatalf("signal %d: %v", i, err)
		}
	}
	got := p.drain(500 * time.Millisecond)
	if len(got) == 0 {
		t.Fatal("the app received none of 10000 signals")
	}
	p.signal(unix.SIGUSR2)
	p.expect("SIGUSR2", 2*time.Second)
	rss1, threads1 := rssAndThreads(t, pid)
	if threads1 > threads0+1 {
		t.Errorf("ov-init's threads grew from %d to %d under a signal storm", threads0, threads1)
	}
	if rss1 > rss0+1024 {
		t.Errorf("ov-init's RSS grew from %d to %d KiB under a signal storm", rss0, rss1)
	}
	t.Logf("10000 signals: app saw %d (coalesced), RSS %d→%d KiB, threads %d→%d", len(got), rss0, rss1, threads0, threads1)
}

func TestForkStormWhileSignalsArrive(t *testing.T) {
	skipEmulated(t, slowForksUnderQemu)
	p := startProc(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID},
		[]string{"HELPER_STAY=1"}, "--", helper, "orphans", "5000")
	pid := p.cmd.Process.Pid
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				// WINCH: ignored by default, so it is harmless even
				// before the app has installed its handlers.
				unix.Kill(pid, unix.SIGWINCH)
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	p.expect("done", 30*time.Second)
	close(stop)
	if z := waitNoZombies(t, pid, 10*time.Second); z != 0 {
		t.Errorf("%d zombies left after a fork storm under signals", z)
	}
	p.signal(unix.SIGTERM)
	if code, _ := p.wait(5 * time.Second); code != 143 {
		t.Errorf("exit %d, want 143", code)
	}
}

func TestAppClosingStdoutAndStderrEarlyIsHarmless(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	p := pid1(t, "-vv", "--", helper, "quiet", log)
	waitFile(t, log, "ready")
	p.signal(unix.SIGHUP)
	waitFile(t, log, "SIGHUP")
	p.signal(unix.SIGTERM)
	if code, _ := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit %d, want the app's 0", code)
	}
}

func waitFile(t *testing.T, file, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never got %q: %q", file, want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With the reader of its stderr gone, a verbose ov-init's own writes fail
// with EPIPE and the kernel sends it SIGPIPE: PID 1 must survive, and must
// not pass that SIGPIPE on to the app (it would kill it).
func TestBrokenStderrNeitherKillsPID1NorReachesTheApp(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ovInit, "-vv", "--", helper, "signals")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	cmd.Stderr = w
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r.Close() // the log reader goes away
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		var acc string
		for {
			n, err := out.Read(buf)
			acc += string(buf[:n])
			for {
				i := strings.IndexByte(acc, '\n')
				if i < 0 {
					break
				}
				lines <- acc[:i]
				acc = acc[i+1:]
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(3 * time.Second):
			t.Fatal("the app said nothing")
		}
		return ""
	}
	if l := next(); l != "ready" {
		t.Fatalf("got %q", l)
	}
	for i := 0; i < 3; i++ {
		cmd.Process.Signal(unix.SIGUSR1)
		if l := next(); l != "SIGUSR1|10" {
			t.Fatalf("after the log broke the app got %q, want SIGUSR1", l)
		}
	}
	if state := procState(cmd.Process.Pid); state == "Z" || state == "gone" {
		t.Fatal("PID 1 died when its stderr broke")
	}
}

func TestAppThatExitsAtOnceNeverHangsPID1(t *testing.T) {
	for i := 0; i < 200; i++ {
		app := []string{"--", "/bin/true"}
		if i%2 == 1 {
			app = []string{"--", helper, "exit", "0"}
		}
		cmd := exec.Command(ovInit, app...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("run %d: ov-init hung after its app exited at once", i)
		}
	}
}

func TestStopAndContinueOfTheApp(t *testing.T) {
	p := pid1(t, "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	// The app is the child of whichever of PID 1's threads forked it.
	var kids string
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		kids += string(b)
	}
	app, err := strconv.Atoi(strings.TrimSpace(kids))
	if err != nil {
		t.Fatalf("cannot find the app among PID 1's children: %q", kids)
	}
	unix.Kill(app, unix.SIGSTOP)
	waitState(t, app, "T")
	select {
	case <-p.done:
		t.Fatal("ov-init exited when its app was stopped")
	case <-time.After(300 * time.Millisecond):
	}
	p.signal(unix.SIGCONT) // through PID 1
	p.expect("SIGCONT", 2*time.Second)
	p.signal(unix.SIGUSR1)
	p.expect("SIGUSR1", 2*time.Second)
}
