package reaper

import (
	"os"
	"os/signal"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/signame"
)

// Signals is the subscription to every catchable signal. Take it with Listen
// as early as possible: a Go PID 1 that has not subscribed to TERM, INT or HUP
// exits 2 when one arrives, and other signals are dropped.
type Signals struct {
	c     chan os.Signal // every signal but SIGCHLD (and SIGURG)
	chld  chan os.Signal // SIGCHLD alone: one pending notice is enough to reap
	ready chan struct{}  // closed once every signal is subscribed (nil: already)
}

// signalBuffer is the queue between the Go runtime and the loop for the
// signals to forward. os/signal never blocks: when the queue is full it
// drops the signal, whichever it is, so the queue is deep enough for the
// loop to fall far behind a storm before that happens. SIGCHLD has a queue
// of its own, so no storm can make PID 1 miss the app's exit.
const signalBuffer = 128

// early are the signals subscribed before Listen returns: those the Go
// runtime turns into PID 1's death (exit 2 or a crash) while nobody has
// subscribed to them; SIGCHLD, which reaping needs; and those the runtime
// leaves alone until subscribed (CONT, TSTP, TTIN, TTOU; HUP and INT when
// ignored), so that an ignore ov-init inherited is replaced by a handler,
// which the app then gets back as the default action, before the app is
// forked.
var early = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP,
	unix.SIGABRT, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, unix.SIGPIPE,
	unix.SIGTERM, unix.SIGSTKFLT, unix.SIGSYS,
	unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU,
}

// rest is every other catchable signal but SIGCHLD and SIGURG (the Go
// runtime's own preemption signal, never forwarded).
func rest() []os.Signal {
	var sigs []os.Signal
	for n := syscall.Signal(1); n <= signame.RTMax; n++ {
		switch n {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG:
			continue
		}
		if !slices.Contains(early, os.Signal(n)) {
			sigs = append(sigs, n)
		}
	}
	return sigs
}

// Listen subscribes to all signals. The runtime hands each subscription to
// its signal thread and back, about 20µs a signal: done one by one before the
// app starts, that is most of a millisecond of PID 1's start-up. So the
// early signals are subscribed before Listen returns, and the rest (which
// the runtime handles from the start, dropping them until subscribed) in
// the background while ov-init parses its command line and starts the app.
//
// Run waits for the background subscription to complete before it starts
// the app: once anything the app does can be seen (its output, its
// socket), every signal sent to PID 1 is queued and forwarded (held until
// the app runs, in secrets mode). Without the wait, a loaded machine ran
// the app, and a USR1 sent after its first line was dropped.
func Listen() *Signals {
	s := &Signals{c: make(chan os.Signal, signalBuffer), chld: make(chan os.Signal, 1), ready: make(chan struct{})}
	signal.Notify(s.chld, unix.SIGCHLD)
	signal.Notify(s.c, early...)
	go func() {
		signal.Notify(s.c, rest()...)
		close(s.ready)
	}()
	return s
}

// subscribed returns once every signal is subscribed.
func (s *Signals) subscribed() {
	if s != nil && s.ready != nil {
		<-s.ready
	}
}

// Forwardable reports whether a signal PID 1 receives is meant for the app.
// SIGURG is the Go runtime's own preemption signal and cannot be told apart
// from a sent one; SIGCHLD concerns PID 1; the synchronous faults are PID 1's
// own crashes, never a request for the app.
func Forwardable(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGURG, unix.SIGCHLD,
		unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL,
		unix.SIGTRAP, unix.SIGSYS, unix.SIGABRT:
		return false
	}
	return true
}

// unhandled are signals the Go runtime never installs a handler for (the C
// library's internal ones, 32 and 34), so a SIG_IGN that ov-init inherited
// for them would pass to the app unchanged, unlike every other signal.
var unhandled = []syscall.Signal{32, 34}

// sigactionIgnore is SIG_IGN in struct sigaction's handler field.
const sigactionIgnore = 1

// resetIgnored sets the unhandled signals back to their default action if
// ov-init was started with them ignored. ov-init itself never uses them.
func resetIgnored() {
	for _, sig := range unhandled {
		// The kernel's struct sigaction: handler, flags, restorer, mask.
		var old [4]uint64
		_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
		if errno != 0 || old[0] != sigactionIgnore {
			continue
		}
		var dfl [4]uint64
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
}
