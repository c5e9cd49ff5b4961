package reaper

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/exitcode"
)

// leftoverGrace is how long processes left behind by the app get between
// SIGTERM and SIGKILL when Config.Grace is unset.
const leftoverGrace = 5 * time.Second

// finish runs once the app (or its exec stage) has exited: it stops
// whatever the app left behind and returns ov-init's status.
func (r *supervisor) finish() int {
	if r.verdict != nil {
		// The exec stage is gone, so its socket has closed: its
		// verdict is on its way.
		r.takeVerdict(<-r.verdict)
	}
	if r.stageLeft && r.cfg.StageCleanup != nil {
		// At once: the app is gone, whatever it left behind.
		r.cfg.StageCleanup(r.logf)
	}
	if r.termTimer != nil {
		r.termTimer.Stop()
	}
	if r.graceTimer != nil {
		r.graceTimer.Stop()
	}
	r.stopLeftovers()
	return r.exitCode()
}

// exitCode is ov-init's status: the exec stage's failure as it is, or the
// app's status after --remap-exit.
func (r *supervisor) exitCode() int {
	switch {
	case r.stageFail == stageSilent:
		// Killed, say by the OOM killer, before it could speak: its
		// status is still ov-init's own, never remapped, never 0.
		r.errorf("the exec stage ended before starting the app: %s", describe(r.status))
		if code := exitStatus(r.status); code != 0 {
			return code
		}
		return exitcode.Internal
	case r.stageFail >= 0:
		// The stage said why on stderr; its status is ov-init's own,
		// not the app's, so --remap-exit does not apply.
		return r.stageFail
	}
	code := exitStatus(r.status)
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
