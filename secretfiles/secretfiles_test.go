package secretfiles

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/vault"
)

// needRoot skips a test that mounts file systems and changes owners.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN to mount a tmpfs, CAP_CHOWN)")
	}
}

// memDir mounts a fresh file system of type fstype (tmpfs or ramfs) with
// options and returns its path; it is unmounted when the test ends.
func memDir(t *testing.T, fstype, options string) string {
	t.Helper()
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "run-ov")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(fstype, dir, fstype, 0, options); err != nil {
		t.Fatalf("mounting a %s at %s: %v", fstype, dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// diskDir is an empty directory on a file system that is not in memory.
func diskDir(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	for _, base := range []string{t.TempDir(), wd, "/var/tmp"} {
		var sfs unix.Statfs_t
		if unix.Statfs(base, &sfs) != nil || inMemory(sfs.Type) {
			continue
		}
		dir, err := os.MkdirTemp(base, "ov-disk-")
		if err != nil {
			continue
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	t.Fatal("found no directory on disk (every candidate is on tmpfs or ramfs)")
	return ""
}

// under mounts a fresh tmpfs with options and returns the path of an empty
// directory ov in it, root's, mode 0700: a secrets dir below a directory
// that the options make safe or not.
func under(t *testing.T, options string) string {
	t.Helper()
	dir := filepath.Join(memDir(t, "tmpfs", options), "ov")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

var testSecrets = []vault.Secret{
	{Name: "DB_PASSWORD", Value: []byte("ovsec-db\nwith a newline\n")},
	{Name: "TLS_KEY", Value: []byte("ovsec-\x01\x02\xff binary")},
}

func secretsCopy() []vault.Secret {
	out := make([]vault.Secret, len(testSecrets))
	for i, s := range testSecrets {
		out[i] = vault.Secret{Name: s.Name, Value: bytes.Clone(s.Value)}
	}
	return out
}

// openAndWrite opens dir for the app's uid:gid, writes a copy of
// testSecrets into it, and closes it; it fails the test if either fails.
func openAndWrite(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	d, err := Open(dir, uid, gid)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", dir, uid, gid, err)
	}
	defer d.Close()
	if err := d.Write(secretsCopy()); err != nil {
		t.Fatal(err)
	}
}

func TestFilesAreWrittenExactlyWithTheirModes(t *testing.T) {
	for _, fstype := range []string{"tmpfs", "ramfs"} {
		t.Run(fstype, func(t *testing.T) {
			dir := memDir(t, fstype, "mode=0700")
			openAndWrite(t, dir, 0, 0)
			var st unix.Stat_t
			if err := unix.Stat(dir, &st); err != nil || st.Mode&0o7777 != DirMode {
				t.Errorf("dir mode %04o (%v), want %04o", st.Mode&0o7777, err, DirMode)
			}
			for _, s := range testSecrets {
				p := Path(dir, s.Name)
				if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != FileMode {
					t.Errorf("%s: mode %o (%v), want a regular file %04o", p, st.Mode, err, FileMode)
				}
				got, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(got, s.Value) {
					t.Errorf("%s holds %q (%v), want %q exactly", p, got, err, s.Value)
				}
			}
		})
	}
}

// The mode of a created file passes through the umask; the files end 0400
// whatever it is.
func TestFileModeIgnoresTheUmask(t *testing.T) {
	dir := memDir(t, "tmpfs", "mode=0700")
	old := unix.Umask(0o477)
	defer unix.Umask(old)
	openAndWrite(t, dir, 0, 0)
	var st unix.Stat_t
	if err := unix.Stat(Path(dir, "TLS_KEY"), &st); err != nil || st.Mode&0o7777 != FileMode {
		t.Errorf("with umask 0477: file mode %04o (%v), want %04o", st.Mode&0o7777, err, FileMode)
	}
}

// Open gives a directory of ov-init's to the app's user; the files then
// belong to whoever writes them: the stage, as the app's user.
func TestOpenGivesTheDirectoryToTheAppsUser(t *testing.T) {
	dir := memDir(t, "tmpfs", "mode=0700")
	d, err := Open(dir, 1001, 1002)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Uid != 1001 || st.Gid != 1002 {
		t.Errorf("dir owned by %d:%d (%v), want 1001:1002", st.Uid, st.Gid, err)
	}
	// Owned by the app's user already (a restart, or tmpfs uid=): taken
	// as it is.
	d, err = Open(dir, 1001, 1002)
	if err != nil {
		t.Fatalf("a directory the app's user owns: %v", err)
	}
	d.Close()
}

func TestOpenRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T) string
		uid   int
		want  []string
	}{
		{"ADirectoryOnDisk", func(t *testing.T) string { return diskDir(t) }, 0,
			[]string{"not on an in-memory file system (tmpfs or ramfs)", "--tmpfs", "memfd"}},
		{"AMissingDirectory", func(t *testing.T) string { return filepath.Join(memDir(t, "tmpfs", ""), "nope") }, 0,
			[]string{"does not exist", "fix:"}},
		{"ASymlink", func(t *testing.T) string {
			dir := memDir(t, "tmpfs", "mode=0700")
			os.Mkdir(filepath.Join(dir, "real"), 0o700)
			os.Symlink("real", filepath.Join(dir, "link"))
			return filepath.Join(dir, "link")
		}, 0, []string{"is a symbolic link", "real path"}},
		{"ASymlinkOnTheWay", func(t *testing.T) string {
			dir := memDir(t, "tmpfs", "mode=0700")
			os.MkdirAll(filepath.Join(dir, "real", "ov"), 0o700)
			os.Symlink("real", filepath.Join(dir, "link"))
			return filepath.Join(dir, "link", "ov")
		}, 0, []string{"/link\" is a symbolic link"}},
		{"AFile", func(t *testing.T) string {
			p := filepath.Join(memDir(t, "tmpfs", "mode=0700"), "f")
			os.WriteFile(p, nil, 0o600)
			return p
		}, 0, []string{"is not a directory"}},
		{"AStrangersDirectory", func(t *testing.T) string {
			dir := memDir(t, "tmpfs", "mode=0700,uid=4242")
			return dir
		}, 1001, []string{"owned by uid 4242, not by ov-init (uid 0) or the app (uid 1001)"}},
		{"AStickyDirectory", func(t *testing.T) string { return memDir(t, "tmpfs", "mode=1777") }, 0,
			[]string{"has the sticky bit (mode 1777) and is writable by group or others", "/tmp or /dev/shm", "mode=0700"}},
		{"AStickyDirectoryItsGroupCanWrite", func(t *testing.T) string { return memDir(t, "tmpfs", "mode=1770") }, 0,
			[]string{"has the sticky bit (mode 1770) and is writable by group or others"}},
		// F1: whoever can rename the secrets dir away can put a directory
		// of their own in its place once ov-init has checked it, and the
		// app opens NAME_FILE by path.
		{"UnderADirectoryOthersCanWrite", func(t *testing.T) string { return under(t, "mode=0777") }, 0,
			[]string{"/run-ov\", a directory above it, is writable by group or others and not sticky (mode 0777)", "fix: chmod go-w", "/run/ov"}},
		{"UnderADirectoryItsGroupCanWrite", func(t *testing.T) string { return under(t, "mode=0775") }, 0,
			[]string{"/run-ov\", a directory above it, is writable by group or others and not sticky (mode 0775)"}},
		{"UnderADirectoryOfAnotherUser", func(t *testing.T) string { return under(t, "mode=0755,uid=4242") }, 0,
			[]string{"/run-ov\", a directory above it, is owned by uid 4242, not by root", "fix:", "/run/ov"}},
		// F2: the app could swap its directory with another one of root's
		// for PID 1 to clear.
		{"UnderADirectoryOfTheAppsUser", func(t *testing.T) string { return under(t, "mode=0755,uid=1001") }, 1001,
			[]string{"is owned by uid 1001, not by root"}},
		{"FarUnderADirectoryOfAnotherUser", func(t *testing.T) string {
			top := memDir(t, "tmpfs", "mode=0755,uid=4242")
			dir := filepath.Join(top, "a", "ov")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chmod(filepath.Dir(dir), 0o755)
			return dir
		}, 0, []string{"/run-ov\", a directory above it, is owned by uid 4242"}},
		{"ANonEmptyDirectory", func(t *testing.T) string {
			dir := memDir(t, "tmpfs", "mode=0700")
			os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("x"), 0o600)
			return dir
		}, 0, []string{"is not empty", `"config.yaml"`}},
		{"AFileNamedLikeASecretButNotOurs", func(t *testing.T) string {
			dir := memDir(t, "tmpfs", "mode=0700")
			os.WriteFile(filepath.Join(dir, "DB_PASSWORD"), []byte("x"), 0o644)
			return dir
		}, 0, []string{"is not empty", `"DB_PASSWORD"`}},
		{"ARelativePath", func(t *testing.T) string { return "run/ov" }, 0, []string{"clean absolute path"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			needRoot(t)
			dir := c.setup(t)
			var before []string
			if st, err := os.Stat(dir); err == nil && st.IsDir() {
				before = entries(t, dir)
			}
			d, err := Open(dir, c.uid, c.uid)
			if err == nil {
				d.Close()
				t.Fatalf("Open(%q) took it", dir)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is more than one line", err)
			}
			if st, err := os.Stat(dir); err == nil && st.IsDir() {
				if after := entries(t, dir); !slices.Equal(before, after) {
					t.Errorf("a refused directory changed: %q, then %q", before, after)
				}
			}
		})
	}
}

// TestFixCommandsQuoteTheDirectory: the docker command a refusal suggests
// is one to paste, so a directory with a space or a ";" in its name is
// quoted for the shell there, never spliced in raw.
func TestFixCommandsQuoteTheDirectory(t *testing.T) {
	for name, dir := range map[string]string{
		"missing":    filepath.Join(memDir(t, "tmpfs", ""), "a b;touch x"),
		"on disk":    filepath.Join(diskDir(t), "a b;touch x"),
		"a stranger": filepath.Join(memDir(t, "tmpfs", "mode=0755"), "a b;touch x"),
	} {
		if name != "missing" {
			uid := 0
			if name == "a stranger" {
				uid = 4242
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Open(dir, 10001, 10001)
		if err == nil {
			t.Fatalf("%s: Open(%q) took it", name, dir)
		}
		if want := "--tmpfs " + shellquote.Quote(dir) + ":mode=0700"; !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "--tmpfs "+dir) {
			t.Errorf("%s: %v\nwant the command with %s", name, err, want)
		}
	}
}

// Files an ov-init killed with SIGKILL left (a Kubernetes emptyDir outlives
// the container) are replaced, not refused.
func TestLeftoversOfAnEarlierRunAreReplaced(t *testing.T) {
	dir := memDir(t, "tmpfs", "mode=0700")
	if err := os.WriteFile(filepath.Join(dir, "OLD_SECRET"), []byte("old"), FileMode); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "TLS_KEY"), []byte("old"), FileMode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "OLD_SECRET"), FileMode)
	os.Chmod(filepath.Join(dir, "TLS_KEY"), FileMode)
	openAndWrite(t, dir, 0, 0)
	if got := entries(t, dir); !slices.Equal(got, []string{"DB_PASSWORD", "TLS_KEY"}) {
		t.Errorf("entries %q, want the new secrets only", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "TLS_KEY")); !bytes.Equal(b, testSecrets[1].Value) {
		t.Errorf("TLS_KEY holds %q, want the new value", b)
	}
}

// A file that appears between Open and Write with a secret's name is never
// written through, and Write leaves nothing of its own behind.
func TestWriteNeverWritesIntoAFileItDidNotCreate(t *testing.T) {
	dir := memDir(t, "tmpfs", "mode=0700")
	d, err := Open(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("untouched"), 0o600)
	if err := os.Symlink(target, filepath.Join(dir, "TLS_KEY")); err != nil {
		t.Fatal(err)
	}
	err = d.Write(secretsCopy())
	if err == nil || !strings.Contains(err.Error(), "TLS_KEY") {
		t.Fatalf("Write over a planted symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "untouched" {
		t.Errorf("the symlink's target now holds %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "DB_PASSWORD")); err == nil {
		t.Error("Write failed but left DB_PASSWORD behind")
	}
}

func TestClearRemovesOnlyFilesNamedLikeSecrets(t *testing.T) {
	dir := memDir(t, "tmpfs", "mode=0700")
	outside := filepath.Join(t.TempDir(), "OUTSIDE")
	os.WriteFile(outside, []byte("keep"), 0o600)
	for _, f := range []string{"A", "b_2", "not-a-secret", ".hidden"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o400)
	}
	os.Mkdir(filepath.Join(dir, "SUBDIR"), 0o700)
	os.Symlink(outside, filepath.Join(dir, "LINK"))
	os.Chmod(dir, DirMode)
	n, err := Clear(dir)
	if err != nil || n != 2 {
		t.Errorf("Clear: %d, %v; want 2 removed", n, err)
	}
	if got, want := entries(t, dir), []string{".hidden", "LINK", "SUBDIR", "not-a-secret"}; !slices.Equal(got, want) {
		t.Errorf("left %q, want %q", got, want)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("a symlink's target was changed: %q", b)
	}
	// Refused where Open would refuse: nothing behind a symlink.
	link := filepath.Join(dir, "..", "link-to-dir")
	os.Symlink(dir, link)
	if _, err := Clear(filepath.Clean(link)); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Clear through a symlink: %v", err)
	}
}

// A sticky directory above the secrets dir, like /tmp, lets its users
// rename only what they own: the secrets dir under it is taken (the temp
// dirs of every test here are under /tmp, root's, 1777, too).
func TestOpenTakesADirectoryUnderAStickyOne(t *testing.T) {
	dir := under(t, "mode=1777")
	openAndWrite(t, dir, 1001, 1001)
	if got := entries(t, dir); !slices.Equal(got, []string{"DB_PASSWORD", "TLS_KEY"}) {
		t.Errorf("entries %q", got)
	}
}

// PID 1 walks the path again under the same rules: a directory above the
// secrets dir that another user took or opened to others since the app
// started is refused, and nothing in the secrets dir is touched.
func TestClearRefusesWhenADirectoryAboveIsNotSafe(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(parent string) error
		want   string
	}{
		{"OwnedByAnotherUser", func(p string) error { return os.Chown(p, 4242, 4242) }, "is owned by uid 4242, not by root"},
		{"WritableByOthers", func(p string) error { return os.Chmod(p, 0o777) }, "writable by group or others and not sticky (mode 0777)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := under(t, "mode=0755")
			openAndWrite(t, dir, 1001, 1001)
			if err := c.change(filepath.Dir(dir)); err != nil {
				t.Fatal(err)
			}
			n, err := Clear(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "a directory above it") || n != 0 {
				t.Errorf("Clear: %d, %v; want a refusal with %q", n, err, c.want)
			}
			if got := entries(t, dir); !slices.Equal(got, []string{"DB_PASSWORD", "TLS_KEY"}) {
				t.Errorf("a refused Clear changed the directory: %q", got)
			}
		})
	}
}

// PID 1 makes writable only a directory of its own uid: the app's (or
// anyone else's) keeps its mode, and PID 1 as root removes the files with
// CAP_DAC_OVERRIDE.
func TestClearChangesTheModeOfNoDirectoryButItsOwn(t *testing.T) {
	dir := memDir(t, "tmpfs", "mode=0700")
	for _, f := range []string{"A", "B", "ROOTS", "WIDE"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), FileMode)
		if f != "ROOTS" {
			os.Chown(filepath.Join(dir, f), 4242, 4242)
		}
	}
	os.Chmod(filepath.Join(dir, "WIDE"), 0o644)
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, DirMode)
	if n, err := Clear(dir); err != nil || n != 2 {
		t.Errorf("Clear: %d, %v; want 2 removed", n, err)
	}
	// Only what the stage writes goes: a 0400 file of the directory's
	// owner. Another owner's file, or a file of another mode, is no secret
	// file of this run: the app may have swapped its directory.
	for _, f := range []string{"ROOTS", "WIDE"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err != nil {
			t.Errorf("Clear removed %s, which the stage never writes: %v", f, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Mode&0o7777 != DirMode || st.Uid != 4242 {
		t.Errorf("a directory of uid 4242 is now mode %04o of uid %d (%v), want %04o untouched", st.Mode&0o7777, st.Uid, err, DirMode)
	}
}

// F4: the app can set the sticky bit on its own directory (chmod 1500),
// which keeps a PID 1 without CAP_FOWNER from removing the files. Only a
// sticky directory that others can write is shared; this one is the app's,
// and the next start takes it, replaces the files it left, and clears the
// bit.
func TestAStickyDirectoryNobodyElseCanWriteIsTakenAndReset(t *testing.T) {
	for _, c := range []struct {
		name    string
		options string
		uid     int
	}{
		{"TheAppsAfterChmod1500", "mode=1500,uid=1001,gid=1001", 1001},
		{"OvInits", "mode=1700", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := memDir(t, "tmpfs", c.options)
			// What a run whose clean-up failed left.
			stale := filepath.Join(dir, "TLS_KEY")
			if err := os.WriteFile(stale, []byte("old"), FileMode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(stale, FileMode)
			os.Chown(stale, c.uid, c.uid)
			openAndWrite(t, dir, c.uid, c.uid)
			var st unix.Stat_t
			if err := unix.Stat(dir, &st); err != nil || st.Mode&0o7777 != DirMode {
				t.Errorf("dir mode %04o (%v), want %04o, the sticky bit cleared", st.Mode&0o7777, err, DirMode)
			}
			if b, _ := os.ReadFile(stale); !bytes.Equal(b, testSecrets[1].Value) {
				t.Errorf("TLS_KEY holds %q, want the new value", b)
			}
		})
	}
}

func TestMemfdIsSealedPrivateAndCloseOnExecUntilInherited(t *testing.T) {
	value := []byte("ovsec-memfd\nvalue\x01\xff")
	fd, err := Memfd("DB_PASSWORD", value)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || seals&Seals != Seals {
		t.Errorf("seals %#x (%v), want at least %#x", seals, err, Seals)
	}
	if _, err := unix.Pwrite(fd, []byte("x"), 0); err != unix.EPERM {
		t.Errorf("writing a sealed memfd: %v, want EPERM", err)
	}
	if err := unix.Ftruncate(fd, 1); err != unix.EPERM {
		t.Errorf("shrinking a sealed memfd: %v, want EPERM", err)
	}
	if err := unix.Ftruncate(fd, 1<<20); err != unix.EPERM {
		t.Errorf("growing a sealed memfd: %v, want EPERM", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, 0); err != unix.EPERM {
		t.Errorf("changing the seals: %v, want EPERM", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&0o7777 != FileMode || st.Uid != uint32(os.Geteuid()) {
		t.Errorf("memfd mode %04o owner %d (%v), want %04o and ours", st.Mode&0o7777, st.Uid, err, FileMode)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Type != tmpfsMagic {
		t.Errorf("memfd on %#x (%v), want shmem (TMPFS_MAGIC)", sfs.Type, err)
	}
	got, err := os.ReadFile(MemfdPath(fd))
	if err != nil || !bytes.Equal(got, value) {
		t.Errorf("reading %s: %q (%v), want %q", MemfdPath(fd), got, err, value)
	}
	link, _ := os.Readlink(MemfdPath(fd))
	if !strings.HasPrefix(link, "/memfd:ov:DB_PASSWORD") {
		t.Errorf("memfd link %q, want it named after the secret", link)
	}
	flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("a memfd is not close-on-exec before Inherit")
	}
	if err := Inherit([]int{fd}); err != nil {
		t.Fatal(err)
	}
	flags, _ = unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC != 0 {
		t.Error("Inherit left close-on-exec set")
	}
}

func TestMemfdNameIsCutToWhatTheKernelTakes(t *testing.T) {
	fd, err := Memfd(strings.Repeat("N", 255), []byte("v"))
	if err != nil {
		t.Fatalf("a secret with a 255-byte name: %v", err)
	}
	unix.Close(fd)
}

func TestParseSpec(t *testing.T) {
	for _, c := range []struct{ spec, name, as, err string }{
		{"DB", "DB", "", ""},
		{"TLS_KEY:file", "TLS_KEY", AsFiles, ""},
		{"A:memfd", "A", AsMemfd, ""},
		{"A:env", "A", AsEnv, ""},
		{"A:files", "", "", "NAME:file"},
		{"A:", "", "", "NAME:file"},
		{"B-C:file", "", "", "B-C"},
		{":file", "", "", ""},
	} {
		name, as, err := ParseSpec(c.spec)
		if c.err == "" && c.name != "" && (err != nil || name != c.name || as != c.as) {
			t.Errorf("ParseSpec(%q) = %q %q %v, want %q %q", c.spec, name, as, err, c.name, c.as)
		}
		if c.name == "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseSpec(%q): error %v, want one with %q", c.spec, err, c.err)
		}
	}
}

func TestUsesFiles(t *testing.T) {
	for _, c := range []struct {
		as    string
		specs []string
		want  bool
	}{
		{AsEnv, nil, false},
		{AsFiles, nil, true},
		{AsMemfd, nil, false},
		{AsEnv, []string{"A", "B:file"}, true},
		{AsFiles, []string{"A:env", "B:memfd"}, false},
		{AsFiles, []string{"A:env", "B"}, true},
	} {
		if got := UsesFiles(c.as, c.specs); got != c.want {
			t.Errorf("UsesFiles(%q, %q) = %v", c.as, c.specs, got)
		}
	}
}

// fifty are 50 secrets as bench/ has them, for the benchmarks below: what
// --secrets-as files and memfd add to start-up, against env.
func fifty() []vault.Secret {
	s := make([]vault.Secret, 50)
	for i := range s {
		s[i] = vault.Secret{Name: "SECRET_" + strings.Repeat("X", i%3) + string(rune('A'+i%26)) + string(rune('A'+i/26)), Value: []byte("value-0123456789abcdef0123456789")}
	}
	return s
}

// Open, Write and PID 1's Clear of 50 files on a tmpfs: the whole cost of
// --secrets-as files over env.
func BenchmarkFiftyFiles(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to mount a tmpfs")
	}
	dir := filepath.Join(b.TempDir(), "run-ov")
	os.Mkdir(dir, 0o700)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700"); err != nil {
		b.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	secrets := fifty()
	for b.Loop() {
		d, err := Open(dir, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Write(secrets); err != nil {
			b.Fatal(err)
		}
		d.Close()
		if n, err := Clear(dir); err != nil || n != 50 {
			b.Fatal(n, err)
		}
	}
}

// 50 sealed memfds: the cost of --secrets-as memfd over env.
func BenchmarkFiftyMemfds(b *testing.B) {
	secrets := fifty()
	for b.Loop() {
		for i := range secrets {
			fd, err := Memfd(secrets[i].Name, secrets[i].Value)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	}
}
