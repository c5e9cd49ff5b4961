package execpath

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o644)
	env := []string{"PATH=/nonexistent:" + dir}

	if got, err := LookPath("tool", env); err != nil || got != exe {
		t.Errorf("LookPath(tool) = %q, %v", got, err)
	}
	status := func(name string) int {
		_, err := LookPath(name, env)
		if err == nil {
			return 0
		}
		return err.(*Error).Status()
	}
	for name, want := range map[string]int{"missing": 127, "plain": 126, plain: 126, dir: 126, "/no/such": 127, "": 127, exe: 0} {
		if got := status(name); got != want {
			t.Errorf("LookPath(%q): status %d, want %d", name, got, want)
		}
	}
	if got, err := LookPath("sh", nil); err != nil || !strings.HasSuffix(got, "/sh") {
		t.Errorf("without PATH, LookPath(sh) = %q, %v; want the default search path", got, err)
	}
}

// With PATH twice, the first is searched, as getenv(3) and execvp(3) do.
func TestLookPathSearchesTheFirstOfTwoPATHs(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	for _, dir := range []string{first, second} {
		os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755)
	}
	got, err := LookPath("tool", []string{"PATH=" + first, "PATH=" + second})
	if want := filepath.Join(first, "tool"); err != nil || got != want {
		t.Errorf("LookPath(tool) = %q, %v; want %q", got, err, want)
	}
}

func TestErrorSaysWhatFailed(t *testing.T) {
	for _, c := range []struct {
		err  *Error
		want string
	}{
		{&Error{"app", os.ErrNotExist}, `"app": command not found in PATH`},
		{&Error{"/app", os.ErrNotExist}, `"/app": file does not exist`},
		{&Error{"/app", syscall.ENOEXEC}, `"/app": exec format error (not a binary for this machine, and no /bin/sh to run it as a script)`},
		{&Error{"/app", syscall.EACCES}, `"/app": permission denied`},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%#v: %q, want %q", c.err, got, c.want)
		}
		if !errors.Is(c.err, c.err.Err) {
			t.Errorf("%#v does not unwrap to %v", c.err, c.err.Err)
		}
	}
}

func TestShellFallbackRunsTheScriptThroughBinSh(t *testing.T) {
	if _, err := os.Stat(Shell); err != nil {
		t.Skipf("no %s on this machine", Shell)
	}
	argv, ok := ShellFallback("/app/run", []string{"run", "a", "b"})
	if want := []string{Shell, "/app/run", "a", "b"}; !ok || !slices.Equal(argv, want) {
		t.Errorf("ShellFallback = %q, %v; want %q", argv, ok, want)
	}
}
