//go:build linux

package keyload

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// locked returns n bytes of locked, non-dumpable memory, and the func that
// zeroes, unlocks and unmaps it: the page Load reads the key into, for a
// secret of another size. n is at most one page: lock pages for keys only,
// RLIMIT_MEMLOCK is often 64 KiB in containers. The free func may be called
// more than once; it is not safe for concurrent use. A failure to lock is an
// [*Error] of KindMemory whose text names RLIMIT_MEMLOCK.
//
// Nothing outside this package's tests calls it today: the keys ov-init
// derives from the machine key live on the exec stage's Go heap (see the
// package doc), which execve discards.
func locked(n int) ([]byte, func(), error) {
	if ps := unix.Getpagesize(); n < 1 || n > ps {
		return nil, nil, fmt.Errorf("keyload: locked(%d): size must be 1 to %d bytes", n, ps)
	}
	page, err := lockedPage()
	if err != nil {
		return nil, nil, err
	}
	free := func() {
		if page != nil {
			release(page)
			page = nil
		}
	}
	return page[:n:n], free, nil
}

// lockedPage maps one anonymous page, locks it and excludes it from core
// dumps. Any failure is a hard error: a key is never read into memory that
// could be swapped out or dumped.
func lockedPage() ([]byte, *Error) {
	page, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, &Error{Kind: KindMemory, Err: err, op: "mmap"}
	}
	if err := unix.Mlock(page); err != nil {
		_ = unix.Munmap(page)
		return nil, &Error{Kind: KindMemory, Err: err, op: "mlock", limit: memlockLimit()}
	}
	if err := unix.Madvise(page, unix.MADV_DONTDUMP); err != nil {
		release(page)
		return nil, &Error{Kind: KindMemory, Err: err, op: "madvise(MADV_DONTDUMP)"}
	}
	return page, nil
}

// testHookBeforeUnmap, when set by a test, sees each page after it is zeroed
// and before it is unmapped.
var testHookBeforeUnmap func(page []byte)

// release zeroes page while it is still locked, then unlocks and unmaps it.
func release(page []byte) {
	clear(page)
	if testHookBeforeUnmap != nil {
		testHookBeforeUnmap(page)
	}
	_ = unix.Munlock(page)
	_ = unix.Munmap(page)
}

// memlockLimit describes the soft RLIMIT_MEMLOCK in ulimit -l terms.
func memlockLimit() string {
	var rl unix.Rlimit
	switch {
	case unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl) != nil:
		return "unknown"
	case rl.Cur == unix.RLIM_INFINITY:
		return "unlimited"
	case rl.Cur%1024 == 0:
		return strconv.FormatUint(rl.Cur/1024, 10) + " KiB"
	}
	return strconv.FormatUint(rl.Cur, 10) + " bytes"
}
