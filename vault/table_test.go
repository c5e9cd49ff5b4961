package vault

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tests in this file hold format 2's table MAC to issue 8: after
// `ov app rotate web`, the revoked epoch-1 key of web alone could build a
// complete epoch-1 section, and both the root key (as a machine key) and the
// password accepted it.

// sectionJSON is sec as the file holds it.
func sectionJSON(sec *appSection) map[string]any {
	b64 := base64.StdEncoding.EncodeToString
	secrets := map[string]any{}
	for name, sv := range sec.secrets {
		secrets[name] = b64(sv)
	}
	deps := map[string]any{}
	for name, d := range sec.deployments {
		deps[name] = map[string]any{"generation": d.generation, "created": d.created, "rotated": d.rotated, "check": b64(d.check), "grant": b64(d.grant)}
	}
	retired := []any{}
	for _, r := range sec.retired {
		retired = append(retired, map[string]any{"deployment": r.deployment, "generation": r.generation, "check": b64(r.check), "retired": r.date, "reason": r.reason})
	}
	return map[string]any{"epoch": sec.epoch, "check": b64(sec.check), "mac": b64(sec.mac), "secrets": secrets,
		"deployments": deps, "retired": retired}
}

// pasteSection puts sec into the vault file data as app's section, the way
// anyone who can write the file can.
func pasteSection(t *testing.T, data []byte, app string, sec *appSection) []byte {
	t.Helper()
	return editJSON(t, data, func(m map[string]any) {
		s := sectionJSON(sec)
		if fmt.Sprint(m["version"]) == "1" {
			delete(s, "deployments")
			delete(s, "retired")
		}
		obj(m, "apps")[app] = s
	})
}

// rotatedVault is newTestVault after `ov app rotate web`, with web's
// epoch-1 key (revoked by the rotation) and its epoch-2 key.
func rotatedVault(t *testing.T) (v *Vault, root *Root, oldWeb, curWeb []byte) {
	t.Helper()
	v, root = newTestVault(t)
	oldWeb = mustAppKey(t, v, root, "web")
	if err := v.RotateApp(root, "web"); err != nil {
		t.Fatal(err)
	}
	if e, _ := v.Epoch("web"); e != 2 {
		t.Fatalf("epoch after rotate = %d", e)
	}
	return v, root, oldWeb, mustAppKey(t, v, root, "web")
}

var forgedValues = map[string]string{"DB_PASSWORD": "forged-by-a-revoked-key", "API_TOKEN": "forged"}

// wantTableAltered checks err is ErrTampered saying the table was altered.
func wantTableAltered(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "table of apps was altered") {
		t.Errorf("%s = %v, want ErrTampered saying the table of apps was altered", what, err)
	}
}

// assertRefusedEverywhere checks that neither the root key as a machine key
// nor the password accepts forged, and that no write goes through with a
// root that was unlocked earlier; forged must not change.
func assertRefusedEverywhere(t *testing.T, forged []byte, root *Root, apps ...string) {
	t.Helper()
	w := mustParse(t, forged)
	for _, app := range apps {
		_, err := w.Open(app, root.Bytes(), nil)
		wantTableAltered(t, "Open("+app+", root key)", err)
		_, err = w.scoped(app, root.Bytes())
		wantTableAltered(t, "Scoped("+app+", root key)", err)
	}
	_, err := w.Unlock(testPassword)
	wantTableAltered(t, "Unlock(password)", err)
	_, err = w.AppKey(root, "api")
	wantTableAltered(t, "AppKey", err)
	for op, err := range map[string]error{
		"SetSecret":      w.SetSecret(root, "web", "NEW", []byte("x")),
		"SetSecret api":  w.SetSecret(root, "api", "NEW", []byte("x")),
		"RemoveSecret":   w.RemoveSecret(root, "api", "TOKEN"),
		"RotateApp":      w.RotateApp(root, "api"),
		"CreateApp":      w.CreateApp(root, "new"),
		"RemoveApp":      w.RemoveApp(root, "api"),
		"ChangePassword": w.ChangePassword(root, []byte("new password")),
		"Upgrade":        w.Upgrade(root),
	} {
		wantTableAltered(t, op, err)
	}
	if after := marshal(t, w); !bytes.Equal(after, marshal(t, mustParse(t, forged))) {
		t.Error("a refused write changed the vault")
	}
}

func TestForgedSectionFromARevokedAppKeyIsRefused(t *testing.T) {
	v, root, oldWeb, curWeb := rotatedVault(t)
	forged := pasteSection(t, marshal(t, v), "web", forgeSection(t, oldWeb, "web", 1, forgedValues))

	// The forgery is complete: the revoked key itself opens it. Without the
	// table MAC, the root key (which derives that very key from epoch 1)
	// accepted it too.
	w := mustParse(t, forged)
	if got := secretsMap(t, w, "web", oldWeb); !maps.Equal(got, forgedValues) {
		t.Fatalf("the forged section does not open with the key that made it: %v", got)
	}
	assertRefusedEverywhere(t, forged, root, "web", "api")

	// The current scoped key pins epoch 2: the forged epoch-1 section is not its.
	_, err := w.Open("web", curWeb, nil)
	wantErrIs(t, err, ErrWrongKey)
	if e, _ := w.Epoch("web"); e != 1 {
		t.Fatalf("forged epoch = %d", e)
	}
}

func TestRolledBackSectionIsRefused(t *testing.T) {
	// The genuine epoch-1 section, written by ov itself before the rotation.
	v, root := newTestVault(t)
	oldSection := sectionJSON(v.apps["web"])
	if err := v.RotateApp(root, "web"); err != nil {
		t.Fatal(err)
	}
	curWeb := mustAppKey(t, v, root, "web")
	rolledBack := editJSON(t, marshal(t, v), func(m map[string]any) { obj(m, "apps")["web"] = oldSection })
	assertRefusedEverywhere(t, rolledBack, root, "web", "api")
	_, err := mustParse(t, rolledBack).Open("web", curWeb, nil)
	wantErrIs(t, err, ErrWrongKey)
}

func TestRemovedAppIsRefused(t *testing.T) {
	v, root := newTestVault(t)
	removed := editJSON(t, marshal(t, v), func(m map[string]any) { delete(obj(m, "apps"), "api") })
	w := mustParse(t, removed)
	// The root key says the table was altered, not "no such app": the app's
	// absence is not authenticated either.
	_, err := w.Open("api", root.Bytes(), nil)
	wantTableAltered(t, "Open(api, root key)", err)
	if errors.Is(err, ErrNoSuchApp) {
		t.Error("a removed app is reported as never created")
	}
	_, err = w.Open("web", root.Bytes(), nil)
	wantTableAltered(t, "Open(web, root key)", err)
	_, err = w.Unlock(testPassword)
	wantTableAltered(t, "Unlock", err)
	if err := w.SetSecret(root, "web", "NEW", []byte("x")); !errors.Is(err, ErrTampered) {
		t.Errorf("SetSecret = %v", err)
	}
}

func TestAddedAppForgedByAnotherAppsKeyHolderIsRefused(t *testing.T) {
	v, root := newTestVault(t)
	apiKey := mustAppKey(t, v, root, "api")
	// The holder of api's key writes a consistent section for a new app.
	added := pasteSection(t, marshal(t, v), "payments", forgeSection(t, apiKey, "payments", 1, forgedValues))
	assertRefusedEverywhere(t, added, root, "payments", "web", "api")
}

func TestSwappedSectionsAreRefused(t *testing.T) {
	v, root := newTestVault(t)
	swapped := editJSON(t, marshal(t, v), func(m map[string]any) {
		apps := obj(m, "apps")
		apps["web"], apps["api"] = apps["api"], apps["web"]
	})
	assertRefusedEverywhere(t, swapped, root, "web", "api")
}

func TestTableMACAlteredIsRefused(t *testing.T) {
	v, root := newTestVault(t)
	v.tableMAC[0] ^= 1
	assertRefusedEverywhere(t, marshal(t, v), root, "web", "api")
}

// TestScopedKeyIgnoresTheTableButPinsItsEpoch: a scoped key cannot verify
// the table (it needs the root key) and does not need to.
func TestScopedKeyIgnoresTheTableButPinsItsEpoch(t *testing.T) {
	v, root, oldWeb, curWeb := rotatedVault(t)
	apiKey := mustAppKey(t, v, root, "api")
	// A section of another app, forged with the revoked web key: api's key
	// still opens api.
	w := mustParse(t, pasteSection(t, marshal(t, v), "web", forgeSection(t, oldWeb, "web", 1, forgedValues)))
	if got := secretsMap(t, w, "api", apiKey); got["TOKEN"] != "tok-api" {
		t.Fatalf("api key on an untouched api: %v", got)
	}
	for _, epoch := range []uint32{1, 2, 3} {
		w := mustParse(t, pasteSection(t, marshal(t, v), "web", forgeSection(t, oldWeb, "web", epoch, forgedValues)))
		_, err := w.Open("web", curWeb, nil)
		wantErrIs(t, err, ErrWrongKey)
	}
}

// v1Copy returns a format-1 copy of v as the format-1 writer would have
// written it, and the copy's bytes.
func v1Copy(t *testing.T, v *Vault, root *Root) []byte {
	t.Helper()
	c := mustParse(t, marshal(t, v))
	toV1(t, c, root)
	return marshal(t, c)
}

// downgraded rewrites the format-2 file data in the format-1 layout, with
// wrapped_root and root_check taken from old, an earlier format-1 copy of
// the same vault: what an attacker who can write the file and once saw a
// format-1 copy of it can make.
func downgraded(t *testing.T, data, old []byte) []byte {
	t.Helper()
	var header map[string]any
	editJSON(t, old, func(m map[string]any) { header = m })
	return editJSON(t, data, func(m map[string]any) {
		delete(m, "table_mac")
		delete(m, "generation")
		for _, a := range obj(m, "apps") {
			delete(a.(map[string]any), "deployments")
			delete(a.(map[string]any), "retired")
		}
		m["version"] = 1
		m["kdf"], m["wrapped_root"], m["root_check"] = header["kdf"], header["wrapped_root"], header["root_check"]
	})
}

func TestDowngradeToFormat1IsRefusedByTheRootKey(t *testing.T) {
	v, root := newTestVault(t)
	old := v1Copy(t, v, root) // the vault as it was before it was upgraded
	oldWeb := mustAppKey(t, v, root, "web")
	if err := v.RotateApp(root, "web"); err != nil {
		t.Fatal(err)
	}
	curWeb := mustAppKey(t, v, root, "web")
	forged := pasteSection(t, downgraded(t, marshal(t, v), old), "web", forgeSection(t, oldWeb, "web", 1, forgedValues))
	w := mustParse(t, forged)
	if w.Version() != Version1 {
		t.Fatalf("Version() = %d", w.Version())
	}
	for _, app := range []string{"web", "api"} {
		_, err := w.Open(app, root.Bytes(), nil)
		wantErrIs(t, err, ErrUnauthenticatedTable)
		if errors.Is(err, ErrTampered) {
			t.Error("ErrUnauthenticatedTable must be told apart from ErrTampered")
		}
		_, err = w.scoped(app, root.Bytes())
		wantErrIs(t, err, ErrUnauthenticatedTable)
	}
	_, err := w.Open("web", curWeb, nil)
	wantErrIs(t, err, ErrWrongKey)

	// The documented limit (SPEC.md, "Versions and upgrade"): the password
	// cannot tell this file from a never-upgraded one...
	if _, err := w.Unlock(testPassword); err != nil {
		t.Fatalf("Unlock of the downgraded file = %v; SPEC.md documents that it is accepted", err)
	}
	// ...until the master password is changed after the upgrade: the old
	// header no longer unwraps.
	if err := v.ChangePassword(root, []byte("a new password")); err != nil {
		t.Fatal(err)
	}
	w = mustParse(t, pasteSection(t, downgraded(t, marshal(t, v), old), "web", forgeSection(t, oldWeb, "web", 1, forgedValues)))
	if _, err := w.Unlock([]byte("a new password")); err != ErrWrongPassword {
		t.Fatalf("Unlock with the new password of a file with the old header = %v, want ErrWrongPassword", err)
	}
}

func TestVersionIsBoundToTheWrappedRoot(t *testing.T) {
	v, root := newTestVault(t)
	// A format-2 header relabelled format 1.
	relabelled := editJSON(t, marshal(t, v), func(m map[string]any) {
		delete(m, "table_mac")
		delete(m, "generation")
		for _, a := range obj(m, "apps") {
			delete(a.(map[string]any), "deployments")
			delete(a.(map[string]any), "retired")
		}
		m["version"] = 1
	})
	if _, err := mustParse(t, relabelled).Unlock(testPassword); err != ErrWrongPassword {
		t.Errorf("format-2 header relabelled 1: Unlock = %v, want ErrWrongPassword", err)
	}
	// A format-1 header relabelled format 2, with a genuine table MAC.
	m, err := tableMAC(root.Bytes(), v.generation, v.apps)
	if err != nil {
		t.Fatal(err)
	}
	relabelled = editJSON(t, v1Copy(t, v, root), func(doc map[string]any) {
		doc["version"] = 2
		for _, a := range obj(doc, "apps") {
			a.(map[string]any)["deployments"] = map[string]any{}
			a.(map[string]any)["retired"] = []any{}
		}
		doc["generation"] = v.generation
		doc["table_mac"] = base64.StdEncoding.EncodeToString(m)
	})
	if _, err := mustParse(t, relabelled).Unlock(testPassword); err != ErrWrongPassword {
		t.Errorf("format-1 header relabelled 2: Unlock = %v, want ErrWrongPassword", err)
	}
}

func TestNewVaultIsFormat2(t *testing.T) {
	v, root := newTestVault(t)
	if v.Version() != Version || Version != 2 {
		t.Fatalf("Version() = %d", v.Version())
	}
	data := marshal(t, v)
	if !bytes.Contains(data, []byte(`"version": 2,`)) || !bytes.Contains(data, []byte(`"table_mac": "`)) {
		t.Fatalf("file:\n%s", data)
	}
	if err := reparse(t, v).verifyTable(root.Bytes()); err != nil {
		t.Fatal(err)
	}
	var zero *Vault
	if zero.Version() != 0 {
		t.Fatal("nil Vault has a version")
	}
}

// TestStoredFormat1FileOpensAndUpgradesOnWrite: the format-1 golden file
// opens with the password and its scoped keys; the root key as a machine
// key is refused until a write upgrades it; then everything opens and no
// machine key changed.
func TestStoredFormat1FileOpensAndUpgradesOnWrite(t *testing.T) {
	v, err := Load(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version() != Version1 {
		t.Fatalf("Version() = %d", v.Version())
	}
	root, err := v.Unlock(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	webKey, apiKey := mustAppKey(t, v, root, "web"), mustAppKey(t, v, root, "api")
	if got := secretsMap(t, v, "web", webKey); got["DB_PASSWORD"] != "hunter2" {
		t.Fatalf("scoped key: %v", got)
	}
	_, err = v.Open("web", root.Bytes(), nil)
	wantErrIs(t, err, ErrUnauthenticatedTable)
	for _, want := range []string{"unscoped (root) machine key opens only format-2 vaults", "table of apps is authenticated", "ov vault upgrade"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Marshal of an unchanged format-1 vault keeps format 1, byte for byte.
	stored, _ := os.ReadFile(goldenFile)
	if !bytes.Equal(marshal(t, v), stored) {
		t.Fatal("a format-1 vault did not marshal to its own bytes")
	}
	salt, kdf := v.salt, v.kdf

	mustSet(t, v, root, "api", "NEW", "new")
	path := filepath.Join(t.TempDir(), "vault.json")
	if err := os.WriteFile(path, marshal(t, v), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if w.Version() != Version || !bytes.Equal(w.salt, salt) || w.kdf != kdf {
		t.Fatalf("after a write: version %d, salt or kdf changed: %v", w.Version(), w.kdf)
	}
	root2, err := w.Unlock(testPassword)
	if err != nil {
		t.Fatalf("after the upgrade, Unlock: %v", err)
	}
	if !bytes.Equal(root2.Bytes(), root.Bytes()) {
		t.Fatal("the upgrade changed the root key")
	}
	if got := secretsMap(t, w, "web", root.Bytes()); got["MULTILINE"] != "line 1\nline 2 \u2713" {
		t.Fatalf("root key after the upgrade: %v", got)
	}
	if got := secretsMap(t, w, "api", apiKey); got["NEW"] != "new" || got["TOKEN"] != "tok-api" {
		t.Fatalf("api key after the upgrade: %v", got)
	}
	if got := secretsMap(t, w, "web", webKey); got["API_TOKEN"] != "tok-web" {
		t.Fatalf("web key after the upgrade: %v", got)
	}
}

func TestEveryWriteUpgradesAFormat1Vault(t *testing.T) {
	newPW := []byte("a new password")
	for op, write := range map[string]func(v *Vault, root *Root) error{
		"CreateApp":      func(v *Vault, root *Root) error { return v.CreateApp(root, "new") },
		"RemoveApp":      func(v *Vault, root *Root) error { return v.RemoveApp(root, "api") },
		"SetSecret":      func(v *Vault, root *Root) error { return v.SetSecret(root, "web", "X", []byte("y")) },
		"RemoveSecret":   func(v *Vault, root *Root) error { return v.RemoveSecret(root, "web", "API_TOKEN") },
		"RotateApp":      func(v *Vault, root *Root) error { return v.RotateApp(root, "web") },
		"ChangePassword": func(v *Vault, root *Root) error { return v.ChangePassword(root, newPW) },
		"Upgrade":        func(v *Vault, root *Root) error { return v.Upgrade(root) },
	} {
		t.Run(op, func(t *testing.T) {
			orig, origRoot := newTestVault(t)
			v := mustParse(t, v1Copy(t, orig, origRoot))
			pw := testPassword
			root, err := v.Unlock(pw)
			if err != nil {
				t.Fatal(err)
			}
			if err := write(v, root); err != nil {
				t.Fatal(err)
			}
			if op == "ChangePassword" {
				pw = newPW
			}
			v = reparse(t, v)
			if v.Version() != Version || v.Generation() != 1 {
				t.Fatalf("Version() = %d, Generation() = %d after %s; want 2, 1", v.Version(), v.Generation(), op)
			}
			if _, err := v.Unlock(pw); err != nil {
				t.Fatalf("Unlock after %s: %v", op, err)
			}
			if got := secretsMap(t, v, "web", root.Bytes()); len(got) == 0 {
				t.Fatal("the root key opens nothing")
			}
		})
	}
}

func TestUpgradeRefusesAFormat1VaultWithAGarbageSection(t *testing.T) {
	v, root := newTestVault(t)
	data := v1Copy(t, v, root)
	for name, edit := range map[string]func(m map[string]any){
		"mac":   func(m map[string]any) { obj(m, "apps", "api")["mac"] = b64(32) },
		"check": func(m map[string]any) { obj(m, "apps", "api")["check"] = b64(32) },
		"entry": func(m map[string]any) { delete(obj(m, "apps", "api", "secrets"), "TOKEN") },
	} {
		t.Run(name, func(t *testing.T) {
			bad := editJSON(t, data, edit)
			w := mustParse(t, bad)
			r, err := w.Unlock(testPassword)
			if err != nil {
				t.Fatal(err) // format 1: the password does not see the section
			}
			before := marshal(t, w)
			wantErrIs(t, w.Upgrade(r), ErrTampered)
			// A write to another app must not authenticate it either.
			wantErrIs(t, w.SetSecret(r, "web", "X", []byte("y")), ErrTampered)
			if !bytes.Equal(marshal(t, w), before) || w.Version() != Version1 {
				t.Fatal("a refused upgrade changed the vault")
			}
		})
	}
}

func TestUpgradeNeedsTheKEKOfThisVaultsHeader(t *testing.T) {
	v, root := newTestVault(t)
	w := mustParse(t, v1Copy(t, v, root))
	bare := &Root{key: root.key} // the root key alone, as a machine key holder has it
	if err := w.Upgrade(bare); err == nil || !strings.Contains(err.Error(), "Unlock") {
		t.Fatalf("Upgrade without the KEK = %v", err)
	}
	other := &Root{key: root.key, kek: [KeySize]byte{1}, hasKEK: true}
	if err := w.Upgrade(other); err == nil {
		t.Fatal("Upgrade with a KEK of another header succeeded")
	}
	if w.Version() != Version1 {
		t.Fatal("a refused upgrade changed the version")
	}
	r, err := w.Unlock(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Upgrade(r); err != nil {
		t.Fatal(err)
	}
	// On format 2 Upgrade is a verified no-op.
	before := marshal(t, w)
	if err := w.Upgrade(r); err != nil || !bytes.Equal(marshal(t, w), before) {
		t.Fatalf("Upgrade of a format-2 vault = %v, or it changed", err)
	}
}

func TestSetSecretRefusesReservedNames(t *testing.T) {
	v, root := newTestVault(t)
	before := marshal(t, v)
	for _, name := range []string{"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_", "GCONV_PATH", "BASH_ENV", "ENV", "IFS", "PYTHONPATH", "NODE_OPTIONS"} {
		err := v.SetSecret(root, "web", name, []byte("/tmp/evil"))
		wantErrIs(t, err, ErrReservedName)
		if !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "/tmp/evil") {
			t.Errorf("SetSecret(%s) = %v", name, err)
		}
	}
	if !bytes.Equal(marshal(t, v), before) {
		t.Fatal("a refused SetSecret changed the vault")
	}
	for _, name := range []string{"PATHS", "MY_PATH", "LD", "XLD_PRELOAD", "ld_preload"} {
		if err := v.SetSecret(root, "web", name, []byte("ok")); err != nil {
			t.Errorf("SetSecret(%s) = %v", name, err)
		}
	}
}

// TestParseAcceptsAReservedNameInTheFile: readers refuse to inject one
// (ov-init's exec stage), not to read the file: the other apps keep working.
func TestParseAcceptsAReservedNameInTheFile(t *testing.T) {
	v, root := newTestVault(t)
	keys, err := deriveAppKeys(mustAppKey(t, v, root, "web"))
	if err != nil {
		t.Fatal(err)
	}
	sec := v.apps["web"]
	if sec.secrets["LD_PRELOAD"], err = seal(keys.value, []byte("/tmp/evil.so"), valueAAD("web", sec.epoch, "LD_PRELOAD")); err != nil {
		t.Fatal(err)
	}
	remac(t, v, root, "web")
	w := reparse(t, v)
	if got := secretsMap(t, w, "api", root.Bytes()); got["TOKEN"] != "tok-api" {
		t.Fatalf("api: %v", got)
	}
}

// A holder of another key (here the app key of web, which every deployment
// of web can unwrap from its grant) makes that key look like the root key:
// root_check and table_mac recomputed under it, web's section forged under
// its derivation, the grants kept. Only that key itself opens the result;
// the real root key, a current deployment key and the password refuse it.
func TestRootCheckReplacedByAnotherKeyIsRefused(t *testing.T) {
	v, root := newTestVault(t)
	blue := depKey(t, v, root, "web", "blue")
	fake := mustAppKey(t, v, root, "web")

	w := reparse(t, v)
	var err error
	if w.rootCheck, err = rootCheckValue(fake); err != nil {
		t.Fatal(err)
	}
	sec := w.apps["web"]
	fakeApp, err := deriveAppKey(fake, "web", sec.epoch)
	if err != nil {
		t.Fatal(err)
	}
	forged := forgeSection(t, fakeApp, "web", sec.epoch, map[string]string{"DB_PASSWORD": "forged"})
	forged.deployments, forged.retired = sec.deployments, sec.retired
	w.apps["web"] = forged
	if w.tableMAC, err = tableMAC(fake, w.generation, w.apps); err != nil {
		t.Fatal(err)
	}
	w = reparse(t, w)

	// Control: the forgery is consistent; its own key opens it.
	if got := secretsMap(t, w, "web", fake); got["DB_PASSWORD"] != "forged" {
		t.Fatalf("control: the forging key reads %v", got)
	}
	if s, err := w.Open("web", root.Bytes(), nil); err == nil {
		t.Errorf("the real root key opened the forged vault: %d secrets", len(s))
	}
	_, err = w.Open("web", blue, nil)
	wantErrIs(t, err, ErrTampered)
	_, err = w.Unlock(testPassword)
	wantErrIs(t, err, ErrTampered)
}

// revokeGreen gives web two deployments, blue and green, and revokes
// green: it returns their keys and web's section from before the revoke.
func revokeGreen(t *testing.T, v *Vault, root *Root) (blue, green []byte, old *appSection) {
	t.Helper()
	blue, _, err := v.DeploymentKey(root, "web", "blue")
	if err != nil {
		t.Fatal(err)
	}
	green, _, err = v.DeploymentKey(root, "web", "green")
	if err != nil {
		t.Fatal(err)
	}
	old = v.apps["web"].clone()
	if err := v.RevokeDeployment(root, "web", "green"); err != nil {
		t.Fatal(err)
	}
	return blue, green, old
}

// TestOlderSectionPastedIntoCurrentFileOpensWithItsOldDeploymentKeys
// holds SPEC.md's documented limit (section 5, "What a deployment key
// trusts"): one genuine older section pasted into a current file opens
// with the deployment keys of that section's grants, the revoked one
// included, and gives the older values; the root key and ov, which verify
// the table, refuse it.
func TestOlderSectionPastedIntoCurrentFileOpensWithItsOldDeploymentKeys(t *testing.T) {
	v, root := newTestVault(t)
	blue, green, old := revokeGreen(t, v, root)
	mustSet(t, v, root, "web", "DB_PASSWORD", "changed-after-the-revoke")
	if got := secretsMap(t, v, "web", blue); got["DB_PASSWORD"] != "changed-after-the-revoke" {
		t.Fatalf("control: blue opens the current file to %v", got)
	}
	_, err := v.Open("web", green, nil)
	wantErrIs(t, err, ErrRevokedDeployment)

	pasted := mustParse(t, pasteSection(t, marshal(t, v), "web", old))
	for name, key := range map[string][]byte{"blue": blue, "green, revoked since": green} {
		if got := secretsMap(t, pasted, "web", key); got["DB_PASSWORD"] != "hunter2" {
			t.Errorf("%s: the older section opened to %v, want its own older values (the documented limit)", name, got)
		}
	}
	_, err = pasted.Open("web", root.Bytes(), nil)
	wantTableAltered(t, "Open(older section pasted in, root key)", err)
	_, err = pasted.Unlock(testPassword)
	wantTableAltered(t, "Unlock(older section pasted in)", err)
}

// TestRevokedDeploymentCanServeALegacyKeyHostItsOwnValues holds the limit
// of legacy app keys (SPEC.md section 2): a host still on web's epoch-1
// app key accepts any epoch-1 section, and whoever held a deployment key
// of epoch 1, revoked since, unwraps that app key from an old copy and
// writes one with values of their choosing. Only moving the host to a
// deployment key closes it: its grant, the current deployment keys and
// the root key refuse the forgery.
func TestRevokedDeploymentCanServeALegacyKeyHostItsOwnValues(t *testing.T) {
	v, root := newTestVault(t)
	legacy := mustAppKey(t, v, root, "web") // epoch 1
	blue, green, old := revokeGreen(t, v, root)
	// green's holder, with a copy from before the revoke.
	g := old.deployments["green"]
	a1, err := openGrant(green, g.grant, "web", "green", g.generation, old.epoch, old.mac)
	if err != nil {
		t.Fatal(err)
	}
	forged := mustParse(t, pasteSection(t, marshal(t, v), "web", forgeSection(t, a1, "web", old.epoch, forgedValues)))
	if got := secretsMap(t, forged, "web", legacy); got["DB_PASSWORD"] != forgedValues["DB_PASSWORD"] {
		t.Errorf("the legacy key opened the forged section to %v, want the forger's values (the documented limit)", got)
	}
	_, err = forged.Open("web", blue, nil)
	wantErrIs(t, err, ErrWrongKey)
	_, err = forged.Open("web", root.Bytes(), nil)
	wantTableAltered(t, "Open(forged epoch-1 section, root key)", err)
}
