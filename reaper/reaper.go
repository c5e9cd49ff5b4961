package reaper

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config says what to start and how to supervise it.
type Config struct {
	Path string   // resolved executable (see LookPath)
	Argv []string // argv[0] first
	Env  []string

	// Credential, when set, runs the app as another user.
	Credential *syscall.Credential

	// ReadyFD, when not 0, marks a child that is ov-init's own exec stage:
	// it gets one end of a stream socket pair as this fd (see FreeFD).
	// PID 1 writes Stage into it and shuts its side for writing; the stage
	// reads to end of file, marks the fd close-on-exec, writes a 0 byte
	// and execs the app. A 0 then end of file means the app runs; any other
	// byte is the stage's own failure status, and end of file with no byte
	// a stage that died before it could say so: Run returns either as
	// ov-init's status, never remapped (a configuration failure must not
	// pass for the app's exit).
	// Signals are held until the app runs, so none reaches the exec stage
	// (which would die of it) and none is lost.
	ReadyFD int
	Stage   []byte

	// Restrict, when set, runs on the thread that forks the app, just
	// before the fork, to change per-thread state the app inherits and
	// nothing can undo (no_new_privs, the capability bounding set). That
	// thread is never used again. An error stops the start: ov-init's
	// failure, status 125.
	Restrict func() error

	KillGroup bool                              // signal the app's whole process group
	Rewrite   map[syscall.Signal]syscall.Signal // FROM → TO; TO 0 drops FROM
	RemapExit map[int]bool                      // these app statuses become 0
	TermDelay time.Duration                     // hold SIGTERM this long before forwarding
	Grace     time.Duration                     // see Run

	Verbose int
	Log     io.Writer // diagnostics, one line each, prefixed "ov-init: "
}

// leftoverGrace is how long processes left behind by the app get between
// SIGTERM and SIGKILL when Config.Grace is unset.
const leftoverGrace = 5 * time.Second

// Run starts the app and supervises it until it exits, then stops whatever
// it left behind and returns the status ov-init should exit with.
//
// With Grace set, the app's process group is SIGKILLed Grace after a
// forwarded TERM, INT or QUIT if the app is still alive. When the app exits,
// remaining processes get SIGTERM, then SIGKILL after Grace (5s when unset),
// and are reaped before Run returns.
func Run(cfg Config, sigs *Signals) int {
	r := &supervisor{cfg: cfg, sigs: sigs, stageFail: stageExeced}
	if os.Getpid() != 1 {
		// Orphans of the app would otherwise go to the real init and
		// escape reaping.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			r.logf(1, "cannot become a child subreaper: %v", err)
		}
	}
	ready, err := r.start()
	if err != nil {
		var ee *ExecError
		if errors.As(err, &ee) {
			r.errorf("%v", ee)
			return ee.Status()
		}
		r.errorf("starting %q: %v", cfg.Argv[0], err)
		return ExitInternal
	}
	return r.loop(ready)
}

type supervisor struct {
	cfg  Config
	sigs *Signals
	pid  int // the app (or its exec stage: same pid)

	held       []syscall.Signal // signals that came before the app ran
	stageFail  int              // the exec stage's failure status, stageSilent, or stageExeced
	logBroken  bool             // stderr's reader has gone: log no more
	ownSIGPIPE bool             // a SIGPIPE of our own writing is on its way
	running    bool             // the app runs: forward rather than hold
	termTimer  *time.Timer
	graceTimer *time.Timer
}

// loop is PID 1's whole life while the app runs: block on a signal, a timer
// or the app's readiness; reap on SIGCHLD; forward everything else.
func (r *supervisor) loop(ready <-chan int) int {
	var termDelay, grace <-chan time.Time
	for {
		select {
		case <-r.sigs.chld:
			if ws, exited := r.reap(); exited {
				if ready != nil {
					// The exec stage is gone, so its socket has
					// closed: its verdict is on its way.
					r.stageResult(<-ready)
				}
				return r.finish(ws)
			}
		case s := <-r.sigs.c:
			sig := s.(syscall.Signal)
			if sig == unix.SIGPIPE && r.ownSIGPIPE {
				r.ownSIGPIPE = false
				continue
			}
			if sig == unix.SIGTERM && r.cfg.TermDelay > 0 {
				if r.termTimer == nil {
					r.logf(1, "holding SIGTERM for %v", r.cfg.TermDelay)
					r.termTimer = time.NewTimer(r.cfg.TermDelay)
					termDelay = r.termTimer.C
				}
				continue
			}
			if t := r.receive(sig); t != nil {
				grace = t
			}
		case status := <-ready:
			ready = nil
			if !r.stageResult(status) {
				continue
			}
			for _, sig := range r.held {
				if t := r.receive(sig); t != nil {
					grace = t
				}
			}
			r.held = nil
		case <-termDelay:
			termDelay, r.termTimer = nil, nil // a later TERM is held anew
			if t := r.receive(unix.SIGTERM); t != nil {
				grace = t
			}
		case <-grace:
			grace = nil
			r.logf(1, "grace of %v is over: sending SIGKILL to process group %d", r.cfg.Grace, r.pid)
			_ = unix.Kill(-r.pid, unix.SIGKILL)
		}
	}
}

// stageResult takes the exec stage's verdict (see handOff). It reports
// whether the app runs.
func (r *supervisor) stageResult(status int) bool {
	if status == stageExeced {
		r.running = true
		return true
	}
	r.stageFail = status
	if len(r.held) > 0 {
		r.logf(2, "the app never ran: dropping %d held signals", len(r.held))
		r.held = nil
	}
	return false
}

// receive forwards or holds a signal meant for the app, and returns the
// grace timer's channel when this signal starts it.
func (r *supervisor) receive(sig syscall.Signal) <-chan time.Time {
	if !forwardable(sig) {
		return nil
	}
	if !r.running {
		// Held like the kernel holds pending signals: once each, so a
		// storm before the app runs cannot grow the queue.
		if !slices.Contains(r.held, sig) {
			r.logf(2, "holding %s until the app runs", signalName(sig))
			r.held = append(r.held, sig)
		}
		return nil
	}
	if !r.forward(sig) {
		return nil
	}
	switch sig {
	case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
		if r.cfg.Grace > 0 && r.graceTimer == nil {
			r.graceTimer = time.NewTimer(r.cfg.Grace)
			return r.graceTimer.C
		}
	}
	return nil
}

// forward sends sig, after --rewrite, to the app or its process group, and
// reports whether it sent anything.
func (r *supervisor) forward(sig syscall.Signal) bool {
	if to, ok := r.cfg.Rewrite[sig]; ok {
		if to == 0 {
			r.logf(1, "dropping %s (--rewrite)", signalName(sig))
			return false
		}
		r.logf(2, "rewriting %s to %s", signalName(sig), signalName(to))
		sig = to
	}
	target := r.pid
	if r.cfg.KillGroup {
		target = -r.pid
	}
	r.logf(2, "forwarding %s to %d", signalName(sig), target)
	if err := unix.Kill(target, sig); err != nil && err != unix.ESRCH {
		// EPERM: root without CAP_KILL cannot signal an app that runs
		// as another user. Say so at any verbosity: docker stop would
		// otherwise end in a silent SIGKILL.
		r.errorf("forwarding %s to %d: %v (with --user, ov-init needs CAP_KILL)", signalName(sig), target, err)
	}
	return true
}

// reap collects every exited child; SIGCHLDs coalesce, so one signal may
// stand for many. It reports the app's status once the app has exited.
func (r *supervisor) reap() (ws syscall.WaitStatus, exited bool) {
	for {
		var st syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &st, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 {
			return ws, exited
		}
		if pid == r.pid {
			ws, exited = st, true
			if r.running {
				r.logf(1, "app (pid %d) exited: %s", pid, describe(st))
			} else {
				r.logf(1, "exec stage (pid %d) exited before starting the app: %s", pid, describe(st))
			}
		} else if r.cfg.Verbose >= 3 {
			r.logf(3, "reaped pid %d", pid)
		}
	}
}

// finish stops whatever the app left behind and returns ov-init's status.
func (r *supervisor) finish(ws syscall.WaitStatus) int {
	if r.termTimer != nil {
		r.termTimer.Stop()
	}
	if r.graceTimer != nil {
		r.graceTimer.Stop()
	}
	r.stopLeftovers()
	switch {
	case r.stageFail == stageSilent:
		// Killed, say by the OOM killer, before it could speak: its
		// status is still ov-init's own, never remapped, never 0.
		r.errorf("the exec stage ended before starting the app: %s", describe(ws))
		if code := exitStatus(ws); code != 0 {
			return code
		}
		return ExitInternal
	case r.stageFail >= 0:
		// The stage said why on stderr; its status is ov-init's own,
		// not the app's, so --remap-exit does not apply.
		return r.stageFail
	}
	code := exitStatus(ws)
	if r.cfg.RemapExit[code] {
		r.logf(1, "remapping exit status %d to 0 (--remap-exit)", code)
		code = 0
	}
	return code
}

// stopLeftovers sends SIGTERM to every remaining process, SIGKILL to those
// still alive after the grace, and reaps them all.
func (r *supervisor) stopLeftovers() {
	if !hasChildren() {
		return
	}
	grace := r.cfg.Grace
	if grace <= 0 {
		grace = leftoverGrace
	}
	r.logf(1, "the app left processes behind: SIGTERM now, SIGKILL in %v", grace)
	r.signalLeftovers(unix.SIGTERM)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for {
		r.reap()
		if !hasChildren() {
			return
		}
		select {
		case <-r.sigs.chld:
		case <-r.sigs.c: // ov-init is stopping: nothing more to forward
		case <-deadline.C:
			r.logf(1, "sending SIGKILL to the processes still alive")
			r.killLeftovers()
			return
		}
	}
}

// killLeftovers SIGKILLs until no child is left. Outside PID 1 a killed
// process's own children are reparented to us only as it dies, so each
// round may find new ones.
func (r *supervisor) killLeftovers() {
	again := time.NewTicker(100 * time.Millisecond)
	defer again.Stop()
	for {
		r.signalLeftovers(unix.SIGKILL)
		r.reap()
		if !hasChildren() {
			return
		}
		select {
		case <-r.sigs.chld:
		case <-r.sigs.c:
		case <-again.C:
		}
	}
}

// signalLeftovers signals every process PID 1 is responsible for. As PID 1
// of a namespace that is everyone else in it; otherwise (a subreaper) it is
// the app's process group and our remaining children.
func (r *supervisor) signalLeftovers(sig syscall.Signal) {
	if os.Getpid() == 1 {
		_ = unix.Kill(-1, sig)
		return
	}
	_ = unix.Kill(-r.pid, sig)
	for _, pid := range children(os.Getpid()) {
		_ = unix.Kill(pid, sig)
	}
}

// hasChildren reports whether any child, alive or zombie, remains.
func hasChildren() bool {
	var si unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &si, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != unix.ECHILD
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return fmt.Sprintf("killed by %s", signalName(ws.Signal()))
	}
	return fmt.Sprintf("status %d", ws.ExitStatus())
}

func (r *supervisor) logf(level int, format string, args ...any) {
	if r.cfg.Verbose >= level {
		r.errorf(format, args...)
	}
}

// errorf writes one diagnostic line. When the reader of stderr has gone,
// the write fails with EPIPE and the kernel sends PID 1 a SIGPIPE of its
// own making: that one is swallowed rather than forwarded (it would kill
// the app), and ov-init stops writing to the broken stream.
func (r *supervisor) errorf(format string, args ...any) {
	if r.cfg.Log == nil || r.logBroken {
		return
	}
	line := []byte(fmt.Sprintf("ov-init: "+format+"\n", args...))
	var err error
	if f, ok := r.cfg.Log.(*os.File); ok {
		// Not f.Write: on EPIPE to stderr os.File raises a second SIGPIPE.
		_, err = unix.Write(int(f.Fd()), line)
	} else {
		_, err = r.cfg.Log.Write(line)
	}
	if errors.Is(err, unix.EPIPE) {
		r.logBroken, r.ownSIGPIPE = true, true
	}
}

// start forks the app with a clean signal state in its own process group,
// in the terminal's foreground when stdin is our controlling terminal. For
// an exec stage it returns the channel of the stage's verdict (see
// Config.ReadyFD); for a plain app, nil.
func (r *supervisor) start() (<-chan int, error) {
	attr := &syscall.ProcAttr{
		Env:   r.cfg.Env,
		Files: []uintptr{inherited(0), inherited(1), inherited(2)},
		Sys: &syscall.SysProcAttr{
			Setpgid:    true,
			Credential: r.cfg.Credential,
		},
	}
	if controllingTerminal(0) {
		attr.Sys.Foreground = true
		attr.Sys.Ctty = 0
	}

	var stage *os.File // PID 1's end of the hand-off socket
	if r.cfg.ReadyFD > 0 {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("creating the exec-stage socket: %w", err)
		}
		stage = os.NewFile(uintptr(fds[0]), "exec-stage")
		defer unix.Close(fds[1])
		// Descriptors 3 up to ReadyFD were inherited: pass them on as
		// they are, then the socket.
		for fd := 3; fd < r.cfg.ReadyFD; fd++ {
			attr.Files = append(attr.Files, uintptr(fd))
		}
		attr.Files = append(attr.Files, uintptr(fds[1]))
	}

	pid, err := r.fork(attr)
	if err != nil {
		if stage != nil {
			stage.Close()
		}
		if err == syscall.EAGAIN || err == syscall.ENOMEM {
			return nil, fmt.Errorf("fork: %w", err) // ov-init's failure, not the command's
		}
		var pe privError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, &ExecError{Command: r.cfg.Argv[0], Err: err}
	}
	r.pid = pid
	r.logf(1, "started %q as pid %d", r.cfg.Argv[0], pid)

	if stage == nil {
		r.running = true
		return nil, nil
	}
	ready := make(chan int, 1)
	go handOff(stage, r.cfg.Stage, ready)
	return ready, nil
}

// Verdicts of the exec stage, as handOff reports them.
const (
	stageExeced = -1 // it said it was executing the app, and did
	stageSilent = -2 // it ended without a word: killed, or it could not write
)

// handOff sends the exec stage its configuration, then waits for its
// verdict. The stage writes a 0 byte just before execve and nothing after
// it (the socket is close-on-exec there), so 0 then end of file means the
// app runs. Any other byte, first or after the 0 (execve failed), is the
// stage's failure status. End of file with no byte at all means the stage
// died before it could say anything, which is never taken for the app.
func handOff(stage *os.File, config []byte, ready chan<- int) {
	defer stage.Close()
	// EPIPE: the stage died before reading; its exit tells the rest.
	_, _ = stage.Write(config)
	_ = unix.Shutdown(int(stage.Fd()), unix.SHUT_WR)
	verdict := stageSilent
	var b [1]byte
	for {
		n, err := stage.Read(b[:])
		if n == 1 {
			if b[0] != 0 {
				ready <- int(b[0])
				return
			}
			verdict = stageExeced
		}
		if err != nil {
			ready <- verdict
			return
		}
	}
}

// fork starts the child from a thread whose signal mask is empty (the
// child inherits the forking thread's mask, and ov-init's threads keep the
// one ov-init was started with) and on which Config.Restrict has run. A
// restricted thread is never handed back to the Go scheduler: its
// goroutine ends locked, so the thread exits with it.
func (r *supervisor) fork(attr *syscall.ProcAttr) (int, error) {
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	forkOn := func() {
		runtime.LockOSThread()
		if r.cfg.Restrict != nil {
			if err := r.cfg.Restrict(); err != nil {
				done <- result{-1, privError{err}}
				return // the thread stays locked and exits
			}
		} else {
			defer runtime.UnlockOSThread()
		}
		resetIgnored()
		var old unix.Sigset_t
		if err := unix.PthreadSigmask(unix.SIG_SETMASK, &unix.Sigset_t{}, &old); err != nil {
			done <- result{-1, fmt.Errorf("clearing the signal mask: %w", err)}
			return
		}
		defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
		pid, err := syscall.ForkExec(r.cfg.Path, r.cfg.Argv, attr)
		if err == syscall.ENOEXEC {
			if argv, ok := ShellFallback(r.cfg.Path, r.cfg.Argv); ok {
				r.logf(1, "%q has no #! line: running it with %s", r.cfg.Path, shell)
				pid, err = syscall.ForkExec(argv[0], argv, attr)
			}
		}
		done <- result{pid, err}
	}
	if r.cfg.Restrict != nil {
		go forkOn()
	} else {
		forkOn() // the common case costs no thread
	}
	res := <-done
	return res.pid, res.err
}

// privError is a failure to restrict the app's privileges: ov-init's own,
// not the command's.
type privError struct{ err error }

func (e privError) Error() string { return e.err.Error() }
func (e privError) Unwrap() error { return e.err }

// inherited passes fd on to the child, or closes it there when ov-init
// itself was started without it.
func inherited(fd int) uintptr {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return ^uintptr(0)
	}
	return uintptr(fd)
}

// controllingTerminal reports whether fd is the controlling terminal of our
// session, the only case in which the app can be made the foreground group.
func controllingTerminal(fd int) bool {
	_, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil
}

// children lists the pids whose parent is ppid, from /proc.
func children(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, ok := atoi(e.Name())
		if !ok {
			continue
		}
		if p, ok := parentOf(pid); ok && p == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// FreeFD is the fd number for Config.ReadyFD: the lowest from 3 up that
// ov-init did not inherit, so that inherited descriptors (systemd's socket
// activation passes them from 3 on) reach the app untouched.
func FreeFD() int {
	for fd := 3; ; fd++ {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			return fd
		}
	}
}
