package secretfiles

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// Seals is what a secret's memfd is sealed against before the app gets it:
// no write, no growing, no shrinking, and no change to the seals.
const Seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// maxMemfdName is the longest name memfd_create takes (249 bytes: the
// kernel's NAME_MAX less "memfd:").
const maxMemfdName = 249

// Memfd returns a memfd holding value, sealed (see [Seals]), mode 0400 and
// owned by the calling user, close-on-exec until [Inherit]. Its name, seen
// in /proc/PID/fd and /proc/PID/maps, is "ov:" and the secret's name, never
// the value. The stage calls it as the app's user, so that the app can open
// it again through /proc/self/fd/N (which checks the mode and the owner).
func Memfd(name string, value []byte) (int, error) {
	label := "ov:" + name
	if len(label) > maxMemfdName {
		label = label[:maxMemfdName]
	}
	// MFD_NOEXEC_SEAL (Linux 6.3) seals the execute bits too; with
	// vm.memfd_noexec=2 a memfd without it is refused. Older kernels
	// refuse the flag.
	fd, err := unix.MemfdCreate(label, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	if err == unix.EINVAL {
		fd, err = unix.MemfdCreate(label, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return -1, fmt.Errorf("secret %s: memfd_create: %v", name, err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("secret %s: memfd: %s: %v", name, what, err)
	}
	if err := unix.Fchmod(fd, FileMode); err != nil {
		return fail("chmod", err)
	}
	if err := writeAll(fd, value); err != nil {
		return fail("write", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, Seals); err != nil {
		return fail("sealing", err)
	}
	return fd, nil
}

// MemfdPath is the NAME_FILE value of the memfd at fd: the app's own
// descriptor, seen through /proc/self.
func MemfdPath(fd int) string {
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// Inherit clears close-on-exec on fds, so that the app gets them at
// execve. Call it last, just before execve.
func Inherit(fds []int) error {
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("passing memfd %d to the app: %v", fd, err)
		}
	}
	return nil
}
