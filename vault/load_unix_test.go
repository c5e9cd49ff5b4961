//go:build unix

package vault

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func setUmask(m int) int { return syscall.Umask(m) }

func TestLoadOfFIFORefusesWithoutHanging(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(path); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Load(fifo) = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load(fifo) hangs")
	}
}

func TestSaveWithUmask0StillWrites0600(t *testing.T) {
	old := setUmask(0)
	defer setUmask(old)
	path := filepath.Join(t.TempDir(), "v.json")
	v, _ := newTestVault(t)
	if err := v.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v", fi.Mode())
	}
}
