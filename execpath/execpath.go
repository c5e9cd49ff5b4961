// Package execpath finds and runs the app's command as execvp(3) does: a
// name without a slash is looked up in PATH, a script without a #! line runs
// through /bin/sh, and a failure is an [*Error] that knows its shell exit
// status (127 not found, 126 not executable).
//
// PATH is read from the environment ov-init inherited, first entry winning
// as with getenv(3) (see internal/envlist), never from one a secret could
// set.
package execpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/internal/envlist"
)

// defaultPath is the search path when the environment has no PATH, as in
// Docker's default environment.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Shell runs a script that lacks a #! line, as execvp(3) does.
const Shell = "/bin/sh"

// Error says why the command could not be started and which exit status
// that failure maps to.
type Error struct {
	Command string
	Err     error
}

func (e *Error) Error() string {
	switch {
	case errors.Is(e.Err, fs.ErrNotExist) && !strings.Contains(e.Command, "/"):
		return fmt.Sprintf("%q: command not found in PATH", e.Command)
	case errors.Is(e.Err, syscall.ENOEXEC):
		return fmt.Sprintf("%q: exec format error (not a binary for this machine, and no %s to run it as a script)", e.Command, Shell)
	}
	return fmt.Sprintf("%q: %v", e.Command, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Status is exitcode.NotFound (127) when the command does not exist and
// exitcode.NotExecutable (126) when it exists but cannot be executed.
func (e *Error) Status() int {
	if errors.Is(e.Err, fs.ErrNotExist) {
		return exitcode.NotFound
	}
	return exitcode.NotExecutable
}

// LookPath finds name as execvp(3) would, in the PATH of env: a name with a
// slash is used as is; otherwise the first executable regular file in PATH
// wins, and if there is none but a match could not be executed, that is the
// error (126 rather than 127).
func LookPath(name string, env []string) (string, error) {
	if name == "" {
		return "", &Error{Command: name, Err: fs.ErrNotExist}
	}
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", &Error{Command: name, Err: err}
		}
		return name, nil
	}
	path, ok := envlist.Get(env, "PATH")
	if !ok {
		path = defaultPath
	}
	var denied error
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		candidate := dir + "/" + name
		err := executable(candidate)
		if err == nil {
			return candidate, nil
		}
		if denied == nil && !errors.Is(err, fs.ErrNotExist) {
			denied = err
		}
	}
	if denied != nil {
		return "", &Error{Command: name, Err: denied}
	}
	return "", &Error{Command: name, Err: fs.ErrNotExist}
}

// executable reports why path cannot be executed, if it cannot.
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	if fi.IsDir() {
		return syscall.EISDIR
	}
	if fi.Mode()&0o111 == 0 {
		return syscall.EACCES
	}
	return nil
}

// ShellFallback returns the argv that runs a script without a #! line
// through /bin/sh, as execvp(3) does after ENOEXEC, and false when the image
// has no /bin/sh.
func ShellFallback(path string, argv []string) ([]string, bool) {
	if _, err := os.Stat(Shell); err != nil {
		return nil, false
	}
	return append([]string{Shell, path}, argv[1:]...), true
}
