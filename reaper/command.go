package reaper

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// defaultPath is the search path when the environment has no PATH, as in
// Docker's default environment.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// shell runs a script that lacks a #! line, as execvp(3) does.
const shell = "/bin/sh"

// ExecError says why the command could not be started and which exit status
// that failure maps to.
type ExecError struct {
	Command string
	Err     error
}

func (e *ExecError) Error() string {
	switch {
	case errors.Is(e.Err, fs.ErrNotExist) && !strings.Contains(e.Command, "/"):
		return fmt.Sprintf("%q: command not found in PATH", e.Command)
	case errors.Is(e.Err, syscall.ENOEXEC):
		return fmt.Sprintf("%q: exec format error (not a binary for this machine, and no %s to run it as a script)", e.Command, shell)
	}
	return fmt.Sprintf("%q: %v", e.Command, e.Err)
}

func (e *ExecError) Unwrap() error { return e.Err }

// Status is 127 when the command does not exist and 126 when it exists but
// cannot be executed.
func (e *ExecError) Status() int {
	if errors.Is(e.Err, fs.ErrNotExist) {
		return ExitNotFound
	}
	return ExitNotExecutable
}

// LookPath finds name as execvp(3) would, in the PATH of env: a name with a
// slash is used as is; otherwise the first executable regular file in PATH
// wins, and if there is none but a match could not be executed, that is the
// error (126 rather than 127).
func LookPath(name string, env []string) (string, error) {
	if name == "" {
		return "", &ExecError{Command: name, Err: fs.ErrNotExist}
	}
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", &ExecError{Command: name, Err: err}
		}
		return name, nil
	}
	path, ok := getenv(env, "PATH")
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
		return "", &ExecError{Command: name, Err: denied}
	}
	return "", &ExecError{Command: name, Err: fs.ErrNotExist}
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
	if _, err := os.Stat(shell); err != nil {
		return nil, false
	}
	return append([]string{shell, path}, argv[1:]...), true
}

func getenv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
