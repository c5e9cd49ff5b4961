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

func TestLeftoverProcessesGetTermThenKill(t *testing.T) {
	log := filepath.Join(t.TempDir(), "daemon.log")
	p := pid1(t, "--grace", "700ms", "--", helper, "leftover", "7", log)
	line := p.expect("daemon ", 5*time.Second)
	code, _ := p.wait(10 * time.Second)
	elapsed := time.Since(p.start)
	if code != 7 {
		t.Errorf("exit %d, want the app's 7", code)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "SIGTERM") {
		t.Errorf("the left-behind daemon never got SIGTERM; its log: %q", b)
	}
	if elapsed < 700*time.Millisecond {
		t.Errorf("ov-init exited after %v, before the 700ms grace the daemon had", elapsed)
	}
	if !strings.HasPrefix(line, "daemon ") {
		t.Errorf("helper did not report its daemon: %q", line)
	}
}

func TestLeftoverThatExitsOnTermDoesNotDelayExit(t *testing.T) {
	p := pid1(t, "--grace", "5s", "--", "/bin/sh", "-c", "sleep 1000 & echo started; exit 4")
	p.expect("started", 5*time.Second)
	code, elapsed := p.wait(4 * time.Second)
	if code != 4 {
		t.Errorf("exit %d, want the app's 4", code)
	}
	if elapsed > 3*time.Second {
		t.Errorf("ov-init took %v although the leftover died on SIGTERM at once", elapsed)
	}
}

func TestRemapExitTurns143Into0(t *testing.T) {
	p := pid1(t, "-e", "143", "--", helper, "sleep")
	p.expect("ready", 5*time.Second)
	p.signal(unix.SIGTERM)
	if code, _ := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit %d, want 143 remapped to 0", code)
	}
	code, _, _ := runPID1(t, nil, "-e", "143", "--", helper, "exit", "3")
	if code != 3 {
		t.Errorf("-e 143 changed exit status 3 into %d", code)
	}
	cmd := exec.Command(ovInit, "--", helper, "exit", "5")
	cmd.Env = []string{"OV_REMAP_EXIT=4,5"}
	err := cmd.Run()
	if err != nil {
		t.Errorf("OV_REMAP_EXIT=4,5 did not remap 5: %v", err)
	}
}

func TestRewriteTermToQuit(t *testing.T) {
	p := pid1(t, "--rewrite", "TERM:QUIT", "--rewrite", "USR1:0", "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	p.signal(unix.SIGTERM)
	if line := p.expect("", 2*time.Second); line != "SIGQUIT|3" {
		t.Errorf("TERM:QUIT: app got %q, want SIGQUIT", line)
	}
	p.signal(unix.SIGUSR1) // dropped
	p.signal(unix.SIGUSR2)
	if line := p.expect("", 2*time.Second); line != "SIGUSR2|12" {
		t.Errorf("USR1:0 should drop USR1; app got %q first", line)
	}
}

func TestTermDelayHoldsTerm(t *testing.T) {
	p := pid1(t, "--term-delay", "800ms", "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	sent := time.Now()
	p.signal(unix.SIGTERM)
	p.signal(unix.SIGUSR1) // not held
	if line := p.expect("", 2*time.Second); line != "SIGUSR1|10" {
		t.Errorf("app got %q first, want SIGUSR1 while TERM is held", line)
	}
	p.expect("SIGTERM", 3*time.Second)
	if d := time.Since(sent); d < 800*time.Millisecond {
		t.Errorf("SIGTERM reached the app after %v, before the 800ms delay", d)
	}
}

func TestGraceKillsAppThatIgnoresTerm(t *testing.T) {
	p := pid1(t, "--grace", "500ms", "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	sent := time.Now()
	p.signal(unix.SIGTERM)
	p.expect("SIGTERM", 2*time.Second)
	code, _ := p.wait(5 * time.Second)
	if code != 137 {
		t.Errorf("exit %d, want 137 (SIGKILL after the grace)", code)
	}
	if d := time.Since(sent); d < 500*time.Millisecond || d > 3*time.Second {
		t.Errorf("app killed %v after SIGTERM, want just after the 500ms grace", d)
	}
}

func TestWithoutGraceAppThatIgnoresTermKeepsRunning(t *testing.T) {
	p := pid1(t, "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	p.signal(unix.SIGTERM)
	p.expect("SIGTERM", 2*time.Second)
	select {
	case <-p.done:
		t.Fatal("ov-init exited although the app ignores SIGTERM and no --grace was given")
	case <-time.After(700 * time.Millisecond):
	}
}

func TestKillGroupSignalsTheWholeGroup(t *testing.T) {
	for _, group := range []bool{true, false} {
		log := filepath.Join(t.TempDir(), "log")
		args := []string{"--", helper, "group", log}
		if group {
			args = append([]string{"-g"}, args...)
		}
		p := pid1(t, args...)
		p.expect("ready", 5*time.Second)
		p.signal(unix.SIGHUP)
		p.expect("SIGHUP", 2*time.Second)
		time.Sleep(200 * time.Millisecond)
		b, _ := os.ReadFile(log)
		if got := strings.Contains(string(b), "SIGHUP"); got != group {
			t.Errorf("-g=%v: the other process in the app's group got SIGHUP: %v (log %q)", group, got, b)
		}
	}
}

func TestAppStartsWithDefaultSignalStateEvenWhenOvInitDoesNot(t *testing.T) {
	wrapped := func(argv ...string) string {
		cmd := exec.Command(helper, append([]string{"with-signals", "HUP,INT,TERM,USR1,PIPE,TTOU,32,34", "USR2,TERM,WINCH,37"}, argv...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		return string(out)
	}
	// Negative control: the wrapper really does leave signals ignored and blocked.
	if out := wrapped("/bin/grep", "^Sig[IB]", "/proc/self/status"); strings.Contains(out, "SigIgn:\t0000000000000000") || strings.Contains(out, "SigBlk:\t0000000000000000") {
		t.Fatalf("the wrapper did not ignore signals:\n%s", out)
	}
	out := wrapped(ovInit, "--", "/bin/grep", "^Sig[IB]", "/proc/self/status")
	for _, want := range []string{"SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("app's signal state under ov-init is not clean, want %q:\n%s", want, out)
		}
	}
}

func TestIdleMeansIdle(t *testing.T) {
	p := pid1(t, "--", helper, "sleep")
	p.expect("ready", 5*time.Second)
	time.Sleep(200 * time.Millisecond) // let start-up settle
	pid := p.cmd.Process.Pid
	cpu0, sw0 := cpuAndSwitches(t, pid)
	time.Sleep(3 * time.Second)
	cpu1, sw1 := cpuAndSwitches(t, pid)
	if cpu1 != cpu0 {
		t.Errorf("ov-init used %d clock ticks of CPU in 3s while the app slept", cpu1-cpu0)
	}
	if sw1-sw0 > 2 {
		t.Errorf("ov-init's threads woke %d times in 3s while the app slept", sw1-sw0)
	}
}

// cpuAndSwitches returns utime+stime of pid and the context switches of all
// its threads.
func cpuAndSwitches(t *testing.T, pid int) (int, int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	switches := 0
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/status")
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "voluntary_ctxt_switches:") || strings.HasPrefix(line, "nonvoluntary_ctxt_switches:") {
				n, _ := strconv.Atoi(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]))
				switches += n
			}
		}
	}
	return ut + st, switches
}

func TestSubreaperReapsGrandchildrenWhenNotPID1(t *testing.T) {
	p := startProc(t, nil, []string{"HELPER_STAY=1"}, "--", helper, "orphans", "3", "sleep")
	line := p.expect("pids ", 5*time.Second)
	p.expect("done", 5*time.Second) // their parent has exited
	pids := strings.Fields(strings.TrimPrefix(line, "pids "))
	me := p.cmd.Process.Pid
	for _, s := range pids {
		pid, _ := strconv.Atoi(s)
		if ppid := parentPid(pid); ppid != me {
			t.Errorf("orphan %d has parent %d, want ov-init (%d) as subreaper", pid, ppid, me)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range pids {
		pid, _ := strconv.Atoi(s)
		for parentPid(pid) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("orphan %d was not reaped (state %s)", pid, procState(pid))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func parentPid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	n, _ := strconv.Atoi(f[1])
	return n
}

func procState(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 {
		return strings.Fields(s[i+1:])[0]
	}
	return "gone"
}
