package integration

// Issue 12: secrets as files on an in-memory file system, or as sealed
// memfds, through NAME_FILE (--secrets-as files|memfd, --secrets-dir,
// --secrets NAME:HOW). ov-init runs as PID 1 of a fresh PID namespace; the
// secrets dir is a tmpfs (or ramfs) mounted for the test, as Docker's
// --tmpfs, a Kubernetes emptyDir with medium: Memory, or systemd's
// RuntimeDirectory= would give it.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/vault"
)

// memMount mounts a fresh fstype (tmpfs or ramfs) with options at dir,
// which it creates; unmounted when the test ends (before t.TempDir's
// removal, which was registered earlier).
func memMount(t *testing.T, fstype, dir, options string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(fstype, dir, fstype, 0, options); err != nil {
		t.Fatalf("mounting a %s at %s (%s): %v", fstype, dir, options, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// sfSetup is a secrets setup with the helper where any user can run it and
// a tmpfs at dir, mounted with options (mode=0700 as the Docker recipe).
type sfSetup struct {
	*secretsSetup
	app string // the helper, runnable by any uid
	dir string // the secrets dir
}

func newSFSetup(t *testing.T, options string) *sfSetup {
	t.Helper()
	s := newSecretsSetup(t)
	app := unprivilegedHelper(t, s)
	dir := filepath.Join(s.dir, "run-ov")
	if options != "" {
		memMount(t, "tmpfs", dir, options)
	}
	return &sfSetup{secretsSetup: s, app: app, dir: dir}
}

// filesFlags are secrets-mode flags for app web with the scoped key, files
// in s.dir.
func (s *sfSetup) filesFlags(extra ...string) []string {
	return s.flags("web", s.webKey, append([]string{"--secrets-as", "files", "--secrets-dir", s.dir}, extra...)...)
}

func (s *sfSetup) memfdFlags(extra ...string) []string {
	return s.flags("web", s.webKey, append([]string{"--secrets-as", "memfd"}, extra...)...)
}

// fileReport is helper files' account of one NAME_FILE (see the helper).
type fileReport struct {
	Path    string `json:"path"`
	Err     string `json:"err"`
	Size    int    `json:"size"`
	SHA256  string `json:"sha256"`
	Mode    string `json:"mode"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	FS      string `json:"fs"`
	Link    string `json:"link"`
	DirMode string `json:"dirmode"`
	DirUID  uint32 `json:"diruid"`
	Seals   int    `json:"seals"`
}

type filesReport struct {
	Env   []string              `json:"env"`
	Files map[string]fileReport `json:"files"`
}

// parseFiles reads the first line of helper files' output.
func parseFiles(t *testing.T, out string) filesReport {
	t.Helper()
	line, _, _ := strings.Cut(out, "\n")
	var r filesReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("app output is not helper files' JSON: %v: %q", err, out)
	}
	return r
}

func sum(value string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(value))) }

// assertDelivered checks that the app got each named web secret through
// NAME_FILE only, with its exact value, and not as NAME.
func assertDelivered(t *testing.T, r filesReport, names ...string) {
	t.Helper()
	env := map[string]string{}
	for _, kv := range r.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, name := range names {
		f, ok := r.Files[name+"_FILE"]
		if !ok {
			t.Errorf("the app has no %s_FILE: %q", name, r.Env)
			continue
		}
		if f.Err != "" || f.SHA256 != sum(webSecrets[name]) || f.Size != len(webSecrets[name]) {
			t.Errorf("%s_FILE=%s: read %d bytes, error %q; want the vault's %d bytes exactly", name, f.Path, f.Size, f.Err, len(webSecrets[name]))
		}
		if v, ok := env[name]; ok {
			t.Errorf("the app has %s=%q in its environment as well as %s_FILE", name, v, name)
		}
	}
	for _, kv := range r.Env {
		if strings.Contains(kv, leakMark) {
			t.Errorf("the app's environment holds a value: %q", kv)
		}
	}
}

// delivered checks that r, a run of helper files, exited 0 and that the
// app got every web secret (assertDelivered); it returns the app's report.
func delivered(t *testing.T, r secretsResult) filesReport {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	rep := parseFiles(t, r.stdout)
	assertDelivered(t, rep, allWebSecrets...)
	return rep
}

// expectDelivered reads the report of helper files (in its sleep mode)
// from p, waits for its "ready", and checks that the app got every web
// secret (assertDelivered).
func expectDelivered(t *testing.T, p *proc) filesReport {
	t.Helper()
	rep := parseFiles(t, p.expect("{", 5*time.Second))
	p.expect("ready", 5*time.Second)
	assertDelivered(t, rep, allWebSecrets...)
	return rep
}

// catAs reads path with /bin/cat as uid (and gid uid): its output, and
// its error when it fails.
func catAs(uid uint32, path string) ([]byte, error) {
	cmd := exec.Command("/bin/cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return cmd.CombinedOutput()
}

// dirEntries lists dir (nil when it is missing).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func assertEmpty(t *testing.T, dir, when string) {
	t.Helper()
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("%s: the secrets dir still holds %q", when, names)
	}
}

// statfsType is the file system type under path.
func statfsType(t *testing.T, path string) int64 {
	t.Helper()
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		t.Fatal(err)
	}
	return sfs.Type
}

const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

func TestSecretsAsFilesReachTheAppAsNAME_FILE(t *testing.T) {
	for _, fs := range []struct{ name, options string }{{"tmpfs", "mode=0700"}, {"ramfs", "mode=0700"}} {
		t.Run(fs.name, func(t *testing.T) {
			s := newSFSetup(t, "")
			memMount(t, fs.name, s.dir, fs.options)
			env := []string{"PATH=/usr/bin:/bin", "DB_PASSWORD=inherited"}
			rep := delivered(t, runSecrets(t, env, withApp(s.filesFlags(), s.app, "files")...))
			for _, name := range allWebSecrets {
				f := rep.Files[name+"_FILE"]
				if f.Path != filepath.Join(s.dir, name) || f.Mode != "0400" || f.UID != 0 || f.FS != fs.name || f.DirMode != "0500" || f.DirUID != 0 {
					t.Errorf("%s_FILE: %+v; want %s/%s, mode 0400 and dir 0500 owned by root, on %s", name, f, s.dir, name, fs.name)
				}
			}
			assertEmpty(t, s.dir, "after the app exited")
		})
	}
}

// --user: the directory and the files are the app's user's, 0500 and 0400;
// another uid can read neither, the app's own uid can (as it can read the
// app's /proc/PID/environ in env mode), root can.
func TestSecretFilesBelongToTheAppsUserAlone(t *testing.T) {
	s := newSFSetup(t, "mode=0700")
	p := pid1(t, withApp(s.filesFlags("--user", "1001:1001"), s.app, "files", "sleep")...)
	rep := expectDelivered(t, p)
	for _, name := range allWebSecrets {
		f := rep.Files[name+"_FILE"]
		if f.Mode != "0400" || f.UID != 1001 || f.GID != 1001 || f.DirMode != "0500" || f.DirUID != 1001 {
			t.Errorf("%s_FILE: %+v; want 0400 1001:1001 in a 0500 directory of uid 1001", name, f)
		}
	}
	file := filepath.Join(s.dir, "DB_PASSWORD")
	if _, err := catAs(1002, file); err == nil {
		t.Errorf("uid 1002 read the app's secret file %s", file)
	}
	if out, err := catAs(1001, file); err != nil {
		t.Errorf("control: the app's uid 1001 cannot read %s: %v", file, err)
	} else if string(out) != webSecrets["DB_PASSWORD"] {
		t.Errorf("uid 1001 read %q", out)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != webSecrets["DB_PASSWORD"] {
		t.Errorf("root cannot read %s: %v", file, err)
	}
	p.signal(syscall.SIGTERM)
	if code, _ := p.wait(5 * time.Second); code != 143 {
		t.Errorf("exit %d after SIGTERM, want 143", code)
	}
	assertEmpty(t, s.dir, "after SIGTERM")
}

func TestSecretsAsMemfdReachTheAppAsSealedDescriptors(t *testing.T) {
	s := newSFSetup(t, "")
	p := pid1(t, withApp(s.memfdFlags("--user", "1001:1001"), s.app, "files", "sleep")...)
	rep := expectDelivered(t, p)
	const allSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	var app int
	for pid := range nsProcesses(t, p.cmd.Process.Pid) {
		if pid != p.cmd.Process.Pid {
			app = pid
		}
	}
	for _, name := range allWebSecrets {
		f := rep.Files[name+"_FILE"]
		if !strings.HasPrefix(f.Path, "/proc/self/fd/") || !strings.HasPrefix(f.Link, "/memfd:ov:"+name+" ") || f.Seals&allSeals != allSeals ||
			f.Mode != "0400" || f.UID != 1001 || f.FS != "tmpfs" {
			t.Errorf("%s_FILE: %+v; want /proc/self/fd/N, a memfd named after the secret, sealed (%#x), 0400, of uid 1001", name, f, allSeals)
		}
		// From outside: /proc/APP/fd/N is closed to another uid.
		fd := strings.TrimPrefix(f.Path, "/proc/self/fd/")
		path := fmt.Sprintf("/proc/%d/fd/%s", app, fd)
		if _, err := catAs(1002, path); err == nil {
			t.Errorf("uid 1002 read %s (the app's memfd of %s)", path, name)
		}
		if _, err := catAs(1001, path); err != nil {
			t.Errorf("control: the app's own uid cannot read %s: %v", path, err)
		}
	}
	// Nothing was written to any file system: the memfds are the only
	// place, and the secrets dir (not mounted here) was never touched.
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("memfd mode created %s: %v", s.dir, err)
	}
}

// No value in /proc/APP/environ, and none in PID 1's memory, in files and
// memfd modes. The controls: env mode puts them in environ; the app, which
// read its files, holds them in its memory, and the scan finds them there.
func TestNoSecretValueInTheAppsEnvironOrPID1sMemory(t *testing.T) {
	s := newSFSetup(t, "mode=0700")
	needles := map[string][]byte{"a secret's mark": []byte(leakMark)}
	for name, value := range webSecrets {
		needles["secret "+name] = []byte(value)
	}
	environOf := func(p *proc) (int, string) {
		for pid := range nsProcesses(t, p.cmd.Process.Pid) {
			if pid != p.cmd.Process.Pid {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
				if err != nil {
					t.Fatal(err)
				}
				return pid, string(b)
			}
		}
		t.Fatal("no app in the namespace")
		return 0, ""
	}
	p := pid1(t, withApp(s.flags("web", s.webKey), s.app, "files", "sleep")...)
	p.expect("ready", 5*time.Second)
	if _, environ := environOf(p); !strings.Contains(environ, leakMark) {
		t.Fatalf("control: in env mode the app's /proc/PID/environ shows no value: the check below would prove nothing")
	}
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"files", s.filesFlags()}, {"memfd", s.memfdFlags()}} {
		t.Run(mode.name, func(t *testing.T) {
			p := pid1(t, withApp(mode.flags, s.app, "files", "sleep")...)
			expectDelivered(t, p)
			app, environ := environOf(p)
			if strings.Contains(environ, leakMark) {
				t.Errorf("the app's /proc/PID/environ holds a value: %q", environ)
			}
			found, scanned := memoryHolds(t, p.cmd.Process.Pid, needles)
			if len(found) > 0 {
				t.Errorf("PID 1 holds %v in its memory (%d bytes scanned)", found, scanned)
			}
			if scanned < 1<<20 {
				t.Errorf("scanned only %d bytes of PID 1's memory: the scan is broken", scanned)
			}
			found, _ = memoryHolds(t, app, needles)
			for name := range webSecrets {
				if !slices.Contains(found, "secret "+name) {
					t.Errorf("control: the scan did not find %s in the app, which read it: found %v", name, found)
				}
			}
		})
	}
}

// edgeValues are values that a careless writer would mangle: newlines, CR,
// every byte but NUL, and the largest value a vault holds.
var edgeValues = func() map[string]string {
	binary := []byte(leakMark)
	for b := 1; b < 256; b++ {
		binary = append(binary, byte(b))
	}
	big := bytes.Repeat([]byte("ovsec-big\n\xff\x01"), vault.MaxValueSize/12+1)[:vault.MaxValueSize]
	return map[string]string{
		"NEWLINES": "ovsec-\n\nline\r\n\n",
		"BINARY":   string(binary),
		"BIG":      string(big),
	}
}()

var (
	edgeOnce  sync.Once
	edgeVault []byte
	edgeKey   []byte
	edgeErr   error
)

// edgeFixture is a vault with app "edge" holding edgeValues, and its key.
func edgeFixture(t *testing.T) ([]byte, []byte) {
	t.Helper()
	edgeOnce.Do(func() {
		v, root, err := vault.New([]byte("edge password"))
		if err != nil {
			edgeErr = err
			return
		}
		defer root.Wipe()
		if edgeErr = v.CreateApp(root, "edge"); edgeErr != nil {
			return
		}
		for name, value := range edgeValues {
			if edgeErr = v.SetSecret(root, "edge", name, []byte(value)); edgeErr != nil {
				return
			}
		}
		if edgeVault, edgeErr = v.Marshal(); edgeErr != nil {
			return
		}
		edgeKey, edgeErr = v.AppKey(root, "edge")
	})
	if edgeErr != nil {
		t.Fatalf("the edge vault: %v", edgeErr)
	}
	return edgeVault, edgeKey
}

func TestValuesRoundTripExactly(t *testing.T) {
	if n := len(edgeValues["BIG"]); n != 130815 {
		t.Fatalf("BIG is %d bytes, want the vault's maximum, 130815", n)
	}
	s := newSFSetup(t, "mode=0700")
	data, key := edgeFixture(t)
	vaultPath, keyPath := filepath.Join(s.dir, "..", "edge.json"), filepath.Join(s.dir, "..", "edge.kek")
	if err := os.WriteFile(vaultPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	putMachineKey(t, keyPath, key)
	for _, mode := range []string{"files", "memfd"} {
		for _, user := range [][]string{nil, {"--user", "1001:1001"}} {
			t.Run(mode+strings.Join(user, ""), func(t *testing.T) {
				flags := append([]string{"--vault", vaultPath, "--machine-key", keyPath, "--app", "edge", "--secrets-as", mode}, user...)
				if mode == "files" {
					flags = append(flags, "--secrets-dir", s.dir)
				}
				r := runSecrets(t, []string{"PATH=/usr/bin:/bin"}, withApp(flags, s.app, "files")...)
				if r.code != 0 {
					t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
				}
				rep := parseFiles(t, r.stdout)
				for name, value := range edgeValues {
					f := rep.Files[name+"_FILE"]
					if f.Err != "" || f.Size != len(value) || f.SHA256 != sum(value) {
						t.Errorf("%s: read %d bytes (%s), error %q; want %d bytes exactly", name, f.Size, f.SHA256, f.Err, len(value))
					}
				}
				assertEmpty(t, s.dir, "after the app exited")
			})
		}
	}
}

// Nothing of a value in ov-init's output, even at -vvv, in every mode and
// on the way to every refusal (runSecrets checks stderr, this stdout).
func TestNoSecretValueInOutputOfFilesAndMemfdAtVerbose3(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags func(s *sfSetup) []string
		code  int
		want  string
	}{
		{"Files", func(s *sfSetup) []string { return s.filesFlags() }, 0, "as files in "},
		{"FilesWithUser", func(s *sfSetup) []string { return s.filesFlags("--user", "1001:1001") }, 0, "as files in "},
		{"Memfd", func(s *sfSetup) []string { return s.memfdFlags() }, 0, "as sealed memfds: "},
		{"Mixed", func(s *sfSetup) []string {
			return s.flags("web", s.webKey, "--secrets", "DB_PASSWORD,MULTILINE:file,API_TOKEN:memfd", "--secrets-dir", s.dir)
		}, 0, "as files in "},
		{"DirOnDisk", func(s *sfSetup) []string {
			return s.flags("web", s.webKey, "--secrets-as", "files", "--secrets-dir", diskDir(t))
		}, 78, "not on an in-memory file system"},
		{"InheritedNAME_FILE", func(s *sfSetup) []string { return s.filesFlags() }, 78, "already sets"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSFSetup(t, "mode=0700")
			quiet := []string{s.app, "exit", "0"}
			env := []string{"PATH=/usr/bin:/bin"}
			if c.name == "InheritedNAME_FILE" {
				env = append(env, "SHARED_FILE=/elsewhere")
			}
			r := runSecrets(t, env, withApp(append([]string{"-vvv"}, c.flags(s)...), quiet...)...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, c.code, c.want)
			}
			assertNoLeak(t, c.name+" stdout", r.stdout)
			if c.code == 0 && !strings.Contains(r.stderr, "secret files from") && c.name != "Memfd" {
				t.Errorf("-vvv: no line about removing the files: %q", r.stderr)
			}
		})
	}
}

// diskDir is an empty directory on a file system that is not in memory.
func diskDir(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	for _, base := range []string{t.TempDir(), wd, "/var/tmp"} {
		var sfs unix.Statfs_t
		if unix.Statfs(base, &sfs) != nil || sfs.Type == tmpfsMagic || sfs.Type == ramfsMagic {
			continue
		}
		dir, err := os.MkdirTemp(base, "ov-disk-")
		if err != nil {
			continue
		}
		os.Chmod(dir, 0o700)
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	t.Fatal("found no directory on disk: every candidate is on tmpfs or ramfs")
	return ""
}

// Bad input: one line, 78, the app never starts, and nothing is written.
func TestSecretFilesBadInputIsRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, s *sfSetup) (flags, env []string)
		want  []string
	}{
		{"DirOnDisk", func(t *testing.T, s *sfSetup) ([]string, []string) {
			s.dir = diskDir(t)
			if statfsType(t, s.dir) == tmpfsMagic {
				t.Fatal("the disk dir is on tmpfs")
			}
			return s.filesFlags(), nil
		}, []string{"is on ", "not on an in-memory file system (tmpfs or ramfs)", "--tmpfs", "memfd"}},
		{"DirOwnedByAnotherUser", func(t *testing.T, s *sfSetup) ([]string, []string) {
			memMount(t, "tmpfs", s.dir, "mode=0700,uid=4242,gid=4242")
			return s.filesFlags("--user", "1001:1001"), nil
		}, []string{"owned by uid 4242, not by ov-init (uid 0) or the app (uid 1001)"}},
		{"DirOfTheServiceUserButOvInitIsRoot", func(t *testing.T, s *sfSetup) ([]string, []string) {
			memMount(t, "tmpfs", s.dir, "mode=0755,uid=1001,gid=1001")
			return s.filesFlags(), nil
		}, []string{"owned by uid 1001, not by ov-init and the app (uid 0)"}},
		{"DirMissing", func(t *testing.T, s *sfSetup) ([]string, []string) {
			return s.filesFlags(), nil
		}, []string{"does not exist", "--tmpfs", "emptyDir", "RuntimeDirectory="}},
		{"DirIsASymlink", func(t *testing.T, s *sfSetup) ([]string, []string) {
			real := memMount(t, "tmpfs", s.dir+"-real", "mode=0700")
			if err := os.Symlink(real, s.dir); err != nil {
				t.Fatal(err)
			}
			return s.filesFlags(), nil
		}, []string{"is a symbolic link", "real path"}},
		{"DirIsShared", func(t *testing.T, s *sfSetup) ([]string, []string) {
			memMount(t, "tmpfs", s.dir, "mode=1777")
			return s.filesFlags(), nil
		}, []string{"has the sticky bit (mode 1777) and is writable by group or others", "mode=0700"}},
		// Whoever can write to a directory above the secrets dir can
		// rename it away once ov-init has checked it and put a directory
		// of their own, with their values, in its place: the app opens
		// NAME_FILE by path (and PID 1 would clear their directory).
		{"DirUnderADirectoryOfAnotherUser", func(t *testing.T, s *sfSetup) ([]string, []string) {
			q := memMount(t, "tmpfs", filepath.Join(filepath.Dir(s.dir), "q"), "mode=0755,uid=10002,gid=10002")
			s.dir = filepath.Join(q, "ov")
			if err := os.Mkdir(s.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			return s.filesFlags("--user", "1001:1001"), nil
		}, []string{"/q\", a directory above it, is owned by uid 10002, not by root", "fix:", "/run/ov"}},
		{"DirMountedUnderADirectoryOfAnotherUser", func(t *testing.T, s *sfSetup) ([]string, []string) {
			q := memMount(t, "tmpfs", filepath.Join(filepath.Dir(s.dir), "q"), "mode=0755,uid=10002,gid=10002")
			s.dir = memMount(t, "tmpfs", filepath.Join(q, "ov"), "mode=0700")
			return s.filesFlags(), nil
		}, []string{"/q\", a directory above it, is owned by uid 10002"}},
		{"DirUnderADirectoryOfTheAppsUser", func(t *testing.T, s *sfSetup) ([]string, []string) {
			q := memMount(t, "tmpfs", filepath.Join(filepath.Dir(s.dir), "q"), "mode=0755,uid=1001,gid=1001")
			s.dir = filepath.Join(q, "ov")
			if err := os.Mkdir(s.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			return s.filesFlags("--user", "1001:1001"), nil
		}, []string{"/q\", a directory above it, is owned by uid 1001, not by root"}},
		{"DirUnderADirectoryOthersCanWrite", func(t *testing.T, s *sfSetup) ([]string, []string) {
			q := memMount(t, "tmpfs", filepath.Join(filepath.Dir(s.dir), "q"), "mode=0777")
			s.dir = filepath.Join(q, "ov")
			if err := os.Mkdir(s.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			return s.filesFlags(), nil
		}, []string{"/q\", a directory above it, is writable by group or others and not sticky (mode 0777)", "chmod go-w"}},
		{"DirNotEmpty", func(t *testing.T, s *sfSetup) ([]string, []string) {
			memMount(t, "tmpfs", s.dir, "mode=0700")
			os.WriteFile(filepath.Join(s.dir, "config.yaml"), []byte("x"), 0o644)
			return s.filesFlags(), nil
		}, []string{"is not empty", `"config.yaml"`}},
		{"InheritedNAME_FILE", func(t *testing.T, s *sfSetup) ([]string, []string) {
			memMount(t, "tmpfs", s.dir, "mode=0700")
			return s.filesFlags(), []string{"DB_PASSWORD_FILE=/run/secrets/db"}
		}, []string{"already sets DB_PASSWORD_FILE", "--preserve-env"}},
		{"InheritedNAME_FILEForAMemfd", func(t *testing.T, s *sfSetup) ([]string, []string) {
			return s.memfdFlags(), []string{"API_TOKEN_FILE="}
		}, []string{"already sets API_TOKEN_FILE", "as a memfd"}},
		{"SecretNamedLikeAnotherSecretsFile", func(t *testing.T, s *sfSetup) ([]string, []string) {
			memMount(t, "tmpfs", s.dir, "mode=0700")
			forged := withSecret(t, s.fx.vaultJSON, "web", s.fx.web, "SHARED_FILE", "ovsec-x")
			if err := os.WriteFile(s.vault, forged, 0o600); err != nil {
				t.Fatal(err)
			}
			return s.filesFlags(), nil
		}, []string{"secret SHARED as a file is given to the app as SHARED_FILE"}},
		{"NoCapDacOverrideForPID1sCleanup", func(t *testing.T, s *sfSetup) ([]string, []string) {
			memMount(t, "tmpfs", s.dir, "mode=0700")
			return s.filesFlags("--user", "1001:1001"), nil
		}, []string{"lacks CAP_DAC_OVERRIDE", "--secrets-as memfd"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSFSetup(t, "")
			flags, extra := c.setup(t, s)
			before := dirEntries(t, s.dir)
			env := append([]string{"PATH=/usr/bin:/bin"}, extra...)
			var r secretsResult
			if c.name == "NoCapDacOverrideForPID1sCleanup" {
				// As root whose bounding set lacks CAP_DAC_OVERRIDE:
				// after execve its permitted set lacks it too.
				r = runOvInitUnder(t, []string{"setpriv", "--bounding-set=-dac_override", "--", ovInit}, env, withApp(flags, s.touchApp()...)...)
			} else {
				r = runSecrets(t, env, withApp(flags, s.touchApp()...)...)
			}
			assertRefused(t, r, c.want...)
			s.assertAppNeverStarted(t)
			if after := dirEntries(t, s.dir); !slices.Equal(before, after) {
				t.Errorf("the secrets dir held %q, and %q after the refusal", before, after)
			}
		})
	}
}

// Under a sticky directory (like /tmp) another user can rename only what
// it owns: the swap of the finding is tried, as uid 10002, while the app
// runs, fails, and the app reads the vault's value.
func TestSecretsDirUnderAStickyDirectoryCannotBeSwapped(t *testing.T) {
	s := newSFSetup(t, "")
	q := memMount(t, "tmpfs", filepath.Join(filepath.Dir(s.dir), "q"), "mode=1777")
	s.dir = filepath.Join(q, "ov")
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	goFile := filepath.Join(filepath.Dir(q), "go")
	p := pid1(t, withApp(s.filesFlags("--user", "1001:1001"), "/bin/sh", "-c",
		`echo ready; while [ ! -e "$1" ]; do sleep 0.05; done; /usr/bin/sha256sum < "$DB_PASSWORD_FILE"`, "sh", goFile)...)
	p.expect("ready", 5*time.Second)
	if got := dirEntries(t, s.dir); !slices.Equal(got, allWebSecrets) {
		t.Fatalf("control: while the app runs the secrets dir holds %q, want %q", got, allWebSecrets)
	}
	swap := exec.Command("/bin/sh", "-c", `cd "$1" && mv ov ov.real && mkdir ov && printf evil > ov/DB_PASSWORD`, "sh", q)
	swap.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 10002, Gid: 10002}}
	if out, err := swap.CombinedOutput(); err == nil {
		t.Errorf("uid 10002 swapped the secrets dir under a sticky directory: %s", out)
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	line := p.expect("", 5*time.Second)
	if want := sum(webSecrets["DB_PASSWORD"]); !strings.HasPrefix(line, want) {
		t.Errorf("the app read a file whose sha256 is %q, want the vault's %s", line, want)
	}
	if code, _ := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit %d; stderr %s", code, p.stderr)
	}
	assertEmpty(t, s.dir, "after the app exited")
	if _, err := os.Lstat(filepath.Join(q, "ov.real")); err == nil {
		t.Error("ov.real exists: the secrets dir was renamed")
	}
}

// The app can set the sticky bit on its own directory; a PID 1 without
// CAP_FOWNER then cannot remove the files from it. The next start takes
// the directory (sticky, but nobody else can write it: not shared),
// replaces the files and clears the bit, rather than refusing every start
// from then on (a crash loop on Kubernetes).
func TestSecretFilesStickyBitOfTheAppDoesNotBlockTheNextStart(t *testing.T) {
	s := newSFSetup(t, "mode=0700")
	env := []string{"PATH=/usr/bin:/bin"}
	noFowner := []string{"setpriv", "--bounding-set=-fowner", "--", ovInit}
	r := runOvInitUnder(t, noFowner, env, withApp(s.filesFlags("--user", "1001:1001"), "/bin/sh", "-c", `chmod 1500 "${DB_PASSWORD_FILE%/*}"`)...)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "has the sticky bit (mode 1500)") || !strings.Contains(r.stderr, "CAP_FOWNER") {
		t.Errorf("stderr %q, want the clean-up's failure explained", r.stderr)
	}
	if got := dirEntries(t, s.dir); !slices.Equal(got, allWebSecrets) {
		t.Fatalf("control: PID 1 without CAP_FOWNER removed the files from the sticky directory (%q): this proves nothing", got)
	}
	r = runOvInitUnder(t, noFowner, env, withApp(s.filesFlags("--user", "1001:1001"), s.app, "files")...)
	if r.code != 0 {
		t.Fatalf("the next start: exit %d; stderr %s", r.code, r.stderr)
	}
	rep := parseFiles(t, r.stdout)
	assertDelivered(t, rep, allWebSecrets...)
	if f := rep.Files["DB_PASSWORD_FILE"]; f.DirMode != "0500" {
		t.Errorf("the next start left the directory mode %s, want 0500 (the sticky bit cleared)", f.DirMode)
	}
	assertEmpty(t, s.dir, "after the next start's app exited")
}

// runOvInitUnder is runSecrets with ov-init started through wrapper (whose
// last word is ov-init), as PID 1 of a new PID namespace.
func runOvInitUnder(t *testing.T, wrapper, env []string, args ...string) secretsResult {
	t.Helper()
	cmd := exec.Command(wrapper[0], append(wrapper[1:], args...)...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running %q: %v", wrapper, err)
		}
	}
	r := secretsResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	assertNoLeak(t, "stderr", r.stderr)
	return r
}

// Usage errors (2): the app never starts.
func TestSecretFilesUsageErrors(t *testing.T) {
	s := newSFSetup(t, "mode=0700")
	for _, c := range []struct {
		name string
		args []string
		env  []string
	}{
		{"SecretsAsWithoutApp", []string{"--secrets-as", "files"}, nil},
		{"OVSecretsDirWithoutApp", nil, []string{"OV_SECRETS_DIR=/run/ov"}},
		{"UnknownSecretsAs", s.flags("web", s.webKey, "--secrets-as", "file"), nil},
		{"RelativeSecretsDir", s.flags("web", s.webKey, "--secrets-as", "files", "--secrets-dir", "run/ov"), nil},
		{"SecretsDirWithoutFiles", s.flags("web", s.webKey, "--secrets-as", "memfd", "--secrets-dir", s.dir), nil},
		{"UnknownHowOfOneSecret", s.flags("web", s.webKey, "--secrets", "DB_PASSWORD:files"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s.assertUsageError(t, c.env, c.args)
		})
	}
}

// The files go when the app exits, however it ends; the controls show the
// files were there while it ran, and that a SIGKILL of PID 1 (which no
// process can handle) leaves them, so the checks can see a failure.
func TestSecretFilesAreRemovedWhenTheAppEnds(t *testing.T) {
	present := func(t *testing.T, s *sfSetup) {
		t.Helper()
		if got := dirEntries(t, s.dir); !slices.Equal(got, allWebSecrets) {
			t.Fatalf("control: while the app runs the secrets dir holds %q, want %q", got, allWebSecrets)
		}
	}
	t.Run("AppExits", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		delivered(t, runSecrets(t, nil, withApp(s.filesFlags(), s.app, "files")...))
		assertEmpty(t, s.dir, "after the app exited 0")
	})
	t.Run("AppFails", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		r := runSecrets(t, nil, withApp(s.filesFlags("--user", "1001:1001"), s.app, "exit", "3")...)
		if r.code != 3 {
			t.Fatalf("exit %d, want 3; stderr %s", r.code, r.stderr)
		}
		assertEmpty(t, s.dir, "after the app exited 3")
	})
	t.Run("SIGTERMToPID1", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		p := pid1(t, withApp(s.filesFlags("--user", "1001:1001"), s.app, "files", "sleep")...)
		p.expect("ready", 5*time.Second)
		present(t, s)
		p.signal(syscall.SIGTERM)
		if code, _ := p.wait(5 * time.Second); code != 143 {
			t.Errorf("exit %d, want 143", code)
		}
		assertEmpty(t, s.dir, "after SIGTERM to PID 1")
	})
	t.Run("GraceKill", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		// The signals mode catches TERM and carries on: only the grace's
		// SIGKILL ends it.
		p := pid1(t, withApp(s.filesFlags("--grace", "300ms"), s.app, "signals")...)
		p.expect("ready", 5*time.Second)
		present(t, s)
		p.signal(syscall.SIGTERM)
		p.expect("SIGTERM|", 2*time.Second)
		if code, _ := p.wait(5 * time.Second); code != 137 {
			t.Errorf("exit %d, want 137 (the grace's SIGKILL)", code)
		}
		assertEmpty(t, s.dir, "after the grace's SIGKILL")
	})
	t.Run("AppCrashes", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		r := runSecrets(t, nil, withApp(s.filesFlags(), s.app, "die", "SEGV")...)
		if r.code != 128+int(syscall.SIGSEGV) {
			t.Fatalf("exit %d, want 139; stderr %s", r.code, r.stderr)
		}
		assertEmpty(t, s.dir, "after the app's crash")
	})
	t.Run("AtOnceWhileLeftoversStillRun", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		record := filepath.Join(s.dir, "..", "daemon.log")
		// The app leaves a TERM-ignoring daemon and exits; PID 1 waits up
		// to the grace for it, with the files already gone.
		p := pid1(t, withApp(s.filesFlags("--grace", "3s"), s.app, "leftover", "0", record)...)
		p.expect("daemon ", 5*time.Second)
		deadline := time.Now().Add(2 * time.Second)
		for len(dirEntries(t, s.dir)) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case <-p.done:
			t.Fatal("ov-init ended before the grace: the leftover was not waited for, so this proves nothing")
		default:
		}
		assertEmpty(t, s.dir, "once the app exited, its daemon still running")
		if code, elapsed := p.wait(10 * time.Second); code != 0 || elapsed < 2*time.Second {
			t.Errorf("exit %d after %v, want 0 after the grace", code, elapsed)
		}
	})
	t.Run("NegativeControlSIGKILLOfPID1LeavesThemUntilTheNextStart", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		p := pid1(t, withApp(s.filesFlags("--user", "1001:1001"), s.app, "files", "sleep")...)
		p.expect("ready", 5*time.Second)
		p.cmd.Process.Kill()
		<-p.done
		if got := dirEntries(t, s.dir); !slices.Equal(got, allWebSecrets) {
			t.Fatalf("after SIGKILL of PID 1 the dir holds %q: the checks above could not see files left behind", got)
		}
		// The next start (a Kubernetes emptyDir outlives the container)
		// takes the files an earlier ov-init left for this app, and
		// replaces them.
		r := runSecrets(t, nil, withApp(s.filesFlags("--user", "1001:1001"), s.app, "files")...)
		if r.code != 0 {
			t.Fatalf("restart over the leftovers: exit %d; stderr %s", r.code, r.stderr)
		}
		assertDelivered(t, parseFiles(t, r.stdout), allWebSecrets...)
		assertEmpty(t, s.dir, "after the restart")
	})
	t.Run("CommandNotFoundWritesNothing", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		r := runSecrets(t, nil, withApp(s.filesFlags(), "no-such-command-ov")...)
		if r.code != 127 {
			t.Fatalf("exit %d, want 127; stderr %s", r.code, r.stderr)
		}
		assertEmpty(t, s.dir, "after a missing command")
	})
}

// What README documents about memfds and children: a child the app
// starts inherits them (they cannot be close-on-exec for the app's own
// execve) and reads the secret through the same NAME_FILE, unless the app
// marks them close-on-exec (or closes them) first. Files: any process of
// the app's uid reads them.
func TestMemfdsReachTheAppsChildrenUnlessTheAppClosesThem(t *testing.T) {
	s := newSFSetup(t, "")
	env := []string{"PATH=/usr/bin:/bin"}
	delivered(t, runSecrets(t, env, withApp(s.memfdFlags("--user", "1001:1001"), s.app, "spawn", s.app, "files")...))

	r := runSecrets(t, env, withApp(s.memfdFlags("--user", "1001:1001"), s.app, "spawn", "--cloexec-secrets", s.app, "files")...)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	files := parseFiles(t, r.stdout).Files
	for _, name := range allWebSecrets {
		if f := files[name+"_FILE"]; f.Err == "" || f.Size != 0 {
			t.Errorf("the app marked its memfds close-on-exec, yet its child read %s (%d bytes)", name, f.Size)
		}
	}
	// A shell, as most apps start children, passes them on too.
	r = runSecrets(t, env, withApp(s.memfdFlags("--secrets", "DB_PASSWORD"), "/bin/sh", "-c", `/bin/cat "$DB_PASSWORD_FILE" | /usr/bin/sha256sum`)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, sum(webSecrets["DB_PASSWORD"])) {
		t.Errorf("a shell's child: exit %d, stdout %q; want the value's sha256 (the child reads it)", r.code, r.stdout)
	}
}

// Per-secret choice through the allow-list: DB_PASSWORD in the
// environment, MULTILINE as a file, API_TOKEN as a memfd.
func TestMixedDeliveryThroughTheAllowList(t *testing.T) {
	s := newSFSetup(t, "mode=0700")
	flags := s.flags("web", s.webKey, "--secrets", "DB_PASSWORD,MULTILINE:file,API_TOKEN:memfd", "--secrets-dir", s.dir)
	r := runSecrets(t, nil, withApp(flags, s.app, "files")...)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	rep := parseFiles(t, r.stdout)
	if !slices.Contains(rep.Env, "DB_PASSWORD="+webSecrets["DB_PASSWORD"]) {
		t.Errorf("DB_PASSWORD is not in the app's environment: %q", rep.Env)
	}
	for _, kv := range rep.Env {
		if strings.HasPrefix(kv, "MULTILINE=") || strings.HasPrefix(kv, "API_TOKEN=") || strings.HasPrefix(kv, "SHARED") || strings.HasPrefix(kv, "DB_PASSWORD_FILE=") {
			t.Errorf("the app's environment holds %q", kv)
		}
	}
	f := rep.Files["MULTILINE_FILE"]
	if f.Path != filepath.Join(s.dir, "MULTILINE") || f.SHA256 != sum(webSecrets["MULTILINE"]) {
		t.Errorf("MULTILINE_FILE: %+v", f)
	}
	f = rep.Files["API_TOKEN_FILE"]
	if !strings.HasPrefix(f.Link, "/memfd:ov:API_TOKEN") || f.SHA256 != sum(webSecrets["API_TOKEN"]) {
		t.Errorf("API_TOKEN_FILE: %+v", f)
	}
	assertEmpty(t, s.dir, "after the app exited")
}

// The recipes' directories: a Kubernetes emptyDir (medium: Memory) is a
// root-owned 0777 tmpfs; systemd's RuntimeDirectory= is owned by the
// unit's User=, as whom `ov run` then runs, not root; --preserve-env keeps
// an inherited NAME_FILE.
func TestSecretsDirRecipes(t *testing.T) {
	t.Run("EmptyDirWithUser", func(t *testing.T) {
		s := newSFSetup(t, "mode=0777")
		rep := delivered(t, runSecrets(t, nil, withApp(s.filesFlags("--user", "1001:1001"), s.app, "files")...))
		if f := rep.Files["DB_PASSWORD_FILE"]; f.DirMode != "0500" || f.DirUID != 1001 || f.UID != 1001 {
			t.Errorf("emptyDir taken as %+v, want dir 0500 and files of uid 1001", f)
		}
	})
	t.Run("RuntimeDirectoryOfTheServiceUser", func(t *testing.T) {
		s := newSFSetup(t, "mode=0755,uid=1001,gid=1001")
		// ov-init as uid 1001: its key and vault are that user's.
		key := filepath.Join(s.dir, "..", "svc.kek")
		putMachineKey(t, key, s.fx.web)
		if err := os.Chown(key, 1001, 1001); err != nil {
			t.Fatal(err)
		}
		os.Chmod(s.vault, 0o644)
		flags := []string{"--vault", s.vault, "--machine-key", key, "--app", "web", "--secrets-as", "files", "--secrets-dir", s.dir}
		rep := delivered(t, runOvInit(t, ovInitForAnyone(t, s), &syscall.Credential{Uid: 1001, Gid: 1001}, []string{"PATH=/usr/bin:/bin"}, withApp(flags, s.app, "files")...))
		if f := rep.Files["DB_PASSWORD_FILE"]; f.UID != 1001 || f.Mode != "0400" || f.DirMode != "0500" {
			t.Errorf("%+v, want 0400 files of uid 1001 in a 0500 dir", f)
		}
		assertEmpty(t, s.dir, "after the service's app exited")
	})
	t.Run("PreserveEnvKeepsAnInheritedNAME_FILE", func(t *testing.T) {
		s := newSFSetup(t, "mode=0700")
		env := []string{"PATH=/usr/bin:/bin", "DB_PASSWORD_FILE=/run/secrets/db", "SHARED=inherited"}
		r := runSecrets(t, env, withApp(s.filesFlags("--preserve-env"), s.app, "files")...)
		if r.code != 0 {
			t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
		}
		rep := parseFiles(t, r.stdout)
		assertDelivered(t, rep, "API_TOKEN", "MULTILINE")
		if f := rep.Files["DB_PASSWORD_FILE"]; f.Path != "/run/secrets/db" {
			t.Errorf("DB_PASSWORD_FILE=%q, want the inherited one kept", f.Path)
		}
		if !slices.Contains(rep.Env, "SHARED=inherited") || rep.Files["SHARED_FILE"].Path != "" {
			t.Errorf("SHARED: want the inherited value and no file: %q", rep.Env)
		}
	})
}

// ovInitForAnyone copies ov-init where uid 1001 can run it.
func ovInitForAnyone(t *testing.T, s *sfSetup) string {
	t.Helper()
	path := filepath.Join(s.secretsSetup.dir, "ov-init")
	if _, err := os.Stat(path); err != nil {
		copyExecutable(t, ovInit, path)
	}
	return path
}

// `ov run` takes the same flags: it is ov-init.
func TestOvRunDeliversSecretsAsFiles(t *testing.T) {
	s := newSFSetup(t, "mode=0700")
	cmd := exec.Command(ovBin, append([]string{"run"}, withApp(s.filesFlags("--user", "1001:1001"), s.app, "files")...)...)
	cmd.SysProcAttr = newPIDNamespace()
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ov run: %v; stderr %s", err, stderr.String())
	}
	assertNoLeak(t, "ov run's stderr", stderr.String())
	rep := parseFiles(t, stdout.String())
	assertDelivered(t, rep, allWebSecrets...)
	if f := rep.Files["API_TOKEN_FILE"]; f.UID != 1001 || f.FS != "tmpfs" {
		t.Errorf("ov run: %+v", f)
	}
	assertEmpty(t, s.dir, "after ov run")
}
