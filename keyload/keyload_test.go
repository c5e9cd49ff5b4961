//go:build linux

package keyload

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// goodKey is the content of every acceptable key file in these tests.
var goodKey = func() []byte {
	b := make([]byte, Size)
	for i := range b {
		b[i] = byte(0xa0 + i)
	}
	return b
}()

// loadTimeout bounds every Load in the tests: a FIFO opened without
// O_NONBLOCK would block forever, and that must fail the test, not hang it.
const loadTimeout = 5 * time.Second

// load calls Load with a deadline and restores the process's dumpable flag
// when the test ends.
func load(t testing.TB, path string) (*Key, error) {
	t.Helper()
	t.Cleanup(restoreDumpable)
	type result struct {
		key *Key
		err error
	}
	done := make(chan result, 1)
	go func() {
		k, err := Load(path)
		done <- result{k, err}
	}()
	select {
	case r := <-done:
		return r.key, r.err
	case <-time.After(loadTimeout):
		t.Fatalf("Load(%q) still blocked after %v", path, loadTimeout)
		return nil, nil
	}
}

func restoreDumpable() { _ = unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0) }

// writeKeyFile writes content to path with exactly mode (setuid, setgid and
// sticky bits included; the umask does not apply to chmod).
func writeKeyFile(t testing.TB, path string, content []byte, mode uint32) {
	t.Helper()
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// refused asserts that Load refuses path with an *Error of kind and returns
// its text, after checking what every refusal promises: one line, starts
// with "machine key" or "opening machine key:", quotes the path, gives a fix.
func refused(t testing.TB, path string, kind Kind) string {
	t.Helper()
	k, err := load(t, path)
	if err == nil {
		k.Wipe()
		t.Fatalf("Load(%q) accepted the key, want it refused (%v)", path, kind)
	}
	if k != nil {
		t.Errorf("Load(%q) returned a key with its error", path)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Load(%q) error is %T, want *Error: %v", path, err, err)
	}
	if e.Kind != kind || !errors.Is(err, kind) {
		t.Errorf("Load(%q) refused with kind %v, want %v: %v", path, e.Kind, kind, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "machine key ") && !strings.HasPrefix(msg, "opening machine key: ") {
		t.Errorf("error text does not start with \"machine key\" or \"opening machine key:\": %s", msg)
	}
	if !strings.Contains(msg, strconv.Quote(path)) {
		t.Errorf("error text does not quote the path %q: %s", path, msg)
	}
	if !strings.Contains(msg, "; fix: ") {
		t.Errorf("error text gives no fix: %s", msg)
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error text spans lines: %q", msg)
	}
	return msg
}

func TestKeyWithMode0600OwnedByUsAndSize32Loads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "machine.kek")
	writeKeyFile(t, path, goodKey, 0o600)
	k, err := load(t, path)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	b := k.Bytes()
	if !bytes.Equal(b, goodKey) {
		t.Errorf("Bytes() = %x, want %x", b, goodKey)
	}
	if len(b) != Size || cap(b) != Size {
		t.Errorf("Bytes() has len %d cap %d, want %d and %d: an append must not reach the rest of the page", len(b), cap(b), Size, Size)
	}
	k.Wipe()
	if k.Bytes() != nil {
		t.Error("Bytes() after Wipe is not nil")
	}
	k.Wipe() // a second Wipe does nothing
}

func TestKeyWithModeOtherThan0600IsRefused(t *testing.T) {
	for _, mode := range []uint32{0o644, 0o400, 0o640, 0o700, 0o660, 0o604, 0o4600, 0o2600, 0o1600, 0o601, 0o610, 0o200, 0o000, 0o7777} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "machine.kek")
			writeKeyFile(t, path, goodKey, mode)
			got := refused(t, path, KindMode)
			want := fmt.Sprintf("machine key has permissions %04o — must be 0600 (%q); fix: chmod 600 %s (Kubernetes: defaultMode 0600 and no fsGroup)", mode, path, path)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// Negative control: the refusals above are about the mode, not a loader
// that refuses everything.
func TestKeyRefusedFor0644LoadsAfterChmod600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "machine.kek")
	writeKeyFile(t, path, goodKey, 0o644)
	refused(t, path, KindMode)
	if err := unix.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := load(t, path)
	if err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
	defer k.Wipe()
	if !bytes.Equal(k.Bytes(), goodKey) {
		t.Errorf("Bytes() = %x, want %x", k.Bytes(), goodKey)
	}
}

func TestKeyOwnedByAnotherUIDIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_CHOWN) to give the key file to uid 1001")
	}
	path := filepath.Join(t.TempDir(), "machine.kek")
	writeKeyFile(t, path, goodKey, 0o600)
	if err := os.Chown(path, 1001, -1); err != nil {
		t.Fatal(err)
	}
	got := refused(t, path, KindOwner)
	want := fmt.Sprintf("machine key is owned by uid 1001 but current uid is 0 (%q); fix: chown 0 %s", path, path)
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// Negative control: the same file, given back to us, loads.
	if err := os.Chown(path, 0, -1); err != nil {
		t.Fatal(err)
	}
	k, err := load(t, path)
	if err != nil {
		t.Fatalf("after chown 0: %v", err)
	}
	k.Wipe()
}

func TestSymlinkToKeyIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target func(t *testing.T, dir string) string
	}{
		{"to_a_good_key", func(t *testing.T, dir string) string {
			real := filepath.Join(dir, "real.kek")
			writeKeyFile(t, real, goodKey, 0o600)
			return real
		}},
		{"kubelet_style_relative", func(t *testing.T, dir string) string {
			if err := os.Mkdir(filepath.Join(dir, "..data"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeKeyFile(t, filepath.Join(dir, "..data", "machine.kek.real"), goodKey, 0o600)
			return "..data/machine.kek.real"
		}},
		{"dangling", func(_ *testing.T, dir string) string { return filepath.Join(dir, "nowhere") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "machine.kek")
			if err := os.Symlink(tc.target(t, dir), path); err != nil {
				t.Fatal(err)
			}
			got := refused(t, path, KindSymlink)
			want := fmt.Sprintf("opening machine key: too many levels of symbolic links (%q); fix: mount the key file itself, not a symlink (Kubernetes: mount it with subPath and defaultMode 0600)", path)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestKeyOfWrongSizeIsRefused(t *testing.T) {
	for _, size := range []int{0, 1, 16, 31, 33, 64, 4096, 1 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "machine.kek")
			writeKeyFile(t, path, bytes.Repeat([]byte{0x5a}, size), 0o600)
			got := refused(t, path, KindSize)
			has := fmt.Sprintf("%d bytes", size)
			if size == 1 {
				has = "1 byte"
			}
			want := fmt.Sprintf("machine key must be exactly 32 bytes (%q has %s); fix: derive it again with `ov auth derive-machine-key --out %s --app APP --force`", path, has, path)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// A file can change between fstat and read. readKey is what confirms the
// size on the bytes actually read; these cases give it the descriptor of a
// file that is longer or shorter than fstat promised.
func TestKeyThatChangesWhileBeingReadIsRefused(t *testing.T) {
	for _, tc := range []struct {
		size int
		want string
	}{
		{Size + 1, "machine key must be exactly 32 bytes (%q grew while being read); fix: stop whatever writes to %s, then derive it again with `ov auth derive-machine-key --out %[2]s --app APP --force`"},
		{Size - 1, "machine key must be exactly 32 bytes (%q shrank to 31 bytes while being read); fix: stop whatever writes to %s, then derive it again with `ov auth derive-machine-key --out %[2]s --app APP --force`"},
	} {
		t.Run(strconv.Itoa(tc.size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "machine.kek")
			writeKeyFile(t, path, bytes.Repeat([]byte{0x5a}, tc.size), 0o600)
			fd, err := unix.Open(path, openFlags, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			page, lockErr := lockedPage()
			if lockErr != nil {
				t.Fatal(lockErr)
			}
			defer release(page)
			rerr := readKey(fd, page, path)
			if rerr == nil {
				t.Fatalf("readKey accepted a %d-byte file", tc.size)
			}
			if rerr.Kind != KindSize {
				t.Errorf("kind %v, want %v", rerr.Kind, KindSize)
			}
			if want := fmt.Sprintf(tc.want, path, path); rerr.Error() != want {
				t.Errorf("got  %s\nwant %s", rerr.Error(), want)
			}
			if page[Size] != 0 {
				t.Errorf("the end-of-file probe byte was left in the page: %#x", page[Size])
			}
		})
	}
}

func TestKeyThatIsNotARegularFileIsRefused(t *testing.T) {
	for _, tc := range []struct {
		what string
		make func(t *testing.T, path string)
	}{
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"FIFO", func(t *testing.T, path string) {
			// No writer ever opens it: without O_NONBLOCK, open would block.
			if err := unix.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"character device", func(t *testing.T, path string) {
			mknod(t, path, unix.S_IFCHR|0o600, unix.Mkdev(1, 3)) // like /dev/null
		}},
		{"block device", func(t *testing.T, path string) {
			mknod(t, path, unix.S_IFBLK|0o600, unix.Mkdev(7, 0)) // like /dev/loop0
		}},
		{"socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			if err := unix.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(strings.ReplaceAll(tc.what, " ", "_"), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "machine.kek")
			tc.make(t, path)
			opens := watchOpens(t, nil)
			got := refused(t, path, KindNotRegular)
			want := fmt.Sprintf("machine key is a %s, not a regular file (%q); fix: mount ", tc.what, path)
			if !strings.HasPrefix(got, want) {
				t.Errorf("got  %s\nwant prefix %s", got, want)
			}
			// Refused on the O_PATH descriptor: a device is never opened,
			// a FIFO never waits for a writer, nothing is read.
			if want := []openCall{{path, pathFlags}}; !slices.Equal(*opens, want) {
				t.Errorf("Load opened %v, want only %v", *opens, want)
			}
		})
	}
}

func mknod(t *testing.T, path string, mode uint32, dev uint64) {
	t.Helper()
	if err := unix.Mknod(path, mode, int(dev)); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("mknod %s: %v (needs CAP_MKNOD)", path, err)
		}
		t.Fatal(err)
	}
}

func TestMissingKeyIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "machine.kek")
	got := refused(t, path, KindNotExist)
	want := fmt.Sprintf("opening machine key: no such file or directory (%q); fix: mount the key at %s or point --machine-key / OV_MACHINE_KEY at it", path, path)
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	_, err := load(t, path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false for %v", err)
	}
}

func TestKeyUnderAFileIsRefusedWithTheOpenError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	writeKeyFile(t, file, goodKey, 0o600)
	path := filepath.Join(file, "machine.kek")
	got := refused(t, path, KindOpen)
	if want := fmt.Sprintf("opening machine key: not a directory (%q); fix: ", path); !strings.HasPrefix(got, want) {
		t.Errorf("got  %s\nwant prefix %s", got, want)
	}
}

// openCall is one open(2) that Load made.
type openCall struct {
	path  string
	flags int
}

func (c openCall) String() string { return fmt.Sprintf("open(%q, %#x)", c.path, c.flags) }

// watchOpens records every open Load makes until the test ends. With
// replace, replace makes the call instead of open(2) (it gets the real one
// as open).
func watchOpens(t *testing.T, replace func(path string, flags int, open func(string, int) (int, error)) (int, error)) *[]openCall {
	t.Helper()
	real := openFile
	var calls []openCall
	openFile = func(path string, flags int) (int, error) {
		calls = append(calls, openCall{path, flags})
		if replace != nil {
			return replace(path, flags, real)
		}
		return real(path, flags)
	}
	t.Cleanup(func() { openFile = real })
	return &calls
}

// loadGoodKey loads a good key file, watching its opens as watchOpens
// does with replace, checks that the key came back whole, and returns the
// key file's path and the opens.
func loadGoodKey(t *testing.T, replace func(path string, flags int, open func(string, int) (int, error)) (int, error)) (string, []openCall) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "machine.kek")
	writeKeyFile(t, path, goodKey, 0o600)
	opens := watchOpens(t, replace)
	k, err := load(t, path)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wipe()
	if !bytes.Equal(k.Bytes(), goodKey) {
		t.Errorf("Bytes() = %x, want %x", k.Bytes(), goodKey)
	}
	return path, *opens
}

// The key is looked up with O_PATH and checked on that descriptor before
// the same inode is opened for reading through /proc/self/fd.
func TestKeyIsCheckedOnAnOPathDescriptorThenReopenedThroughProc(t *testing.T) {
	path, opens := loadGoodKey(t, nil)
	if len(opens) != 2 || opens[0] != (openCall{path, pathFlags}) ||
		!strings.HasPrefix(opens[1].path, fdDir) || opens[1].flags != reopenFlags {
		t.Fatalf("Load opened %v, want open(%q, O_PATH|O_NOFOLLOW|O_CLOEXEC), then open(%sN, O_RDONLY|O_CLOEXEC|O_NONBLOCK)", opens, path, fdDir)
	}
	if pathFlags&unix.O_PATH == 0 || pathFlags&unix.O_NOFOLLOW == 0 || reopenFlags&unix.O_NONBLOCK == 0 {
		t.Errorf("pathFlags %#x, reopenFlags %#x", pathFlags, reopenFlags)
	}
}

// noProc makes /proc/self/fd look unmounted.
func noProc(path string, flags int, open func(string, int) (int, error)) (int, error) {
	if strings.HasPrefix(path, fdDir) {
		return -1, unix.ENOENT
	}
	return open(path, flags)
}

func TestKeyLoadsWithoutProcByOpeningItsPathAgain(t *testing.T) {
	path, opens := loadGoodKey(t, noProc)
	if n := len(opens); n != 3 || opens[2] != (openCall{path, openFlags}) {
		t.Errorf("Load opened %v, want the fallback open(%q, O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK) last", opens, path)
	}
}

// A key swapped for another file between the O_PATH lookup and the open
// for reading is refused, even when the other file would pass every check:
// the two descriptors must be one inode.
func TestKeyReplacedBetweenLookupAndOpenIsRefused(t *testing.T) {
	for _, proc := range []bool{true, false} {
		t.Run(map[bool]string{true: "through_proc", false: "without_proc"}[proc], func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "machine.kek")
			other := filepath.Join(dir, "other.kek")
			writeKeyFile(t, path, goodKey, 0o600)
			writeKeyFile(t, other, goodKey, 0o600)
			watchOpens(t, func(p string, flags int, open func(string, int) (int, error)) (int, error) {
				if flags == pathFlags {
					return open(p, flags)
				}
				if proc {
					return open(other, reopenFlags)
				}
				if strings.HasPrefix(p, fdDir) {
					return -1, unix.ENOENT
				}
				if err := os.Rename(other, path); err != nil {
					t.Error(err)
				}
				return open(p, flags)
			})
			got := refused(t, path, KindRead)
			want := fmt.Sprintf("machine key could not be read: %q was replaced while being opened; fix: stop whatever replaces %s, then start ov-init again", path, path)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// The tests below run Load in a child, a re-run of this test binary that
// drops to uid 1001: the uid is process-wide.
const (
	asUIDEnv   = "KEYLOAD_TEST_AS_UID"   // the uid the child becomes
	asPathsEnv = "KEYLOAD_TEST_AS_PATHS" // the keys it loads, one per line
	otherUID   = 1001
)

// TestLoadAsAnotherUIDChild is the child of loadAs; run directly it does
// nothing.
func TestLoadAsAnotherUIDChild(t *testing.T) {
	if os.Getenv(asUIDEnv) == "" {
		return
	}
	uid, err := strconv.Atoi(os.Getenv(asUIDEnv))
	if err != nil {
		t.Fatal(err)
	}
	becomeUID(t, uid)
	for i, path := range strings.Split(os.Getenv(asPathsEnv), "\n") {
		k, err := Load(path)
		if err == nil {
			k.Wipe()
		}
		report(strconv.Itoa(i), err)
	}
}

// loadAs loads each of paths as uid, in a child whose working directory is
// dir, and returns what Load said for each: "ok" or "<kind>: <error text>".
func loadAs(t *testing.T, uid int, dir string, paths ...string) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: the child drops to uid %d", uid)
	}
	var names []string
	for i := range paths {
		names = append(names, strconv.Itoa(i))
	}
	reports := runChild(t, "TestLoadAsAnotherUIDChild", dir,
		[]string{asUIDEnv + "=" + strconv.Itoa(uid), asPathsEnv + "=" + strings.Join(paths, "\n")}, names...)
	out := make([]string, len(paths))
	for i, name := range names {
		out[i] = reports[name]
	}
	return out
}

// becomeUID makes this process (every thread: syscall's set*id see to
// that) uid and gid uid, with no supplementary groups and so, for a uid
// other than 0, no capabilities.
func becomeUID(t *testing.T, uid int) {
	t.Helper()
	if err := syscall.Setgroups(nil); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setresgid(uid, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// report prints, for runChild, what a child's call named name returned:
// "ok" or "<kind>: <error text>".
func report(name string, err error) {
	if err == nil {
		fmt.Printf("child:%s> ok\n", name)
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		fmt.Printf("child:%s> not an *Error: %v\n", name, err)
		return
	}
	fmt.Printf("child:%s> %d: %v\n", name, e.Kind, err)
}

// runChild re-runs this test binary as a child that runs only test (which
// acts on env), in the working directory dir (this one when ""), and
// returns what it reported of each of names.
func runChild(t *testing.T, test, dir string, env []string, names ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	raw, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s %q: %v\n%s", test, env, err, raw)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if name, r, ok := strings.Cut(line, "> "); ok && strings.HasPrefix(name, "child:") {
			out[strings.TrimPrefix(name, "child:")] = r
		}
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			t.Fatalf("child %s %q reported nothing for %q:\n%s", test, env, name, raw)
		}
	}
	return out
}

// reachable opens dir and its parent (a t.TempDir, 0700) to every uid.
func reachable(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 8: a root-owned 0600 key read by uid 1001 used to fail at open with
// "permission denied"; the product page's owner text never appeared.
func TestRootOwnedKeyReadAsUID1001IsRefusedWithTheOwnerText(t *testing.T) {
	dir := t.TempDir()
	reachable(t, dir)
	rootKey := filepath.Join(dir, "root.kek")
	writeKeyFile(t, rootKey, goodKey, 0o600)
	ownKey := filepath.Join(dir, "own.kek") // negative control: the same key, given to 1001
	writeKeyFile(t, ownKey, goodKey, 0o600)
	if err := os.Chown(ownKey, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	out := loadAs(t, otherUID, "/", rootKey, ownKey)
	want := fmt.Sprintf("%d: machine key is owned by uid 0 but current uid is 1001 (%q); fix: run ov-init as root with --user so the app runs unprivileged, or chown 1001 %s (Kubernetes: a Secret volume is always root's: runAsUser 0, mount the key with subPath, pass --user)",
		KindOwner, rootKey, rootKey)
	if out[0] != want {
		t.Errorf("root-owned key as uid 1001:\n got %s\nwant %s", out[0], want)
	}
	if out[1] != "ok" {
		t.Errorf("control: 1001's own key as uid 1001: %s", out[1])
	}
}

func TestKeyBehindAnUnsearchableDirectoryNamesTheDirectory(t *testing.T) {
	base := t.TempDir()
	reachable(t, base)
	// locked (0700, root) holds inner (0755) holds the key: the directory
	// to fix is locked, not inner. open (0711) is the control.
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"locked", 0o700}, {"open", 0o711}} {
		inner := filepath.Join(base, d.name, "inner")
		if err := os.MkdirAll(inner, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(base, d.name), d.mode); err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(inner, "machine.kek")
		writeKeyFile(t, key, goodKey, 0o600)
		if err := os.Chown(key, otherUID, otherUID); err != nil {
			t.Fatal(err)
		}
	}
	locked := filepath.Join(base, "locked")
	absolute := filepath.Join(locked, "inner", "machine.kek")
	relative := "locked/inner/machine.kek" // from base
	out := loadAs(t, otherUID, base, absolute, relative, filepath.Join(base, "open", "inner", "machine.kek"))
	for i, c := range []struct{ path, dir string }{{absolute, locked}, {relative, "locked"}} {
		want := fmt.Sprintf("%d: opening machine key: permission denied (%q): directory %q is not searchable by uid 1001; fix: chmod a+x %s, or run ov-init as root with --user so the app runs unprivileged",
			KindOpen, c.path, c.dir, c.dir)
		if out[i] != want {
			t.Errorf("key behind a 0700 directory:\n got %s\nwant %s", out[i], want)
		}
	}
	if out[2] != "ok" {
		t.Errorf("control: key behind a 0711 directory: %s", out[2])
	}
}

// A /proc that is not the kernel's (a tmpfs mounted in its place, whose
// fd/N links anywhere) is not trusted to reopen the key: the path is
// opened again instead, and its inode compared.
func TestKeyIsNotReopenedThroughAProcThatIsNotProcfs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "machine.kek")
	writeKeyFile(t, path, goodKey, 0o600)
	saved := isProc
	isProc = func(string) bool { return false }
	t.Cleanup(func() { isProc = saved })
	opens := watchOpens(t, nil)
	k, err := load(t, path)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wipe()
	for _, o := range *opens {
		if strings.HasPrefix(o.path, fdDir) {
			t.Errorf("Load opened %v through a /proc that is not procfs", o)
		}
	}
	if n := len(*opens); n != 2 || (*opens)[1] != (openCall{path, openFlags}) {
		t.Errorf("Load opened %v, want the O_PATH lookup, then open(%q, O_RDONLY|O_NOFOLLOW|…)", *opens, path)
	}
	// Control: the real check knows this machine's /proc, and a
	// directory that is not one.
	if !saved(fdDir) || saved(t.TempDir()) {
		t.Errorf("isProc(%s) = %v, isProc(a temporary directory) = %v; want true, false", fdDir, saved(fdDir), saved(t.TempDir()))
	}
}

// A refusal that comes after the file passed its checks (a security
// module's, on the open for reading) does not send the user to chown and
// chmod a file that is already right (issue 11).
func TestRefusalOfARightFileSuggestsNoChmod(t *testing.T) {
	for name, replace := range map[string]func(string, int, func(string, int) (int, error)) (int, error){
		"through_proc": func(path string, flags int, open func(string, int) (int, error)) (int, error) {
			if strings.HasPrefix(path, fdDir) {
				return -1, unix.EACCES
			}
			return open(path, flags)
		},
		"without_proc": func(path string, flags int, open func(string, int) (int, error)) (int, error) {
			if strings.HasPrefix(path, fdDir) {
				return -1, unix.ENOENT
			}
			if flags == openFlags {
				return -1, unix.EACCES
			}
			return open(path, flags)
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "machine.kek")
			writeKeyFile(t, path, goodKey, 0o600)
			watchOpens(t, replace)
			k, err := load(t, path)
			if err == nil {
				k.Wipe()
				t.Fatal("Load succeeded although the open for reading was refused")
			}
			msg := err.Error()
			if !errors.Is(err, KindOpen) || !strings.Contains(msg, "though it is mode 0600, owned by uid") ||
				strings.Contains(msg, "chown") || strings.Contains(msg, "chmod") {
				t.Errorf("refusal of a right file: %s", msg)
			}
		})
	}
}
