package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests in this file drive the real ov binary against a vault in a
// temporary directory, with the production Argon2id cost (a few tenths of a
// second per unlock), and check the result through the real ov-init.

const (
	ovPassword = "correct horse battery staple"
	ovDBURL    = "postgres://app:s3cr3t-Pa55@db:5432/app?sslmode=verify-full"
)

// ovFixture is one vault and the ov commands run on it. Every output of
// every ov command is kept; at the end of the test none may contain a
// secret value registered with secret.
type ovFixture struct {
	t       *testing.T
	dir     string
	vault   string
	pwFile  string
	outputs []string
	values  []string
}

// ovResult is what one ov command did.
type ovResult struct {
	code           int
	stdout, stderr string
}

// newOvFixture makes a password file and runs `ov vault init`.
func newOvFixture(t *testing.T) *ovFixture {
	t.Helper()
	if _, err := os.Stat(ovBin); err != nil {
		t.Fatalf("ov was not built: %v", err)
	}
	dir := t.TempDir()
	f := &ovFixture{t: t, dir: dir, vault: filepath.Join(dir, "cfg", "vault.json"), pwFile: filepath.Join(dir, "password")}
	f.write("password", ovPassword+"\n")
	t.Cleanup(f.checkNoValueShown)
	r := f.must("", "vault", "init")
	if want := fmt.Sprintf("ov: created vault %q\n", f.vault); r.stderr != want {
		t.Errorf("vault init said %q, want %q", r.stderr, want)
	}
	return f
}

// write creates dir/name with content and returns its path.
func (f *ovFixture) write(name, content string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// env is ov's whole environment: no OV_* setting leaks in from the test's,
// and HOME is the test's directory, so ov's state (~/.local/state/ov) is
// the test's too.
func (f *ovFixture) env(extra ...string) []string {
	return append([]string{"PATH=/usr/bin:/bin", "HOME=" + f.dir, "OV_VAULT=" + f.vault, "OV_PASSWORD_FILE=" + f.pwFile}, extra...)
}

// isolated returns env for an ov command, refusing one that could reach
// the developer's own state: ov records the vaults it has seen under
// $XDG_STATE_HOME, else ~/.local/state. A nil env (which exec would fill
// with the test's own) becomes a minimal one with HOME in the test's
// directory; then the state directory ov would use must be in a temporary
// directory.
func (f *ovFixture) isolated(env []string) []string {
	f.t.Helper()
	if env == nil {
		env = []string{"PATH=/usr/bin:/bin", "HOME=" + f.dir}
	}
	var home, state string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok {
			home = v
		}
		if v, ok := strings.CutPrefix(kv, "XDG_STATE_HOME="); ok {
			state = v
		}
	}
	if !filepath.IsAbs(state) {
		state = home
	}
	if tmp := filepath.Clean(os.TempDir()) + string(filepath.Separator); state == "" || !strings.HasPrefix(filepath.Clean(state), tmp) {
		f.t.Fatalf("ov would keep its state under %q, not in a temporary directory: set HOME or XDG_STATE_HOME in its environment", state)
	}
	return env
}

// ov runs ov ARGS with stdin and returns what it did.
func (f *ovFixture) ov(stdin string, args ...string) ovResult {
	f.t.Helper()
	return f.ovCmd(f.env(), nil, stdin, ovBin, args...)
}

func (f *ovFixture) ovCmd(env []string, attr *syscall.SysProcAttr, stdin, bin string, args ...string) ovResult {
	f.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = f.isolated(env)
	cmd.SysProcAttr = attr
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		f.t.Fatalf("running %s %q: %v", bin, args, err)
	}
	r := ovResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if slices.Contains(args, "run") {
		f.outputs = append(f.outputs, r.stderr) // stdout is the app's: helper env prints the secrets
	} else {
		f.outputs = append(f.outputs, r.stdout, r.stderr)
	}
	return r
}

// must runs ov ARGS and fails the test unless it exits 0.
func (f *ovFixture) must(stdin string, args ...string) ovResult {
	f.t.Helper()
	r := f.ov(stdin, args...)
	if r.code != 0 {
		f.t.Fatalf("ov %q: exit %d; stderr: %s", args, r.code, r.stderr)
	}
	return r
}

// fails runs ov ARGS and fails the test unless it exits with code and says
// every one of want on stderr, in one line.
func (f *ovFixture) fails(code int, want []string, stdin string, args ...string) ovResult {
	f.t.Helper()
	r := f.ov(stdin, args...)
	f.t.Logf("ov %q: exit %d: %s", args, r.code, r.stderr)
	if r.code != code {
		f.t.Errorf("ov %q: exit %d, want %d; stderr: %s", args, r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "ov: ") || strings.Count(r.stderr, "\n") != 1 {
		f.t.Errorf("ov %q: want one line starting \"ov: \" on stderr, got %q", args, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			f.t.Errorf("ov %q: stderr %q does not say %q", args, r.stderr, w)
		}
	}
	return r
}

// secret seals value as name of app, from stdin, and remembers the value
// as one no output may show.
func (f *ovFixture) secret(app, name, value string) {
	f.t.Helper()
	f.values = append(f.values, strings.TrimSuffix(strings.TrimSuffix(value, "\n"), "\r"))
	f.must(value, "secret", "set", name, "--app", app)
}

// key derives a machine key into dir/name and returns its path.
func (f *ovFixture) key(name string, args ...string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	f.must("", append([]string{"auth", "derive-machine-key", "--out", p}, args...)...)
	return p
}

// appEnv runs helper env under ov-init as PID 1 in secrets mode and
// returns its status, the app's environment and ov-init's stderr.
func (f *ovFixture) appEnv(key, app string) (int, map[string]string, string) {
	f.t.Helper()
	code, stdout, stderr := runPID1(f.t, nil, "--vault", f.vault, "--machine-key", key, "--app", app, "--", helper, "env")
	f.outputs = append(f.outputs, stderr)
	if code != 0 {
		return code, nil, stderr
	}
	return code, ovParseEnv(f.t, stdout), stderr
}

// ovParseEnv reads helper env's output.
func ovParseEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	var list []string
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("helper env printed %q: %v", out, err)
	}
	env := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func (f *ovFixture) vaultBytes() []byte {
	f.t.Helper()
	b, err := os.ReadFile(f.vault)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *ovFixture) checkNoValueShown() {
	for _, out := range f.outputs {
		for _, v := range f.values {
			if v != "" && strings.Contains(out, v) {
				f.t.Errorf("a command printed a secret value: %q", out)
			}
		}
	}
}

// wantSecret checks that key opens app and the app sees name=value.
func (f *ovFixture) wantSecret(key, app, name, value string) {
	f.t.Helper()
	code, env, stderr := f.appEnv(key, app)
	if code != 0 {
		f.t.Fatalf("ov-init --app %s with %s: exit %d; stderr: %s", app, filepath.Base(key), code, stderr)
	}
	if got, ok := env[name]; !ok || got != value {
		f.t.Errorf("app %s: %s=%q (set: %v), want %q", app, name, got, ok, value)
	}
}

// opens checks that ov-init accepts key for app and starts the app.
func (f *ovFixture) opens(key, app string) {
	f.t.Helper()
	if code, _, stderr := f.appEnv(key, app); code != 0 {
		f.t.Errorf("ov-init --app %s with %s: exit %d; stderr: %s", app, filepath.Base(key), code, stderr)
	}
}

func TestProductFlowPutsTheSecretInTheAppsEnvironment(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	f.secret("myapp", "DATABASE_URL", ovDBURL+"\n")
	key := f.key("machine.kek", "--app", "myapp")

	// ov-init as PID 1, as in a container.
	f.wantSecret(key, "myapp", "DATABASE_URL", ovDBURL)

	// ov run, as on a developer's machine: the same vault, by OV_VAULT.
	r := f.must("", "run", "--machine-key", key, "--app", "myapp", "--", helper, "env")
	env := ovParseEnv(t, r.stdout)
	if env["DATABASE_URL"] != ovDBURL {
		t.Errorf("under ov run the app got DATABASE_URL=%q, want %q", env["DATABASE_URL"], ovDBURL)
	}
	for _, name := range []string{"OV_VAULT", "OV_PASSWORD_FILE"} {
		if _, ok := env[name]; ok {
			t.Errorf("ov run passed its own setting %s to the app", name)
		}
	}
	// And with --vault instead of OV_VAULT.
	r = f.ovCmd([]string{"PATH=/usr/bin:/bin", "HOME=" + f.dir}, nil, "", ovBin,
		"run", "--vault", f.vault, "--machine-key", key, "--app", "myapp", "--", helper, "env")
	if r.code != 0 || ovParseEnv(t, r.stdout)["DATABASE_URL"] != ovDBURL {
		t.Errorf("ov run --vault: exit %d, stderr %s", r.code, r.stderr)
	}
}

func TestOvRunExitsWithTheAppsStatus(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	if r := f.ov("", "run", "--", helper, "exit", "7"); r.code != 7 {
		t.Errorf("ov run: exit %d, want the app's 7; stderr: %s", r.code, r.stderr)
	}
	if r := f.ov("", "run", "--app", "nope", "--machine-key", filepath.Join(f.dir, "none"), "--", helper, "env"); r.code != 78 {
		t.Errorf("ov run with a missing key: exit %d, want 78; stderr: %s", r.code, r.stderr)
	}
	f.fails(2, []string{"run needs a command"}, "", "run")
}

func TestUnscopedMachineKeyOpensEveryApp(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "web")
	f.must("", "app", "create", "api")
	f.secret("web", "TOKEN", "web-token-1\n")
	f.secret("api", "TOKEN", "api-token-2\n")
	r := f.must("", "auth", "derive-machine-key", "--out", filepath.Join(f.dir, "root.kek"))
	if !strings.Contains(r.stderr, "cannot be revoked short of a new vault; prefer --app") {
		t.Errorf("the unscoped key's warning does not say it cannot be revoked: %s", r.stderr)
	}
	key := filepath.Join(f.dir, "root.kek")
	f.wantSecret(key, "web", "TOKEN", "web-token-1")
	f.wantSecret(key, "api", "TOKEN", "api-token-2")

	// A scoped key opens its own app only.
	web := f.key("web.kek", "--app", "web")
	f.wantSecret(web, "web", "TOKEN", "web-token-1")
	if code, _, stderr := f.appEnv(web, "api"); code != 78 || !strings.Contains(stderr, `scoped to app "web"`) {
		t.Errorf("web's key on api: exit %d, want 78 naming web; stderr: %s", code, stderr)
	}
}

func TestDeriveMachineKeyWarnsHowToRevokeAndRederive(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	out := filepath.Join(f.dir, "machine.kek")
	r := f.must("", "auth", "derive-machine-key", "--out", out, "--app", "myapp")
	want := fmt.Sprintf(`ov: wrote machine key for app "myapp" to %[1]s
This file is as sensitive as your master password.
  - keep it mode 0600, owned by the account that runs ov-init
  - never commit it, never bake it into an image; mount it at run time (e.g. -v %[1]s:/run/secrets/machine.kek:ro)
  - to revoke it: ov app rotate myapp  (every earlier key for myapp stops opening the rotated vault; copies of the vault from before still open with it, so change the values too)
  - to derive it again: ov auth derive-machine-key --out %[1]s --app myapp --force
`, out)
	if r.stderr != want {
		t.Errorf("derive-machine-key said:\n%s\nwant:\n%s", r.stderr, want)
	}
	if r.stdout != "" {
		t.Errorf("derive-machine-key wrote %q on stdout", r.stdout)
	}
}

func TestSecretListPrintsNamesNeverValues(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	f.secret("myapp", "DATABASE_URL", ovDBURL)
	f.secret("myapp", "API_TOKEN", "tok-9f8e7d6c5b4a")
	r := f.must("", "secret", "list", "--app", "myapp", "--password-file", "/nonexistent")
	if r.stdout != "API_TOKEN\nDATABASE_URL\n" {
		t.Errorf("secret list printed %q, want the two names sorted", r.stdout)
	}
	f.fails(1, []string{`no app "other"`, "ov app create other"}, "", "secret", "list", "--app", "other")
}

func TestSecretRmRemovesOnlyThatSecret(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	f.secret("myapp", "KEEP", "keep-value-1")
	f.secret("myapp", "DROP", "drop-value-2")
	r := f.must("", "secret", "rm", "DROP", "--app", "myapp")
	if r.stderr != "ov: removed secret \"DROP\" from app \"myapp\"\n" {
		t.Errorf("secret rm said %q", r.stderr)
	}
	if r := f.must("", "secret", "list", "--app", "myapp"); r.stdout != "KEEP\n" {
		t.Errorf("after rm, secret list printed %q", r.stdout)
	}
	code, env, stderr := f.appEnv(f.key("k", "--app", "myapp"), "myapp")
	if code != 0 {
		t.Fatalf("ov-init: exit %d; stderr: %s", code, stderr)
	}
	if _, ok := env["DROP"]; ok || env["KEEP"] != "keep-value-1" {
		t.Errorf("after rm the app got DROP (%v) or lost KEEP (%q)", ok, env["KEEP"])
	}
	before := f.vaultBytes()
	f.fails(1, []string{`no secret "DROP"`}, "", "secret", "rm", "DROP", "--app", "myapp")
	if !bytes.Equal(before, f.vaultBytes()) {
		t.Error("a failed secret rm changed the vault")
	}
}

func TestAppListPrintsAppsSortedOnePerLine(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	if r := f.must("", "app", "list"); r.stdout != "" {
		t.Errorf("a new vault lists apps %q", r.stdout)
	}
	for _, app := range []string{"zeta", "alpha", "mid.app-1"} {
		f.must("", "app", "create", app)
	}
	if r := f.must("", "app", "list"); r.stdout != "alpha\nmid.app-1\nzeta\n" {
		t.Errorf("app list printed %q", r.stdout)
	}
	f.fails(1, []string{`app "alpha" already exists`}, "", "app", "create", "alpha")
	f.fails(2, []string{`invalid app name "Bad/Name"`}, "", "app", "create", "Bad/Name")
}

func TestVaultInitRefusesAnExistingVault(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	before := f.vaultBytes()
	f.fails(1, []string{fmt.Sprintf("vault %q already exists", f.vault)}, "", "vault", "init")
	if !bytes.Equal(before, f.vaultBytes()) {
		t.Error("a refused vault init changed the vault")
	}
	fi, err := os.Stat(filepath.Dir(f.vault))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("vault init made the vault's directory with mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if fi, err := os.Stat(f.vault); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the vault file has mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

func TestWrongPasswordExits1AndLeavesTheVaultUnchanged(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	wrong := f.write("wrong", "not the password\n")
	before := f.vaultBytes()
	msg := []string{fmt.Sprintf("wrong password for vault %q", f.vault), "check the password file"}
	f.fails(1, msg, "", "--password-file", wrong, "app", "create", "other")
	f.fails(1, msg, "s3cret-value-x", "--password-file", wrong, "secret", "set", "X", "--app", "myapp")
	f.fails(1, msg, "", "--password-file", wrong, "app", "rotate", "myapp")
	f.fails(1, msg, "", "--password-file", wrong, "auth", "derive-machine-key", "--out", filepath.Join(f.dir, "k"), "--app", "myapp")
	f.values = append(f.values, "s3cret-value-x")
	if !bytes.Equal(before, f.vaultBytes()) {
		t.Error("a command with the wrong password changed the vault")
	}
	if _, err := os.Lstat(filepath.Join(f.dir, "k")); err == nil {
		t.Error("derive-machine-key wrote a key with the wrong password")
	}
	f.fails(1, []string{"password file", "empty"}, "", "--password-file", f.write("empty", "\n"), "app", "create", "other")
}

func TestPasswordFileFirstLineIsThePassword(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	for name, content := range map[string]string{"crlf": ovPassword + "\r\nsecond line\n", "bare": ovPassword} {
		if r := f.ov("", "--password-file", f.write(name, content), "app", "create", name); r.code != 0 {
			t.Errorf("password file %q: exit %d; stderr: %s", content, r.code, r.stderr)
		}
	}
}

func TestVaultPasswdKeepsMachineKeysAndRetiresTheOldPassword(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	f.secret("myapp", "DATABASE_URL", ovDBURL)
	key := f.key("machine.kek", "--app", "myapp")
	root := f.key("root.kek")
	newPw := f.write("new-password", "a whole new password\n")
	r := f.must("", "vault", "passwd", "--new-password-file", newPw)
	if !strings.Contains(r.stderr, "machine keys stay valid") {
		t.Errorf("vault passwd said %q", r.stderr)
	}
	f.wantSecret(key, "myapp", "DATABASE_URL", ovDBURL)
	f.wantSecret(root, "myapp", "DATABASE_URL", ovDBURL)
	f.fails(1, []string{"wrong password"}, "", "app", "create", "other") // the old password, in OV_PASSWORD_FILE
	f.must("", "--password-file", newPw, "app", "create", "other")

	// OV_NEW_PASSWORD_FILE does the same.
	third := f.write("third", "third password\n")
	if r := f.ovCmd(f.env("OV_NEW_PASSWORD_FILE="+third), nil, "", ovBin, "--password-file", newPw, "vault", "passwd"); r.code != 0 {
		t.Fatalf("vault passwd with OV_NEW_PASSWORD_FILE: exit %d; stderr: %s", r.code, r.stderr)
	}
	f.must("", "--password-file", third, "app", "list")
	f.fails(1, []string{"wrong password"}, "", "--password-file", newPw, "app", "create", "x")
}

func TestAppRotateRetiresEarlierMachineKeys(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	f.secret("myapp", "DATABASE_URL", ovDBURL)
	old := f.key("machine.kek", "--app", "myapp")
	root := f.key("root.kek")
	r := f.must("", "app", "rotate", "myapp")
	for _, want := range []string{`every earlier machine key for "myapp" stopped working`, "ov auth derive-machine-key --out PATH --app myapp --force"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("app rotate did not say %q: %s", want, r.stderr)
		}
	}
	code, _, stderr := f.appEnv(old, "myapp")
	if code != 78 || !strings.Contains(stderr, "ov app rotate myapp") {
		t.Errorf("a key from before the rotation: ov-init exit %d, want 78 and a hint; stderr: %s", code, stderr)
	}
	f.must("", "auth", "derive-machine-key", "--out", old, "--app", "myapp", "--force")
	f.wantSecret(old, "myapp", "DATABASE_URL", ovDBURL)
	f.wantSecret(root, "myapp", "DATABASE_URL", ovDBURL)
}

func TestDeriveRefusesAnExistingFileWithoutForce(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	out := f.write("machine.kek", "keep me")
	f.fails(1, []string{fmt.Sprintf("%q exists; pass --force to replace it", out)}, "", "auth", "derive-machine-key", "--out", out, "--app", "myapp")
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Errorf("a refused derive changed the file to %q", b)
	}
	f.must("", "auth", "derive-machine-key", "--out", out, "--app", "myapp", "--force")
	ovWantKeyFile(t, out, 0, 0)
	f.opens(out, "myapp")
}

func TestDeriveNeverWritesThroughASymlink(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	target := f.write("target", "the target")
	dangling := filepath.Join(f.dir, "dangling-target")
	for name, to := range map[string]string{"link.kek": target, "dangling.kek": dangling} {
		link := filepath.Join(f.dir, name)
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
		for _, force := range [][]string{nil, {"--force"}} {
			args := append([]string{"auth", "derive-machine-key", "--out", link, "--app", "myapp"}, force...)
			f.fails(1, []string{fmt.Sprintf("%q is a symbolic link", link)}, "", args...)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symbolic link", name)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "the target" {
		t.Errorf("the link's target now holds %q", b)
	}
	if _, err := os.Lstat(dangling); err == nil {
		t.Error("derive created the dangling link's target")
	}
}

func TestDeriveWritesMode0600WhateverTheUmask(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	for _, umask := range []string{"000", "077", "022", "777"} {
		out := filepath.Join(f.dir, "key-"+umask)
		r := f.ovCmd(f.env(), nil, "", "/bin/sh", "-c", `umask `+umask+` && exec "$0" "$@"`,
			ovBin, "auth", "derive-machine-key", "--out", out, "--app", "myapp")
		if r.code != 0 {
			t.Fatalf("umask %s: exit %d; stderr: %s", umask, r.code, r.stderr)
		}
		ovWantKeyFile(t, out, 0, 0)
	}
	f.opens(filepath.Join(f.dir, "key-000"), "myapp")
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("a temporary file was left behind: %s", e.Name())
		}
	}
}

func TestDeriveOwnerChownsTheKeyFile(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	out := filepath.Join(f.dir, "machine.kek")
	r := f.must("", "auth", "derive-machine-key", "--out", out, "--app", "myapp", "--owner", "1001:1001")
	ovWantKeyFile(t, out, 1001, 1001)
	if !strings.Contains(r.stderr, "--owner 1001:1001 --force") {
		t.Errorf("the way to derive it again forgets --owner: %s", r.stderr)
	}
	// Only root can give a file away.
	// The test's directories are 0700 root: copy ov where uid 1001 can run it.
	shared, err := os.MkdirTemp("", "ov-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(ovBin)
	if err != nil {
		t.Fatal(err)
	}
	userOv := filepath.Join(shared, "ov")
	if err := os.WriteFile(userOv, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(shared, "user.kek")
	r = f.ovCmd([]string{"PATH=/usr/bin:/bin", "HOME=" + shared}, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1001, Gid: 1001}}, "", userOv,
		"auth", "derive-machine-key", "--out", out, "--owner", "1002")
	if r.code != 1 || !strings.Contains(r.stderr, "--owner needs root") {
		t.Errorf("--owner as uid 1001: exit %d, want 1; stderr: %s", r.code, r.stderr)
	}
	if _, err := os.Lstat(out); err == nil {
		t.Error("--owner as uid 1001 wrote a key")
	}
	f.fails(2, []string{"--owner", "no-such-user-ov"}, "", "auth", "derive-machine-key", "--out", filepath.Join(f.dir, "k2"), "--app", "myapp", "--owner", "no-such-user-ov")
}

// ovWantKeyFile checks a key file as ov-init's loader will: a regular file,
// mode exactly 0600, 32 bytes, owned by uid:gid.
func ovWantKeyFile(t *testing.T, path string, uid, gid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != unix.S_IFREG|0o600 || st.Size != 32 || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: mode %o, %d bytes, owner %d:%d; want a regular file, 0600, 32 bytes, %d:%d",
			filepath.Base(path), st.Mode, st.Size, st.Uid, st.Gid, uid, gid)
	}
}

func TestSecretValueLosesExactlyOneTrailingNewline(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	cases := map[string][2]string{
		"LF":      {"value-lf\n", "value-lf"},
		"CRLF":    {"value-crlf\r\n", "value-crlf"},
		"TWO_LF":  {"value-two\n\n", "value-two\n"},
		"BARE":    {"value-bare", "value-bare"},
		"INSIDE":  {"line 1\nline 2 ✓\n", "line 1\nline 2 ✓"},
		"EMPTY":   {"", ""},
		"CR_ONLY": {"value-cr\r", "value-cr\r"},
	}
	for name, c := range cases {
		f.secret("myapp", name, c[0])
	}
	code, env, stderr := f.appEnv(f.key("k", "--app", "myapp"), "myapp")
	if code != 0 {
		t.Fatalf("ov-init: exit %d; stderr: %s", code, stderr)
	}
	for name, c := range cases {
		if got, ok := env[name]; !ok || got != c[1] {
			t.Errorf("piped %q: the app got %q (set: %v), want %q", c[0], got, ok, c[1])
		}
	}
}

func TestSecretValueOnTheCommandLineIsAUsageErrorAndNotStored(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	const value = "hunter2-on-argv"
	f.values = append(f.values, value)
	before := f.vaultBytes()
	for _, args := range [][]string{
		{"secret", "set", "PASSWORD", value, "--app", "myapp"},
		{"secret", "set", "PASSWORD", "--app", "myapp", value},
		{"secret", "set", "PASSWORD", value},
		{"secret", "set", "PASSWORD=" + value, "--app", "myapp"},
		{"secret", "set", "PASSWORD", "--" + value, "--app", "myapp"},
		{"secret", "set", "PASSWORD", "--app", "myapp", "--", value},
	} {
		r := f.fails(2, []string{"never", "(see ov --help)"}, "from-stdin", args...)
		if r.stdout != "" {
			t.Errorf("ov %q printed %q on stdout", args, r.stdout)
		}
	}
	if !bytes.Equal(before, f.vaultBytes()) {
		t.Error("a refused secret set changed the vault")
	}
	if r := f.must("", "secret", "list", "--app", "myapp"); r.stdout != "" {
		t.Errorf("secret list after refusals: %q", r.stdout)
	}
}

func TestHelpExitsZeroAndListsTheVariables(t *testing.T) {
	t.Parallel()
	f := &ovFixture{t: t, dir: t.TempDir()}
	for _, c := range []struct {
		bin  string
		args []string
		want []string
	}{
		{ovBin, []string{"--help"}, []string{"$OV_VAULT", "$OV_PASSWORD_FILE", "derive-machine-key"}},
		{ovBin, []string{"vault", "passwd", "--help"}, []string{"$OV_NEW_PASSWORD_FILE"}},
		{ovBin, []string{"vault", "upgrade", "--help"}, []string{"format 2", "table of apps is authenticated"}},
		{ovBin, []string{"run", "--help"}, []string{"$OV_APP", "$OV_MACHINE_KEY", "$OV_VAULT"}},
		{ovBin, []string{"--version"}, []string{"ov "}},
		{ovInit, []string{"--help"}, []string{"$OV_APP"}},
	} {
		r := f.ovCmd([]string{"PATH=/usr/bin:/bin", "HOME=" + f.dir}, nil, "", c.bin, c.args...)
		if r.code != 0 {
			t.Errorf("%s %q: exit %d; stderr: %s", filepath.Base(c.bin), c.args, r.code, r.stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s %q does not mention %s", filepath.Base(c.bin), c.args, w)
			}
		}
	}
	r := f.ovCmd(nil, nil, "", ovBin)
	if r.code != 2 || !strings.Contains(r.stderr, "(see ov --help)") {
		t.Errorf("ov without a command: exit %d, want 2 with a hint; stderr: %s", r.code, r.stderr)
	}
}

func TestNoTerminalAndNoPasswordFileIsAClearError(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + f.dir, "OV_VAULT=" + f.vault}
	noTTY := &syscall.SysProcAttr{Setsid: true} // a new session has no controlling terminal
	r := f.ovCmd(env, noTTY, "", ovBin, "app", "create", "myapp")
	if want := "ov: no terminal to ask for the master password; use --password-file or OV_PASSWORD_FILE\n"; r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", r.code, r.stderr, want)
	}
	r = f.ovCmd(env, noTTY, "", ovBin, "--vault", filepath.Join(f.dir, "new.json"), "vault", "init")
	if r.code != 1 || !strings.Contains(r.stderr, "no terminal") {
		t.Errorf("vault init without a terminal: exit %d; stderr %q", r.code, r.stderr)
	}
}

// ovPTY returns a new pseudo-terminal's two ends.
func ovPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here (/dev/ptmx): %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptm, pts
}

// ovTypeAnswers answers ov's prompts on a terminal: for each prompt, it waits
// until the prompt shows, then types the answer.
func ovTypeAnswers(t *testing.T, f *ovFixture, args []string, stdin string, answers [][2]string) (ovResult, string) {
	t.Helper()
	ptm, pts := ovPTY(t)
	cmd := exec.Command(ovBin, args...)
	cmd.Env = f.isolated(f.env())
	cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "OV_PASSWORD_FILE=") })
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin == "" {
		cmd.Stdin = pts
	} else {
		// The value on a pipe: the terminal is the controlling one, on fd 3.
		cmd.Stdin = strings.NewReader(stdin)
		cmd.ExtraFiles = []*os.File{pts}
		cmd.SysProcAttr.Ctty = 3
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	screen := newSyncBuffer()
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := ptm.Read(buf)
			screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	for _, a := range answers {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(screen.String(), a[0]) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("no prompt %q; terminal shows %q; stderr: %s", a[0], screen, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		ptm.Write([]byte(a[1] + "\n"))
	}
	cmd.Wait()
	r := ovResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	f.outputs = append(f.outputs, r.stdout, r.stderr, screen.String())
	return r, screen.String()
}

func TestPromptsReadTheTerminalWithoutEcho(t *testing.T) {
	t.Parallel()
	f := &ovFixture{t: t, dir: t.TempDir()}
	f.vault = filepath.Join(f.dir, "vault.json")
	f.pwFile = f.write("password", "typed master pw\n")
	t.Cleanup(f.checkNoValueShown)
	f.values = []string{"typed master pw", "typed-value-42", "piped-value-43"}

	r, _ := ovTypeAnswers(t, f, []string{"vault", "init"}, "", [][2]string{
		{"new master password: ", "typed master pw"}, {"repeat the new master password: ", "typed master pw"}})
	if r.code != 0 {
		t.Fatalf("vault init on a terminal: exit %d; stderr: %s", r.code, r.stderr)
	}
	r, _ = ovTypeAnswers(t, f, []string{"app", "create", "myapp"}, "", [][2]string{{"master password for ", "typed master pw"}})
	if r.code != 0 {
		t.Fatalf("app create on a terminal: exit %d; stderr: %s", r.code, r.stderr)
	}
	// stdin is the terminal: the value is asked for too.
	r, _ = ovTypeAnswers(t, f, []string{"secret", "set", "TYPED", "--app", "myapp"}, "", [][2]string{
		{"master password for ", "typed master pw"}, {"value for TYPED: ", "typed-value-42"}})
	if r.code != 0 {
		t.Fatalf("secret set on a terminal: exit %d; stderr: %s", r.code, r.stderr)
	}
	// stdin is a pipe: the value comes from it, the password from the terminal.
	r, _ = ovTypeAnswers(t, f, []string{"secret", "set", "PIPED", "--app", "myapp"}, "piped-value-43\n", [][2]string{
		{"master password for ", "typed master pw"}})
	if r.code != 0 {
		t.Fatalf("secret set with a pipe: exit %d; stderr: %s", r.code, r.stderr)
	}
	key := f.key("k", "--app", "myapp") // through the password file, with the same password
	f.wantSecret(key, "myapp", "TYPED", "typed-value-42")
	f.wantSecret(key, "myapp", "PIPED", "piped-value-43")

	// Two different passwords: nothing is written.
	f.vault = filepath.Join(f.dir, "second.json")
	r, _ = ovTypeAnswers(t, f, []string{"vault", "init"}, "", [][2]string{
		{"new master password: ", "one password"}, {"repeat the new master password: ", "another one"}})
	if r.code != 1 || !strings.Contains(r.stderr, "the two passwords differ") {
		t.Errorf("mismatched passwords: exit %d; stderr: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(f.vault); err == nil {
		t.Error("vault init wrote a vault although the passwords differ")
	}
}

// The product page's flow names no vault anywhere: ov keeps it at
// ~/.config/ov/vault.json and ov-init finds it there when /etc/ov/vault.json
// does not exist.
func TestProductFlowWorksWithTheDefaultVaultPaths(t *testing.T) {
	if _, err := os.Stat("/etc/ov/vault.json"); err == nil {
		t.Fatal("/etc/ov/vault.json exists on this machine; this test needs it absent")
	}
	f := newOvFixture(t)
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + f.dir, "OV_PASSWORD_FILE=" + f.pwFile}
	for _, args := range [][]string{{"vault", "init"}, {"app", "create", "myapp"}} {
		if r := f.ovCmd(env, nil, "", ovBin, args...); r.code != 0 {
			t.Fatalf("ov %v: exit %d: %s", args, r.code, r.stderr)
		}
	}
	if r := f.ovCmd(env, nil, ovDBURL+"\n", ovBin, "secret", "set", "DATABASE_URL", "--app", "myapp"); r.code != 0 {
		t.Fatalf("ov secret set: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(f.dir, ".config/ov/vault.json")); err != nil {
		t.Fatalf("ov did not keep the vault at ~/.config/ov/vault.json: %v", err)
	}
	key := filepath.Join(f.dir, "machine.kek")
	if r := f.ovCmd(env, nil, "", ovBin, "auth", "derive-machine-key", "--out", key, "--app", "myapp"); r.code != 0 {
		t.Fatalf("ov auth derive-machine-key: exit %d: %s", r.code, r.stderr)
	}
	cmd := exec.Command(ovInit, "--machine-key", key, "--app", "myapp", "--", helper, "env")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + f.dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ov-init without --vault: %v", err)
	}
	if got := ovParseEnv(t, string(out))["DATABASE_URL"]; got != ovDBURL {
		t.Errorf("ov-init without --vault gave the app DATABASE_URL=%q, want %q", got, ovDBURL)
	}
}

// The product page derives the key to /etc/ov/machine.kek, whose directory
// a fresh machine does not have: ov makes it, 0700, as vault init does.
func TestDeriveMachineKeyMakesAMissingDirectory(t *testing.T) {
	f := newOvFixture(t)
	f.must("", "app", "create", "myapp")
	key := f.key(filepath.Join("etc", "ov", "machine.kek"), "--app", "myapp")
	fi, err := os.Stat(filepath.Dir(key))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the key's directory: %v, mode %v; want it made with 0700", err, fi.Mode())
	}
	f.opens(key, "myapp")
}
