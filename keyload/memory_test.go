//go:build linux

package keyload

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/internal/emulation"
)

// mapping is one entry of /proc/self/smaps (or maps: then only start, end).
type mapping struct {
	start, end uintptr
	sizeKB     int
	lockedKB   int
	vmFlags    []string
	header     string
}

// mappingAt returns the entry of file (/proc/self/smaps or /proc/self/maps)
// that contains addr.
func mappingAt(t *testing.T, file string, addr uintptr) (mapping, bool) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m mapping
	found := false
	for line := range strings.SplitSeq(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok {
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil { // a header line starts the next entry
				if found {
					break
				}
				if uintptr(start) <= addr && addr < uintptr(end) {
					m, found = mapping{start: uintptr(start), end: uintptr(end), header: line}, true
				}
				continue
			}
		}
		if !found {
			continue
		}
		switch fields[0] {
		case "Size:":
			m.sizeKB, _ = strconv.Atoi(fields[1])
		case "Locked:":
			m.lockedKB, _ = strconv.Atoi(fields[1])
		case "VmFlags:":
			m.vmFlags = fields[1:]
		}
	}
	return m, found
}

// assertLockedAndUndumped checks b's region in /proc/self/smaps: locked in
// full (Locked: equals Size:, not 0 kB) and flagged lo (VM_LOCKED) and dd
// (VM_DONTDUMP).
func assertLockedAndUndumped(t *testing.T, b []byte) uintptr {
	t.Helper()
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	m, ok := mappingAt(t, "/proc/self/smaps", addr)
	if !ok {
		t.Fatalf("no mapping in /proc/self/smaps holds %#x", addr)
	}
	if m.sizeKB == 0 || m.lockedKB != m.sizeKB {
		t.Errorf("region %s: Locked: %d kB of Size: %d kB, want all of it locked", m.header, m.lockedKB, m.sizeKB)
	}
	for _, flag := range []string{"lo", "dd"} {
		if !slices.Contains(m.vmFlags, flag) {
			t.Errorf("region %s: VmFlags %v lack %q", m.header, m.vmFlags, flag)
		}
	}
	return addr
}

func assertUnmapped(t *testing.T, addr uintptr) {
	t.Helper()
	if m, ok := mappingAt(t, "/proc/self/maps", addr); ok {
		t.Errorf("%#x is still mapped after wiping: %s", addr, m.header)
	}
}

func TestKeyLivesInLockedUndumpableMemoryUntilWipe(t *testing.T) {
	emulation.Skip(t, runtime.GOARCH, "qemu-user answers madvise(MADV_DONTDUMP) with success and does nothing, so the page is never flagged dd")
	path := filepath.Join(t.TempDir(), "machine.kek")
	writeKeyFile(t, path, goodKey, 0o600)
	k, err := load(t, path)
	if err != nil {
		t.Fatal(err)
	}
	addr := assertLockedAndUndumped(t, k.Bytes())
	k.Wipe()
	assertUnmapped(t, addr)
}

func TestLoadMakesTheProcessNonDumpable(t *testing.T) {
	restoreDumpable()
	path := filepath.Join(t.TempDir(), "machine.kek")
	writeKeyFile(t, path, goodKey, 0o600)
	k, err := load(t, path) // restores the flag at the end of the test
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wipe()
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Errorf("PR_GET_DUMPABLE after Load = %d, %v; want 0", d, err)
	}
}

func TestWipeZeroesThePageBeforeUnmappingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "machine.kek")
	writeKeyFile(t, path, goodKey, 0o600)
	k, err := load(t, path)
	if err != nil {
		t.Fatal(err)
	}
	var seen [][]byte
	testHookBeforeUnmap = func(page []byte) { seen = append(seen, bytes.Clone(page)) }
	defer func() { testHookBeforeUnmap = nil }()
	k.Wipe()
	k.Wipe()
	if len(seen) != 1 {
		t.Fatalf("two Wipes released %d pages, want 1", len(seen))
	}
	if len(seen[0]) != unix.Getpagesize() {
		t.Errorf("released %d bytes, want the whole page (%d)", len(seen[0]), unix.Getpagesize())
	}
	if i := slices.IndexFunc(seen[0], func(b byte) bool { return b != 0 }); i >= 0 {
		t.Errorf("byte %d of the page is %#x before munmap, want 0", i, seen[0][i])
	}
}

func TestLockedMemoryIsLockedUndumpableAndFreedOnce(t *testing.T) {
	emulation.Skip(t, runtime.GOARCH, "qemu-user answers madvise(MADV_DONTDUMP) with success and does nothing, so the page is never flagged dd")
	b, free, err := locked(64)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 64 || cap(b) != 64 {
		t.Errorf("locked(64) has len %d cap %d, want 64 and 64", len(b), cap(b))
	}
	copy(b, goodKey)
	addr := assertLockedAndUndumped(t, b)
	released := 0
	testHookBeforeUnmap = func([]byte) { released++ }
	defer func() { testHookBeforeUnmap = nil }()
	free()
	free()
	if released != 1 {
		t.Errorf("two frees released %d pages, want 1", released)
	}
	assertUnmapped(t, addr)
}

func TestLockedRefusesSizesOutsideOnePage(t *testing.T) {
	for _, n := range []int{-1, 0, unix.Getpagesize() + 1} {
		if b, free, err := locked(n); err == nil {
			free()
			t.Errorf("locked(%d) returned %d bytes, want an error", n, len(b))
		}
	}
	b, free, err := locked(unix.Getpagesize())
	if err != nil {
		t.Fatalf("locked(one page): %v", err)
	}
	if len(b) != unix.Getpagesize() {
		t.Errorf("locked(one page) has %d bytes", len(b))
	}
	free()
}

// The memlock test re-runs this test binary as a child: RLIMIT_MEMLOCK and
// the uid are process-wide. Root's CAP_IPC_LOCK ignores the limit, so the
// child drops to nobody (65534), which clears its capabilities.
const (
	memlockChildEnv = "KEYLOAD_TEST_MEMLOCK_LIMIT" // the limit the child sets, in bytes
	childKeyEnv     = "KEYLOAD_TEST_KEY"           // a good key owned by 65534
	childDeniedEnv  = "KEYLOAD_TEST_DENIED"        // a root-owned 0600 key
	nobody          = 65534
)

func TestLockFailureNamesRLIMIT_MEMLOCK(t *testing.T) {
	if os.Getenv(memlockChildEnv) != "" {
		memlockChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the child drops to uid 65534 so that CAP_IPC_LOCK no longer bypasses RLIMIT_MEMLOCK")
	}
	dir := t.TempDir()
	reachable(t, dir) // by uid 65534
	key := filepath.Join(dir, "machine.kek")
	writeKeyFile(t, key, goodKey, 0o600)
	if err := os.Chown(key, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	denied := filepath.Join(dir, "root.kek")
	writeKeyFile(t, denied, goodKey, 0o600)

	// With RLIMIT_MEMLOCK 0 nothing can be locked.
	out := runMemlockChild(t, 0, key, denied)
	if got, want := out["locked"], fmt.Sprintf("%d: key memory cannot be locked: mlock: operation not permitted; fix: raise RLIMIT_MEMLOCK (soft limit now 0 KiB) with ulimit -l, e.g. docker run --ulimit memlock=65536, or grant CAP_IPC_LOCK", KindMemory); got != want {
		t.Errorf("locked under RLIMIT_MEMLOCK 0:\n got %s\nwant %s", got, want)
	}
	if got, want := out["load"], fmt.Sprintf("%d: machine key cannot be held in locked memory: mlock: operation not permitted (%q); fix: raise RLIMIT_MEMLOCK", KindMemory, key); !strings.HasPrefix(got, want) {
		t.Errorf("Load under RLIMIT_MEMLOCK 0:\n got %s\nwant prefix %s", got, want)
	}
	// The key is checked on an O_PATH descriptor before it is opened for
	// reading, so uid 65534 learns whose key it is, not just "permission
	// denied".
	if got, want := out["denied"], fmt.Sprintf("%d: machine key is owned by uid 0 but current uid is 65534 (%q); fix: run ov-init as root with --user so the app runs unprivileged, or chown 65534 %s (Kubernetes: a Secret volume is always root's: runAsUser 0, mount the key with subPath, pass --user)", KindOwner, denied, denied); got != want {
		t.Errorf("Load of a root-only key as uid 65534:\n got %s\nwant %s", got, want)
	}

	// Negative control: the same child with a one-page-plus limit locks and
	// loads, so the refusal above is the limit's doing, not the uid switch's.
	out = runMemlockChild(t, 64<<10, key, denied)
	if out["locked"] != "ok" || out["load"] != "ok" {
		t.Errorf("under RLIMIT_MEMLOCK 64 KiB: locked: %s; Load: %s; want both ok", out["locked"], out["load"])
	}
}

// runMemlockChild runs memlockChild and returns its report lines by name.
func runMemlockChild(t *testing.T, limit uint64, key, denied string) map[string]string {
	t.Helper()
	return runChild(t, "TestLockFailureNamesRLIMIT_MEMLOCK", "", []string{
		memlockChildEnv + "=" + strconv.FormatUint(limit, 10),
		childKeyEnv + "=" + key,
		childDeniedEnv + "=" + denied,
	}, "locked", "load", "denied")
}

// memlockChild lowers RLIMIT_MEMLOCK, becomes uid 65534 and reports, one
// line each, what locked and Load return: "ok" or "<kind>: <error text>".
func memlockChild(t *testing.T) {
	limit, err := strconv.ParseUint(os.Getenv(memlockChildEnv), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	becomeUID(t, nobody)
	_, free, err := locked(Size)
	if err == nil {
		free()
	}
	report("locked", err)
	for _, c := range []struct{ name, env string }{{"load", childKeyEnv}, {"denied", childDeniedEnv}} {
		k, err := Load(os.Getenv(c.env))
		if err == nil {
			k.Wipe()
		}
		report(c.name, err)
	}
}
