// Command helper is the app the integration tests run under ov-init. Each
// mode does one thing a test needs to observe, and reports it on stdout.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helper MODE [ARG...]")
		os.Exit(64)
	}
	arg := func(i int) string {
		if len(os.Args) > i+2 {
			return os.Args[i+2]
		}
		return ""
	}
	switch os.Args[1] {
	case "exit": // exit N
		os.Exit(atoi(arg(0)))
	case "nap": // nap D: sleep for D (a Go duration), then exit 0
		d, err := time.ParseDuration(arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(64)
		}
		time.Sleep(d)
	case "die": // die SIG: killed by SIG, default disposition
		die(signum(arg(0)))
	case "sleep": // sleep: print "ready", then block with default dispositions
		fmt.Println("ready")
		for {
			unix.Pause()
		}
	case "signals": // signals: print each signal received, one per line
		signals()
	case "status": // status: what the kernel says about this process
		status()
	case "args":
		json.NewEncoder(os.Stdout).Encode(os.Args[2:])
	case "argv-hex": // argv-hex ARG...: each argument in hex, one per line (bytes, not text)
		for _, a := range os.Args[2:] {
			fmt.Println(hex.EncodeToString([]byte(a)))
		}
	case "env":
		json.NewEncoder(os.Stdout).Encode(os.Environ())
	case "cat":
		io.Copy(os.Stdout, os.Stdin)
	case "orphans": // orphans N [sleep]: leave N grandchildren to PID 1
		orphans(atoi(arg(0)), arg(1) == "sleep")
	case "leftover": // leftover CODE FILE: leave a TERM-ignoring daemon, exit CODE
		leftover(atoi(arg(0)), arg(1))
	case "daemon": // daemon FILE: record signals in FILE, ignore TERM
		daemon(arg(0))
	case "zombies": // zombies N: fork N children that exit at once, then exit 0
		forkExiting(atoi(arg(0)))
	case "group": // group FILE: a second process in our group records signals in FILE; then like signals
		group(arg(0))
	case "poll": // poll INTERVAL: print "ready", then wake every INTERVAL (a Go duration) as a polling init does
		poll(arg(0))
	case "quiet": // quiet FILE: close stdout and stderr, record signals in FILE, exit 0 on TERM
		quiet(arg(0))
	case "reaped": // reaped N: orphan N children, print how long until all are reaped
		reaped(atoi(arg(0)))
	case "with-signals": // with-signals IGN,.. BLK,.. CMD...: exec CMD with those ignored and blocked
		withSignals(arg(0), arg(1), os.Args[4:])
	case "files": // files [sleep]: read every NAME_FILE, print what it found as JSON (never a value); sleep: then "ready" and block
		secretFiles(arg(0) == "sleep")
	case "spawn": // spawn [--cloexec-secrets] CMD...: run CMD as a child (os/exec), after marking the NAME_FILE descriptors close-on-exec if asked
		spawn(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "helper: unknown mode %q\n", os.Args[1])
		os.Exit(64)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: not a number: %q\n", s)
		os.Exit(64)
	}
	return n
}

func signum(s string) syscall.Signal {
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n)
	}
	return unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG"))
}

// die restores the default action of sig and raises it, so the process
// really is killed by it (the Go runtime would otherwise turn a sent SIGSEGV
// into exit status 2).
func die(sig syscall.Signal) {
	var sa [4]uint64 // struct kernel_sigaction: handler SIG_DFL, flags, restorer, mask
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
	var set unix.Sigset_t
	unix.PthreadSigmask(unix.SIG_SETMASK, &set, nil)
	unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	time.Sleep(time.Second)
	os.Exit(99)
}

func signals() {
	c := make(chan os.Signal, 64)
	signal.Notify(c)
	if os.Getenv("HELPER_READY_FD") != "" {
		unix.Close(atoi(os.Getenv("HELPER_READY_FD")))
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "ready")
	w.Flush()
	for s := range c {
		sig := s.(syscall.Signal)
		if sig == unix.SIGURG || sig == unix.SIGCHLD {
			continue // the Go runtime's own
		}
		fmt.Fprintln(w, unix.SignalName(sig)+"|"+strconv.Itoa(int(sig)))
		w.Flush()
		if sig == unix.SIGTERM && os.Getenv("HELPER_EXIT_ON_TERM") != "" {
			os.Exit(atoi(os.Getenv("HELPER_EXIT_ON_TERM")))
		}
	}
}

func status() {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range []string{"SigBlk:", "SigIgn:", "Uid:", "Gid:", "Groups:", "NoNewPrivs:", "CapBnd:", "CapEff:"} {
			if strings.HasPrefix(line, k) {
				fmt.Println(strings.Join(strings.Fields(line), " "))
			}
		}
	}
	fmt.Printf("pid: %d\nppid: %d\npgid: %d\n", os.Getpid(), os.Getppid(), unix.Getpgrp())
	if pg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil {
		fmt.Printf("foreground: %d\n", pg)
	}
	if _, err := os.ReadFile(os.Getenv("HELPER_TRY_READ")); os.Getenv("HELPER_TRY_READ") != "" {
		fmt.Printf("read: %v\n", err)
	}
}

// rawFork forks without the Go runtime: the child may only make raw
// system calls, which is all these children do.
func rawFork() int {
	pid, _, errno := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		fmt.Fprintf(os.Stderr, "helper: clone: %v\n", errno)
		os.Exit(70)
	}
	return int(pid)
}

func forkExiting(n int) {
	for i := 0; i < n; i++ {
		if rawFork() == 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
}

// orphans starts an intermediate child that forks n grandchildren and exits,
// so they are reparented to ov-init. With sleep they live until killed and
// their pids are printed; otherwise they exit at once.
func orphans(n int, sleep bool) {
	mode := "zombies"
	if sleep {
		mode = "sleepers"
	}
	self, _ := os.Executable()
	cmd := []string{self, "_" + mode, strconv.Itoa(n)}
	pid, err := syscall.ForkExec(self, cmd, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(70)
	}
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
	fmt.Println("done")
	if os.Getenv("HELPER_STAY") != "" {
		for {
			unix.Pause()
		}
	}
}

func init() {
	if len(os.Args) < 3 {
		return
	}
	switch os.Args[1] {
	case "_zombies":
		forkExiting(atoi(os.Args[2]))
		os.Exit(0)
	case "_pids": // fork N children that exit at once, print their pids, exit
		var b strings.Builder
		for i := 0; i < atoi(os.Args[2]); i++ {
			pid := rawFork()
			if pid == 0 {
				unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
			}
			b.WriteString(strconv.Itoa(pid))
			b.WriteByte(' ')
		}
		os.Stdout.WriteString(b.String())
		os.Exit(0)
	case "_sleepers":
		var pids []string
		for i := 0; i < atoi(os.Args[2]); i++ {
			pid := rawFork()
			if pid == 0 {
				for { // pause(2), which arm64 lacks: ppoll of no descriptors
					unix.RawSyscall6(unix.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
				}
			}
			pids = append(pids, strconv.Itoa(pid))
		}
		fmt.Println("pids " + strings.Join(pids, " "))
		os.Exit(0)
	}
}

func leftover(code int, file string) {
	pid := startDaemon(file, true)
	fmt.Printf("daemon %d\n", pid)
	os.Exit(code)
}

// startDaemon starts the daemon mode recording in file (in a session of its
// own with setsid) and waits until it has its handlers, so that what a test
// sees is ov-init's doing, not a race with the daemon's start.
func startDaemon(file string, setsid bool) int {
	self, _ := os.Executable()
	pid, err := syscall.ForkExec(self, []string{self, "daemon", file}, &syscall.ProcAttr{
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setsid: setsid},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(70)
	}
	for i := 0; i < 500; i++ {
		if b, _ := os.ReadFile(file); strings.Contains(string(b), "ready") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pid
}

func daemon(file string) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		os.Exit(70)
	}
	c := make(chan os.Signal, 8)
	signal.Notify(c, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	fmt.Fprintln(f, "ready")
	for s := range c {
		fmt.Fprintln(f, unix.SignalName(s.(syscall.Signal)))
	}
}

func group(file string) {
	startDaemon(file, false) // same process group: -g must reach it
	signals()
}

// poll wakes every interval and goes back to sleep, doing nothing else: the
// wake-ups of an init that polls for dead children (tini waits for a
// signal with a 1 s timeout) or for work, which an idle ov-init must not have.
func poll(interval string) {
	d, err := time.ParseDuration(interval)
	if err != nil || d <= 0 {
		fmt.Fprintf(os.Stderr, "helper: not an interval: %q\n", interval)
		os.Exit(64)
	}
	fmt.Println("ready")
	ts := unix.NsecToTimespec(d.Nanoseconds())
	for {
		unix.Nanosleep(&ts, nil)
	}
}

func sigList(s string) []syscall.Signal {
	var sigs []syscall.Signal
	for _, name := range strings.Split(s, ",") {
		if name != "" && name != "-" {
			sigs = append(sigs, signum(name))
		}
	}
	return sigs
}

// withSignals execs argv with the listed signals ignored and blocked, as a
// careless parent (a shell, nohup, a supervisor) might start ov-init.
func withSignals(ign, blk string, argv []string) {
	for _, sig := range sigList(ign) {
		sa := [4]uint64{1} // SIG_IGN
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
	}
	runtime.LockOSThread()
	var set unix.Sigset_t
	for _, sig := range sigList(blk) {
		set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
	}
	unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(70)
}

// reaped orphans n children and measures how long PID 1 takes to reap them
// all: from the moment they are orphaned (their parent has exited) until
// kill(pid, 0) fails for every one of them (a zombie still answers it).
func reaped(n int) {
	self, _ := os.Executable()
	out, err := exec.Command(self, "_pids", strconv.Itoa(n)).Output()
	start := time.Now()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(70)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pids = append(pids, atoi(f))
	}
	for len(pids) > 0 {
		alive := pids[:0]
		for _, pid := range pids {
			if unix.Kill(pid, 0) == nil {
				alive = append(alive, pid)
			}
		}
		pids = alive
		if time.Since(start) > 30*time.Second {
			fmt.Printf("reaped: %d of %d never reaped\n", len(pids), n)
			os.Exit(1)
		}
	}
	fmt.Printf("reaped %d in %d us\n", n, time.Since(start).Microseconds())
}

func quiet(file string) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		os.Exit(70)
	}
	c := make(chan os.Signal, 64)
	signal.Notify(c)
	os.Stdout.Close()
	os.Stderr.Close()
	fmt.Fprintln(f, "ready")
	for s := range c {
		sig := s.(syscall.Signal)
		if sig == unix.SIGURG || sig == unix.SIGCHLD {
			continue
		}
		fmt.Fprintln(f, unix.SignalName(sig))
		if sig == unix.SIGTERM {
			os.Exit(0)
		}
	}
}

// secretFile is what the files mode reports of one NAME_FILE: where it
// points and what is there, the content by length and SHA-256 only.
type secretFile struct {
	Path    string `json:"path"`
	Err     string `json:"err,omitempty"`
	Size    int    `json:"size"`
	SHA256  string `json:"sha256"`
	Mode    string `json:"mode"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	FS      string `json:"fs"`             // tmpfs, ramfs or the statfs magic
	Link    string `json:"link,omitempty"` // for /proc/self/fd/N: the descriptor's target
	DirMode string `json:"dirmode,omitempty"`
	DirUID  uint32 `json:"diruid,omitempty"`
	Seals   int    `json:"seals,omitempty"` // for a memfd: F_GET_SEALS
}

// held keeps what secretFiles read, so that a memory scan of the app finds it.
var held [][]byte

func secretFiles(sleep bool) {
	out := struct {
		Env   []string              `json:"env"`
		Files map[string]secretFile `json:"files"`
	}{Env: os.Environ(), Files: map[string]secretFile{}}
	for _, kv := range os.Environ() {
		k, path, _ := strings.Cut(kv, "=")
		if !strings.HasSuffix(k, "_FILE") {
			continue
		}
		f := secretFile{Path: path}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Err = err.Error()
		}
		held = append(held, b)
		f.Size = len(b)
		f.SHA256 = fmt.Sprintf("%x", sha256.Sum256(b))
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			f.Mode, f.UID, f.GID = fmt.Sprintf("%04o", st.Mode&0o7777), st.Uid, st.Gid
		}
		var sfs unix.Statfs_t
		if unix.Statfs(path, &sfs) == nil {
			switch sfs.Type {
			case 0x01021994:
				f.FS = "tmpfs"
			case 0x858458f6:
				f.FS = "ramfs"
			default:
				f.FS = fmt.Sprintf("%#x", sfs.Type)
			}
		}
		if rest, ok := strings.CutPrefix(path, "/proc/self/fd/"); ok {
			f.Link, _ = os.Readlink(path)
			if fd, err := strconv.Atoi(rest); err == nil {
				f.Seals, _ = unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
			}
		} else if unix.Stat(filepath.Dir(path), &st) == nil {
			f.DirMode, f.DirUID = fmt.Sprintf("%04o", st.Mode&0o7777), st.Uid
		}
		out.Files[k] = f
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(70)
	}
	if !sleep {
		return
	}
	fmt.Println("ready")
	for {
		unix.Pause()
	}
}

// spawn runs argv as a child the way a Go program does (os/exec, which
// passes on every descriptor that is not close-on-exec) and exits with its
// status. With --cloexec-secrets it first marks the descriptors that the
// NAME_FILE=/proc/self/fd/N variables name close-on-exec, as README tells
// an app that starts children to do.
func spawn(argv []string) {
	if len(argv) > 0 && argv[0] == "--cloexec-secrets" {
		argv = argv[1:]
		for _, kv := range os.Environ() {
			k, path, _ := strings.Cut(kv, "=")
			if rest, ok := strings.CutPrefix(path, "/proc/self/fd/"); ok && strings.HasSuffix(k, "_FILE") {
				if fd, err := strconv.Atoi(rest); err == nil {
					unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
				}
			}
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(70)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
