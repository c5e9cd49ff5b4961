package main

import (
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ov-init/ov-init/vault"
)

var (
	idA = strings.Repeat("ab", 32)
	idB = strings.Repeat("0f", 32)
)

func TestSeenFileFollowsXDGStateHomeThenHome(t *testing.T) {
	t.Setenv("HOME", "/home/someone")
	t.Setenv("XDG_STATE_HOME", "/xdg/state")
	if got := seenFile(); got != "/xdg/state/ov/generations" {
		t.Errorf("with XDG_STATE_HOME: %q", got)
	}
	// The XDG specification: a relative path is ignored.
	for _, xdg := range []string{"", "relative/state"} {
		t.Setenv("XDG_STATE_HOME", xdg)
		if got := seenFile(); got != "/home/someone/.local/state/ov/generations" {
			t.Errorf("XDG_STATE_HOME=%q: %q, want the default under HOME", xdg, got)
		}
	}
	// Neither: no record, and nothing to say.
	t.Setenv("HOME", "")
	if got := seenFile(); got != "" {
		t.Errorf("without HOME and XDG_STATE_HOME: %q, want none", got)
	}
}

func TestParseSeen(t *testing.T) {
	got, err := parseSeen([]byte(idA + " 7\n\n" + idB + " 4294967295\n" + idA + " 5\n   \n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint32{idA: 7, idB: 4294967295}; !maps.Equal(got, want) {
		t.Errorf("parseSeen = %v, want %v (a vault named twice keeps its highest)", got, want)
	}
	if got, err := parseSeen(nil); err != nil || len(got) != 0 {
		t.Errorf("empty record: %v, %v", got, err)
	}
	for name, line := range map[string]string{
		"generation 0":     idA + " 0",
		"leading zero":     idA + " 07",
		"over uint32":      idA + " 4294967296",
		"negative":         idA + " -1",
		"plus sign":        idA + " +1",
		"no generation":    idA,
		"empty generation": idA + " ",
		"two spaces":       idA + "  1",
		"trailing space":   idA + " 1 ",
		"tab":              idA + "\t1",
		"upper-case hex":   strings.ToUpper(idA) + " 1",
		"short id":         idA[:62] + " 1",
		"long id":          idA + "ab 1",
		"not hex":          strings.Repeat("zz", 32) + " 1",
		"third field":      idA + " 1 x",
		"CRLF":             idA + " 1\r",
	} {
		_, err := parseSeen([]byte(idB + " 1\n" + line + "\n"))
		if err == nil || !strings.Contains(err.Error(), "line 2 is not") {
			t.Errorf("%s: parseSeen = %v, want an error naming line 2", name, err)
		}
	}
}

func TestFormatSeenIsSortedAndParsesBack(t *testing.T) {
	seen := map[string]uint32{idA: 3, idB: 9}
	data := formatSeen(seen)
	if want := idB + " 9\n" + idA + " 3\n"; string(data) != want {
		t.Errorf("formatSeen = %q, want %q", data, want)
	}
	if got, err := parseSeen(data); err != nil || !maps.Equal(got, seen) {
		t.Errorf("parseSeen(formatSeen) = %v, %v", got, err)
	}
}

// leftovers lists dir's entries other than the record.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "generations" {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestRecordSeenOnlyRaisesAndWritesAtomically(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(state, seenName)
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if err := recordSeen(path, idA, 3); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{state: 0o700 | os.ModeDir, filepath.Dir(path): 0o700 | os.ModeDir, path: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, mode)
		}
	}
	if got := read(); got != idA+" 3\n" {
		t.Fatalf("record = %q", got)
	}
	// Lower or equal: unchanged. Higher: raised. Other vaults: kept.
	for _, gen := range []uint32{1, 3} {
		if err := recordSeen(path, idA, gen); err != nil {
			t.Fatal(err)
		}
	}
	if err := recordSeen(path, idB, 1); err != nil {
		t.Fatal(err)
	}
	if err := recordSeen(path, idA, 4); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), idB+" 1\n"+idA+" 4\n"; got != want {
		t.Fatalf("record = %q, want %q", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Errorf("rewritten record has mode %v", fi.Mode())
	}
	if l := leftovers(t, filepath.Dir(path)); len(l) != 0 {
		t.Errorf("temporary files left behind: %q", l)
	}

	// A record ov cannot read is neither overwritten nor dropped.
	bad := "garbage\n" + idA + " 4\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := recordSeen(path, idA, 9); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("recordSeen over a malformed record = %v", err)
	}
	if got := read(); got != bad {
		t.Errorf("a malformed record was rewritten: %q", got)
	}
	if l := leftovers(t, filepath.Dir(path)); len(l) != 0 {
		t.Errorf("temporary files left behind: %q", l)
	}
}

// TestRecordSeenConcurrentlyLosesNoVault: the lock serializes the
// read-modify-write of concurrent writers.
func TestRecordSeenConcurrentlyLosesNoVault(t *testing.T) {
	path := filepath.Join(t.TempDir(), seenName)
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := hex.EncodeToString([]byte(fmt.Sprintf("%032d", i)))
			for gen := uint32(1); gen <= 5; gen++ {
				if err := recordSeen(path, id, gen); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := parseSeen(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("%d vaults recorded, want %d:\n%s", len(seen), n, data)
	}
	for id, gen := range seen {
		if gen != 5 {
			t.Errorf("%s: generation %d, want 5", id, gen)
		}
	}
}

// TestCheckSeenRefusesAnOlderCopy drives checkSeen with real vaults: one
// made here (its generation grows with each write) and the stored format-1
// file, which counts as generation 0.
func TestCheckSeenRefusesAnOlderCopy(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	path := filepath.Join(state, seenName)
	g := &Globals{Vault: "/some/vault.json"}

	v, root, err := vault.New([]byte("pw")) // one Argon2id run, at the default cost
	if err != nil {
		t.Fatal(err)
	}
	defer root.Wipe()
	if err := g.checkSeen(v); err != nil {
		t.Fatal(err)
	}
	old, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"web", "api"} {
		if err := v.CreateApp(root, app); err != nil {
			t.Fatal(err)
		}
	}
	g.recordSeen(v) // what save does
	id := hex.EncodeToString(v.RootCheck())
	record, _ := os.ReadFile(path)
	if string(record) != id+" 3\n" {
		t.Fatalf("record = %q, want generation 3", record)
	}
	if err := g.checkSeen(v); err != nil {
		t.Fatalf("the newest copy: %v", err)
	}

	w, err := vault.Parse(old)
	if err != nil {
		t.Fatal(err)
	}
	err = g.checkSeen(w)
	want := fmt.Sprintf(`vault "/some/vault.json" is generation 1, older than generation 3 that ov has already seen of this vault on this machine: `+
		`it was replaced with an older copy, which can undo a revocation (a rolled-back vault re-issues revoked keys); `+
		`nothing was changed: restore the newest copy; if you restored an older copy on purpose, remove the line starting with %s from %q`, id[:16], path)
	if err == nil || err.Error() != want {
		t.Fatalf("checkSeen of the older copy = %v\nwant %s", err, want)
	}
	if after, _ := os.ReadFile(path); string(after) != string(record) {
		t.Errorf("a refused copy changed the record: %q", after)
	}

	// A format-1 copy of a vault seen in format 2 is older still.
	v1, err := vault.Load("../vault/testdata/vault.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.checkSeen(v1); err != nil {
		t.Fatalf("a format-1 vault never seen: %v", err)
	}
	if err := recordSeen(path, hex.EncodeToString(v1.RootCheck()), 1); err != nil {
		t.Fatal(err)
	}
	if err := g.checkSeen(v1); err == nil || !strings.Contains(err.Error(), "is format 1 (it has no generation), older than generation 1") {
		t.Fatalf("a format-1 copy of a vault seen at generation 1: %v", err)
	}

	// A record ov cannot read refuses too, naming it.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.checkSeen(v); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("cannot read %q", path)) ||
		!strings.Contains(err.Error(), "line 1 is not") {
		t.Fatalf("checkSeen with a malformed record = %v", err)
	}

	// Without a state directory, nothing is checked or recorded.
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "")
	if err := g.checkSeen(w); err != nil {
		t.Fatalf("without a state directory: %v", err)
	}
}
