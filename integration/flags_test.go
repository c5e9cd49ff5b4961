package integration

import (
	"fmt"
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

// Outside PID 1, a killed leftover's own children are reparented to
// ov-init only as it dies: they must be killed too, and ov-init must exit.
func TestLeftoversOutsidePID1AreAllKilled(t *testing.T) {
	skipEmulated(t, noSubreaperUnderQemu)
	token := "31.4159"
	t.Cleanup(func() { exec.Command("pkill", "-KILL", "-f", "sleep "+token).Run() })
	script := `setsid sh -c 'trap "" TERM; setsid sh -c "trap \"\" TERM; sleep ` + token + `" & sleep ` + token + `' & sleep 0.2; echo started; exit 3`
	p := startProc(t, nil, nil, "--grace", "300ms", "--", "/bin/sh", "-c", script)
	p.expect("started", 5*time.Second)
	code, elapsed := p.wait(5 * time.Second)
	if code != 3 {
		t.Errorf("exit %d, want the app's 3", code)
	}
	if elapsed > 3*time.Second {
		t.Errorf("ov-init took %v to stop the leftovers", elapsed)
	}
	if out, _ := exec.Command("pgrep", "-f", "sleep "+token).Output(); len(out) > 0 {
		t.Errorf("leftovers still alive after ov-init exited: %s", out)
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

// Every TERM is held, not only the first; other signals are not held.
func TestTermDelayHoldsEveryTerm(t *testing.T) {
	p := pid1(t, "--term-delay", "800ms", "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	for i := 1; i <= 2; i++ {
		sent := time.Now()
		p.signal(unix.SIGTERM)
		p.signal(unix.SIGUSR1) // not held
		if line := p.expect("", 2*time.Second); line != "SIGUSR1|10" {
			t.Errorf("TERM %d: app got %q first, want SIGUSR1 while TERM is held", i, line)
		}
		p.expect("SIGTERM", 3*time.Second)
		if d := time.Since(sent); d < 800*time.Millisecond {
			t.Errorf("TERM %d reached the app after %v, before the 800ms delay", i, d)
		}
	}
}

func TestDroppedSignalDoesNotStartTheGrace(t *testing.T) {
	p := pid1(t, "--rewrite", "TERM:0", "--grace", "300ms", "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	p.signal(unix.SIGTERM)
	time.Sleep(800 * time.Millisecond)
	p.signal(unix.SIGUSR1)
	if line := p.expect("", 2*time.Second); line != "SIGUSR1|10" {
		t.Errorf("after a dropped TERM the app said %q", line)
	}
	select {
	case <-p.done:
		t.Fatal("the grace killed the app although its TERM was dropped")
	default:
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

// groupMemberGot starts ov-init FLAGS -- helper group, whose app shares its
// process group with a second process (the member, the app's child), sends
// SIGHUP to PID 1 once the member listens, and says whether the member got
// it; member is its host pid.
func groupMemberGot(t *testing.T, flags ...string) (got bool, member int, log string) {
	t.Helper()
	log = filepath.Join(t.TempDir(), "log")
	p := pid1(t, withApp(flags, helper, "group", log)...)
	p.expect("ready", 5*time.Second)
	waitFile(t, log, "ready")
	p.signal(unix.SIGHUP)
	p.expect("SIGHUP", 2*time.Second) // the app's
	time.Sleep(200 * time.Millisecond)
	b, _ := os.ReadFile(log)
	initPid := p.cmd.Process.Pid
	procs, err := procstat.InPIDNamespaceOf(initPid)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range procs {
		if s.PID != initPid && s.PPID != initPid {
			member = s.PID
		}
	}
	if member == 0 {
		t.Fatalf("no member in the app's namespace: %+v", procs)
	}
	return strings.Contains(string(b), "SIGHUP"), member, log
}

func TestKillGroupSignalsTheWholeGroup(t *testing.T) {
	if got, _, log := groupMemberGot(t, "-g"); !got {
		b, _ := os.ReadFile(log)
		t.Errorf("-g: the other process in the app's group did not get SIGHUP (log %q)", b)
	}
}

// TestWithoutKillGroupOnlyTheAppIsSignalled is the negative control of
// TestKillGroupSignalsTheWholeGroup: without -g the member, listening all
// along, gets nothing; sent SIGHUP itself, it records it, so the check can
// see the difference.
func TestWithoutKillGroupOnlyTheAppIsSignalled(t *testing.T) {
	got, member, log := groupMemberGot(t)
	if got {
		b, _ := os.ReadFile(log)
		t.Errorf("without -g the other process in the app's group got SIGHUP (log %q)", b)
	}
	if err := unix.Kill(member, unix.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFile(t, log, "SIGHUP")
}

// carelessParent runs argv as a careless parent (a shell, nohup, a
// supervisor) might: with signals ignored and blocked. It returns argv's
// stdout.
func carelessParent(t *testing.T, argv ...string) string {
	t.Helper()
	cmd := exec.Command(helper, append([]string{"with-signals", "HUP,INT,TERM,USR1,PIPE,TTOU,32,34", "USR2,TERM,WINCH,37"}, argv...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v: %s", argv, err, out)
	}
	return string(out)
}

// cleanSignalState are the lines of /proc/PID/status of a process that
// starts with no signal blocked and none ignored.
var cleanSignalState = []string{"SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"}

func TestAppStartsWithDefaultSignalStateEvenWhenOvInitDoesNot(t *testing.T) {
	// Negative control: the wrapper really does leave signals ignored and blocked.
	if out := carelessParent(t, "/bin/grep", "^Sig[IB]", "/proc/self/status"); strings.Contains(out, cleanSignalState[0]) || strings.Contains(out, cleanSignalState[1]) {
		t.Fatalf("the wrapper did not ignore signals:\n%s", out)
	}
	out := carelessParent(t, ovInit, "--", "/bin/grep", "^Sig[IB]", "/proc/self/status")
	for _, want := range cleanSignalState {
		if !strings.Contains(out, want) {
			t.Errorf("app's signal state under ov-init is not clean, want %q:\n%s", want, out)
		}
	}
}

// idleWindow is how long the idle test watches, and idleWakeups how many
// wake-ups of all its threads it forgives in that time.
const (
	idleWindow  = 3 * time.Second
	idleWakeups = 2
)

// TestIdleMeansIdle watches ov-init as PID 1 while its app sleeps. Over the
// same seconds it watches, as its negative control, a PID 1 that polls four
// times a second (tini polls once a second): the same measurement must
// find that one busy.
func TestIdleMeansIdle(t *testing.T) {
	p := pid1(t, "--", helper, "sleep")
	p.expect("ready", 5*time.Second)
	poller := startCmd(t, helper, newPIDNamespace(), nil, "poll", "250ms")
	poller.expect("ready", 5*time.Second)
	time.Sleep(200 * time.Millisecond) // let start-up settle
	pid, control := p.cmd.Process.Pid, poller.cmd.Process.Pid
	cpu0, sw0 := cpuAndSwitches(t, pid)
	ccpu0, csw0 := cpuAndSwitches(t, control)
	time.Sleep(idleWindow)
	cpu1, sw1 := cpuAndSwitches(t, pid)
	ccpu1, csw1 := cpuAndSwitches(t, control)
	if why := busy(cpu1-cpu0, sw1-sw0); why != "" {
		t.Errorf("while the app slept ov-init %s", why)
	}
	if busy(ccpu1-ccpu0, csw1-csw0) == "" {
		t.Errorf("control: a PID 1 that polls every 250ms passed as idle (%d wake-ups, %d ticks in %v): the measurement cannot see wake-ups",
			csw1-csw0, ccpu1-ccpu0, idleWindow)
	}
}

// busy says how a process that should have been idle for idleWindow was
// not, given the CPU ticks it used and its threads' context switches; ""
// when it was idle.
func busy(ticks uint64, switches int) string {
	var why []string
	if ticks != 0 {
		why = append(why, fmt.Sprintf("used %d clock ticks of CPU", ticks))
	}
	if switches > idleWakeups {
		why = append(why, fmt.Sprintf("woke %d times", switches))
	}
	if len(why) == 0 {
		return ""
	}
	return strings.Join(why, " and ") + " in " + idleWindow.String()
}

// cpuAndSwitches returns utime+stime of pid and the context switches of all
// its threads.
func cpuAndSwitches(t *testing.T, pid int) (uint64, int) {
	t.Helper()
	s, err := procstat.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
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
	return s.UTime + s.STime, switches
}

// orphansUnder starts ov-init, not as PID 1, with app ARGS, an app that
// leaves three sleeping orphans behind (helper orphans 3 sleep), and returns
// ov-init and the orphans' pids.
func orphansUnder(t *testing.T, app ...string) (*proc, []int) {
	t.Helper()
	p := startProc(t, nil, []string{"HELPER_STAY=1"}, withApp(nil, app...)...)
	line := p.expect("pids ", 5*time.Second)
	p.expect("done", 5*time.Second) // their parent has exited
	var pids []int
	for _, s := range strings.Fields(strings.TrimPrefix(line, "pids ")) {
		pid, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("helper said %q", line)
		}
		pids = append(pids, pid)
	}
	return p, pids
}

func TestSubreaperReapsGrandchildrenWhenNotPID1(t *testing.T) {
	skipEmulated(t, noSubreaperUnderQemu)
	p, pids := orphansUnder(t, helper, "orphans", "3", "sleep")
	me := p.cmd.Process.Pid
	for _, pid := range pids {
		if ppid := parentPid(pid); ppid != me {
			t.Errorf("orphan %d has parent %d, want ov-init (%d) as subreaper", pid, ppid, me)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for parentPid(pid) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("orphan %d was not reaped (state %s)", pid, procState(pid))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestGrandchildrenPassByAParentThatIsNotASubreaper is the negative control
// of TestSubreaperReapsGrandchildrenWhenNotPID1: the same app under sh, a
// parent without PR_SET_CHILD_SUBREAPER, loses its orphans to the nearest
// subreaper above it (ov-init, which sits above sh here and cleans up), and
// the check must see that.
func TestGrandchildrenPassByAParentThatIsNotASubreaper(t *testing.T) {
	skipEmulated(t, noSubreaperUnderQemu)
	p, pids := orphansUnder(t, "/bin/sh", "-c", `"$0" orphans 3 sleep; :`, helper)
	all, err := procstat.All()
	if err != nil {
		t.Fatal(err)
	}
	sh := 0
	for _, s := range all {
		if s.PPID == p.cmd.Process.Pid && s.Comm == "sh" {
			sh = s.PID
		}
	}
	if sh == 0 {
		t.Fatal("control: found no sh under ov-init")
	}
	for _, pid := range pids {
		switch ppid := parentPid(pid); ppid {
		case sh:
			t.Errorf("control: orphan %d stayed with sh (%d), which is no subreaper", pid, sh)
		case p.cmd.Process.Pid:
		default:
			t.Errorf("control: orphan %d has parent %d, want the subreaper above sh, ov-init (%d)", pid, ppid, p.cmd.Process.Pid)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func parentPid(pid int) int {
	s, err := procstat.Read(pid)
	if err != nil {
		return 0
	}
	return s.PPID
}

func TestNumericUserOutsidePasswdGetsHomeSlash(t *testing.T) {
	cmd := exec.Command(ovInit, "--user", "12345", "--", "/usr/bin/env")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "\nHOME=/\n") && !strings.HasPrefix(string(out), "HOME=/\n") {
		t.Errorf("the app's environment under --user 12345: %q, want HOME=/", out)
	}
}

func TestUserNeedsOvInitToStartAsRoot(t *testing.T) {
	dir, err := os.MkdirTemp("", "ov-user-") // reachable by uid 1001, unlike t.TempDir
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "ov-init")
	copyExecutable(t, ovInit, bin)
	cmd := exec.Command(bin, "--user", "0", "--", "/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1001, Gid: 1001}}
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 78 || !strings.Contains(string(out), "starts as root") {
		t.Errorf("exit %d, output %q; want 78 and why", code, out)
	}
}
