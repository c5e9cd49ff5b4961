package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// notRegular makes, in a new directory, a file of each kind a key must
// never replace, and returns its paths by the kind checkKeyPath names.
func notRegular(t *testing.T) map[string]string {
	t.Helper()
	// A short directory: a socket's path is at most 107 bytes.
	dir, err := os.MkdirTemp("", "ov-key")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fifo := filepath.Join(dir, "fifo.kek")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "socket.kek")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	sub := filepath.Join(dir, "dir.kek")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"a FIFO":             fifo,
		"a socket":           sock,
		"a directory":        sub,
		"a character device": "/dev/null", // only looked at, never written
	}
}

func TestCheckKeyPathRefusesWhatIsNotARegularFile(t *testing.T) {
	for kind, path := range notRegular(t) {
		for _, force := range []bool{false, true} {
			err := checkKeyPath(path, force)
			var usage usageError
			if !errors.As(err, &usage) {
				t.Errorf("%s, force %v: want a usage error, got %v", kind, force, err)
				continue
			}
			if !strings.HasPrefix(err.Error(), `"`+path+`" is `+kind+`, not a regular file; a key never replaces one, even with --force: choose another --out`) &&
				!(kind == "a directory" && strings.HasPrefix(err.Error(), `"`+path+`" is a directory; --out names the key file`)) {
				t.Errorf("%s, force %v: %v", kind, force, err)
			}
		}
	}
}

func TestCheckKeyPathTakesARegularFileOrNone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "machine.kek")
	if err := checkKeyPath(path, false); err != nil {
		t.Errorf("no file: %v", err)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkKeyPath(path, true); err != nil {
		t.Errorf("a regular file, --force: %v", err)
	}
	if err := checkKeyPath(path, false); err == nil || !strings.Contains(err.Error(), "exists; pass --force to replace it") {
		t.Errorf("a regular file, no --force: %v", err)
	}
}

// writeKeyFile looks again just before it writes: a FIFO or a socket put
// at the path since checkKeyPath looked is left as it is.
func TestWriteKeyFileNeverReplacesWhatIsNotARegularFile(t *testing.T) {
	key := make([]byte, 32)
	for kind, path := range notRegular(t) {
		if kind == "a character device" {
			continue // /dev/null: never risked here
		}
		before, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeKeyFile(path, key, true, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") && kind != "a directory" {
			t.Errorf("%s: %v", kind, err)
		}
		after, err := os.Lstat(path)
		if err != nil || !os.SameFile(before, after) || after.Mode() != before.Mode() {
			t.Errorf("%s: replaced (%v)", kind, err)
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("%s: left %s behind", kind, e.Name())
			}
		}
	}
}
