package integration

// The messages of issue 8: what ov and ov-init say when they refuse, and
// that the commands they suggest paste into a shell as they are.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"
)

// invalidNameText is ov's whole refusal of a NAME that is not a secret name.
const invalidNameText = "ov: invalid secret name (not repeated here: it may be a secret value): " +
	"names must match [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes (see ov --help)\n"

// A value typed where the name goes must not be printed back: not by
// secret set, not by secret rm, not through kong's own errors.
func TestSecretSetAndRmNeverRepeatARejectedName(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "web")
	const mark = "hunter2"
	f.values = append(f.values, mark) // no output of f may hold it
	for _, name := range []string{"hunter2!pass", "hunter2 pass", "9hunter2", "hunter2\x01", "ünhunter2", strings.Repeat("hunter2_", 40)} {
		for _, cmd := range []string{"set", "rm"} {
			r := f.fails(exitUsageStatus, nil, "", "secret", cmd, name, "--app", "web")
			if r.stderr != invalidNameText {
				t.Errorf("ov secret %s %q:\n got %q\nwant %q", cmd, name, r.stderr, invalidNameText)
			}
		}
	}
	// Kong's errors for what looks like a flag, or a second argument.
	for _, args := range [][]string{
		{"secret", "set", "-hunter2", "--app", "web"},
		{"secret", "set", "--hunter2=pass", "--app", "web"},
		{"secret", "set", "NAME", "hunter2", "--app", "web"},
		{"secret", "rm", "-hunter2", "--app", "web"},
		{"secret", "rm", "--hunter2=pass", "--app", "web"},
		{"secret", "rm", "NAME", "hunter2", "--app", "web"},
	} {
		f.fails(exitUsageStatus, []string{"not repeated here"}, "", args...)
	}
	// Control: a valid name of the same length is accepted, so the
	// refusals above are the name's doing.
	f.must("v\n", "secret", "set", "hunter2_pass", "--app", "web")
	f.must("", "secret", "rm", "hunter2_pass", "--app", "web")
	f.values = f.values[:len(f.values)-1] // the control's name was echoed, rightly
}

// exitUsageStatus is ov's status for a usage error.
const exitUsageStatus = 2

// Rotation keeps the plaintext, and a key from before it still opens the
// vault's earlier copies: rotate says so, names (never values) the secrets
// to change, and the limit it states is true.
func TestAppRotateSaysItKeepsTheValuesAndNamesThemToChange(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "web")
	f.secret("web", "DB_PASSWORD", ovDBURL)
	f.secret("web", "API_TOKEN", "tok-9fK2xQ7w")
	oldKey := f.legacyKey("old.kek", "web") // rotation stops legacy app keys
	oldCopy := f.write("vault-before-rotation.json", string(f.vaultBytes()))

	r := f.must("", "app", "rotate", "web")
	for _, want := range []string{
		"a leaked key still opens every copy of the vault from before the rotation",
		"after a leak, change the values too: ov secret set NAME --app web\n",
		"ov: secrets of app \"web\" to change after a leak: API_TOKEN, DB_PASSWORD\n",
		"ov: to cut off one leaked key, revoke its deployment instead: ov auth revoke --app web NAME (see ov auth list --app web)\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("ov app rotate said:\n%s\nwant it to say %q", r.stderr, want)
		}
	}

	// The limit is real: the old key no longer opens the rotated vault,
	// but still opens the copy from before the rotation, with the value
	// rotation did not change.
	if code, _, stderr := f.appEnv(oldKey, "web"); code == 0 {
		t.Errorf("the key from before the rotation still opens the rotated vault: %s", stderr)
	}
	code, stdout, stderr := runPID1(t, nil, "--vault", oldCopy, "--machine-key", oldKey, "--app", "web", "--", helper, "env")
	f.outputs = append(f.outputs, stderr)
	if code != 0 {
		t.Fatalf("old key on the copy from before the rotation: exit %d; stderr: %s", code, stderr)
	}
	if got := helperEnv(t, stdout)["DB_PASSWORD"]; got != ovDBURL {
		t.Errorf("old key on the old copy: DB_PASSWORD is %q, want the unchanged value", got)
	}
}

// A vault that ov-init's uid may not read is a permission problem with a
// chmod fix (for an export; the full vault is replaced by one, never
// chowned to ov-init), not a file "changed outside ov" to restore.
func TestVaultUnreadableByOvInitsUIDSaysChmodAnExport(t *testing.T) {
	const uid = 1001
	s := newSecretsSetup(t)
	app := unprivilegedHelper(t, s) // also opens s.dir to every uid
	bin := filepath.Join(s.dir, "ov-init")
	copyExecutable(t, ovInit, bin)
	if err := os.Chown(s.webKey, uid, uid); err != nil { // the key is uid 1001's
		t.Fatal(err)
	}
	if err := os.Chmod(s.vault, 0o000); err != nil {
		t.Fatal(err)
	}
	as := &syscall.Credential{Uid: uid, Gid: uid}
	env := []string{"PATH=/usr/bin:/bin"}
	r := runOvInit(t, bin, as, env, withApp(s.flags("web", s.webKey), app, "env")...)
	assertRefused(t, r,
		"ov-init: reading vault "+strconv.Quote(s.vault)+": open: permission denied; fix: let uid 1001 (ov-init) read it: if it is an export (ov vault export), chmod 644 "+s.vault+
			"; if it is the full vault, deploy the app's export there instead (`ov vault export --app web --out FILE`); and make its directories searchable by uid 1001")
	if strings.Contains(r.stderr, "version control") {
		t.Errorf("a permission problem is sent to version control: %s", r.stderr)
	}

	// Control: the fix it gives works.
	if err := os.Chmod(s.vault, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runOvInit(t, bin, as, env, withApp(s.flags("web", s.webKey), app, "env")...)
	if r.code != 0 {
		t.Fatalf("after chmod 644: exit %d; stderr: %s", r.code, r.stderr)
	}
	assertSecrets(t, helperEnv(t, r.stdout), allWebSecrets...)
}

// The commands in ov-init's and ov's fixes paste into a shell as they are:
// a path with a space is single-quoted, one with a control character is
// $'…'-quoted and stays on one line.
func TestSuggestedCommandsQuotePathsForTheShell(t *testing.T) {
	t.Run("ov-init_vault_path", func(t *testing.T) {
		s := newSecretsSetup(t)
		missing := filepath.Join(s.dir, "my vault.json")
		r := runSecrets(t, nil, withApp([]string{"--vault", missing, "--machine-key", s.webKey, "--app", "web"}, s.touchApp()...)...)
		assertRefused(t, r, "fix: mount the vault at '"+missing+"' or point --vault")
		s.assertAppNeverStarted(t)
	})
	t.Run("ov-init_key_path", func(t *testing.T) {
		s := newSecretsSetup(t)
		key := filepath.Join(s.dir, "api key.kek")
		putMachineKey(t, key, s.fx.api)
		r := runSecrets(t, nil, withApp(s.flags("web", key), s.touchApp()...)...)
		assertRefused(t, r, "`ov auth derive-machine-key --out '"+key+"' --app web --force`")
		s.assertAppNeverStarted(t)
	})
	t.Run("ov_derive_out", func(t *testing.T) {
		t.Parallel()
		f := newOvFixture(t)
		f.must("", "app", "create", "web")
		out := filepath.Join(f.dir, "tab\there.kek")
		r := f.must("", "auth", "derive-machine-key", "--out", out, "--app", "web")
		want := "ov auth derive-machine-key --out $'" + strings.ReplaceAll(out, "\t", `\x09`) + "' --force\n"
		if !strings.Contains(r.stderr, want) {
			t.Errorf("derive-machine-key said:\n%s\nwant it to say %q", r.stderr, want)
		}
		if strings.Contains(r.stderr, "\t") {
			t.Errorf("derive-machine-key printed a raw tab: %q", r.stderr)
		}

		dir := filepath.Join(f.dir, "my keys")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		f.fails(2, []string{"e.g. --out '" + filepath.Join(dir, "machine.kek") + "' (see ov --help)\n"}, "", "auth", "derive-machine-key", "--out", dir, "--app", "web")
	})
}

// A parser's error repeats what it did not understand. Bytes there that do
// not print are escaped: a crafted argument cannot forge a second line or
// send escape sequences to the operator's terminal.
func TestUnknownFlagWithControlBytesStaysOneLine(t *testing.T) {
	bad := "--x\nov-init: FORGED\x1b[31m\xff"
	for _, bin := range []string{ovInit, ovBin} {
		cmd := exec.Command(bin, bad, "--", "true")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("%s: exit %d (%v), want 2", filepath.Base(bin), code, err)
		}
		out := stderr.String()
		// No ESC, and no byte that is not UTF-8 (nor U+FFFD in its place).
		raw := strings.Contains(out, "\x1b") || !utf8.ValidString(out) || strings.ContainsRune(out, utf8.RuneError)
		if strings.Count(out, "\n") != 1 || raw || !strings.Contains(out, `\x0a`) {
			t.Errorf("%s: stderr %q, want one line with the bytes escaped", filepath.Base(bin), out)
		}
	}
}
