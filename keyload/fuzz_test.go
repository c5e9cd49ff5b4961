//go:build linux

package keyload

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The kinds of file FuzzLoad builds at the key's path.
const (
	fuzzRegular = iota
	fuzzDirectory
	fuzzFIFO
	fuzzSymlink    // to a regular file with the fuzzed mode and size
	fuzzOtherOwner // a regular file owned by uid 1001 (as root; else like fuzzRegular)
	fuzzCharDevice // like /dev/zero, which would hand out any number of bytes (needs CAP_MKNOD)
	fuzzKinds
)

// FuzzLoad builds a file from a fuzzed mode, size and kind. Load must never
// panic or hang, and must accept exactly a regular file of mode 0600 and
// Size bytes owned by us, with those bytes.
func FuzzLoad(f *testing.F) {
	for _, seed := range []struct {
		mode uint16
		size uint16
		kind byte
	}{
		{0o600, Size, fuzzRegular}, {0o644, Size, fuzzRegular}, {0o600, Size - 1, fuzzRegular},
		{0o600, Size + 1, fuzzRegular}, {0o4600, Size, fuzzRegular}, {0o600, Size, fuzzDirectory},
		{0o600, Size, fuzzFIFO}, {0o600, Size, fuzzSymlink}, {0o600, Size, fuzzOtherOwner}, {0o600, 0, fuzzRegular},
		{0o600, Size, fuzzCharDevice},
	} {
		f.Add(seed.mode, seed.size, seed.kind)
	}
	f.Fuzz(func(t *testing.T, mode, size uint16, kind byte) {
		perm := uint32(mode) & permBits
		kind %= fuzzKinds
		if kind == fuzzOtherOwner && os.Geteuid() != 0 {
			kind = fuzzRegular
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "machine.kek")
		content := make([]byte, size)
		for i := range content {
			content[i] = byte(i*7 + 1)
		}
		switch kind {
		case fuzzRegular, fuzzOtherOwner:
			writeKeyFile(t, path, content, perm)
			if kind == fuzzOtherOwner {
				if err := os.Chown(path, 1001, -1); err != nil {
					t.Fatal(err)
				}
			}
		case fuzzDirectory:
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(path, perm); err != nil {
				t.Fatal(err)
			}
		case fuzzFIFO:
			if err := unix.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(path, perm); err != nil {
				t.Fatal(err)
			}
		case fuzzCharDevice:
			if err := unix.Mknod(path, unix.S_IFCHR|perm, int(unix.Mkdev(1, 5))); err != nil {
				t.Skipf("mknod: %v (needs CAP_MKNOD)", err)
			}
			if err := unix.Chmod(path, perm); err != nil { // the umask applies to mknod
				t.Fatal(err)
			}
		case fuzzSymlink:
			writeKeyFile(t, filepath.Join(dir, "real"), content, perm)
			if err := os.Symlink("real", path); err != nil {
				t.Fatal(err)
			}
		}
		good := kind == fuzzRegular && perm == 0o600 && size == Size

		// Only a regular file is ever opened for reading.
		opens := watchOpens(t, nil)
		k, err := load(t, path) // fails the test if Load blocks
		for _, o := range *opens {
			if o.flags&unix.O_PATH == 0 && kind != fuzzRegular && kind != fuzzOtherOwner {
				t.Errorf("Load of kind %d, mode %04o: %v, a read-capable open of a file that is not a regular one", kind, perm, o)
			}
		}
		if err == nil {
			defer k.Wipe()
			if !good {
				t.Fatalf("Load accepted kind %d, mode %04o, %d bytes", kind, perm, size)
			}
			if !bytes.Equal(k.Bytes(), content) {
				t.Fatalf("Bytes() = %x, want %x", k.Bytes(), content)
			}
			return
		}
		if good {
			t.Fatalf("Load refused a good key: %v", err)
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error is %T, want *Error: %v", err, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, strconv.Quote(path)) || strings.ContainsAny(msg, "\n\r") {
			t.Fatalf("error text not one line naming %q: %q", path, msg)
		}
	})
}
