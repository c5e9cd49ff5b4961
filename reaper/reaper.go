package reaper

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/execpath"
	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/signame"
)

// Config says what to start and how to supervise it.
type Config struct {
	Path string   // resolved executable (see execpath.LookPath)
	Argv []string // argv[0] first
	Env  []string

	// Credential, when set, runs the app as another user.
	Credential *syscall.Credential

	// StageFD, when not 0, marks a child that is ov-init's own exec stage:
	// it gets one end of a stream socket pair as this fd (see FreeFD).
	// PID 1 writes StageConfig into it and shuts its side for writing; the
	// stage reads to end of file, marks the fd close-on-exec, writes a 0
	// byte and execs the app. A 0 then end of file means the app runs; any
	// other byte is the stage's own failure status, and end of file with
	// no byte a stage that died before it could say so: Run returns either
	// as ov-init's status, never remapped (a configuration failure must not
	// pass for the app's exit).
	// Signals are held until the app runs, so none reaches the exec stage
	// (which would die of it) and none is lost.
	StageFD     int
	StageConfig []byte

	// StageCleanup, when set, runs once the app (or its exec stage) has
	// exited, before what it left behind is stopped, if the stage sent
	// StageLeavesFiles: it removes what the stage left for the app (the
	// secret files, by name: PID 1 never reads them), and says what it
	// did through logf (level 0 always shows). It runs on every way the
	// app ends: its own exit, its crash, a forwarded signal, the grace's
	// SIGKILL, and a stage that fails or dies after the notice.
	StageCleanup func(logf func(level int, format string, args ...any))

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
	Log     io.Writer // diagnostics, one line each, prefixed Prog + ": "
	// Prog names the program in Log's lines: "ov" for `ov run`;
	// "ov-init" when empty.
	Prog string
}

// Run starts the app and supervises it until it exits, then stops whatever
// it left behind and returns the status ov-init should exit with.
//
// With Grace set, the app's process group is SIGKILLed Grace after a
// forwarded TERM, INT or QUIT if the app is still alive. When the app exits,
// remaining processes get SIGTERM, then SIGKILL after Grace (5s when unset),
// and are reaped before Run returns.
func Run(cfg Config, sigs *Signals) int {
	r := &supervisor{cfg: cfg, sigs: sigs, stageFail: stageExeced}
	r.becomeSubreaper()
	sigs.subscribed() // before anything of the app can be seen (see Listen)
	if err := r.start(); err != nil {
		return r.startFailed(err)
	}
	return r.loop()
}

type supervisor struct {
	cfg  Config
	sigs *Signals
	pid  int // the app (or its exec stage: same pid)

	exited bool               // the app (or its stage) has exited ...
	status syscall.WaitStatus // ... with this wait status

	verdict   <-chan int       // the exec stage's verdict, until it comes (see handOff)
	stageLeft bool             // the stage sent StageLeavesFiles (set by handOff before the verdict)
	stageFail int              // the exec stage's failure status, stageSilent, or stageExeced
	running   bool             // the app runs: forward rather than hold
	held      []syscall.Signal // signals that came before the app ran

	termTimer  *time.Timer // --term-delay: a SIGTERM is being held
	graceTimer *time.Timer // --grace: armed by the first forwarded TERM, INT or QUIT

	logBroken  bool // stderr's reader has gone: log no more
	ownSIGPIPE bool // a SIGPIPE of our own writing is on its way
}

// loop is PID 1's whole life while the app runs: block on a signal, a timer
// or the exec stage's verdict; reap on SIGCHLD; handle everything else.
func (r *supervisor) loop() int {
	for !r.exited {
		select {
		case <-r.sigs.chld:
			r.reap()
		case s := <-r.sigs.c:
			r.handle(s.(syscall.Signal))
		case v := <-r.verdict:
			r.stageVerdict(v)
		case <-expiry(r.termTimer):
			r.termDelayOver()
		case <-expiry(r.graceTimer):
			r.graceOver()
		}
	}
	return r.finish()
}

// expiry is t's channel, or nil (never ready) when t is not armed. A
// one-shot timer's channel is never ready again once read.
func expiry(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// becomeSubreaper makes ov-init, when it is not PID 1, the reaper of the
// app's orphans, which would otherwise go to the real init and escape.
func (r *supervisor) becomeSubreaper() {
	if os.Getpid() == 1 {
		return
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		r.logf(1, "cannot become a child subreaper: %v", err)
	}
}

// startFailed reports why the app could not be started and returns the
// status: 127 or 126 for the command, 125 for ov-init's own failure.
func (r *supervisor) startFailed(err error) int {
	var ee *execpath.Error
	if errors.As(err, &ee) {
		r.errorf("%v", ee)
		return ee.Status()
	}
	r.errorf("starting %q: %v", r.cfg.Argv[0], err)
	return exitcode.Internal
}

// handle acts on one signal PID 1 received: the SIGPIPE of its own write to
// a closed stderr is swallowed, a SIGTERM is held for --term-delay, and
// anything else goes to receive.
func (r *supervisor) handle(sig syscall.Signal) {
	switch {
	case sig == unix.SIGPIPE && r.ownSIGPIPE:
		r.ownSIGPIPE = false
	case sig == unix.SIGTERM && r.cfg.TermDelay > 0:
		r.delayTerm()
	default:
		r.receive(sig)
	}
}

// delayTerm holds a SIGTERM for --term-delay; more while it is held are one.
func (r *supervisor) delayTerm() {
	if r.termTimer == nil {
		r.logf(1, "holding SIGTERM for %v", r.cfg.TermDelay)
		r.termTimer = time.NewTimer(r.cfg.TermDelay)
	}
}

// termDelayOver passes the held SIGTERM on.
func (r *supervisor) termDelayOver() {
	r.termTimer = nil // a later TERM is held anew
	r.receive(unix.SIGTERM)
}

// graceOver SIGKILLs the app's group: it outlived --grace after a TERM.
func (r *supervisor) graceOver() {
	r.logf(1, "grace of %v is over: sending SIGKILL to process group %d", r.cfg.Grace, r.pid)
	_ = unix.Kill(-r.pid, unix.SIGKILL)
}

// stageVerdict takes the exec stage's verdict while it runs: once the app
// runs it gets the signals held for it.
func (r *supervisor) stageVerdict(v int) {
	if !r.takeVerdict(v) {
		return
	}
	held := r.held
	r.held = nil
	for _, sig := range held {
		r.receive(sig)
	}
}

// takeVerdict records the exec stage's verdict (see handOff) and reports
// whether the app runs. When it does not, the held signals are dropped.
func (r *supervisor) takeVerdict(v int) bool {
	r.verdict = nil
	if v == stageExeced {
		r.running = true
		return true
	}
	r.stageFail = v
	if len(r.held) > 0 {
		r.logf(2, "the app never ran: dropping %d held signals", len(r.held))
		r.held = nil
	}
	return false
}

// receive forwards or holds a signal meant for the app, and arms --grace
// when it forwards a TERM, INT or QUIT.
func (r *supervisor) receive(sig syscall.Signal) {
	if !Forwardable(sig) {
		return
	}
	if !r.running {
		// Held like the kernel holds pending signals: once each, so a
		// storm before the app runs cannot grow the queue.
		if !slices.Contains(r.held, sig) {
			r.logf(2, "holding %s until the app runs", signame.Name(sig))
			r.held = append(r.held, sig)
		}
		return
	}
	if !r.forward(sig) {
		return
	}
	switch sig {
	case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
		if r.cfg.Grace > 0 && r.graceTimer == nil {
			r.graceTimer = time.NewTimer(r.cfg.Grace)
		}
	}
}

// forward sends sig, after --rewrite, to the app or its process group, and
// reports whether it sent anything.
func (r *supervisor) forward(sig syscall.Signal) bool {
	if to, ok := r.cfg.Rewrite[sig]; ok {
		if to == 0 {
			r.logf(1, "dropping %s (--rewrite)", signame.Name(sig))
			return false
		}
		r.logf(2, "rewriting %s to %s", signame.Name(sig), signame.Name(to))
		sig = to
	}
	target := r.pid
	if r.cfg.KillGroup {
		target = -r.pid
	}
	r.logf(2, "forwarding %s to %d", signame.Name(sig), target)
	if err := unix.Kill(target, sig); err != nil && err != unix.ESRCH {
		// EPERM: root without CAP_KILL cannot signal an app that runs
		// as another user. Say so at any verbosity: docker stop would
		// otherwise end in a silent SIGKILL.
		r.errorf("forwarding %s to %d: %v (with --user, ov-init needs CAP_KILL)", signame.Name(sig), target, err)
	}
	return true
}

// reap collects every exited child; SIGCHLDs coalesce, so one signal may
// stand for many. When the app is among them it records its status.
func (r *supervisor) reap() {
	for {
		var st syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &st, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 {
			return
		}
		if pid == r.pid {
			r.exited, r.status = true, st
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

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return fmt.Sprintf("killed by %s", signame.Name(ws.Signal()))
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
	prog := r.cfg.Prog
	if prog == "" {
		prog = "ov-init"
	}
	line := []byte(prog + ": " + fmt.Sprintf(format, args...) + "\n")
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
