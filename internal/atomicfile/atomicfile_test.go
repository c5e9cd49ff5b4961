package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if len(got) != len(names) {
		t.Fatalf("%s holds %q, want %q (a temporary file left behind?)", dir, got, names)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("%s holds %q, want %q", dir, got, names)
		}
	}
}

func TestWriteReplacesWithExactModeAndLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, perm := range []fs.FileMode{0o600, 0o644} {
		if err := Write(path, []byte("new"), Options{Perm: perm}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != perm {
			t.Errorf("mode %v, want %v whatever the umask", fi.Mode(), perm)
		}
		if b, _ := os.ReadFile(path); string(b) != "new" {
			t.Errorf("content %q", b)
		}
	}
	assertOnly(t, dir, "f")
}

func TestWriteInTheCurrentDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := Write("f", []byte("x"), Options{Perm: 0o600}); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, dir, "f")
}

func TestWriteReplacesASymlinkNotItsTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, []byte("new"), Options{Perm: 0o600}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); !fi.Mode().IsRegular() {
		t.Fatalf("link is now %v", fi.Mode())
	}
	if b, _ := os.ReadFile(target); string(b) != "target" {
		t.Fatal("Write wrote through the symlink")
	}
}

func TestWriteWithoutReplaceRefusesAnExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Write(path, []byte("new"), Options{Perm: 0o600, NoReplace: true})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Write over an existing file with NoReplace = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("the existing file became %q", b)
	}
	assertOnly(t, dir, "f")
	// Control: a new name is written.
	if err := Write(filepath.Join(dir, "g"), []byte("new"), Options{Perm: 0o600, NoReplace: true}); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFailureLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "isdir")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("x"), Options{Perm: 0o600}); err == nil {
		t.Fatal("Write over a directory succeeded")
	}
	assertOnly(t, dir, "isdir")
	if err := Write(filepath.Join(dir, "no", "such", "f"), []byte("x"), Options{Perm: 0o600}); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
	if err := Write(dir+"/", []byte("x"), Options{Perm: 0o600}); err == nil {
		t.Fatal("Write to a path ending in / succeeded")
	}
	assertOnly(t, dir, "isdir")
}

func TestWriteChowns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := Write(path, []byte("x"), Options{Perm: 0o600, Chown: true, Uid: 1001, Gid: 1002}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1001 || st.Gid != 1002 {
		t.Errorf("owner %d:%d, want 1001:1002", st.Uid, st.Gid)
	}
}

// A key file's owner must reach it through the directories root made for
// it: with DirPerm they get exactly that mode, whatever the umask, and a
// directory that was there keeps its own.
func TestWriteMakesMissingDirectoriesWithExactlyDirPerm(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o710); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(dir, "etc", "ov", "machine.kek")
	if err := Write(path, []byte("k"), Options{Perm: 0o600, DirPerm: 0o755}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode fs.FileMode
	}{
		{dir, fs.ModeDir | 0o710}, // was there: left as it is
		{filepath.Join(dir, "etc"), fs.ModeDir | 0o755},
		{filepath.Join(dir, "etc", "ov"), fs.ModeDir | 0o755},
		{path, 0o600},
	} {
		fi, err := os.Lstat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	// Relative, from the current directory.
	t.Chdir(dir)
	if err := Write(filepath.Join("rel", "f"), []byte("x"), Options{Perm: 0o600, DirPerm: 0o700}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat("rel"); err != nil || fi.Mode() != fs.ModeDir|0o700 {
		t.Errorf("rel: %v %v, want a directory 0700", fi.Mode(), err)
	}
}

// A file where a directory should be stops the write, with the directory
// named, and nothing is made.
func TestWriteDirPermStopsAtAFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Write(filepath.Join(dir, "file", "sub", "f"), []byte("x"), Options{Perm: 0o600, DirPerm: 0o755})
	if want := `making directory "` + filepath.Join(dir, "file", "sub") + `": not a directory`; err == nil || err.Error() != want {
		t.Errorf("Write under a file: %v, want %s", err, want)
	}
	assertOnly(t, dir, "file")
}
