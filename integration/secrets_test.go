package integration

// End-to-end tests of secrets mode: ov-init as PID 1 of a fresh PID
// namespace reads a machine key, opens a vault made here with the vault
// package, and hands the app its secrets, or refuses with exit status 78
// and one line on stderr before the app starts.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/vault"
)

// leakMark is in every secret value and nowhere else in these tests, so a
// leak of any part of a value is found by looking for it.
const leakMark = "ovsec-"

// webSecrets are the secrets of app "web" in the fixture vault. SHARED also
// comes inherited in some tests; MULTILINE holds what a careless
// environment or log writer would mangle.
var webSecrets = map[string]string{
	"DB_PASSWORD": "ovsec-db-7Qx2Lm9PzK",
	"API_TOKEN":   "ovsec-api-W4nB8vR1tY",
	"MULTILINE":   "ovsec-multi line one\nline two ✓ $HOME 'q' \"dq\" = &",
	"SHARED":      "ovsec-shared-from-the-vault",
}

// apiSecrets are the secrets of app "api", whose key must not open "web".
var apiSecrets = map[string]string{"TOKEN": "ovsec-api-app-K3jH5dF8"}

// secretsFixture is the vault every test starts from. It is made once per
// test binary: vault.New runs the production Argon2id (about 0.2 s).
type secretsFixture struct {
	vaultJSON []byte // apps web and api, as saved
	rotated   []byte // the same vault after RotateApp(web)
	root      []byte // the root key: the unscoped machine key
	web, api  []byte // the scoped machine keys of web and api (epoch 1)
}

var (
	secretsOnce       sync.Once
	sharedSecrets     *secretsFixture
	secretsFixtureErr error
)

func getSecretsFixture(t *testing.T) *secretsFixture {
	t.Helper()
	secretsOnce.Do(func() { sharedSecrets, secretsFixtureErr = makeSecretsFixture() })
	if secretsFixtureErr != nil {
		t.Fatalf("making the fixture vault: %v", secretsFixtureErr)
	}
	return sharedSecrets
}

func makeSecretsFixture() (*secretsFixture, error) {
	v, root, err := vault.New([]byte("integration master password"))
	if err != nil {
		return nil, err
	}
	defer root.Wipe()
	for app, secrets := range map[string]map[string]string{"web": webSecrets, "api": apiSecrets} {
		if err := v.CreateApp(root, app); err != nil {
			return nil, err
		}
		for name, value := range secrets {
			if err := v.SetSecret(root, app, name, []byte(value)); err != nil {
				return nil, err
			}
		}
	}
	fx := &secretsFixture{root: bytes.Clone(root.Bytes())}
	if fx.vaultJSON, err = v.Marshal(); err != nil {
		return nil, err
	}
	if fx.web, err = v.AppKey(root, "web"); err != nil {
		return nil, err
	}
	if fx.api, err = v.AppKey(root, "api"); err != nil {
		return nil, err
	}
	if err := v.RotateApp(root, "web"); err != nil {
		return nil, err
	}
	if fx.rotated, err = v.Marshal(); err != nil {
		return nil, err
	}
	return fx, nil
}

// secretsSetup is one test's copy of the fixture: the vault and the three
// machine keys as files, and a marker the app creates if it ever starts.
type secretsSetup struct {
	fx      *secretsFixture
	dir     string
	vault   string
	webKey  string
	apiKey  string
	rootKey string
	marker  string
}

func newSecretsSetup(t *testing.T) *secretsSetup {
	t.Helper()
	fx := getSecretsFixture(t)
	dir := t.TempDir()
	s := &secretsSetup{
		fx:      fx,
		dir:     dir,
		vault:   filepath.Join(dir, "vault.json"),
		webKey:  filepath.Join(dir, "web.kek"),
		apiKey:  filepath.Join(dir, "api.kek"),
		rootKey: filepath.Join(dir, "root.kek"),
		marker:  filepath.Join(dir, "app-started"),
	}
	if err := os.WriteFile(s.vault, fx.vaultJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	putMachineKey(t, s.webKey, fx.web)
	putMachineKey(t, s.apiKey, fx.api)
	putMachineKey(t, s.rootKey, fx.root)
	return s
}

// putMachineKey writes key to path as a valid machine key file: mode 0600,
// owned by root.
func putMachineKey(t *testing.T, path string, key []byte) {
	t.Helper()
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
}

// flags are the secrets-mode flags for app with the machine key at key.
func (s *secretsSetup) flags(app, key string, extra ...string) []string {
	return append([]string{"--vault", s.vault, "--machine-key", key, "--app", app}, extra...)
}

// withApp is ov-init's argv: flags, "--", the app's argv.
func withApp(flags []string, app ...string) []string {
	return slices.Concat(flags, []string{"--"}, app)
}

// touchApp is an app that leaves s.marker behind if it ever runs.
func (s *secretsSetup) touchApp() []string {
	return []string{"/bin/sh", "-c", `touch "$1"`, "sh", s.marker}
}

// assertAppNeverStarted fails if the app of touchApp ran.
func (s *secretsSetup) assertAppNeverStarted(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(s.marker); err == nil {
		t.Errorf("the app started although ov-init refused to run it (%s exists)", s.marker)
	}
}

// assertUsageError runs ov-init with flags and touchApp, env after PATH,
// and checks that it is a usage error: exit 2, one line, and the app never
// started.
func (s *secretsSetup) assertUsageError(t *testing.T, env, flags []string) {
	t.Helper()
	r := runSecrets(t, append([]string{"PATH=/usr/bin:/bin"}, env...), withApp(flags, s.touchApp()...)...)
	if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "ov-init: ") {
		t.Errorf("exit %d, stderr %q; want 2 and one line", r.code, r.stderr)
	}
	s.assertAppNeverStarted(t)
}

// secretsResult is one finished run of ov-init.
type secretsResult struct {
	code           int
	stdout, stderr string
}

// runSecrets runs ov-init ARGS as PID 1 of a new PID namespace with
// environment env (the test's own when nil), and fails the test if it runs
// longer than a few seconds: no bad input may hang it. Whatever the app,
// stderr must never hold a secret value.
func runSecrets(t *testing.T, env []string, args ...string) secretsResult {
	t.Helper()
	return runOvInit(t, ovInit, nil, env, args...)
}

// runOvInit is runSecrets for the ov-init binary bin, started as cred
// (from root, so that it can still make the PID namespace) unless cred is
// nil. env reaches execve as it is, duplicates included (os/exec would keep
// only the last of a name, and hide what ov-init does with the others).
func runOvInit(t *testing.T, bin string, cred *syscall.Credential, env []string, args ...string) secretsResult {
	t.Helper()
	who := ""
	if cred != nil {
		who = fmt.Sprintf(" as uid %d", cred.Uid)
	}
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var outs [2]*os.File
	for i := range outs {
		if outs[i], err = os.CreateTemp(t.TempDir(), "out"); err != nil {
			t.Fatal(err)
		}
		defer outs[i].Close()
	}
	p, err := os.StartProcess(bin, append([]string{bin}, args...), &os.ProcAttr{
		Env:   env, // nil: this process's
		Files: []*os.File{stdin, outs[0], outs[1]},
		Sys:   &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Credential: cred},
	})
	if err != nil {
		t.Fatalf("starting ov-init%s: %v", who, err)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(5*time.Second, func() {
		timedOut.Store(true)
		p.Kill() // PID 1 of its namespace: this ends the namespace
	})
	ps, err := p.Wait()
	timer.Stop()
	if err != nil {
		t.Fatal(err)
	}
	stdout, _ := os.ReadFile(outs[0].Name())
	stderr, _ := os.ReadFile(outs[1].Name())
	ws := ps.Sys().(syscall.WaitStatus)
	switch {
	case timedOut.Load():
		t.Fatalf("ov-init %q%s still running after 5s; stderr: %s", args, who, stderr)
	case ws.Signaled():
		t.Fatalf("ov-init was killed by %v; stderr: %s", ws.Signal(), stderr)
	}
	r := secretsResult{code: ws.ExitStatus(), stdout: string(stdout), stderr: string(stderr)}
	assertNoLeak(t, "stderr of ov-init "+strings.Join(args, " "), r.stderr)
	return r
}

func assertRefused(t *testing.T, r secretsResult, want ...string) {
	t.Helper()
	if r.code != 78 {
		t.Errorf("exit %d, want 78; stderr: %q", r.code, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") || !strings.HasPrefix(r.stderr, "ov-init: ") {
		t.Errorf("stderr %q, want exactly one line starting \"ov-init: \"", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not contain %q", r.stderr, w)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing: the app must not run", r.stdout)
	}
}

// assertNoLeak fails if out holds any part of a secret value or any
// machine key of the fixture, raw, in hex or in base64.
func assertNoLeak(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, leakMark) {
		t.Errorf("%s holds a secret value: %q", what, out)
	}
	fx := getSecretsFixture(t)
	for _, key := range [][]byte{fx.root, fx.web, fx.api} {
		for _, enc := range []string{string(key), hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)),
			base64.StdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key)} {
			if strings.Contains(out, enc) {
				t.Errorf("%s holds a machine key: %q", what, out)
			}
		}
	}
}

// helperEnv parses the output of `helper env`.
func helperEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	list := helperEnvList(t, out)
	env := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// assertSecrets checks that env holds exactly the web secrets named (their
// vault values) and none of the others.
func assertSecrets(t *testing.T, env map[string]string, names ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for name, value := range webSecrets {
		got, ok := env[name]
		switch {
		case want[name] && got != value:
			t.Errorf("app's %s is %q (set %v), want the vault's value", name, got, ok)
		case !want[name] && ok:
			t.Errorf("app got %s although it was not asked for", name)
		}
	}
}

func assertNoOVSettings(t *testing.T, env map[string]string) {
	t.Helper()
	for k := range env {
		if strings.HasPrefix(k, "OV_") {
			t.Errorf("app's environment holds ov-init's own setting %s", k)
		}
	}
}

var allWebSecrets = []string{"API_TOKEN", "DB_PASSWORD", "MULTILINE", "SHARED"}

func TestSecretsAreInjectedWithScopedAndUnscopedKey(t *testing.T) {
	s := newSecretsSetup(t)
	for _, c := range []struct{ name, key string }{{"Scoped", s.webKey}, {"Unscoped", s.rootKey}} {
		t.Run(c.name, func(t *testing.T) {
			env := []string{"PATH=/usr/bin:/bin", "KEEP=kept"}
			r := runSecrets(t, env, withApp(s.flags("web", c.key), helper, "env")...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr %q, want nothing without -v", r.stderr)
			}
			got := helperEnv(t, r.stdout)
			assertSecrets(t, got, allWebSecrets...)
			if got["KEEP"] != "kept" || got["PATH"] != "/usr/bin:/bin" {
				t.Errorf("app lost its inherited environment: %q", r.stdout)
			}
			if len(got) != 2+len(webSecrets) {
				t.Errorf("app's environment has %d variables, want the 2 inherited and %d secrets: %q", len(got), len(webSecrets), r.stdout)
			}
		})
	}
}

func TestSecretsModeSettingsFromOVVariables(t *testing.T) {
	s := newSecretsSetup(t)
	app := unprivilegedHelper(t, s)
	env := []string{
		"PATH=/usr/bin:/bin",
		"OV_APP=web",
		"OV_MACHINE_KEY=" + s.webKey,
		"OV_VAULT=" + s.vault,
		"OV_SECRETS=DB_PASSWORD,SHARED",
		"OV_PRESERVE_ENV=1",
		"OV_USER=1001:1001",
		"OV_VERBOSE=0",
		"SHARED=inherited",
	}
	r := runSecrets(t, env, "--", app, "env")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
	}
	got := helperEnv(t, r.stdout)
	assertNoOVSettings(t, got)
	if got["DB_PASSWORD"] != webSecrets["DB_PASSWORD"] {
		t.Errorf("OV_SECRETS=DB_PASSWORD,SHARED: app's DB_PASSWORD is %q, want the vault's", got["DB_PASSWORD"])
	}
	for _, n := range []string{"API_TOKEN", "MULTILINE"} {
		if _, ok := got[n]; ok {
			t.Errorf("OV_SECRETS=DB_PASSWORD,SHARED: app got %s too", n)
		}
	}
	if got["SHARED"] != "inherited" {
		t.Errorf("OV_PRESERVE_ENV=1: app's SHARED is %q, want the inherited value", got["SHARED"])
	}

	r = runSecrets(t, append(env, "HELPER_TRY_READ="+s.webKey), "--", app, "status")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
	}
	for _, want := range []string{"Uid: 1001 1001 1001 1001\n", "Gid: 1001 1001 1001 1001\n", "read: open " + s.webKey + ": permission denied\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("OV_USER=1001:1001: app status lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestVaultFromOVVaultVariable(t *testing.T) {
	s := newSecretsSetup(t)
	env := []string{"PATH=/usr/bin:/bin", "OV_VAULT=" + s.vault}
	r := runSecrets(t, env, "--machine-key", s.webKey, "--app", "web", "--", helper, "env")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
	}
	got := helperEnv(t, r.stdout)
	assertSecrets(t, got, allWebSecrets...)
	assertNoOVSettings(t, got)
}

// An environment may hold a name twice (execve allows it; a careless
// wrapper appends rather than replaces). ov-init takes the first entry,
// as Go's os.Getenv and glibc's getenv do, and no copy of an OV_*
// setting reaches the app: a second OV_APP or OV_SECRETS cannot change
// what is opened or injected, nor hide among the app's variables.
func TestDuplicatedOVVariablesTheFirstWinsAndNoneReachesTheApp(t *testing.T) {
	skipEmulated(t, "qemu-user rebuilds the environment of the program it runs with one entry a name, the last: ov-init never sees the duplicates")
	s := newSecretsSetup(t)
	missing := filepath.Join(s.dir, "missing")
	env := []string{
		"PATH=/usr/bin:/bin",
		"OV_APP=web", "OV_APP=api",
		"OV_MACHINE_KEY=" + s.webKey, "OV_MACHINE_KEY=" + missing,
		"OV_VAULT=" + s.vault, "OV_VAULT=" + missing,
		"OV_SECRETS=DB_PASSWORD", "OV_SECRETS=API_TOKEN",
		"OV_VERBOSE=0", "OV_VERBOSE=3",
	}
	r := runSecrets(t, env, "--", helper, "env")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("OV_VERBOSE=0 first, yet ov-init said: %s", r.stderr)
	}
	got := helperEnv(t, r.stdout)
	if got["DB_PASSWORD"] != webSecrets["DB_PASSWORD"] {
		t.Errorf("first OV_SECRETS=DB_PASSWORD: app's DB_PASSWORD is %q, want the vault's", got["DB_PASSWORD"])
	}
	if _, ok := got["API_TOKEN"]; ok {
		t.Errorf("the second OV_SECRETS=API_TOKEN was obeyed")
	}
	// The app's environment as the kernel holds it: a Go app's own
	// runtime would hide a duplicate.
	r = runSecrets(t, env, "--", "/bin/cat", "/proc/self/environ")
	if r.code != 0 || !strings.Contains(r.stdout, "DB_PASSWORD=") {
		t.Fatalf("cat /proc/self/environ: exit %d, no DB_PASSWORD; stderr: %s", r.code, r.stderr)
	}
	for _, kv := range strings.Split(r.stdout, "\x00") {
		if strings.HasPrefix(kv, "OV_") {
			t.Errorf("app's environment holds ov-init's own setting %q", strings.SplitN(kv, "=", 2)[0])
		}
	}

	// ov run, which is ov-init, the same.
	r = runOvInit(t, ovBin, nil, append(env, "OV_PASSWORD_FILE=/nonexistent", "OV_PASSWORD_FILE=/x", "OV_NEW_PASSWORD_FILE=/y", "OV_NEW_PASSWORD_FILE=/z"),
		"run", "--", "/bin/cat", "/proc/self/environ")
	if r.code != 0 || !strings.Contains(r.stdout, "DB_PASSWORD=") || strings.Contains(r.stdout, "API_TOKEN=") {
		t.Fatalf("ov run, cat /proc/self/environ: exit %d, DB_PASSWORD %v, API_TOKEN %v; stderr: %s",
			r.code, strings.Contains(r.stdout, "DB_PASSWORD="), strings.Contains(r.stdout, "API_TOKEN="), r.stderr)
	}
	for _, kv := range strings.Split(r.stdout, "\x00") {
		if strings.HasPrefix(kv, "OV_") {
			t.Errorf("ov run: app's environment holds ov's own setting %q", strings.SplitN(kv, "=", 2)[0])
		}
	}

	// Control: the same settings in the other order are obeyed the other
	// way, so the first entry is what decides.
	env = []string{"PATH=/usr/bin:/bin", "OV_APP=web", "OV_MACHINE_KEY=" + s.webKey, "OV_VAULT=" + s.vault,
		"OV_SECRETS=API_TOKEN", "OV_SECRETS=DB_PASSWORD"}
	r = runSecrets(t, env, "--", helper, "env")
	if r.code != 0 {
		t.Fatalf("control: exit %d; stderr: %s", r.code, r.stderr)
	}
	got = helperEnv(t, r.stdout)
	if _, ok := got["DB_PASSWORD"]; ok || got["API_TOKEN"] != webSecrets["API_TOKEN"] {
		t.Errorf("control, first OV_SECRETS=API_TOKEN: app got DB_PASSWORD %v, API_TOKEN %v", ok, got["API_TOKEN"] != "")
	}
}

func TestOnlyNamedSecretsAreInjected(t *testing.T) {
	s := newSecretsSetup(t)
	for _, args := range [][]string{
		{"--secrets", "DB_PASSWORD,MULTILINE"},
		{"--secrets", "MULTILINE", "--secrets", "DB_PASSWORD"},
	} {
		r := runSecrets(t, nil, withApp(s.flags("web", s.webKey, args...), helper, "env")...)
		if r.code != 0 {
			t.Fatalf("%q: exit %d; stderr: %s", args, r.code, r.stderr)
		}
		assertSecrets(t, helperEnv(t, r.stdout), "DB_PASSWORD", "MULTILINE")
	}
}

func TestNamedSecretThatIsMissingIsRefused(t *testing.T) {
	s := newSecretsSetup(t)
	r := runSecrets(t, nil, withApp(s.flags("web", s.webKey, "--secrets", "DB_PASSWORD,NO_SUCH_SECRET"), s.touchApp()...)...)
	assertRefused(t, r, `"NO_SUCH_SECRET"`, strconv.Quote(s.vault), "fix:")
	s.assertAppNeverStarted(t)
}

func TestSecretReplacesInheritedVariableUnlessPreserveEnv(t *testing.T) {
	s := newSecretsSetup(t)
	env := []string{"PATH=/usr/bin:/bin", "SHARED=inherited", "DB_PASSWORD="}
	for _, c := range []struct {
		name   string
		extra  []string
		shared string
		db     string
	}{
		{"SecretWins", nil, webSecrets["SHARED"], webSecrets["DB_PASSWORD"]},
		{"PreserveEnvKeepsInherited", []string{"--preserve-env"}, "inherited", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runSecrets(t, env, withApp(s.flags("web", s.webKey, c.extra...), helper, "env")...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
			}
			got := helperEnv(t, r.stdout)
			if got["SHARED"] != c.shared {
				t.Errorf("app's SHARED is %q, want %q", got["SHARED"], c.shared)
			}
			if v, ok := got["DB_PASSWORD"]; !ok || v != c.db {
				t.Errorf("app's DB_PASSWORD is %q (set %v), want %q", v, ok, c.db)
			}
			if got["API_TOKEN"] != webSecrets["API_TOKEN"] {
				t.Errorf("a secret without an inherited namesake was not injected")
			}
			var n int
			for _, kv := range helperEnvList(t, r.stdout) {
				if strings.HasPrefix(kv, "SHARED=") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("app's environment holds SHARED %d times, want once", n)
			}
		})
	}
}

// helperEnvList parses the output of `helper env` into its list, in order
// and with any duplicates.
func helperEnvList(t *testing.T, out string) []string {
	t.Helper()
	var list []string
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("app output is not helper env's JSON: %v: %q", err, out)
	}
	return list
}

// unprivilegedHelper copies the helper where any user may run it: the one
// TestMain builds sits in a 0700 directory. It also opens s.dir (and its
// parent) to every user, so that an unprivileged app's failure to read the
// key is the key's own mode, not a directory in the way.
func unprivilegedHelper(t *testing.T, s *secretsSetup) string {
	t.Helper()
	for _, d := range []string{s.dir, filepath.Dir(s.dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(s.dir, "helper")
	copyExecutable(t, helper, path)
	return path
}

// copyExecutable copies src to dst with mode 0755, for a uid that cannot
// reach the 0700 directory TestMain builds into.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUserRunsAppUnprivilegedWithItsSecrets(t *testing.T) {
	for _, c := range []struct {
		user, uid, gid string
		groups         []string // acceptable Groups lines
	}{
		// An explicit group: no supplementary groups, as docker run --user.
		{"1001:1001", "1001", "1001", []string{"Groups:\n"}},
		// nobody from /etc/passwd: its groups from /etc/group, where Go's
		// os/user (like initgroups(3)) lists the primary group too.
		{"65534", "65534", "65534", []string{"Groups:\n", "Groups: 65534\n"}},
	} {
		t.Run(strings.ReplaceAll(c.user, ":", "_"), func(t *testing.T) {
			s := newSecretsSetup(t)
			app := unprivilegedHelper(t, s)
			readable := filepath.Join(s.dir, "readable")
			if err := os.WriteFile(readable, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}

			for _, k := range []struct{ name, key string }{{"scoped", s.webKey}, {"unscoped", s.rootKey}} {
				env := []string{"PATH=/usr/bin:/bin", "HELPER_TRY_READ=" + k.key}
				r := runSecrets(t, env, withApp(s.flags("web", k.key, "--user", c.user), app, "status")...)
				if r.code != 0 {
					t.Fatalf("%s key: exit %d; stderr: %s", k.name, r.code, r.stderr)
				}
				ids := func(id string) string { return strings.Repeat(" "+id, 4) }
				groups := false
				for _, g := range c.groups {
					groups = groups || strings.Contains(r.stdout, g)
				}
				if !groups {
					t.Errorf("%s key, --user %s: app's supplementary groups are not one of %q:\n%s", k.name, c.user, c.groups, r.stdout)
				}
				for _, want := range []string{
					"Uid:" + ids(c.uid) + "\n",
					"Gid:" + ids(c.gid) + "\n",
					"read: open " + k.key + ": permission denied\n",
				} {
					if !strings.Contains(r.stdout, want) {
						t.Errorf("%s key, --user %s: app status lacks %q:\n%s", k.name, c.user, want, r.stdout)
					}
				}
			}

			// Control: the app can read a file in the same directory that
			// is meant for it, so the refusal above is the key's mode.
			env := []string{"PATH=/usr/bin:/bin", "HELPER_TRY_READ=" + readable}
			r := runSecrets(t, env, withApp(s.flags("web", s.webKey, "--user", c.user), app, "status")...)
			if !strings.Contains(r.stdout, "read: <nil>\n") {
				t.Errorf("control: app as %s cannot read a 0644 file beside the key:\n%s%s", c.user, r.stdout, r.stderr)
			}

			r = runSecrets(t, []string{"PATH=/usr/bin:/bin"}, withApp(s.flags("web", s.webKey, "--user", c.user), app, "env")...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
			}
			assertSecrets(t, helperEnv(t, r.stdout), allWebSecrets...)
		})
	}
}

func TestKeyFileIsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		// setup turns path into the bad key file; the web key is key.
		setup func(t *testing.T, path string, key []byte)
		want  []string
	}{
		{"WithMode0644", withMode(0o644), []string{"ov-init: machine key has permissions 0644 — must be 0600 (", "fix: chmod 600 "}},
		{"WithMode0400", withMode(0o400), []string{"ov-init: machine key has permissions 0400 — must be 0600 ("}},
		{"WithMode0640", withMode(0o640), []string{"ov-init: machine key has permissions 0640 — must be 0600 ("}},
		{"WithMode0700", withMode(0o700), []string{"ov-init: machine key has permissions 0700 — must be 0600 ("}},
		{"WithSetuidBit", withMode(0o600 | os.ModeSetuid), []string{"ov-init: machine key has permissions 4600 — must be 0600 ("}},
		{"OwnedByAnotherUid", func(t *testing.T, path string, key []byte) {
			putMachineKey(t, path, key)
			if err := os.Chown(path, 1001, 1001); err != nil {
				t.Fatal(err)
			}
		}, []string{"ov-init: machine key is owned by uid 1001 but current uid is 0 (", "fix: chown 0 "}},
		{"ThatIsASymlink", func(t *testing.T, path string, key []byte) {
			target := path + ".target"
			putMachineKey(t, target, key)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, []string{"ov-init: opening machine key: too many levels of symbolic links (", "subPath"}},
		{"Of0Bytes", withContent(0), []string{"ov-init: machine key must be exactly 32 bytes (", "has 0 bytes"}},
		{"Of31Bytes", withContent(31), []string{"ov-init: machine key must be exactly 32 bytes (", "has 31 bytes"}},
		{"Of33Bytes", withContent(33), []string{"ov-init: machine key must be exactly 32 bytes (", "has 33 bytes"}},
		{"ThatIsADirectory", func(t *testing.T, path string, key []byte) {
			if err := os.Mkdir(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"ov-init: machine key is a directory, not a regular file ("}},
		{"ThatIsAFIFO", func(t *testing.T, path string, key []byte) {
			if err := unix.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"ov-init: machine key is a FIFO, not a regular file ("}},
		{"ThatIsACharacterDevice", func(t *testing.T, path string, key []byte) {
			// The kernel's /dev/zero: it would hand out 32 bytes.
			if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))); err != nil {
				t.Fatal(err)
			}
		}, []string{"ov-init: machine key is a character device, not a regular file ("}},
		{"ThatIsMissing", func(t *testing.T, path string, key []byte) {}, []string{"ov-init: opening machine key: no such file or directory (", "--machine-key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSecretsSetup(t)
			bad := filepath.Join(s.dir, "bad.kek")
			c.setup(t, bad, s.fx.web)
			r := runSecrets(t, nil, withApp(s.flags("web", bad), s.touchApp()...)...)
			assertRefused(t, r, slices.Concat(c.want, []string{strconv.Quote(bad), "fix: "})...)
			s.assertAppNeverStarted(t)
			assertNoLeak(t, "stdout", r.stdout)
		})
	}
}

// TestValidKeyFileStartsTheApp is the control of the refusals: the same app
// with a good key and vault does leave its marker.
func TestValidKeyFileStartsTheApp(t *testing.T) {
	s := newSecretsSetup(t)
	for _, key := range []string{s.webKey, s.rootKey} {
		os.Remove(s.marker)
		r := runSecrets(t, nil, withApp(s.flags("web", key), s.touchApp()...)...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
		}
		if _, err := os.Stat(s.marker); err != nil {
			t.Errorf("control: the app did not leave its marker: %v", err)
		}
	}
}

// withMode writes the right key with the wrong mode.
func withMode(mode os.FileMode) func(t *testing.T, path string, key []byte) {
	return func(t *testing.T, path string, key []byte) {
		putMachineKey(t, path, key)
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// withContent writes n bytes of the right key (padded with zeros), mode
// 0600, owned by root: only the size is wrong.
func withContent(n int) func(t *testing.T, path string, key []byte) {
	return func(t *testing.T, path string, key []byte) {
		b := make([]byte, n)
		copy(b, key)
		putMachineKey(t, path, b)
	}
}

// editVault applies edit to the vault's JSON and writes it back.
func editVault(t *testing.T, path string, edit func(doc map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// webSealed is the secrets object of app web in a vault document.
func webSealed(doc map[string]any) map[string]any {
	return doc["apps"].(map[string]any)["web"].(map[string]any)["secrets"].(map[string]any)
}

func TestBadVaultIsRefused(t *testing.T) {
	// An altered app section: the fix is the copy in version control.
	altered := []string{`app "web"`, "changed outside ov", "restore it from version control or a backup"}
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, s *secretsSetup)
		want  []string
	}{
		{"ThatIsMissing", func(t *testing.T, s *secretsSetup) {
			os.Remove(s.vault)
		}, []string{"no such file or directory", "fix"}},
		{"ThatIsAFIFO", func(t *testing.T, s *secretsSetup) {
			os.Remove(s.vault)
			if err := unix.Mkfifo(s.vault, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"not a regular file", "fix"}},
		{"ThatIsDevZero", func(t *testing.T, s *secretsSetup) {
			// Endless: read whole, it would eat the memory.
			os.Remove(s.vault)
			if err := os.Symlink("/dev/zero", s.vault); err != nil {
				t.Fatal(err)
			}
		}, []string{"not a regular file but a character device", "fix"}},
		{"ThatIsADirectory", func(t *testing.T, s *secretsSetup) {
			os.Remove(s.vault)
			if err := os.Mkdir(s.vault, 0o700); err != nil {
				t.Fatal(err)
			}
		}, []string{"not a regular file but a directory", "fix"}},
		{"ThatIsNotJSON", func(t *testing.T, s *secretsSetup) {
			os.WriteFile(s.vault, []byte("apps:\n  web: {}\n"), 0o600)
		}, []string{"invalid JSON", "fix"}},
		{"WithVersion3", func(t *testing.T, s *secretsSetup) {
			editVault(t, s.vault, func(doc map[string]any) { doc["version"] = json.Number("3") })
		}, []string{"version 3", "fix"}},
		{"WithAFlippedByteInAValue", func(t *testing.T, s *secretsSetup) {
			editVault(t, s.vault, func(doc map[string]any) {
				sealed := webSealed(doc)
				b, err := base64.StdEncoding.DecodeString(sealed["DB_PASSWORD"].(string))
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0x01
				sealed["DB_PASSWORD"] = base64.StdEncoding.EncodeToString(b)
			})
		}, altered},
		{"WithAValueMovedToAnotherName", func(t *testing.T, s *secretsSetup) {
			editVault(t, s.vault, func(doc map[string]any) {
				sealed := webSealed(doc)
				sealed["DB_PASSWORD"], sealed["API_TOKEN"] = sealed["API_TOKEN"], sealed["DB_PASSWORD"]
			})
		}, altered},
		{"WithAnEntryDeleted", func(t *testing.T, s *secretsSetup) {
			editVault(t, s.vault, func(doc map[string]any) { delete(webSealed(doc), "API_TOKEN") })
		}, altered},
		{"WithAnEntryAdded", func(t *testing.T, s *secretsSetup) {
			editVault(t, s.vault, func(doc map[string]any) {
				sealed := webSealed(doc)
				sealed["DB_PASSWORD_COPY"] = sealed["DB_PASSWORD"]
			})
		}, altered},
		{"WithTheAppMissing", func(t *testing.T, s *secretsSetup) {
			editVault(t, s.vault, func(doc map[string]any) { delete(doc["apps"].(map[string]any), "web") })
		}, []string{`has no app "web"`, "fix"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSecretsSetup(t)
			c.setup(t, s)
			for _, key := range []string{s.webKey, s.rootKey} {
				want := c.want
				if c.name == "WithTheAppMissing" && key == s.rootKey {
					// The root key verifies the table of apps first: the
					// section's absence is not authenticated either.
					want = []string{"table of apps was altered", "fix"}
				}
				r := runSecrets(t, nil, withApp(s.flags("web", key), s.touchApp()...)...)
				assertRefused(t, r, slices.Concat(want, []string{strconv.Quote(s.vault)})...)
				s.assertAppNeverStarted(t)
			}
		})
	}
}

func TestKeyThatDoesNotOpenTheAppIsRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, s *secretsSetup) (key string)
		want  []string
	}{
		{"OfAnotherApp", func(t *testing.T, s *secretsSetup) string {
			return s.apiKey
		}, []string{`scoped to app "api", not "web"`, "derive-machine-key", "--app web", "--out "}},
		{"FromBeforeRotation", func(t *testing.T, s *secretsSetup) string {
			if err := os.WriteFile(s.vault, s.fx.rotated, 0o600); err != nil {
				t.Fatal(err)
			}
			return s.webKey
		}, []string{`does not open app "web"`, "ov app rotate web", "derive-machine-key", "--force", "--out "}},
		{"OfAnotherVault", func(t *testing.T, s *secretsSetup) string {
			key := filepath.Join(s.dir, "other.kek")
			other := bytes.Repeat([]byte{0x5a}, 32)
			putMachineKey(t, key, other)
			return key
		}, []string{`does not open app "web"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSecretsSetup(t)
			key := c.setup(t, s)
			r := runSecrets(t, nil, withApp(s.flags("web", key), s.touchApp()...)...)
			// The fix is a command to paste: ov refuses derive-machine-key
			// without --out.
			assertRefused(t, r, slices.Concat(c.want, []string{strconv.Quote(key), "fix"})...)
			s.assertAppNeverStarted(t)
		})
	}
}

// TestRotatedVaultOpensWithTheRootKey is the control of FromBeforeRotation:
// the rotated vault itself is fine, only the old scoped key is not.
func TestRotatedVaultOpensWithTheRootKey(t *testing.T) {
	s := newSecretsSetup(t)
	if err := os.WriteFile(s.vault, s.fx.rotated, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runSecrets(t, nil, withApp(s.flags("web", s.rootKey), helper, "env")...)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
	}
	assertSecrets(t, helperEnv(t, r.stdout), allWebSecrets...)
}

func TestNoSecretValueInAnyOutput(t *testing.T) {
	s := newSecretsSetup(t)
	badMode := filepath.Join(s.dir, "0644.kek")
	withMode(0o644)(t, badMode, s.fx.web)
	tampered := filepath.Join(s.dir, "tampered.json")
	if err := os.WriteFile(tampered, s.fx.vaultJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	editVault(t, tampered, func(doc map[string]any) {
		sealed := webSealed(doc)
		sealed["DB_PASSWORD"], sealed["API_TOKEN"] = sealed["API_TOKEN"], sealed["DB_PASSWORD"]
	})
	rotated := filepath.Join(s.dir, "rotated.json")
	if err := os.WriteFile(rotated, s.fx.rotated, 0o600); err != nil {
		t.Fatal(err)
	}
	// Control: the runs below do hold the secrets; an app that prints its
	// environment shows them, and the check sees that.
	env := runSecrets(t, nil, withApp(s.flags("web", s.webKey), helper, "env")...)
	if !strings.Contains(env.stdout, leakMark) {
		t.Fatalf("control: helper env under secrets mode shows no secret: %q", env.stdout)
	}

	quiet := []string{helper, "exit", "0"}
	runs := []struct {
		name string
		args []string
		code int
	}{
		{"ScopedKey", s.flags("web", s.webKey), 0},
		{"UnscopedKey", s.flags("web", s.rootKey), 0},
		{"NamedSecrets", s.flags("web", s.webKey, "--secrets", "DB_PASSWORD,MULTILINE"), 0},
		{"PreserveEnv", s.flags("web", s.webKey, "--preserve-env"), 0},
		{"MissingSecret", s.flags("web", s.webKey, "--secrets", "DB_PASSWORD,NOPE"), 78},
		{"KeyMode0644", s.flags("web", badMode), 78},
		{"KeyOfAnotherApp", s.flags("web", s.apiKey), 78},
		{"SwappedValues", []string{"--vault", tampered, "--machine-key", s.rootKey, "--app", "web"}, 78},
		{"KeyFromBeforeRotation", []string{"--vault", rotated, "--machine-key", s.webKey, "--app", "web"}, 78},
		{"CommandNotFound", s.flags("web", s.webKey), 127},
	}
	for _, verbose := range []string{"", "-vvv"} {
		for _, run := range runs {
			args := run.args
			if verbose != "" {
				args = append([]string{verbose}, args...)
			}
			app := quiet
			if run.name == "CommandNotFound" {
				app = []string{"no-such-command-ov"}
			}
			r := runSecrets(t, nil, withApp(args, app...)...)
			if r.code != run.code {
				t.Errorf("%s %s: exit %d, want %d; stderr: %s", run.name, verbose, r.code, run.code, r.stderr)
			}
			assertNoLeak(t, run.name+" "+verbose+" stdout", r.stdout)
			if verbose != "" && run.code == 0 && !strings.Contains(r.stderr, "injecting") {
				t.Errorf("%s -vvv: stderr %q, want the verbose diagnostics this test checks", run.name, r.stderr)
			}
		}
	}
}

// memoryHolds returns the names of needles that appear in the readable
// memory of process pid, read as root through /proc/PID/mem, and how many
// bytes it read. Regions that cannot be read ([vvar], [vsyscall]) are skipped.
func memoryHolds(t *testing.T, pid int, needles map[string][]byte) ([]string, int64) {
	t.Helper()
	layout, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	overlap := 0
	for _, n := range needles {
		overlap = max(overlap, len(n)-1)
	}
	const chunk = 1 << 20
	buf := make([]byte, overlap+chunk)
	found := map[string]bool{}
	var scanned int64
	for _, line := range strings.Split(strings.TrimSpace(string(layout)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1][0] != 'r' {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end > math.MaxInt64 {
			continue
		}
		carry := 0 // bytes kept from the previous chunk, for a needle across chunks
		for off := start; off < end; {
			n := min(uint64(chunk), end-off)
			got, _ := mem.ReadAt(buf[carry:carry+int(n)], int64(off))
			if got <= 0 {
				break
			}
			window := buf[:carry+got]
			for name, needle := range needles {
				if bytes.Contains(window, needle) {
					found[name] = true
				}
			}
			scanned += int64(got)
			off += uint64(got)
			carry = min(overlap, len(window))
			copy(buf, window[len(window)-carry:])
			if got < int(n) {
				break
			}
		}
	}
	return slices.Sorted(maps.Keys(found)), scanned
}

func TestPID1MemoryHoldsNoKeyOrSecret(t *testing.T) {
	s := newSecretsSetup(t)
	for _, c := range []struct {
		name, path string
		key        []byte
	}{{"ScopedKey", s.webKey, s.fx.web}, {"UnscopedKey", s.rootKey, s.fx.root}} {
		t.Run(c.name, func(t *testing.T) {
			needles := map[string][]byte{
				"key":             c.key,
				"key's 1st half":  c.key[:16],
				"key's 2nd half":  c.key[16:],
				"a secret's mark": []byte(leakMark),
			}
			for name, value := range webSecrets {
				needles["secret "+name] = []byte(value)
			}
			p := pid1(t, withApp(s.flags("web", c.path), helper, "sleep")...)
			p.expect("ready", 5*time.Second)
			pid := p.cmd.Process.Pid

			found, scanned := memoryHolds(t, pid, needles)
			if len(found) > 0 {
				t.Errorf("PID 1 (host pid %d) holds %v in its memory (%d bytes scanned)", pid, found, scanned)
			}
			t.Logf("scanned %d bytes of PID 1's memory", scanned)
			if scanned < 1<<20 {
				t.Errorf("scanned only %d bytes of PID 1's memory: the scan is broken", scanned)
			}

			// Negative control: the app holds its secrets in its
			// environment, and the same scan must find them there.
			app := 0
			for p := range nsProcesses(t, pid) {
				if p != pid {
					app = p
				}
			}
			if app == 0 {
				t.Fatal("found no app process in the namespace")
			}
			found, _ = memoryHolds(t, app, needles)
			for name := range webSecrets {
				if !slices.Contains(found, "secret "+name) {
					t.Errorf("control: the scan did not find secret %s in the app (host pid %d), which holds it: found %v", name, app, found)
				}
			}
			// execve discarded the exec stage, which read the key.
			for _, f := range found {
				if strings.HasPrefix(f, "key") {
					t.Errorf("the app (host pid %d) holds the machine key (%s) in its memory", app, f)
				}
			}
		})
	}
}

func TestSignalsReachTheAppInSecretsMode(t *testing.T) {
	s := newSecretsSetup(t)
	p := pid1(t, withApp(s.flags("web", s.webKey), helper, "signals")...)
	p.expect("ready", 5*time.Second)
	for _, sig := range []syscall.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGUSR1, unix.SIGWINCH, unix.SIGTERM, syscall.Signal(40)} {
		if sig >= 32 && underQemu() {
			continue
		}
		p.signal(sig)
		line := p.expect("", 2*time.Second)
		if want := "|" + strconv.Itoa(int(sig)); !strings.HasSuffix(line, want) {
			t.Errorf("sent %v (%d) to PID 1, app got %q", sig, sig, line)
		}
	}
	skipEmulated(t, rtSignalsUnderQemu)
}

func TestSecretsModeExitStatusPassesThroughPID1(t *testing.T) {
	s := newSecretsSetup(t)
	notExec := filepath.Join(s.dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(s.dir, "bad.kek")
	withMode(0o644)(t, badKey, s.fx.web)
	for _, c := range []struct {
		name string
		key  string
		app  []string
		code int
		msg  string
	}{
		{"AppExit3", s.webKey, []string{helper, "exit", "3"}, 3, ""},
		{"AppKilledBySIGTERM", s.webKey, []string{helper, "die", "15"}, 143, ""},
		{"BadKey", badKey, []string{helper, "exit", "0"}, 78, "ov-init: machine key has permissions 0644"},
		{"CommandNotFound", s.webKey, []string{"no-such-command-ov"}, 127, `"no-such-command-ov": command not found`},
		{"NotExecutable", s.webKey, []string{notExec}, 126, "permission denied"},
	} {
		r := runSecrets(t, nil, withApp(s.flags("web", c.key), c.app...)...)
		if r.code != c.code {
			t.Errorf("%s: exit %d, want %d; stderr: %q", c.name, r.code, c.code, r.stderr)
		}
		if c.msg != "" && (!strings.Contains(r.stderr, c.msg) || strings.Count(r.stderr, "\n") != 1) {
			t.Errorf("%s: stderr %q, want one line with %q", c.name, r.stderr, c.msg)
		}
	}
}

// An empty --app or --secrets, or a key or vault named without --app, must
// not run the app without its secrets: usage error, app never started.
func TestEmptyAppOrSecretsFailsClosed(t *testing.T) {
	s := newSecretsSetup(t)
	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"EmptyAppFlag", nil, []string{"--app", ""}},
		{"EmptyOVApp", []string{"OV_APP="}, nil},
		{"EmptySecretsFlag", nil, s.flags("web", s.webKey, "--secrets", "")},
		{"EmptyOVSecrets", []string{"OV_SECRETS="}, s.flags("web", s.webKey)},
		{"KeyWithoutApp", nil, []string{"--machine-key", s.webKey}},
		{"OVMachineKeyWithoutApp", []string{"OV_MACHINE_KEY=" + s.webKey}, nil},
		{"VaultWithoutApp", nil, []string{"--vault", s.vault}},
		{"InvalidAppName", nil, []string{"--app", "Web"}},
		{"EmptyVaultFlag", nil, []string{"--app", "web", "--machine-key", s.webKey, "--vault", ""}},
		{"EmptyOVVault", []string{"OV_VAULT="}, []string{"--app", "web", "--machine-key", s.webKey}},
		{"EmptyMachineKeyFlag", nil, []string{"--app", "web", "--vault", s.vault, "--machine-key", ""}},
		{"EmptyOVMachineKey", []string{"OV_MACHINE_KEY="}, []string{"--app", "web", "--vault", s.vault}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s.assertUsageError(t, c.env, c.args)
		})
	}
}

// In secrets mode the app is exec'd by the exec stage, a Go process of its
// own: it too must leave the app default dispositions and an empty mask.
// (TestAppStartsWithDefaultSignalStateEvenWhenOvInitDoesNot holds the
// control that carelessParent does leave signals ignored and blocked.)
func TestAppStartsWithDefaultSignalStateInSecretsMode(t *testing.T) {
	s := newSecretsSetup(t)
	out := carelessParent(t, append([]string{ovInit}, withApp(s.flags("web", s.webKey), "/bin/grep", "^Sig[IB]", "/proc/self/status")...)...)
	for _, want := range cleanSignalState {
		if !strings.Contains(out, want) {
			t.Errorf("app's signal state in secrets mode is not clean, want %q:\n%s", want, out)
		}
	}
}
