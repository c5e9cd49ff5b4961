package envlist

import (
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ov-init/ov-init/internal/emulation"
)

func TestGetReturnsTheFirstOfDuplicates(t *testing.T) {
	env := []string{"A=1", "PATH=/first", "NOEQUALS", "PATH=/second", "B="}
	for name, want := range map[string]string{"PATH": "/first", "A": "1", "B": ""} {
		if got, ok := Get(env, name); !ok || got != want {
			t.Errorf("Get(%s) = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"NOEQUALS", "PAT", "PATH=", "C", ""} {
		if got, ok := Get(env, name); ok {
			t.Errorf("Get(%q) = %q, want not found", name, got)
		}
	}
}

// The rule Get follows is Go's own (and glibc's): a child started with a
// duplicate reads the first through os.Getenv. os/exec would keep only the
// last, so the child is started with os.StartProcess, which passes the list
// as it is.
func TestGetAgreesWithOsGetenv(t *testing.T) {
	if os.Getenv("ENVLIST_TEST_CHILD") != "" {
		os.Stdout.WriteString(os.Getenv("ENVLIST_TEST_DUP"))
		os.Exit(0)
	}
	emulation.Skip(t, runtime.GOARCH, "qemu-user rebuilds the environment of the program it runs with one entry a name, the last, so the child never sees the duplicate")
	env := []string{"ENVLIST_TEST_CHILD=1", "ENVLIST_TEST_DUP=first", "ENVLIST_TEST_DUP=second"}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := os.StartProcess(os.Args[0], []string{os.Args[0], "-test.run=^TestGetAgreesWithOsGetenv$"},
		&os.ProcAttr{Env: env, Files: []*os.File{nil, w, os.Stderr}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if want, _ := Get(env, "ENVLIST_TEST_DUP"); string(out) != want {
		t.Errorf("os.Getenv in the child = %q, Get = %q", out, want)
	}
}

func TestSetLeavesOneEntry(t *testing.T) {
	cases := []struct {
		env  []string
		want []string
	}{
		{nil, []string{"K=v"}},
		{[]string{"A=1"}, []string{"A=1", "K=v"}},
		{[]string{"K=old", "A=1"}, []string{"K=v", "A=1"}},
		{[]string{"A=1", "K=old", "B=2", "K=older", "K="}, []string{"A=1", "K=v", "B=2"}},
		{[]string{"K", "KK=1", "K=old"}, []string{"K", "KK=1", "K=v"}},
	}
	for _, c := range cases {
		before := slices.Clone(c.env)
		if got := Set(c.env, "K", "v"); !slices.Equal(got, c.want) {
			t.Errorf("Set(%q, K, v) = %q, want %q", c.env, got, c.want)
		}
		if !slices.Equal(c.env, before) {
			t.Errorf("Set changed its input: %q, was %q", c.env, before)
		}
	}
	if got := Set([]string{"K=a=b"}, "K", "c=d"); !slices.Equal(got, []string{"K=c=d"}) {
		t.Errorf("a value holding '=': %q", got)
	}
}

func TestUnsetRemovesEveryEntry(t *testing.T) {
	env := []string{"OV_APP=x", "A=1", "OV_APP=y", "OV_APPLE=keep", "OV_VERBOSE=1", "OV_APP", "B=2"}
	before := slices.Clone(env)
	got := Unset(env, "OV_APP", "OV_VERBOSE")
	if want := []string{"A=1", "OV_APPLE=keep", "OV_APP", "B=2"}; !slices.Equal(got, want) {
		t.Errorf("Unset = %q, want %q", got, want)
	}
	if !slices.Equal(env, before) {
		t.Errorf("Unset changed its input")
	}
	if got := Unset(env); strings.Join(got, " ") != strings.Join(env, " ") {
		t.Errorf("Unset with no names = %q", got)
	}
}
