// Package signame reads and writes signal names as users type them and as
// ov-init's log lines show them: TERM, SIGTERM, sigterm, 15, RTMIN+3.
//
// Real-time signals are numbered as the C library shows them to users
// (glibc keeps 32 and 33 for itself): RTMIN is 34, RTMAX 64.
package signame

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The real-time signals as the C library shows them to users.
const (
	RTMin = 34
	RTMax = 64 // also the highest signal number
)

// Parse reads a signal written as a number (15), a name with or without the
// SIG prefix, in any case (TERM, sigterm), or a real-time offset (RTMIN+3,
// RTMAX-1). Zero is accepted only when allowZero is set.
func Parse(s string, allowZero bool) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n == 0 && allowZero {
			return 0, nil
		}
		if n < 1 || n > RTMax {
			return 0, fmt.Errorf("signal %q out of range 1..%d", s, RTMax)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	name = strings.TrimPrefix(name, "SIG")
	if rt, ok := parseRT(name); ok {
		return rt, nil
	}
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (use a name like TERM or a number like 15)", s)
}

// parseRT reads RTMIN, RTMIN+N, RTMAX and RTMAX-N (the SIG prefix gone).
func parseRT(name string) (syscall.Signal, bool) {
	base, sign := 0, 1
	switch {
	case strings.HasPrefix(name, "RTMIN"):
		base, name = RTMin, name[len("RTMIN"):]
	case strings.HasPrefix(name, "RTMAX"):
		base, name, sign = RTMax, name[len("RTMAX"):], -1
	default:
		return 0, false
	}
	if name == "" {
		return syscall.Signal(base), true
	}
	if (sign > 0 && name[0] != '+') || (sign < 0 && name[0] != '-') {
		return 0, false
	}
	n, err := strconv.Atoi(name[1:])
	if err != nil || n < 0 || n > RTMax-RTMin {
		return 0, false
	}
	return syscall.Signal(base + sign*n), true
}

// Name is a signal as log lines show it: "SIGTERM", or "signal 40".
func Name(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return "signal " + strconv.Itoa(int(sig))
}
