//go:build linux

package keyload

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The first part of each text comes from the product page and DESIGN.md;
// users search for it, so it is compared byte for byte.
func TestErrorTextsMatchTheProductPage(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{
			&Error{Kind: KindMode, Path: "/run/secrets/machine.kek", mode: 0o644},
			`machine key has permissions 0644 — must be 0600 ("/run/secrets/machine.kek"); fix: chmod 600 /run/secrets/machine.kek (Kubernetes: defaultMode 0600 and no fsGroup)`,
		},
		{
			&Error{Kind: KindMode, Path: "/k", mode: 0o4600},
			`machine key has permissions 4600 — must be 0600 ("/k"); fix: chmod 600 /k (Kubernetes: defaultMode 0600 and no fsGroup)`,
		},
		{
			&Error{Kind: KindMode, Path: "/k", mode: 0o400},
			`machine key has permissions 0400 — must be 0600 ("/k"); fix: chmod 600 /k (Kubernetes: defaultMode 0600 and no fsGroup)`,
		},
		{
			&Error{Kind: KindOwner, Path: "/k", uid: 0, euid: 1001},
			`machine key is owned by uid 0 but current uid is 1001 ("/k"); fix: run ov-init as root with --user so the app runs unprivileged, or chown 1001 /k (Kubernetes: a Secret volume is always root's: runAsUser 0, mount the key with subPath, pass --user)`,
		},
		{
			&Error{Kind: KindOwner, Path: "/k", uid: 1002, euid: 1001},
			`machine key is owned by uid 1002 but current uid is 1001 ("/k"); fix: chown 1001 /k, or chown 0 /k and run ov-init as root with --user so the app runs unprivileged`,
		},
		{
			&Error{Kind: KindOwner, Path: "/k", uid: 1001, euid: 0},
			`machine key is owned by uid 1001 but current uid is 0 ("/k"); fix: chown 0 /k`,
		},
		{
			&Error{Kind: KindSize, Path: "/k", size: 31},
			"machine key must be exactly 32 bytes (\"/k\" has 31 bytes); fix: derive it again with `ov auth derive-machine-key --out /k --app APP --force`",
		},
		{
			&Error{Kind: KindSize, Path: "/k", size: 1},
			"machine key must be exactly 32 bytes (\"/k\" has 1 byte); fix: derive it again with `ov auth derive-machine-key --out /k --app APP --force`",
		},
		{
			&Error{Kind: KindSymlink, Path: "/k", Err: unix.ELOOP},
			`opening machine key: too many levels of symbolic links ("/k"); fix: mount the key file itself, not a symlink (Kubernetes: mount it with subPath and defaultMode 0600)`,
		},
		{
			&Error{Kind: KindNotExist, Path: "/k", Err: unix.ENOENT},
			`opening machine key: no such file or directory ("/k"); fix: mount the key at /k or point --machine-key / OV_MACHINE_KEY at it`,
		},
		{
			&Error{Kind: KindNotRegular, Path: "/k", what: "FIFO"},
			`machine key is a FIFO, not a regular file ("/k"); fix: mount the 32-byte key file itself at /k`,
		},
		{
			&Error{Kind: KindOpen, Path: "/k", Err: unix.EACCES, euid: 1001},
			// Only after the file passed its checks: chown and chmod of
			// the file are no fix (issue 11).
			`opening machine key: permission denied ("/k"), though it is mode 0600, owned by uid 1001, and its directories are searchable; fix: find what else refuses it: a security module (AppArmor, SELinux: see the kernel's audit log), or whatever changed /k while ov-init opened it`,
		},
		{
			&Error{Kind: KindOpen, Path: "/run/secrets/machine.kek", Err: unix.EACCES, euid: 1001, search: true, dir: "/run/secrets"},
			`opening machine key: permission denied ("/run/secrets/machine.kek"): directory "/run/secrets" is not searchable by uid 1001; fix: chmod a+x /run/secrets, or run ov-init as root with --user so the app runs unprivileged`,
		},
		{
			&Error{Kind: KindOpen, Path: "/my keys/k", Err: unix.EACCES, euid: 1001, search: true, dir: "/my keys"},
			`opening machine key: permission denied ("/my keys/k"): directory "/my keys" is not searchable by uid 1001; fix: chmod a+x '/my keys', or run ov-init as root with --user so the app runs unprivileged`,
		},
		{
			&Error{Kind: KindOpen, Path: "/k", Err: unix.EACCES, euid: 1001, search: true},
			`opening machine key: permission denied ("/k"): a directory on the way to it is not searchable by uid 1001; fix: find it with namei -l /k and chmod a+x it, or run ov-init as root with --user so the app runs unprivileged`,
		},
		{
			&Error{Kind: KindRead, Path: "/k", op: "open", change: "replaced"},
			`machine key could not be read: "/k" was replaced while being opened; fix: stop whatever replaces /k, then start ov-init again`,
		},
		{
			&Error{Kind: KindMemory, Path: "/k", Err: unix.EPERM, op: "mlock", limit: "0 KiB"},
			`machine key cannot be held in locked memory: mlock: operation not permitted ("/k"); fix: raise RLIMIT_MEMLOCK (soft limit now 0 KiB) with ulimit -l, e.g. docker run --ulimit memlock=65536, or grant CAP_IPC_LOCK`,
		},
		{
			&Error{Kind: KindMemory, Err: unix.ENOMEM, op: "mlock", limit: "4 KiB"},
			`key memory cannot be locked: mlock: cannot allocate memory; fix: raise RLIMIT_MEMLOCK (soft limit now 4 KiB) with ulimit -l, e.g. docker run --ulimit memlock=65536, or grant CAP_IPC_LOCK`,
		},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%v error:\n got %s\nwant %s", tc.err.Kind, got, tc.want)
		}
	}
}

func TestErrorPathIsShellQuotedInTheFixAndTextStaysOneLine(t *testing.T) {
	for _, tc := range []struct{ path, fix string }{
		{"/run/secrets/machine.kek", "fix: chmod 600 /run/secrets/machine.kek (Kubernetes: defaultMode 0600 and no fsGroup)"},
		{"/keys/my key", "fix: chmod 600 '/keys/my key' (Kubernetes: defaultMode 0600 and no fsGroup)"},
		{"/keys/it's", `fix: chmod 600 '/keys/it'\''s' (Kubernetes: defaultMode 0600 and no fsGroup)`},
		{"/keys/$HOME", "fix: chmod 600 '/keys/$HOME' (Kubernetes: defaultMode 0600 and no fsGroup)"},
		{"/keys/a\nb", `fix: chmod 600 $'/keys/a\x0ab' (Kubernetes: defaultMode 0600 and no fsGroup)`},
	} {
		got := (&Error{Kind: KindMode, Path: tc.path, mode: 0o644}).Error()
		if !strings.HasSuffix(got, tc.fix) {
			t.Errorf("path %q: got %s, want suffix %s", tc.path, got, tc.fix)
		}
		if strings.ContainsAny(got, "\n\r") {
			t.Errorf("path %q: error text spans lines: %q", tc.path, got)
		}
	}
}

func TestErrorMatchesItsKindAndErrno(t *testing.T) {
	var err error = &Error{Kind: KindNotExist, Path: "/k", Err: unix.ENOENT}
	if !errors.Is(err, KindNotExist) {
		t.Error("errors.Is(err, KindNotExist) = false")
	}
	if errors.Is(err, KindMode) {
		t.Error("errors.Is(err, KindMode) = true for a missing key")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is(err, fs.ErrNotExist) = false")
	}
	var e *Error
	if !errors.As(err, &e) || e.Path != "/k" {
		t.Errorf("errors.As: got %+v", e)
	}
}
