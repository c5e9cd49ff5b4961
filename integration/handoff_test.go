package integration

// The exec-stage hand-off and what it must never do: mangle bytes on their
// way from ov-init's command line to the app, hide a configuration failure
// behind --remap-exit, let a secret choose the program, or let the app win
// back the privileges --user took.

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// oddArgs are arguments that text encodings get wrong: bytes that are not
// UTF-8, an empty argument, a newline, a lone continuation byte.
var oddArgs = []string{"plain", "k\xff", "a\xfe\x80b", "\x80", "", "line\nbreak", "ü", "--", "-e"}

func hexLines(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(hex.EncodeToString([]byte(a)) + "\n")
	}
	return b.String()
}

func TestAppArgvArrivesByteForByteInBothModes(t *testing.T) {
	s := newSecretsSetup(t)
	want := hexLines(oddArgs)
	for _, mode := range []struct {
		name  string
		flags []string
	}{
		{"plain", nil},
		{"secrets", s.flags("web", s.webKey)},
	} {
		t.Run(mode.name, func(t *testing.T) {
			r := runSecrets(t, nil, withApp(mode.flags, append([]string{helper, "argv-hex"}, oddArgs...)...)...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
			}
			if r.stdout != want {
				t.Errorf("app's argv in hex:\n%s\nwant:\n%s", r.stdout, want)
			}
		})
	}
}

// A path byte that is not UTF-8 must name that file, not the one whose name
// has U+FFFD in its place. The decoy there is the unscoped root key, which
// would open web; the real file holds api's key, which must not.
func TestKeyAndVaultPathsAreBytes(t *testing.T) {
	s := newSecretsSetup(t)
	real, decoy := filepath.Join(s.dir, "k\xff"), filepath.Join(s.dir, "k\uFFFD")
	for _, d := range []string{real, decoy} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	putMachineKey(t, filepath.Join(real, "m.kek"), s.fx.api)
	putMachineKey(t, filepath.Join(decoy, "m.kek"), s.fx.root)
	key := filepath.Join(real, "m.kek")

	r := runSecrets(t, nil, withApp(s.flags("web", key), s.touchApp()...)...)
	assertRefused(t, r, `"api"`)
	s.assertAppNeverStarted(t)

	env := append(os.Environ(), "OV_MACHINE_KEY="+key, "OV_APP=web", "OV_VAULT="+s.vault)
	r = runSecrets(t, env, withApp(nil, s.touchApp()...)...)
	assertRefused(t, r, `"api"`)
	s.assertAppNeverStarted(t)

	// The vault's path too: the decoy there is not a vault at all.
	vaultPath := filepath.Join(s.dir, "v\xff.json")
	if err := os.WriteFile(vaultPath, s.fx.vaultJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "v\uFFFD.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runSecrets(t, nil, "--vault", vaultPath, "--machine-key", s.webKey, "--app", "web", "--", helper, "env")
	if r.code != 0 {
		t.Fatalf("vault at a non-UTF-8 path: exit %d; stderr: %s", r.code, r.stderr)
	}
	assertSecrets(t, helperEnv(t, r.stdout), allWebSecrets...)
}

// The app's argv is the stage's argv, not one string inside it: together it
// may exceed one execve string (128 KiB), as in plain mode.
func TestSecretsModeArgvLargerThanOneExecveString(t *testing.T) {
	s := newSecretsSetup(t)
	big := strings.Repeat("x", 100<<10)
	r := runSecrets(t, nil, withApp(s.flags("web", s.webKey), "/bin/sh", "-c", `echo "$#"`, "sh", big, big, big)...)
	if r.code != 0 || r.stdout != "3\n" {
		t.Errorf("exit %d, stdout %q, want 0 and 3 arguments; stderr: %s", r.code, r.stdout, r.stderr)
	}
}

// --remap-exit is for the app's status. A failure of the exec stage, whose
// status may be the very code remapped, passes through unchanged.
func TestRemapExitNeverHidesAFailureBeforeTheApp(t *testing.T) {
	s := newSecretsSetup(t)
	r := runSecrets(t, nil, withApp(s.flags("web", filepath.Join(s.dir, "missing.kek"), "-e", "78"), s.touchApp()...)...)
	assertRefused(t, r, "missing.kek")
	s.assertAppNeverStarted(t)

	// A usage error is ov-init's 2, never the app's to remap.
	r = runSecrets(t, nil, withApp([]string{"-e", "2", "--app", ""}, s.touchApp()...)...)
	if r.code != 2 {
		t.Errorf("usage error with -e 2: exit %d, want 2; stderr: %q", r.code, r.stderr)
	}
	s.assertAppNeverStarted(t)

	r = runSecrets(t, nil, withApp(s.flags("web", s.webKey, "-e", "127"), "no-such-command-ov")...)
	if r.code != 127 || !strings.Contains(r.stderr, "no-such-command-ov") {
		t.Errorf("missing command with -e 127: exit %d, want 127; stderr: %q", r.code, r.stderr)
	}

	// The command is found, the stage says the app starts, and execve
	// fails (a script on a noexec file system): the failure comes after
	// that notice, and is still ov-init's own 126, never remapped to 0.
	noexec := filepath.Join(s.dir, "noexec")
	if err := os.Mkdir(noexec, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", noexec, "tmpfs", syscall.MS_NOEXEC, "size=64k"); err != nil {
		t.Fatalf("mounting a noexec tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(noexec, syscall.MNT_DETACH) })
	app := filepath.Join(noexec, "app")
	if err := os.WriteFile(app, []byte("#!/bin/sh\ntouch "+s.marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range [][]string{nil, {"run"}} { // ov-init, ov run
		bin := ovInit
		if prefix != nil {
			bin = ovBin
		}
		r = runOvInit(t, bin, nil, nil, slices.Concat(prefix, withApp(s.flags("web", s.webKey, "-e", "126"), app))...)
		if r.code != 126 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "permission denied") {
			t.Errorf("%s %v: execve failing on a noexec file system with -e 126: exit %d, stderr %q; want 126 and one line saying permission denied",
				filepath.Base(bin), prefix, r.code, r.stderr)
		}
		s.assertAppNeverStarted(t)
	}

	// Control: the app's own status is remapped.
	r = runSecrets(t, nil, withApp(s.flags("web", s.webKey, "-e", "78"), helper, "exit", "78")...)
	if r.code != 0 {
		t.Errorf("app exiting 78 with -e 78: exit %d, want 0; stderr: %s", r.code, r.stderr)
	}
}

// withSecret returns vaultJSON with one more secret sealed into app's
// section under the scoped app key, its MAC recomputed: what an older or
// hostile writer holding that key could produce (SPEC.md sections 2 and 3).
// Only a scoped key opens it: the table of apps no longer matches.
func withSecret(t *testing.T, vaultJSON []byte, app string, appKey []byte, name, value string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(vaultJSON, &doc); err != nil {
		t.Fatal(err)
	}
	sec := doc["apps"].(map[string]any)[app].(map[string]any)
	epoch := uint32(sec["epoch"].(float64))
	key := func(info string) []byte {
		k, err := hkdf.Key(sha256.New, appKey, nil, info, 32)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	lp := func(b []byte, s []byte) []byte {
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
	}
	aad := lp(nil, []byte("ov/v1/value"))
	aad = binary.BigEndian.AppendUint32(aad, 1)
	aad = lp(aad, []byte(app))
	aad = binary.BigEndian.AppendUint32(aad, epoch)
	aad = lp(aad, []byte(name))
	aead, err := chacha20poly1305.NewX(key("ov/v1/value-key"))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, []byte(value), aad)

	secrets := sec["secrets"].(map[string]any)
	secrets[name] = base64.StdEncoding.EncodeToString(sealed)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range secrets {
			if !yield(n) {
				return
			}
		}
	})
	in := lp(nil, []byte("ov/v1/entries"))
	in = binary.BigEndian.AppendUint32(in, 1)
	in = lp(in, []byte(app))
	in = binary.BigEndian.AppendUint32(in, epoch)
	in = binary.BigEndian.AppendUint32(in, uint32(len(names)))
	for _, n := range names {
		raw, err := base64.StdEncoding.DecodeString(secrets[n].(string))
		if err != nil {
			t.Fatal(err)
		}
		in = lp(lp(in, []byte(n)), raw)
	}
	m := hmac.New(sha256.New, key("ov/v1/mac-key"))
	m.Write(in)
	sec["mac"] = base64.StdEncoding.EncodeToString(m.Sum(nil))
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A secret must not choose what runs: neither PATH (which program) nor the
// loader's or a shell's hooks (which code). The vault here is what a
// hostile or older writer holding web's key would make; ov-init refuses it
// at injection, with 78 and before the app starts.
func TestSecretThatWouldChooseTheProgramIsRefused(t *testing.T) {
	s := newSecretsSetup(t)
	// What PATH would pick if it were honoured: a "true" that marks.
	evil := filepath.Join(s.dir, "evil")
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(evil, "true"), []byte("#!/bin/sh\ntouch "+s.marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, value string }{
		{"PATH", evil},
		{"LD_PRELOAD", filepath.Join(evil, "x.so")},
		{"BASH_ENV", filepath.Join(evil, "true")},
		{"PYTHONPATH", evil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(s.vault, withSecret(t, s.fx.vaultJSON, "web", s.fx.web, c.name, c.value), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"PATH=/usr/bin:/bin"}
			r := runSecrets(t, env, withApp(s.flags("web", s.webKey), "true")...)
			assertRefused(t, r, c.name, "ov secret rm "+c.name)
			s.assertAppNeverStarted(t)
		})
	}

	// Control: the same forgery with an ordinary name opens, so the refusal
	// above is the name's.
	if err := os.WriteFile(s.vault, withSecret(t, s.fx.vaultJSON, "web", s.fx.web, "HARMLESS", "ok"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runSecrets(t, []string{"PATH=/usr/bin:/bin"}, withApp(s.flags("web", s.webKey), helper, "env")...)
	if r.code != 0 || helperEnv(t, r.stdout)["HARMLESS"] != "ok" {
		t.Errorf("control: exit %d; stderr: %s", r.code, r.stderr)
	}
}

// After --user the app must not win root back through a setuid binary: it
// starts with no_new_privs and (not being root) an empty bounding set,
// unless --allow-new-privs says otherwise.
func TestUserAppCannotRegainPrivileges(t *testing.T) {
	skipEmulated(t, "Debian's binfmt_misc entry for qemu-aarch64 has no C flag, so the kernel ignores the setuid bit of an arm64 binary and the control (--allow-new-privs) cannot regain root")
	s := newSecretsSetup(t)
	app := unprivilegedHelper(t, s)
	// A setuid-root copy of the helper: `status` prints the real and
	// effective uids the kernel gave it.
	suid := filepath.Join(s.dir, "suid-helper")
	b, err := os.ReadFile(app)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(suid, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/bin:/bin"}
	modes := []struct {
		name  string
		flags []string
	}{
		{"plain", nil},
		{"secrets", s.flags("web", s.webKey)},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			// The control first: without no_new_privs the setuid bit
			// works here (the file system is not nosuid), so the test
			// below can tell.
			r := runSecrets(t, env, withApp(append(slices.Clone(mode.flags), "--user", "65534", "--allow-new-privs"), suid, "status")...)
			if r.code != 0 {
				t.Fatalf("--allow-new-privs: exit %d; stderr: %s", r.code, r.stderr)
			}
			for _, want := range []string{"NoNewPrivs: 0\n", "Uid: 65534 0 0 0\n"} {
				if !strings.Contains(r.stdout, want) {
					t.Fatalf("--allow-new-privs (control): status lacks %q:\n%s", want, r.stdout)
				}
			}
			if strings.Contains(r.stdout, "CapBnd: 0000000000000000\n") {
				t.Errorf("--allow-new-privs emptied the bounding set:\n%s", r.stdout)
			}

			r = runSecrets(t, env, withApp(append(slices.Clone(mode.flags), "--user", "65534"), suid, "status")...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
			}
			for _, want := range []string{"NoNewPrivs: 1\n", "Uid: 65534 65534 65534 65534\n", "CapBnd: 0000000000000000\n", "CapEff: 0000000000000000\n"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("--user 65534: status lacks %q:\n%s", want, r.stdout)
				}
			}

			// An app that runs as root keeps its capabilities: emptying
			// the bounding set would strip them at execve.
			r = runSecrets(t, env, withApp(append(slices.Clone(mode.flags), "--user", "0:0"), app, "status")...)
			if r.code != 0 {
				t.Fatalf("--user 0:0: exit %d; stderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "NoNewPrivs: 1\n") || strings.Contains(r.stdout, "CapBnd: 0000000000000000\n") {
				t.Errorf("--user 0:0: want no_new_privs and the bounding set kept:\n%s", r.stdout)
			}
		})
	}
}

// With stderr a pipe nobody reads, a write raises SIGPIPE. The exec stage
// must still tell PID 1 its status: a stage that died of its own error
// message read as "the app ran and was killed by SIGPIPE", which -e 141
// turned into 0.
func TestClosedStderrNeverHidesAFailureBeforeTheApp(t *testing.T) {
	s := newSecretsSetup(t)
	run := func(args ...string) int {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		defer w.Close()
		cmd := exec.Command(ovInit, args...)
		cmd.Stderr = w
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("ov-init %q still running after 5s", args)
		}
		return cmd.ProcessState.ExitCode()
	}
	missing := filepath.Join(s.dir, "missing.kek")
	if code := run(withApp(s.flags("web", missing, "-e", "141"), s.touchApp()...)...); code != 78 {
		t.Errorf("missing key, stderr closed, -e 141: exit %d, want 78", code)
	}
	s.assertAppNeverStarted(t)
	// At -v the stage logs on its way to the app: that must not kill it.
	if code := run(withApp(s.flags("web", s.webKey, "-v", "-e", "141"), s.touchApp()...)...); code != 0 {
		t.Errorf("good key, stderr closed, -v: exit %d, want 0 from the app", code)
	}
	if _, err := os.Stat(s.marker); err != nil {
		t.Errorf("the app did not run with stderr closed at -v: %v", err)
	}
}

// DESIGN.md: ov-init does not change RLIMIT_CORE, because the app inherits
// it. The app sees the limit ov-init was started with, in both modes (the
// exec stage marks itself non-dumpable; that must not touch the limit).
func TestAppInheritsTheCoreLimit(t *testing.T) {
	s := newSecretsSetup(t)
	for _, mode := range []struct {
		name  string
		flags []string
	}{
		{"plain", nil},
		{"secrets", s.flags("web", s.webKey)},
	} {
		args := slices.Concat([]string{"--core=12345:67890", ovInit}, withApp(mode.flags, "/bin/sh", "-c", `grep "^Max core file size" /proc/self/limits`))
		cmd := exec.Command("prlimit", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", mode.name, err)
		}
		if f := strings.Fields(string(out)); len(f) < 6 || f[4] != "12345" || f[5] != "67890" {
			t.Errorf("%s: the app's core limit is %q, want 12345 67890 as ov-init was given", mode.name, out)
		}
	}
}

// With stdin, stdout and stderr all closed, a failure before the app is
// still ov-init's status, whatever -e says.
func TestAllStreamsClosedNeverHideAFailureBeforeTheApp(t *testing.T) {
	s := newSecretsSetup(t)
	args := withApp(s.flags("web", filepath.Join(s.dir, "missing.kek"), "-e", "78", "-e", "141"), s.touchApp()...)
	cmd := exec.Command("/bin/sh", append([]string{"-c", `"$@" <&- >&- 2>&-; echo "exit $?"`, "sh", ovInit}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "exit 78\n" {
		t.Errorf("missing key with every stream closed: %q, want exit 78", out)
	}
	s.assertAppNeverStarted(t)
}
