package integration

import (
	"bytes"
	"fmt"
	"github.com/ov-init/ov-init/vault"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ov's command line is tested as scripts (ov_script_test.go, testdata/ov).
// This file holds what reads better in Go: ovFixture, which the tests of
// rollback, forgery and messages build on, and the prompts on a terminal.
// They drive the real ov binary against a vault in a temporary directory,
// with the production Argon2id cost (a few tenths of a second per unlock),
// and check the result through the real ov-init.

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
	screen         string // what the terminal showed, for ovTypeAnswers
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
// $XDG_STATE_HOME, else ~/.local/state, which must be in a temporary
// directory.
func (f *ovFixture) isolated(env []string) []string {
	f.t.Helper()
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
	return f.ovCmd(f.env(), stdin, args...)
}

// ovCmd runs ov ARGS with env as its whole environment.
func (f *ovFixture) ovCmd(env []string, stdin string, args ...string) ovResult {
	f.t.Helper()
	cmd := exec.Command(ovBin, args...)
	cmd.Env = f.isolated(env)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		f.t.Fatalf("running ov %q: %v", args, err)
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

// legacyKey writes app's current app key (the key --app wrote before
// deployments, which ov-init still accepts until the app's next epoch)
// into dir/name and returns its path. ov no longer writes it; the test
// derives it with the vault package and the master password.
func (f *ovFixture) legacyKey(name, app string) string {
	f.t.Helper()
	v, err := vault.Load(f.vault)
	if err != nil {
		f.t.Fatal(err)
	}
	root, err := v.Unlock([]byte(ovPassword))
	if err != nil {
		f.t.Fatal(err)
	}
	defer root.Wipe()
	k, err := v.AppKey(root, app)
	if err != nil {
		f.t.Fatal(err)
	}
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, k, 0o600); err != nil {
		f.t.Fatal(err)
	}
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
	return code, helperEnv(f.t, stdout), stderr
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

// ovTypeAnswers runs ov ARGS on a new pseudo-terminal, without a password
// file, and answers its prompts: for each, it waits until the prompt shows,
// then types the answer. With stdin empty the terminal is ov's stdin too;
// otherwise stdin is a pipe. Whatever the terminal showed joins f's outputs,
// which may show no secret value.
func ovTypeAnswers(t *testing.T, f *ovFixture, args []string, stdin string, answers [][2]string) ovResult {
	t.Helper()
	ptm, pts := openPTY(t)
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
	pts.Close() // ov holds the terminal now: reads of ptm end when it exits
	screen := newSyncBuffer()
	read := make(chan struct{})
	go func() {
		defer close(read)
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
	select { // the terminal's last output: its reads end when ov has closed it
	case <-read:
	case <-time.After(5 * time.Second):
	}
	r := ovResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String(), screen: screen.String()}
	f.outputs = append(f.outputs, r.stdout, r.stderr, r.screen)
	return r
}

func TestPromptsReadTheTerminalWithoutEcho(t *testing.T) {
	t.Parallel()
	f := &ovFixture{t: t, dir: t.TempDir()}
	f.vault = filepath.Join(f.dir, "vault.json")
	f.pwFile = f.write("password", "typed master pw\n")
	t.Cleanup(f.checkNoValueShown)
	f.values = []string{"typed master pw", "typed-value-42", "piped-value-43"}

	r := ovTypeAnswers(t, f, []string{"vault", "init"}, "", [][2]string{
		{"New master password: ", "typed master pw"}, {"Repeat the new master password: ", "typed master pw"}})
	if r.code != 0 {
		t.Fatalf("vault init on a terminal: exit %d; stderr: %s", r.code, r.stderr)
	}
	r = ovTypeAnswers(t, f, []string{"app", "create", "myapp"}, "", [][2]string{{"Master password: ", "typed master pw"}})
	if r.code != 0 {
		t.Fatalf("app create on a terminal: exit %d; stderr: %s", r.code, r.stderr)
	}
	// stdin is the terminal: the value is asked for too.
	r = ovTypeAnswers(t, f, []string{"secret", "set", "TYPED", "--app", "myapp"}, "", [][2]string{
		{"Master password: ", "typed master pw"}, {"Value for TYPED: ", "typed-value-42"}})
	if r.code != 0 {
		t.Fatalf("secret set on a terminal: exit %d; stderr: %s", r.code, r.stderr)
	}
	// stdin is a pipe: the value comes from it, the password from the terminal.
	r = ovTypeAnswers(t, f, []string{"secret", "set", "PIPED", "--app", "myapp"}, "piped-value-43\n", [][2]string{
		{"Master password: ", "typed master pw"}})
	if r.code != 0 {
		t.Fatalf("secret set with a pipe: exit %d; stderr: %s", r.code, r.stderr)
	}
	key := f.key("k", "--app", "myapp") // through the password file, with the same password
	f.wantSecret(key, "myapp", "TYPED", "typed-value-42")
	f.wantSecret(key, "myapp", "PIPED", "piped-value-43")

	// Two different passwords: nothing is written.
	f.vault = filepath.Join(f.dir, "second.json")
	r = ovTypeAnswers(t, f, []string{"vault", "init"}, "", [][2]string{
		{"New master password: ", "one password"}, {"Repeat the new master password: ", "another one"}})
	if r.code != 1 || !strings.Contains(r.stderr, "the two passwords differ") {
		t.Errorf("mismatched passwords: exit %d; stderr: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(f.vault); err == nil {
		t.Error("vault init wrote a vault although the passwords differ")
	}
}

// The terminal shows the product page's prompt, word for word, and nothing
// typed: "Master password: " to unlock, the same words for the new one
// (issue 11).
func TestMasterPasswordPromptIsThePagesWords(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.values = append(f.values, ovPassword, "the new master pw")
	r := ovTypeAnswers(t, f, []string{"app", "create", "myapp"}, "", [][2]string{{"Master password: ", ovPassword}})
	if r.code != 0 {
		t.Fatalf("app create on a terminal: exit %d; stderr: %s", r.code, r.stderr)
	}
	if want := "Master password: \r\n"; r.screen != want {
		t.Errorf("app create: the terminal showed %q, want %q", r.screen, want)
	}
	r = ovTypeAnswers(t, f, []string{"vault", "passwd"}, "", [][2]string{
		{"Master password: ", ovPassword}, {"New master password: ", "the new master pw"}, {"Repeat the new master password: ", "the new master pw"}})
	if r.code != 0 {
		t.Fatalf("vault passwd on a terminal: exit %d; stderr: %s", r.code, r.stderr)
	}
	if want := "Master password: \r\nNew master password: \r\nRepeat the new master password: \r\n"; r.screen != want {
		t.Errorf("vault passwd: the terminal showed %q, want %q", r.screen, want)
	}
}
