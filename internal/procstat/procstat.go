// Package procstat reads /proc/PID/stat, the kernel's one-line account of a
// process, for the tests that watch what ov-init does to the processes
// around it (their state, parent, group and CPU time).
//
// Invariant: the line is split at its LAST ')'. The command name between
// the parentheses is whatever the process's file was called (up to 15
// bytes) and may itself hold spaces and parentheses: "x) Z 1 (y" read up to
// the first ')' would make a sleeping process a zombie of PID 1.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Root is where the kernel's process table is mounted.
const Root = "/proc"

// Stat is what this package reads of one /proc/PID/stat line. Times are
// in clock ticks (USER_HZ, 100 a second on Linux).
type Stat struct {
	PID     int
	Comm    string // the command name, without its parentheses
	State   byte   // R running, S sleeping, D disk, T stopped, t traced, Z zombie, X dead…
	PPID    int    // the parent, as seen from the reader's PID namespace; 0 for a namespace's init seen from within
	PGRP    int    // process group
	Session int
	UTime   uint64 // time in user mode
	STime   uint64 // time in kernel mode
}

// The fields after the command name, counted from the state (field 3 of
// proc(5)) as 0.
const (
	fieldState = iota
	fieldPPID
	fieldPGRP
	fieldSession
	fieldUTime = 11 // field 14 of proc(5)
	fieldSTime = 12 // field 15
)

// Parse parses one /proc/PID/stat line.
func Parse(line []byte) (Stat, error) {
	open, end := bytes.IndexByte(line, '('), bytes.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("procstat: no (command name) in %q", line)
	}
	var s Stat
	var err error
	if s.PID, err = strconv.Atoi(strings.TrimSpace(string(line[:open]))); err != nil {
		return Stat{}, fmt.Errorf("procstat: pid in %q: %v", line, err)
	}
	s.Comm = string(line[open+1 : end])
	f := strings.Fields(string(line[end+1:]))
	if len(f) <= fieldSTime || len(f[fieldState]) != 1 {
		return Stat{}, fmt.Errorf("procstat: too few fields after the command name in %q", line)
	}
	s.State = f[fieldState][0]
	for _, n := range []struct {
		field int
		to    *int
	}{{fieldPPID, &s.PPID}, {fieldPGRP, &s.PGRP}, {fieldSession, &s.Session}} {
		if *n.to, err = strconv.Atoi(f[n.field]); err != nil {
			return Stat{}, fmt.Errorf("procstat: field %d in %q: %v", n.field+3, line, err)
		}
	}
	for _, n := range []struct {
		field int
		to    *uint64
	}{{fieldUTime, &s.UTime}, {fieldSTime, &s.STime}} {
		if *n.to, err = strconv.ParseUint(f[n.field], 10, 64); err != nil {
			return Stat{}, fmt.Errorf("procstat: field %d in %q: %v", n.field+3, line, err)
		}
	}
	return s, nil
}

// Read reads and parses /proc/PID/stat. A process that is gone (reaped)
// gives an error that wraps fs.ErrNotExist; a zombie still has its line.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile(Root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return Parse(b)
}

// All returns the stat of every process in /proc, in no set order. A
// process that goes away while All reads is left out.
func All() ([]Stat, error) {
	return list(func(int) (bool, error) { return true, nil })
}

// InPIDNamespaceOf returns the stat of every process in the PID namespace
// of process pid (pid itself and zombies included), as /proc shows them:
// pids as the reader's namespace numbers them. A process whose namespace
// the reader may not see (another user's, or the host's PID 1) is left out.
func InPIDNamespaceOf(pid int) ([]Stat, error) {
	ns, err := os.Readlink(nsPath(pid))
	if err != nil {
		return nil, err
	}
	return list(func(p int) (bool, error) {
		link, err := os.Readlink(nsPath(p))
		return err == nil && link == ns, nil
	})
}

func nsPath(pid int) string { return Root + "/" + strconv.Itoa(pid) + "/ns/pid" }

// list reads the stat of each process for which keep says true.
func list(keep func(pid int) (bool, error)) ([]Stat, error) {
	entries, err := os.ReadDir(Root)
	if err != nil {
		return nil, err
	}
	var all []Stat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process: /proc/self, /proc/meminfo…
		}
		ok, err := keep(pid)
		if err == nil && ok {
			var s Stat
			if s, err = Read(pid); err == nil {
				all = append(all, s)
			}
		}
		if err != nil && !gone(err) {
			return nil, err
		}
	}
	return all, nil
}

// gone says whether err is what /proc gives for a process that has been
// reaped since its directory was listed.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
