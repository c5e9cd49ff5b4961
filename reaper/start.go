package reaper

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/execpath"
)

// start forks the app (or its exec stage: see Config.StageFD) with a clean
// signal state, in its own process group, in the terminal's foreground when
// stdin is our controlling terminal. For an exec stage it starts the
// hand-off, whose verdict comes on r.verdict; a plain app runs at once.
func (r *supervisor) start() error {
	attr := r.procAttr()
	var stage *os.File // PID 1's end of the hand-off socket
	if r.cfg.StageFD > 0 {
		var child int
		var err error
		if stage, child, err = r.stageSocket(attr); err != nil {
			return err
		}
		defer unix.Close(child)
	}
	// The configuration goes into the socket before the fork, so the
	// stage finds it there at once rather than waiting for a goroutine
	// of PID 1 to be scheduled (PID 1 is busy subscribing to signals
	// then). What the socket cannot hold, handOff sends after.
	rest := sendAhead(stage, r.cfg.StageConfig)
	pid, err := r.fork(attr)
	if err != nil {
		if stage != nil {
			stage.Close()
		}
		return forkError(r.cfg.Argv[0], err)
	}
	r.pid = pid
	r.logf(1, "started %q as pid %d", r.cfg.Argv[0], pid)
	if stage == nil {
		r.running = true
		return nil
	}
	r.verdict = handOff(stage, rest, &r.stageLeft)
	return nil
}

// sendAhead writes to the stage's socket as much of config as fits without
// blocking, shuts the socket for writing when all of it did, and returns
// what is left for handOff. A nil stage takes nothing.
func sendAhead(stage *os.File, config []byte) []byte {
	if stage == nil {
		return nil
	}
	for len(config) > 0 {
		n, err := unix.SendmsgN(int(stage.Fd()), config, nil, nil, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return config // EAGAIN: full; handOff sends the rest
		}
		config = config[n:]
	}
	_ = unix.Shutdown(int(stage.Fd()), unix.SHUT_WR)
	return nil
}

// procAttr is how the child starts: ov-init's environment or the app's,
// stdin, stdout and stderr (closed there if ov-init has none), its own
// process group, the foreground of our terminal if we have one.
func (r *supervisor) procAttr() *syscall.ProcAttr {
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
	return attr
}

// stageSocket creates the hand-off socket pair and gives the child its end
// at StageFD, after the descriptors 3 up to StageFD that ov-init inherited,
// passed on as they are. It returns PID 1's end, and the child's for PID 1
// to close once the child is forked.
func (r *supervisor) stageSocket(attr *syscall.ProcAttr) (*os.File, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("creating the exec-stage socket: %w", err)
	}
	for fd := 3; fd < r.cfg.StageFD; fd++ {
		attr.Files = append(attr.Files, uintptr(fd))
	}
	attr.Files = append(attr.Files, uintptr(fds[1]))
	return os.NewFile(uintptr(fds[0]), "exec-stage"), fds[1], nil
}

// forkError sorts a failed start: the command's own (an *execpath.Error,
// 126 or 127) unless the kernel lacked the resources to fork or the
// privileges could not be restricted, which is ov-init's failure (125).
func forkError(command string, err error) error {
	if err == syscall.EAGAIN || err == syscall.ENOMEM {
		return fmt.Errorf("fork: %w", err)
	}
	var pe privError
	if errors.As(err, &pe) {
		return err
	}
	return &execpath.Error{Command: command, Err: err}
}

// Verdicts of the exec stage, as handOff reports them.
const (
	stageExeced = -1 // it said it was executing the app, and did
	stageSilent = -2 // it ended without a word: killed, or it could not write
)

// StageLeavesFiles is the byte the exec stage sends just before it starts
// to leave something for the app that PID 1 must remove when the app ends
// (the secret files of --secrets-as files): from then on, whatever happens,
// Config.StageCleanup runs. It is never a status: ov-init's own statuses
// are 2 and above (see exitcode).
const StageLeavesFiles = 1

// handOff sends the exec stage the rest of its configuration that
// sendAhead left, in the background, and returns the channel of its
// verdict. The stage writes a 0 byte just before
// execve and nothing after it (the socket is close-on-exec there), so 0 then
// end of file means the app runs. Any other byte, first or after the 0
// (execve failed), is the stage's failure status. End of file with no byte
// at all means the stage died before it could say anything, which is never
// taken for the app. A StageLeavesFiles byte on the way sets *left before
// the verdict is sent.
func handOff(stage *os.File, rest []byte, left *bool) <-chan int {
	verdict := make(chan int, 1)
	go func() {
		defer stage.Close()
		if len(rest) > 0 {
			// EPIPE: the stage died before reading; its exit tells
			// the rest.
			_, _ = stage.Write(rest)
			_ = unix.Shutdown(int(stage.Fd()), unix.SHUT_WR)
		}
		v := stageSilent
		var b [1]byte
		for {
			n, err := stage.Read(b[:])
			if n == 1 {
				switch b[0] {
				case 0:
					v = stageExeced
				case StageLeavesFiles:
					*left = true
				default:
					verdict <- int(b[0])
					return
				}
			}
			if err != nil {
				verdict <- v
				return
			}
		}
	}()
	return verdict
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
			if argv, ok := execpath.ShellFallback(r.cfg.Path, r.cfg.Argv); ok {
				r.logf(1, "%q has no #! line: running it with %s", r.cfg.Path, execpath.Shell)
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

// FreeFD is the fd number for Config.StageFD: the lowest from 3 up that
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
