package vault

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The tests in this file hold format 2's generation: every write adds one,
// and the table MAC binds it, so the generation of a vault that unlocked
// is the one its root key's holder wrote. It is what lets ov tell a whole
// older copy of a vault (its table_mac still genuine) from the newest.

// writes are the vault's mutating methods, in an order where each is valid
// after the ones before, from an empty vault.
var writes = []struct {
	name  string
	write func(v *Vault, root *Root) error
}{
	{"CreateApp", func(v *Vault, root *Root) error { return v.CreateApp(root, "new") }},
	{"SetSecret", func(v *Vault, root *Root) error { return v.SetSecret(root, "new", "X", []byte("y")) }},
	{"RotateApp", func(v *Vault, root *Root) error { return v.RotateApp(root, "new") }},
	{"RemoveSecret", func(v *Vault, root *Root) error { return v.RemoveSecret(root, "new", "X") }},
	{"RemoveApp", func(v *Vault, root *Root) error { return v.RemoveApp(root, "new") }},
	{"ChangePassword", func(v *Vault, root *Root) error { return v.ChangePassword(root, testPassword) }},
}

// independentWrites are the vault's mutating methods, each valid on its own
// on newTestVault.
var independentWrites = []struct {
	name  string
	write func(v *Vault, root *Root) error
}{
	{"CreateApp", func(v *Vault, root *Root) error { return v.CreateApp(root, "new") }},
	{"RemoveApp", func(v *Vault, root *Root) error { return v.RemoveApp(root, "api") }},
	{"SetSecret", func(v *Vault, root *Root) error { return v.SetSecret(root, "web", "X", []byte("y")) }},
	{"RemoveSecret", func(v *Vault, root *Root) error { return v.RemoveSecret(root, "web", "API_TOKEN") }},
	{"RotateApp", func(v *Vault, root *Root) error { return v.RotateApp(root, "web") }},
	{"ChangePassword", func(v *Vault, root *Root) error { return v.ChangePassword(root, testPassword) }},
}

func TestEveryWriteAddsOneToTheGeneration(t *testing.T) {
	v, root, err := New(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if g := v.Generation(); g != 1 {
		t.Fatalf("a new vault is generation %d, want 1", g)
	}
	want := uint32(1)
	for _, w := range writes {
		if err := w.write(v, root); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		want++
		if g := v.Generation(); g != want {
			t.Fatalf("after %s: generation %d, want %d", w.name, g, want)
		}
		// The file says so, and the password verifies it.
		r := reparse(t, v)
		if g := r.Generation(); g != want {
			t.Fatalf("after %s: the file says generation %d, want %d", w.name, g, want)
		}
		if _, err := r.Unlock(testPassword); err != nil {
			t.Fatalf("after %s: Unlock: %v", w.name, err)
		}
	}
	if !bytes.Contains(marshal(t, v), []byte("{\n  \"version\": 2,\n  \"generation\": 7,\n  \"kdf\": {")) {
		t.Fatalf("generation is not right after version:\n%.200s", marshal(t, v))
	}

	// A refused write and a read change nothing; Upgrade of a format-2
	// vault is not a write.
	before := marshal(t, v)
	for op, err := range map[string]error{
		"CreateApp bad name": v.CreateApp(root, "Bad/Name"),
		"RemoveApp missing":  v.RemoveApp(root, "nope"),
		"RotateApp missing":  v.RotateApp(root, "nope"),
		"SetSecret missing":  v.SetSecret(root, "nope", "X", []byte("y")),
		"SetSecret PATH":     v.SetSecret(root, "nope", "PATH", []byte("/tmp")),
		"ChangePassword":     v.ChangePassword(root, nil),
	} {
		if err == nil {
			t.Errorf("%s succeeded", op)
		}
	}
	if err := v.Upgrade(root); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AppKey(root, "nope"); err == nil {
		t.Fatal("AppKey of a missing app succeeded")
	}
	if !bytes.Equal(marshal(t, v), before) || v.Generation() != 7 {
		t.Fatalf("a refused write, a read or Upgrade changed the vault (generation %d)", v.Generation())
	}
}

// TestGenerationIsBoundToTheTableMAC: a generation edited in the file,
// up or down, fails table_mac for the password and for the root key, and
// no write re-authenticates it.
func TestGenerationIsBoundToTheTableMAC(t *testing.T) {
	v, root := newTestVault(t)
	g := v.Generation()
	for _, edited := range []uint32{g - 1, g + 1, 1, MaxGeneration} {
		data := editJSON(t, marshal(t, v), func(m map[string]any) { m["generation"] = json.Number(itoa(edited)) })
		if w := mustParse(t, data); w.Generation() != edited {
			t.Fatalf("Generation() = %d, want the file's %d", w.Generation(), edited)
		}
		assertRefusedEverywhere(t, data, root, "web", "api")
	}
	// The scoped keys do not see the table: their check values pin their
	// app and epoch, which the edit did not touch.
	data := editJSON(t, marshal(t, v), func(m map[string]any) { m["generation"] = json.Number("1") })
	if got := secretsMap(t, mustParse(t, data), "api", mustAppKey(t, v, root, "api")); got["TOKEN"] != "tok-api" {
		t.Fatalf("api's key: %v", got)
	}
}

// TestWholeOlderCopyStillVerifiesAtItsOwnGeneration is the limit the
// generation does not remove by itself (SPEC.md, "Rollback"): a whole older
// copy, its table_mac and sections together, is genuine. The package keeps
// no state; its generation, lower than the newest, is what a caller that
// remembers (ov) compares.
func TestWholeOlderCopyStillVerifiesAtItsOwnGeneration(t *testing.T) {
	v, root := newTestVault(t)
	oldWeb := mustAppKey(t, v, root, "web")
	old := marshal(t, v)
	if err := v.RotateApp(root, "web"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, v, root, "web", "DB_PASSWORD", "new")
	w := mustParse(t, old)
	if _, err := w.Unlock(testPassword); err != nil {
		t.Fatalf("the older genuine copy: Unlock = %v", err)
	}
	if w.Generation() != v.Generation()-2 || !bytes.Equal(w.RootCheck(), v.RootCheck()) {
		t.Fatalf("older copy: generation %d, newest %d, or another root_check", w.Generation(), v.Generation())
	}
	// The copy re-issues the revoked key: why ov refuses a lower generation.
	if k := mustAppKey(t, w, root, "web"); !bytes.Equal(k, oldWeb) {
		t.Fatal("the older copy does not yield the epoch-1 key")
	}
}

// TestUpgradeFromFormat1GivesGeneration1: the upgrade is the first write
// of format 2 (TestEveryWriteUpgradesAFormat1Vault checks every other
// write does the same).
func TestUpgradeFromFormat1GivesGeneration1(t *testing.T) {
	orig, origRoot := newTestVault(t)
	v := mustParse(t, v1Copy(t, orig, origRoot))
	if v.Generation() != 0 || bytes.Contains(marshal(t, v), []byte("generation")) {
		t.Fatalf("a format-1 vault has generation %d", v.Generation())
	}
	root, err := v.Unlock(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Upgrade(root); err != nil {
		t.Fatal(err)
	}
	v = reparse(t, v)
	if v.Version() != Version || v.Generation() != 1 {
		t.Fatalf("after Upgrade: version %d, generation %d; want 2, 1", v.Version(), v.Generation())
	}
	if _, err := v.Unlock(testPassword); err != nil {
		t.Fatal(err)
	}
	// The stored format-1 file too.
	if v, err = Load(goldenFile); err != nil {
		t.Fatal(err)
	}
	if root, err = v.Unlock(testPassword); err != nil {
		t.Fatal(err)
	}
	if err := v.Upgrade(root); err != nil {
		t.Fatal(err)
	}
	if v.Generation() != 1 {
		t.Fatalf("the golden format-1 file upgraded to generation %d", v.Generation())
	}
}

func TestTheLastGenerationRefusesWrites(t *testing.T) {
	v, root := newTestVault(t)
	v.generation = MaxGeneration - 1
	retable(t, v, root)
	v = reparse(t, v)
	if _, err := v.Unlock(testPassword); err != nil {
		t.Fatal(err)
	}
	mustSet(t, v, root, "web", "LAST", "write")
	if v.Generation() != MaxGeneration {
		t.Fatalf("generation %d, want %d", v.Generation(), uint32(MaxGeneration))
	}
	before := marshal(t, v)
	for _, w := range independentWrites {
		err := w.write(v, root)
		if err == nil || !strings.Contains(err.Error(), "last generation 4294967295") || !strings.Contains(err.Error(), "create a new vault") {
			t.Errorf("%s at the last generation = %v", w.name, err)
		}
	}
	if err := v.Upgrade(root); err != nil { // not a write
		t.Errorf("Upgrade at the last generation = %v", err)
	}
	if !bytes.Equal(marshal(t, v), before) {
		t.Fatal("a refused write changed the vault")
	}
	if _, err := reparse(t, v).Unlock(testPassword); err != nil {
		t.Fatal(err)
	}
}

func TestGenerationOfNilAndFormat1(t *testing.T) {
	var zero *Vault
	if zero.Generation() != 0 || zero.RootCheck() != nil {
		t.Fatal("nil Vault has a generation or a root_check")
	}
	v, err := Load(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if v.Generation() != 0 {
		t.Fatalf("format-1 generation %d", v.Generation())
	}
	rc := v.RootCheck()
	rc[0] ^= 1
	if bytes.Equal(rc, v.RootCheck()) {
		t.Fatal("RootCheck returns the vault's own slice")
	}
}

func itoa(n uint32) string {
	b, _ := json.Marshal(n)
	return string(b)
}
