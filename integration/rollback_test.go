package integration

// A whole older genuine copy of a format-2 vault (its table_mac and
// sections together, e.g. from git history) verifies as well as the newest:
// the root key never changes. Replayed over the vault, it made
// `ov auth derive-machine-key --app web` re-issue web's key revoked by
// `ov app rotate web`, and `ov secret set` seal a new value under it. Every
// write now adds one to the vault's generation, which table_mac binds, and
// ov remembers the newest generation it has seen of each vault: it refuses
// an older one. These tests drive the real ov with its state in the test's
// directory.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stateFile is where ov records the generations it has seen, with the
// fixture's environment (HOME is the test's directory).
func (f *ovFixture) stateFile() string {
	return filepath.Join(f.dir, ".local", "state", "ov", "generations")
}

// vaultID is the state file's name for the vault: its root_check in hex.
func (f *ovFixture) vaultID() string {
	f.t.Helper()
	var doc struct {
		RootCheck string `json:"root_check"`
	}
	if err := json.Unmarshal(f.vaultBytes(), &doc); err != nil {
		f.t.Fatal(err)
	}
	rc, err := base64.StdEncoding.DecodeString(doc.RootCheck)
	if err != nil || len(rc) != 32 {
		f.t.Fatalf("root_check %q: %v", doc.RootCheck, err)
	}
	return hex.EncodeToString(rc)
}

// seen returns the generation ov recorded for the vault, 0 for none.
func (f *ovFixture) seen() int {
	f.t.Helper()
	data, err := os.ReadFile(f.stateFile())
	if err != nil {
		f.t.Fatalf("ov recorded no generation: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if gen, ok := strings.CutPrefix(line, f.vaultID()+" "); ok {
			var n int
			fmt.Sscan(gen, &n)
			return n
		}
	}
	return 0
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRolledBackVaultIsRefusedByOv(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t) // generation 1
	if g := f.seen(); g != 1 {
		t.Fatalf("after vault init ov recorded generation %d, want 1", g)
	}
	f.must("", "app", "create", "web")      // 2
	f.secret("web", "DB", "ovsec-old-db\n") // 3
	web1 := f.legacyKey("web1.kek", "web")
	old := f.vaultBytes()                   // e.g. in git history
	f.must("", "app", "rotate", "web")      // 4: web1.kek revoked
	f.secret("web", "DB", "ovsec-new-db\n") // 5
	out := f.legacyKey("x.kek", "web")      // the current key, at epoch 2
	if g := f.seen(); g != 5 {
		t.Fatalf("ov recorded generation %d, want 5", g)
	}

	// The attacker, who can write the vault file, replays the old copy.
	if err := os.WriteFile(f.vault, old, 0o600); err != nil {
		t.Fatal(err)
	}
	f.values = append(f.values, "ovsec-BRAND-NEW")
	state, key := readFile(t, f.stateFile()), readFile(t, out)
	want := []string{
		fmt.Sprintf("ov: vault %q is generation 3, older than generation 5 that ov has already seen of this vault on this machine: ", f.vault),
		"it was replaced with an older copy, which can undo a revocation (a rolled-back vault re-issues revoked keys)",
		"restore the newest copy",
		fmt.Sprintf("remove the line starting with %s from %q", f.vaultID()[:16], f.stateFile()),
	}
	newKey := filepath.Join(f.dir, "new.kek")
	for _, args := range [][]string{
		{"auth", "derive-machine-key", "--out", out, "--app", "web", "--force"},
		{"secret", "set", "DB", "--app", "web"},
		{"auth", "derive-machine-key", "--out", newKey, "--all-apps"},
		{"auth", "derive-machine-key", "--out", newKey, "--app", "web"},
		{"secret", "rm", "DB", "--app", "web"},
		{"app", "rotate", "web"},
		{"app", "create", "api"},
		{"vault", "upgrade"},
		{"vault", "passwd", "--new-password-file", f.pwFile},
	} {
		f.fails(1, want, "ovsec-BRAND-NEW\n", args...)
		if !bytes.Equal(f.vaultBytes(), old) {
			t.Fatalf("ov %q changed the rolled-back vault", args)
		}
	}
	if !bytes.Equal(readFile(t, out), key) {
		t.Error("a refused derive-machine-key --force replaced the key file")
	}
	if _, err := os.Lstat(newKey); err == nil {
		t.Error("a refused derive-machine-key wrote a key")
	}
	if !bytes.Equal(readFile(t, f.stateFile()), state) {
		t.Error("a refused command changed ov's record")
	}
	// Commands that do not unlock read the copy as it is.
	if r := f.must("", "secret", "list", "--app", "web"); r.stdout != "DB\n" {
		t.Errorf("secret list printed %q", r.stdout)
	}
	// ov-init keeps no state (SPEC.md, "Rollback"): the revoked key opens
	// the genuine older copy. What protects a host is who may write its
	// vault, and rotating before changing the values.
	f.wantSecret(web1, "web", "DB", "ovsec-old-db")

	// Control: without the line, ov takes the copy as it is, which is the
	// hole: a new value sealed under the revoked key.
	var kept []string
	for _, line := range strings.SplitAfter(string(state), "\n") {
		if !strings.HasPrefix(line, f.vaultID()+" ") {
			kept = append(kept, line)
		}
	}
	if err := os.WriteFile(f.stateFile(), []byte(strings.Join(kept, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	f.secret("web", "DB", "ovsec-BRAND-NEW\n")
	f.wantSecret(web1, "web", "DB", "ovsec-BRAND-NEW")
	if g := f.seen(); g != 4 {
		t.Errorf("control: ov recorded generation %d, want 4", g)
	}
}

// TestFormat1CopyOfAnUpgradedVaultIsRefusedByOv: ov writes format 2 only,
// so a format-1 copy of a vault ov has seen in format 2 is an older copy
// (SPEC.md, "Downgrade"), refused on that machine like any other.
func TestFormat1CopyOfAnUpgradedVaultIsRefusedByOv(t *testing.T) {
	t.Parallel()
	f, _, _ := format1Fixture(t)
	v1 := f.vaultBytes()
	f.must("", "vault", "upgrade")
	if g := f.seen(); g != 1 {
		t.Fatalf("after the upgrade ov recorded generation %d, want 1", g)
	}
	if err := os.WriteFile(f.vault, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"vault", "upgrade"}, {"app", "create", "new"}, {"secret", "set", "X", "--app", "web"}} {
		f.fails(1, []string{fmt.Sprintf("vault %q is format 1 (it has no generation), older than generation 1 that ov has already seen", f.vault),
			"replaced with an older copy"}, "x\n", args...)
	}
	if !bytes.Equal(f.vaultBytes(), v1) {
		t.Fatal("a refused command changed the format-1 copy")
	}
}

// TestOvKeepsItsRecordUnderXDGStateHome: with XDG_STATE_HOME set, ov's
// record is there (mode 0600, directory 0700), not under HOME, and a copy
// older than it is refused whatever the vault's path.
func TestOvKeepsItsRecordUnderXDGStateHome(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	state := filepath.Join(t.TempDir(), "xdg-state")
	env := f.env("XDG_STATE_HOME=" + state)
	run := func(stdin string, args ...string) ovResult {
		t.Helper()
		return f.ovCmd(env, stdin, args...)
	}
	if r := run("", "app", "create", "web"); r.code != 0 {
		t.Fatalf("app create: exit %d: %s", r.code, r.stderr)
	}
	old := f.vaultBytes()
	if r := run("", "app", "create", "api"); r.code != 0 {
		t.Fatalf("app create: exit %d: %s", r.code, r.stderr)
	}
	record := filepath.Join(state, "ov", "generations")
	if got, want := string(readFile(t, record)), f.vaultID()+" 3\n"; got != want {
		t.Fatalf("record under XDG_STATE_HOME = %q, want %q", got, want)
	}
	for p, mode := range map[string]os.FileMode{record: 0o600, filepath.Dir(record): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, mode)
		}
	}
	if g := f.seen(); g != 1 { // under HOME: only vault init, which ran without XDG_STATE_HOME
		t.Errorf("the record under HOME says %d, want 1", g)
	}
	// The same vault elsewhere is the same vault.
	elsewhere := filepath.Join(f.dir, "copy.json")
	if err := os.WriteFile(elsewhere, old, 0o600); err != nil {
		t.Fatal(err)
	}
	r := run("", "--vault", elsewhere, "app", "create", "new")
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("vault %q is generation 2, older than generation 3", elsewhere)) {
		t.Errorf("an older copy at another path: exit %d: %s", r.code, r.stderr)
	}
}

// The product page's rotate command over a key from before deployments
// (format 1's --app key) must cut that key off, not only write the new
// one: the app moves to a new epoch, the old key is refused, the new
// deployment key opens.
func TestRotatingAKeyFromBeforeDeploymentsRefusesIt(t *testing.T) {
	for _, withApp := range []bool{false, true} {
		f := newOvFixture(t)
		f.must("", "app", "create", "web")
		f.secret("web", "DB", "ovsec-legacy-db")
		key := f.legacyKey("host.kek", "web")
		old, err := os.ReadFile(key)
		if err != nil {
			t.Fatal(err)
		}
		oldCopy := filepath.Join(f.dir, "old-copy.kek")
		putMachineKey(t, oldCopy, old)
		f.wantSecret(oldCopy, "web", "DB", "ovsec-legacy-db")

		args := []string{"auth", "derive-machine-key", "--out", key, "--force"}
		if withApp {
			args = append(args, "--app", "web")
		}
		r := f.must("", args...)
		if !strings.Contains(r.stderr, "new epoch") {
			t.Errorf("--app %v: stderr does not say the old key is cut off: %s", withApp, r.stderr)
		}
		if code, _, stderr := f.appEnv(oldCopy, "web"); code != 78 {
			t.Errorf("--app %v: the key from before deployments still opens the rotated vault: exit %d; %s", withApp, code, stderr)
		}
		f.wantSecret(key, "web", "DB", "ovsec-legacy-db")
	}
}
