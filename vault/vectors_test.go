package vault

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/argon2"
)

// The known-answer vectors in testdata are produced from the fixed inputs
// below, and the golden vault from the deterministic stream detReader.
// Regenerate them (only when the format changes on purpose) with
//
//	go generate ./vault/
//
// which runs this package's TestVectors with -update. SPEC.md describes the
// inputs and testdata/crosscheck.py verifies the files independently.
//
//go:generate go test -run ^TestVectors$ -update

var update = flag.Bool("update", false, "regenerate testdata/vectors.json and testdata/vault.json")

const (
	vectorsFile = "testdata/vectors.json"
	goldenFile  = "testdata/vault.json"
	goldenSeed  = "ov/v1/test-vectors"
)

type hexBytes []byte

func (h hexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }
func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type vectors struct {
	Comment   string            `json:"comment"`
	Derive    []deriveVector    `json:"derive"`
	RootCheck []rootCheckVector `json:"root_check"`
	Seal      []sealVector      `json:"seal"`
	MAC       []macVector       `json:"mac"`
	Wrap      []wrapVector      `json:"wrap"`
	Golden    goldenVector      `json:"golden"`
}

type deriveVector struct {
	Root     hexBytes `json:"root"`
	App      string   `json:"app"`
	Epoch    uint32   `json:"epoch"`
	AppKey   hexBytes `json:"app_key"`
	ValueKey hexBytes `json:"value_key"`
	MACKey   hexBytes `json:"mac_key"`
	CheckKey hexBytes `json:"check_key"`
	Check    hexBytes `json:"check"`
}

type rootCheckVector struct {
	Root      hexBytes `json:"root"`
	RootCheck hexBytes `json:"root_check"`
}

type sealVector struct {
	ValueKey  hexBytes `json:"value_key"`
	App       string   `json:"app"`
	Epoch     uint32   `json:"epoch"`
	Name      string   `json:"name"`
	Plaintext string   `json:"plaintext"`
	Nonce     hexBytes `json:"nonce"`
	AAD       hexBytes `json:"aad"`
	Sealed    hexBytes `json:"sealed"`
}

type macEntry struct {
	Name   string   `json:"name"`
	Sealed hexBytes `json:"sealed"`
}

type macVector struct {
	MACKey  hexBytes   `json:"mac_key"`
	App     string     `json:"app"`
	Epoch   uint32     `json:"epoch"`
	Entries []macEntry `json:"entries"`
	Input   hexBytes   `json:"input"`
	MAC     hexBytes   `json:"mac"`
}

type wrapVector struct {
	Password  string   `json:"password"`
	Time      uint32   `json:"time"`
	MemoryKiB uint32   `json:"memory_kib"`
	Threads   uint8    `json:"threads"`
	Salt      hexBytes `json:"salt"`
	KEK       hexBytes `json:"kek"`
	Root      hexBytes `json:"root"`
	Nonce     hexBytes `json:"nonce"`
	AAD       hexBytes `json:"aad"`
	Wrapped   hexBytes `json:"wrapped"`
}

type goldenApp struct {
	App     string            `json:"app"`
	Epoch   uint32            `json:"epoch"`
	AppKey  hexBytes          `json:"app_key"`
	Secrets map[string]string `json:"secrets"`
}

type goldenVector struct {
	File     string      `json:"file"`
	Seed     string      `json:"seed"`
	Password string      `json:"password"`
	Root     hexBytes    `json:"root"`
	Apps     []goldenApp `json:"apps"`
}

// seq returns n bytes start, start+1, ...
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// makeVectors computes every vector from fixed inputs, and the golden vault.
func makeVectors(t *testing.T) (*vectors, []byte) {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	vs := &vectors{Comment: "ov vault v1 known-answer vectors: see SPEC.md; regenerate with go generate ./vault/"}

	roots := [][]byte{seq(0x00, KeySize), seq(0x20, KeySize)}
	for _, root := range roots {
		vs.RootCheck = append(vs.RootCheck, rootCheckVector{Root: root, RootCheck: must(rootCheckValue(root))})
	}
	type appEpoch struct {
		app   string
		epoch uint32
	}
	for _, ae := range []appEpoch{{"web", 1}, {"web", 2}, {"api", 1}, {"a.b-c_d", MaxEpoch}} {
		appKey := must(deriveAppKey(roots[0], ae.app, ae.epoch))
		keys, err := deriveAppKeys(appKey)
		if err != nil {
			t.Fatal(err)
		}
		vs.Derive = append(vs.Derive, deriveVector{
			Root: roots[0], App: ae.app, Epoch: ae.epoch, AppKey: appKey,
			ValueKey: keys.value, MACKey: keys.mac, CheckKey: keys.check,
			Check: checkValue(keys.check, ae.app, ae.epoch),
		})
	}

	d := vs.Derive[0] // web, epoch 1
	for i, pt := range []struct{ name, value string }{
		{"DB_PASSWORD", "hunter2"},
		{"EMPTY", ""},
		{"MULTILINE", "line 1\nline 2 \u2713"},
	} {
		nonce := seq(byte(0x40+0x20*i), 24)
		withRandom(t, bytes.NewReader(nonce))
		aad := valueAAD(d.App, d.Epoch, pt.name)
		vs.Seal = append(vs.Seal, sealVector{
			ValueKey: d.ValueKey, App: d.App, Epoch: d.Epoch, Name: pt.name, Plaintext: pt.value,
			Nonce: nonce, AAD: aad, Sealed: must(seal(d.ValueKey, []byte(pt.value), aad)),
		})
	}

	entrySets := [][]sealVector{nil, vs.Seal}
	for _, set := range entrySets {
		m := make(map[string][]byte)
		entries := []macEntry{}
		for _, s := range set {
			m[s.Name] = s.Sealed
			entries = append(entries, macEntry{Name: s.Name, Sealed: s.Sealed})
		}
		vs.MAC = append(vs.MAC, macVector{
			MACKey: d.MACKey, App: d.App, Epoch: d.Epoch, Entries: entries,
			Input: macInput(d.App, d.Epoch, m), MAC: appMAC(d.MACKey, d.App, d.Epoch, m),
		})
	}

	for _, p := range []KDFParams{{Time: 1, MemoryKiB: 64, Threads: 1}, {Time: 2, MemoryKiB: 256, Threads: 2}} {
		w := wrapVector{
			Password: string(testPassword), Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads,
			Salt: seq(0x80, SaltSize), Root: roots[0], Nonce: seq(0xa0, 24),
		}
		w.KEK = argon2.IDKey([]byte(w.Password), w.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
		w.AAD = rootAAD(p, w.Salt)
		withRandom(t, bytes.NewReader(w.Nonce))
		w.Wrapped = must(seal(w.KEK, w.Root, w.AAD))
		vs.Wrap = append(vs.Wrap, w)
	}

	// The golden vault: the public API driven by a deterministic stream.
	withRandom(t, &detReader{seed: goldenSeed})
	v, root, err := New(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	plan := []struct{ app, name, value string }{
		{"web", "DB_PASSWORD", "hunter2"},
		{"web", "API_TOKEN", "tok-web"},
		{"api", "TOKEN", "tok-api"},
	}
	for _, app := range []string{"web", "api"} {
		if err := v.CreateApp(root, app); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range plan {
		mustSet(t, v, root, p.app, p.name, p.value)
	}
	if err := v.RotateApp(root, "web"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, v, root, "web", "MULTILINE", "line 1\nline 2 \u2713")
	file, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	vs.Golden = goldenVector{File: filepath.Base(goldenFile), Seed: goldenSeed, Password: string(testPassword), Root: root.Bytes()}
	for _, app := range v.Apps() {
		e, _ := v.Epoch(app)
		vs.Golden.Apps = append(vs.Golden.Apps, goldenApp{
			App: app, Epoch: e, AppKey: mustAppKey(t, v, root, app),
			Secrets: secretsMap(t, v, app, root.Bytes()),
		})
	}
	return vs, file
}

func TestVectors(t *testing.T) {
	old := testKDF
	testKDF = &KDFParams{Time: 1, MemoryKiB: 64, Threads: 1} // the golden vault's, whatever fastKDF becomes
	defer func() { testKDF = old }()

	vs, file := makeVectors(t)
	got, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		for name, data := range map[string][]byte{vectorsFile: got, goldenFile: file} {
			if err := os.WriteFile(name, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %s and %s", vectorsFile, goldenFile)
	}
	for name, data := range map[string][]byte{vectorsFile: got, goldenFile: file} {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (regenerate with go generate ./vault/)", err)
		}
		if !bytes.Equal(data, want) {
			t.Errorf("%s differs from what the code computes: the format changed; if on purpose, bump the version or regenerate with go generate ./vault/", name)
		}
	}
}

// TestGoldenVaultOpens reads the stored files only: a vault written by an
// earlier build must keep opening, whatever the generator does now.
func TestGoldenVaultOpens(t *testing.T) {
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs vectors
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	g := vs.Golden
	v, err := Load(filepath.Join("testdata", g.File))
	if err != nil {
		t.Fatal(err)
	}
	root, err := v.Unlock([]byte(g.Password))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root.Bytes(), g.Root) {
		t.Fatal("unlocked root differs from the vector")
	}
	if len(g.Apps) != len(v.Apps()) {
		t.Fatalf("apps = %q", v.Apps())
	}
	for _, a := range g.Apps {
		if e, _ := v.Epoch(a.App); e != a.Epoch {
			t.Errorf("%s: epoch %d, want %d", a.App, e, a.Epoch)
		}
		if k := mustAppKey(t, v, root, a.App); !bytes.Equal(k, a.AppKey) {
			t.Errorf("%s: app key differs", a.App)
		}
		for _, key := range [][]byte{root.Bytes(), a.AppKey} {
			if got := secretsMap(t, v, a.App, key); !maps.Equal(got, a.Secrets) {
				t.Errorf("%s: opened %v, want %v", a.App, got, a.Secrets)
			}
		}
	}
	// And the vectors hold for the primitives they describe.
	for _, d := range vs.Derive {
		ak, err := deriveAppKey(d.Root, d.App, d.Epoch)
		if err != nil || !bytes.Equal(ak, d.AppKey) {
			t.Errorf("derive %s/%d: app key differs", d.App, d.Epoch)
		}
		c, err := appCheck(d.AppKey, d.App, d.Epoch)
		if err != nil || !bytes.Equal(c, d.Check) {
			t.Errorf("derive %s/%d: check differs", d.App, d.Epoch)
		}
	}
	for _, s := range vs.Seal {
		pt, err := open(s.ValueKey, s.Sealed, valueAAD(s.App, s.Epoch, s.Name))
		if err != nil || string(pt) != s.Plaintext {
			t.Errorf("seal %s: does not open to its plaintext: %v", s.Name, err)
		}
	}
	for _, w := range vs.Wrap {
		p := KDFParams{Time: w.Time, MemoryKiB: w.MemoryKiB, Threads: w.Threads}
		kek := argon2.IDKey([]byte(w.Password), w.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
		pt, err := open(kek, w.Wrapped, rootAAD(p, w.Salt))
		if err != nil || !bytes.Equal(pt, w.Root) {
			t.Errorf("wrap %+v: does not unwrap to its root: %v", p, err)
		}
	}
}
