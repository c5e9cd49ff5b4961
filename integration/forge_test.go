package integration

// Issue 8: after `ov app rotate web`, the revoked epoch-1 key of web alone
// could build a complete epoch-1 section of web and paste it into the
// vault; ov-init with the unscoped (root) key injected its values, and
// `ov secret set` re-MACed it, moving the epoch back. Format 2 authenticates
// the table of apps under the root key. These tests drive the real ov and
// ov-init.

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// forgedMark is in every forged value: it must never reach any output.
const forgedMark = "ovsec-forged-"

// forgedSection is a complete section of app at epoch, built from appKey
// alone by SPEC.md sections 2 and 3 — what the holder of that (revoked) app
// key can write: its check value, its MAC, and values sealed under it.
func forgedSection(t *testing.T, appKey []byte, app string, epoch uint32, values map[string]string) map[string]any {
	t.Helper()
	key := func(info string) []byte {
		k, err := hkdf.Key(sha256.New, appKey, nil, info, 32)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	lp := func(b, s []byte) []byte { return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...) }
	mac := func(k, msg []byte) []byte {
		m := hmac.New(sha256.New, k)
		m.Write(msg)
		return m.Sum(nil)
	}
	aead, err := chacha20poly1305.NewX(key("ov/v1/value-key"))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	names := slices.Sorted(maps.Keys(values))
	in := lp(nil, []byte("ov/v1/entries"))
	in = binary.BigEndian.AppendUint32(in, 1)
	in = lp(in, []byte(app))
	in = binary.BigEndian.AppendUint32(in, epoch)
	in = binary.BigEndian.AppendUint32(in, uint32(len(names)))
	secrets := map[string]any{}
	for _, name := range names {
		aad := lp(nil, []byte("ov/v1/value"))
		aad = binary.BigEndian.AppendUint32(aad, 1)
		aad = lp(aad, []byte(app))
		aad = binary.BigEndian.AppendUint32(aad, epoch)
		aad = lp(aad, []byte(name))
		nonce := make([]byte, chacha20poly1305.NonceSizeX)
		rand.Read(nonce)
		sealed := aead.Seal(nonce, nonce, []byte(values[name]), aad)
		secrets[name] = b64(sealed)
		in = lp(lp(in, []byte(name)), sealed)
	}
	check := mac(key("ov/v1/check-key"), []byte("ov/v1/check/"+app+"/"+strconv.FormatUint(uint64(epoch), 10)))
	return map[string]any{"epoch": epoch, "check": b64(check), "mac": b64(mac(key("ov/v1/mac-key"), in)), "secrets": secrets}
}

// pasteSection writes section into the vault file at path as app's.
func pasteSection(t *testing.T, path, app string, section map[string]any) {
	t.Helper()
	editVault(t, path, func(doc map[string]any) {
		if _, ok := section["deployments"]; !ok && fmt.Sprint(doc["version"]) == "2" {
			// Format 2 wants the fields; a forger writes them empty.
			section["deployments"], section["retired"] = map[string]any{}, []any{}
		}
		doc["apps"].(map[string]any)[app] = section
	})
}

// readKey reads a machine key file.
func readKey(t *testing.T, path string) []byte {
	t.Helper()
	k, err := os.ReadFile(path)
	if err != nil || len(k) != 32 {
		t.Fatalf("reading key %s: %v (%d bytes)", path, err, len(k))
	}
	return k
}

// refusedByOvInit runs ov-init with key on app, with an app that leaves a
// marker if it ever starts, and checks the refusal: 78, one line, every want.
func (f *ovFixture) refusedByOvInit(key, app string, want ...string) {
	f.t.Helper()
	marker := filepath.Join(f.dir, "app-started")
	r := runSecrets(f.t, nil, "--vault", f.vault, "--machine-key", key, "--app", app, "--", "/bin/sh", "-c", `touch "$1"`, "sh", marker)
	f.outputs = append(f.outputs, r.stdout, r.stderr)
	f.t.Logf("ov-init --app %s with %s: exit %d: %s", app, filepath.Base(key), r.code, r.stderr)
	assertRefused(f.t, r, want...)
	if _, err := os.Stat(marker); err == nil {
		f.t.Errorf("the app started although ov-init refused (%s exists)", marker)
	}
}

func TestForgedSectionFromARevokedKeyIsRefusedByTheRootKeyAndByOv(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "web")
	f.must("", "app", "create", "api")
	f.secret("web", "DB_PASSWORD", "ovsec-genuine-web\n")
	f.secret("api", "TOKEN", "ovsec-genuine-api\n")
	oldWeb := f.legacyKey("web-epoch1.kek", "web")
	root := f.key("root.kek", "--all-apps")
	f.must("", "app", "rotate", "web")
	curWeb := f.legacyKey("web-epoch2.kek", "web")
	f.wantSecret(root, "web", "DB_PASSWORD", "ovsec-genuine-web") // control

	forged := map[string]string{"DB_PASSWORD": forgedMark + "db", "EXTRA": forgedMark + "extra"}
	f.values = append(f.values, forgedMark)
	pasteSection(t, f.vault, "web", forgedSection(t, readKey(t, oldWeb), "web", 1, forged))
	before := f.vaultBytes()

	// The forgery is complete: the revoked key that made it opens it.
	if code, env, stderr := f.appEnv(oldWeb, "web"); code != 0 || env["DB_PASSWORD"] != forged["DB_PASSWORD"] {
		t.Fatalf("the forged section does not open with its own key: exit %d, %s", code, stderr)
	}
	// The root key refuses it: the table of apps was altered.
	altered := []string{strconv.Quote(f.vault), "table of apps was altered", "fix"}
	f.refusedByOvInit(root, "web", altered...)
	f.refusedByOvInit(root, "api", altered...)
	// The current scoped key of web pins epoch 2.
	f.refusedByOvInit(curWeb, "web", `does not open app "web"`)

	// ov with the password re-MACs nothing and leaves the file as it is.
	for _, args := range [][]string{
		{"secret", "set", "X", "--app", "web"},
		{"secret", "set", "X", "--app", "api"},
		{"app", "rotate", "web"},
		{"vault", "upgrade"},
		{"auth", "derive-machine-key", "--out", filepath.Join(f.dir, "new.kek"), "--app", "web"},
	} {
		f.fails(1, []string{"table of apps was altered", "restore it from a copy you trust"}, "value\n", args...)
		if !bytes.Equal(before, f.vaultBytes()) {
			t.Fatalf("ov %q changed the vault", args)
		}
	}
	if _, err := os.Stat(filepath.Join(f.dir, "new.kek")); err == nil {
		t.Error("derive-machine-key wrote a key for the forged epoch")
	}
}

// golden is the stored format-1 vault of the vault package and what its
// vectors say about it.
type golden struct {
	file     []byte
	password string
	root     []byte
	appKeys  map[string][]byte
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	file, err := os.ReadFile("../vault/testdata/vault.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../vault/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs struct {
		Golden struct {
			Password string `json:"password"`
			Root     string `json:"root"`
			Apps     []struct {
				App    string `json:"app"`
				AppKey string `json:"app_key"`
			} `json:"apps"`
		} `json:"golden"`
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	g := golden{file: file, password: vs.Golden.Password, appKeys: map[string][]byte{}}
	if g.root, err = hex.DecodeString(vs.Golden.Root); err != nil {
		t.Fatal(err)
	}
	for _, a := range vs.Golden.Apps {
		if g.appKeys[a.App], err = hex.DecodeString(a.AppKey); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Contains(file, []byte(`"version": 1,`)) || bytes.Contains(file, []byte("table_mac")) {
		t.Fatal("vault/testdata/vault.json is not a format-1 file")
	}
	return g
}

// format1Fixture is an ov fixture whose vault is the stored format-1 file,
// with its root key and the scoped key of web as key files.
func format1Fixture(t *testing.T) (f *ovFixture, root, web string) {
	t.Helper()
	g := loadGolden(t)
	if g.password != ovPassword {
		t.Fatalf("the golden vault's password is not %q", ovPassword)
	}
	f = newOvFixture(t)
	f.values = append(f.values, "hunter2", "tok-web", "tok-api")
	if err := os.WriteFile(f.vault, g.file, 0o600); err != nil {
		t.Fatal(err)
	}
	root, web = filepath.Join(f.dir, "root.kek"), filepath.Join(f.dir, "web.kek")
	putMachineKey(t, root, g.root)
	putMachineKey(t, web, g.appKeys["web"])
	return f, root, web
}

func TestFormat1VaultNeedsAnUpgradeForTheRootKey(t *testing.T) {
	t.Parallel()
	f, root, web := format1Fixture(t)

	// Scoped keys open a format-1 vault as before; the root key does not.
	f.wantSecret(web, "web", "DB_PASSWORD", "hunter2")
	f.refusedByOvInit(root, "web", "opens only format-2 vaults", "table of apps is authenticated",
		strconv.Quote(f.vault), "fix: `ov vault upgrade --vault "+f.vault+"`, then redeploy the file")
	f.refusedByOvInit(root, "api", "opens only format-2 vaults")
	// Reading does not upgrade.
	f.must("", "app", "list")
	f.must("", "secret", "list", "--app", "web")
	if !bytes.Contains(f.vaultBytes(), []byte(`"version": 1,`)) {
		t.Fatal("a read upgraded the vault")
	}

	r := f.must("", "vault", "upgrade")
	want := fmt.Sprintf("ov: upgraded vault %q from format 1 to 2: its table of apps is now authenticated under the root key "+
		"(apps: api epoch 1, web epoch 2); if you had upgraded this vault before, someone replaced it with an old-format copy: "+
		"restore it from a copy you trust; to make old-format copies useless, change the master password: ov vault passwd\n", f.vault)
	if r.stderr != want {
		t.Errorf("vault upgrade said:\n %q\nwant\n %q", r.stderr, want)
	}
	if !bytes.Contains(f.vaultBytes(), []byte(`"version": 2,`)) {
		t.Fatal("vault upgrade left format 1")
	}
	f.wantSecret(root, "web", "DB_PASSWORD", "hunter2")
	f.wantSecret(root, "api", "TOKEN", "tok-api")
	f.wantSecret(web, "web", "MULTILINE", "line 1\nline 2 \u2713")

	before := f.vaultBytes()
	r = f.must("", "vault", "upgrade")
	if !strings.Contains(r.stderr, "already format 2") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("vault upgrade of a format-2 vault said %q", r.stderr)
	}
	if !bytes.Equal(before, f.vaultBytes()) {
		t.Error("vault upgrade of a format-2 vault changed it")
	}
}

func TestAnyOvWriteUpgradesAFormat1Vault(t *testing.T) {
	t.Parallel()
	f, root, _ := format1Fixture(t)
	r := f.must("", "app", "create", "new")
	if !strings.Contains(r.stderr, "ov: upgraded vault "+strconv.Quote(f.vault)+" from format 1 to 2") ||
		!strings.Contains(r.stderr, "(apps: api epoch 1, new epoch 1, web epoch 2)") {
		t.Errorf("app create on a format-1 vault said %q", r.stderr)
	}
	f.wantSecret(root, "web", "API_TOKEN", "tok-web")
	// Once: the next write says nothing about formats.
	if r := f.must("", "app", "create", "newer"); strings.Contains(r.stderr, "format") {
		t.Errorf("a write to a format-2 vault said %q", r.stderr)
	}
}

func TestSecretSetRefusesAReservedNameBeforeThePassword(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "web")
	before := f.vaultBytes()
	for _, name := range []string{"PATH", "LD_PRELOAD", "BASH_ENV"} {
		// No password file: the refusal comes before the prompt.
		r := f.ovCmd(f.env("OV_PASSWORD_FILE="+filepath.Join(f.dir, "missing")), "/tmp/evil\n", "secret", "set", name, "--app", "web")
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "ov: reserved secret name: "+name+" ") {
			t.Errorf("ov secret set %s: exit %d, stderr %q; want 2 and one line naming it", name, r.code, r.stderr)
		}
	}
	if !bytes.Equal(before, f.vaultBytes()) {
		t.Error("a refused secret set changed the vault")
	}
	f.secret("web", "MY_PATH", "fine\n") // control: a name that merely contains PATH
}

func TestHostileKDFParametersAreRefusedBeforeArgon2id(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	f.must("", "app", "create", "web")
	editVault(t, f.vault, func(doc map[string]any) {
		k := doc["kdf"].(map[string]any)
		k["memory_kib"], k["time"] = json.Number("4194304"), json.Number("3")
	})
	f.fails(1, []string{"kdf.memory_kib 4194304 is over the limit of 1048576 (1 GiB)", strconv.Quote(f.vault)}, "", "app", "create", "api")
	editVault(t, f.vault, func(doc map[string]any) {
		k := doc["kdf"].(map[string]any)
		k["memory_kib"], k["time"] = json.Number("65536"), json.Number("100")
	})
	f.fails(1, []string{"kdf.time 100 is over the limit of 10"}, "", "app", "create", "api")
	key := filepath.Join(f.dir, "any.kek")
	putMachineKey(t, key, bytes.Repeat([]byte{7}, 32))
	f.refusedByOvInit(key, "web", "kdf.time 100 is over the limit of 10")
}

func TestVersionTokenIsNeverEchoed(t *testing.T) {
	t.Parallel()
	f := newOvFixture(t)
	key := filepath.Join(f.dir, "any.kek")
	putMachineKey(t, key, bytes.Repeat([]byte{7}, 32))
	for _, v := range []string{`"1\n ov-init: forged"`, `"2"`, `12345678901234567890`} {
		editVault(t, f.vault, func(doc map[string]any) { doc["version"] = json.RawMessage(v) })
		f.refusedByOvInit(key, "web", "unsupported vault version (this build reads versions 1 and 2)")
		r := f.fails(1, []string{"unsupported vault version (this build reads versions 1 and 2)"}, "", "app", "list")
		if strings.Contains(r.stderr, "forged") {
			t.Errorf("ov echoed the version token: %q", r.stderr)
		}
	}
}
