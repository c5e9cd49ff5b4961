package vault

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
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

var update = flag.Bool("update", false, "regenerate testdata/vectors.json, testdata/vault.json and testdata/vault-v2.json")

const (
	vectorsFile  = "testdata/vectors.json"
	goldenFile   = "testdata/vault.json" // format 1, as the format-1 writer wrote it
	goldenSeed   = "ov/v1/test-vectors"
	goldenV2File = "testdata/vault-v2.json"
	exportFile   = "testdata/vault-v2-export-web.json" // web of goldenV2File, exported
	goldenV2Seed = "ov/v2/test-vectors"
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
	// Format 2. Appended, so that the format-1 vectors above keep their bytes.
	WrapV2   []wrapVector  `json:"wrap_v2"`
	Table    []tableVector `json:"table"`
	GoldenV2 goldenVector  `json:"golden_v2"`
	// Deployment keys and grants (format 2).
	Deployment []deploymentVector `json:"deployment"`
	Grant      []grantVector      `json:"grant"`
	// Exports (format 2).
	Export exportVector `json:"export"`
}

// exportVector is the export of one app of the golden format-2 vault: the
// file, and its table input and MAC under that vault's root key.
type exportVector struct {
	File  string      `json:"file"`
	App   string      `json:"app"`
	Table tableVector `json:"table"`
}

type deploymentVector struct {
	Root          hexBytes `json:"root"`
	App           string   `json:"app"`
	Deployment    string   `json:"deployment"`
	Generation    uint32   `json:"generation"`
	DeploymentKey hexBytes `json:"deployment_key"`
	GrantCheckKey hexBytes `json:"grant_check_key"`
	GrantCheck    hexBytes `json:"grant_check"`
	GrantWrapKey  hexBytes `json:"grant_wrap_key"`
}

type grantVector struct {
	DeploymentKey hexBytes `json:"deployment_key"`
	App           string   `json:"app"`
	Deployment    string   `json:"deployment"`
	Generation    uint32   `json:"generation"`
	Epoch         uint32   `json:"epoch"`
	MAC           hexBytes `json:"mac"`
	AppKey        hexBytes `json:"app_key"`
	Nonce         hexBytes `json:"nonce"`
	AAD           hexBytes `json:"aad"`
	Grant         hexBytes `json:"grant"`
}

type tableDeployment struct {
	Deployment string   `json:"deployment"`
	Generation uint32   `json:"generation"`
	Created    string   `json:"created"`
	Rotated    string   `json:"rotated"`
	Check      hexBytes `json:"check"`
	Grant      hexBytes `json:"grant"`
}

type tableRetired struct {
	Deployment string   `json:"deployment"`
	Generation uint32   `json:"generation"`
	Check      hexBytes `json:"check"`
	Retired    string   `json:"retired"`
	Reason     string   `json:"reason"`
}

type goldenDeployment struct {
	Deployment string   `json:"deployment"`
	Generation uint32   `json:"generation"`
	Key        hexBytes `json:"key"`
	Retired    string   `json:"retired,omitempty"` // the reason, for a retired key
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
	Version   uint32   `json:"version,omitempty"` // the root AAD's; absent: 1
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

type tableEntry struct {
	App         string            `json:"app"`
	Epoch       uint32            `json:"epoch"`
	Check       hexBytes          `json:"check"`
	MAC         hexBytes          `json:"mac"`
	Deployments []tableDeployment `json:"deployments"`
	Retired     []tableRetired    `json:"retired"`
}

type tableVector struct {
	Root       hexBytes     `json:"root"`
	Generation uint32       `json:"generation"`
	Apps       []tableEntry `json:"apps"`
	TableKey   hexBytes     `json:"table_key"`
	Input      hexBytes     `json:"input"`
	TableMAC   hexBytes     `json:"table_mac"`
}

type goldenApp struct {
	App         string             `json:"app"`
	Epoch       uint32             `json:"epoch"`
	AppKey      hexBytes           `json:"app_key"`
	Secrets     map[string]string  `json:"secrets"`
	Deployments []goldenDeployment `json:"deployments,omitempty"` // format 2: current and retired keys
}

type goldenVector struct {
	File       string      `json:"file"`
	Seed       string      `json:"seed"`
	Password   string      `json:"password"`
	Root       hexBytes    `json:"root"`
	Generation uint32      `json:"generation,omitempty"` // format 2 only
	Apps       []goldenApp `json:"apps"`
}

// seq returns n bytes start, start+1, ...
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// makeVectors computes every vector from fixed inputs, and the golden
// vaults: the format-1 file and the format-2 file.
func makeVectors(t *testing.T) (vs *vectors, v1File, v2File, expFile []byte) {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	vs = &vectors{Comment: "ov vault v1 known-answer vectors: see SPEC.md; regenerate with go generate ./vault/"}

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

	for _, version := range []uint32{Version1, Version} {
		for _, p := range []KDFParams{{Time: 1, MemoryKiB: 64, Threads: 1}, {Time: 2, MemoryKiB: 256, Threads: 2}} {
			w := wrapVector{
				Password: string(testPassword), Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads,
				Salt: seq(0x80, SaltSize), Root: roots[0], Nonce: seq(0xa0, 24),
			}
			if version != Version1 {
				w.Version = version
			}
			w.KEK = argon2.IDKey([]byte(w.Password), w.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
			w.AAD = rootAAD(version, p, w.Salt)
			withRandom(t, bytes.NewReader(w.Nonce))
			w.Wrapped = must(seal(w.KEK, w.Root, w.AAD))
			if version == Version1 {
				vs.Wrap = append(vs.Wrap, w)
			} else {
				vs.WrapV2 = append(vs.WrapV2, w)
			}
		}
	}

	// The golden vaults: the public API driven by a deterministic stream.
	// The format-1 file is made by the same steps, then written in the
	// format-1 layout, exactly as the format-1 writer did.
	v, root := goldenVault(t, goldenSeed, false)
	toV1(t, v, root)
	v1File = marshal(t, v)
	vs.Golden = goldenVector{File: filepath.Base(goldenFile), Seed: goldenSeed, Password: string(testPassword), Root: root.Bytes()}
	vs.Golden.Apps = goldenApps(t, v, root)

	v, root = goldenVault(t, goldenV2Seed, true)
	v2File = marshal(t, v)
	vs.GoldenV2 = goldenVector{File: filepath.Base(goldenV2File), Seed: goldenV2Seed, Password: string(testPassword), Root: root.Bytes(),
		Generation: v.Generation()}
	vs.GoldenV2.Apps = goldenApps(t, v, root)

	// The table MAC of an empty table (a new vault: generation 1), and of
	// the golden format-2 vault.
	empty := map[string]*appSection{}
	for _, tv := range []struct {
		root       []byte
		generation uint32
		apps       map[string]*appSection
	}{{roots[0], 1, empty}, {root.Bytes(), v.Generation(), v.apps}} {
		vec := tableVector{Root: tv.root, Generation: tv.generation, Apps: tableEntries(tv.apps), TableKey: must(hkdfKey(tv.root, infoTableKey)),
			Input: tableInput(tv.generation, tv.apps)}
		vec.TableMAC = must(tableMAC(tv.root, tv.generation, tv.apps))
		vs.Table = append(vs.Table, vec)
	}

	// The export of web from the golden format-2 vault.
	exp, err := v.Export(root, "web")
	if err != nil {
		t.Fatal(err)
	}
	expFile = marshal(t, exp)
	vs.Export = exportVector{File: filepath.Base(exportFile), App: "web", Table: tableVector{
		Root: root.Bytes(), Generation: exp.generation, Apps: tableEntries(exp.apps), TableKey: must(hkdfKey(root.Bytes(), infoTableKey)),
		Input: exportInput(exp.generation, exp.apps), TableMAC: must(exportMAC(root.Bytes(), exp.generation, exp.apps)),
	}}

	// Deployment keys, their grant check and wrap keys, and a grant.
	for _, dv := range []struct {
		app, dep string
		gen      uint32
	}{{"web", "default", 1}, {"web", "edge", 2}, {"a.b-c_d", "x", MaxGeneration}} {
		dk := must(deriveDeploymentKey(roots[0], dv.app, dv.dep, dv.gen))
		gck := must(hkdfKey(dk, infoGrantCheckKey))
		vs.Deployment = append(vs.Deployment, deploymentVector{
			Root: roots[0], App: dv.app, Deployment: dv.dep, Generation: dv.gen, DeploymentKey: dk,
			GrantCheckKey: gck, GrantCheck: grantCheckValue(gck, dv.app, dv.dep, dv.gen),
			GrantWrapKey: must(hkdfKey(dk, infoGrantWrapKey)),
		})
	}
	for i, gv := range []struct {
		dep   deploymentVector
		epoch uint32
		mac   []byte
	}{{vs.Deployment[0], 1, vs.MAC[1].MAC}, {vs.Deployment[1], 2, vs.MAC[0].MAC}} {
		ak := must(deriveAppKey(roots[0], gv.dep.App, gv.epoch))
		nonce := seq(byte(0x10+0x40*i), 24)
		withRandom(t, bytes.NewReader(nonce))
		vs.Grant = append(vs.Grant, grantVector{
			DeploymentKey: gv.dep.DeploymentKey, App: gv.dep.App, Deployment: gv.dep.Deployment, Generation: gv.dep.Generation,
			Epoch: gv.epoch, MAC: gv.mac, AppKey: ak, Nonce: nonce,
			AAD:   grantAAD(gv.dep.App, gv.dep.Deployment, gv.dep.Generation, gv.epoch, gv.mac),
			Grant: must(sealGrant(gv.dep.DeploymentKey, ak, gv.dep.App, gv.dep.Deployment, gv.dep.Generation, gv.epoch, gv.mac)),
		})
	}
	return vs, v1File, v2File, expFile
}

// tableEntries describes apps as the table input encodes them.
func tableEntries(apps map[string]*appSection) []tableEntry {
	entries := []tableEntry{}
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		sec := apps[app]
		e := tableEntry{App: app, Epoch: sec.epoch, Check: sec.check, MAC: sec.mac, Deployments: []tableDeployment{}, Retired: []tableRetired{}}
		for _, dep := range slices.Sorted(maps.Keys(sec.deployments)) {
			d := sec.deployments[dep]
			e.Deployments = append(e.Deployments, tableDeployment{Deployment: dep, Generation: d.generation, Created: d.created, Rotated: d.rotated, Check: d.check, Grant: d.grant})
		}
		for _, r := range sec.retired {
			e.Retired = append(e.Retired, tableRetired{Deployment: r.deployment, Generation: r.generation, Check: r.check, Retired: r.date, Reason: r.reason})
		}
		entries = append(entries, e)
	}
	return entries
}

// goldenVault runs SPEC.md's recipe of the golden vault with the random
// stream of seed.
func goldenVault(t *testing.T, seed string, deployments bool) (*Vault, *Root) {
	t.Helper()
	withRandom(t, &detReader{seed: seed})
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
	if deployments {
		// Format 2: two deployments of web, then edge is revoked (web moves
		// to epoch 3; default's key does not change).
		for _, dep := range []string{"default", "edge"} {
			k, _, err := v.DeploymentKey(root, "web", dep)
			if err != nil {
				t.Fatal(err)
			}
			clear(k)
		}
		if err := v.RevokeDeployment(root, "web", "edge"); err != nil {
			t.Fatal(err)
		}
	}
	return v, root
}

// goldenApps describes every app of v for the golden vector. It opens them
// with their app keys: the root key does not open a format-1 file.
func goldenApps(t *testing.T, v *Vault, root *Root) []goldenApp {
	t.Helper()
	var apps []goldenApp
	for _, app := range v.Apps() {
		e, _ := v.Epoch(app)
		k := mustAppKey(t, v, root, app)
		ga := goldenApp{App: app, Epoch: e, AppKey: k, Secrets: secretsMap(t, v, app, k)}
		sec := v.apps[app]
		for _, dep := range slices.Sorted(maps.Keys(sec.deployments)) {
			d := sec.deployments[dep]
			dk, err := deriveDeploymentKey(root.Bytes(), app, dep, d.generation)
			if err != nil {
				t.Fatal(err)
			}
			ga.Deployments = append(ga.Deployments, goldenDeployment{Deployment: dep, Generation: d.generation, Key: dk})
		}
		for _, r := range sec.retired {
			dk, err := deriveDeploymentKey(root.Bytes(), app, r.deployment, r.generation)
			if err != nil {
				t.Fatal(err)
			}
			ga.Deployments = append(ga.Deployments, goldenDeployment{Deployment: r.deployment, Generation: r.generation, Key: dk, Retired: r.reason})
		}
		apps = append(apps, ga)
	}
	return apps
}

func TestVectors(t *testing.T) {
	old := testKDF
	testKDF = &KDFParams{Time: 1, MemoryKiB: 64, Threads: 1} // the golden vault's, whatever fastKDF becomes
	defer func() { testKDF = old }()
	withClock(t, goldenDate)

	vs, v1File, v2File, expFile := makeVectors(t)
	got, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	files := map[string][]byte{vectorsFile: got, goldenFile: v1File, goldenV2File: v2File, exportFile: expFile}
	if *update {
		for name, data := range files {
			if err := os.WriteFile(name, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %s, %s and %s", vectorsFile, goldenFile, goldenV2File)
	}
	for name, data := range files {
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
// earlier build must keep opening, whatever the generator does now. The
// format-1 file opens with the password and its app keys, not with its
// root key as a machine key, until it is upgraded.
func TestGoldenVaultOpens(t *testing.T) {
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs vectors
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		g       goldenVector
		version int
	}{{vs.Golden, Version1}, {vs.GoldenV2, Version}} {
		t.Run(c.g.File, func(t *testing.T) {
			g := c.g
			v, err := Load(filepath.Join("testdata", g.File))
			if err != nil {
				t.Fatal(err)
			}
			if v.Version() != c.version {
				t.Fatalf("Version() = %d, want %d", v.Version(), c.version)
			}
			if v.Generation() != g.Generation {
				t.Fatalf("Generation() = %d, want %d", v.Generation(), g.Generation)
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
				if got := secretsMap(t, v, a.App, a.AppKey); !maps.Equal(got, a.Secrets) {
					t.Errorf("%s: opened %v, want %v", a.App, got, a.Secrets)
				}
				for _, d := range a.Deployments {
					if d.Retired == "" {
						if got := secretsMap(t, v, a.App, d.Key); !maps.Equal(got, a.Secrets) {
							t.Errorf("%s/%s: deployment key opened %v, want %v", a.App, d.Deployment, got, a.Secrets)
						}
						continue
					}
					_, err := v.Open(a.App, d.Key, nil)
					wantErrIs(t, err, ErrRevokedDeployment)
				}
				if c.version == Version1 {
					_, err := v.Open(a.App, root.Bytes(), nil)
					wantErrIs(t, err, ErrUnauthenticatedTable)
				} else if got := secretsMap(t, v, a.App, root.Bytes()); !maps.Equal(got, a.Secrets) {
					t.Errorf("%s: root key opened %v, want %v", a.App, got, a.Secrets)
				}
			}
			// Upgraded (a no-op on format 2), it opens with everything.
			if err := v.Upgrade(root); err != nil {
				t.Fatal(err)
			}
			v = reparse(t, v)
			if v.Version() != Version {
				t.Fatalf("after Upgrade, Version() = %d", v.Version())
			}
			if _, err := v.Unlock([]byte(g.Password)); err != nil {
				t.Fatalf("after Upgrade, Unlock: %v", err)
			}
			for _, a := range g.Apps {
				for _, key := range [][]byte{root.Bytes(), a.AppKey} {
					if got := secretsMap(t, v, a.App, key); !maps.Equal(got, a.Secrets) {
						t.Errorf("after Upgrade, %s: opened %v, want %v", a.App, got, a.Secrets)
					}
				}
			}
		})
	}
	// The stored export of web opens with web's keys, not with the password.
	t.Run(vs.Export.File, func(t *testing.T) {
		exp, err := Load(filepath.Join("testdata", vs.Export.File))
		if err != nil {
			t.Fatal(err)
		}
		if exp.Exported() != vs.Export.App || exp.Generation() != vs.GoldenV2.Generation {
			t.Fatalf("Exported() = %q, Generation() = %d", exp.Exported(), exp.Generation())
		}
		_, err = exp.Unlock([]byte(vs.GoldenV2.Password))
		wantErrIs(t, err, ErrExport)
		for _, a := range vs.GoldenV2.Apps {
			if a.App != vs.Export.App {
				_, err := exp.Open(a.App, vs.GoldenV2.Root, nil)
				wantErrIs(t, err, ErrNoSuchApp)
				continue
			}
			if got := secretsMap(t, exp, a.App, vs.GoldenV2.Root); !maps.Equal(got, a.Secrets) {
				t.Errorf("root key opened %v, want %v", got, a.Secrets)
			}
			for _, d := range a.Deployments {
				if d.Retired != "" {
					_, err := exp.Open(a.App, d.Key, nil)
					wantErrIs(t, err, ErrRevokedDeployment)
				} else if got := secretsMap(t, exp, a.App, d.Key); !maps.Equal(got, a.Secrets) {
					t.Errorf("%s: deployment key opened %v, want %v", d.Deployment, got, a.Secrets)
				}
			}
		}
		if !bytes.Equal(exportInput(exp.generation, exp.apps), vs.Export.Table.Input) || !bytes.Equal(exp.tableMAC, vs.Export.Table.TableMAC) {
			t.Error("the export's table input or MAC differs from the vector")
		}
	})

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
	if len(vs.Wrap) == 0 || len(vs.WrapV2) == 0 || len(vs.Table) != 2 {
		t.Fatal("vectors.json lacks wrap, wrap_v2 or table vectors")
	}
	for _, w := range slices.Concat(vs.Wrap, vs.WrapV2) {
		version := w.Version
		if version == 0 {
			version = Version1
		}
		p := KDFParams{Time: w.Time, MemoryKiB: w.MemoryKiB, Threads: w.Threads}
		kek := argon2.IDKey([]byte(w.Password), w.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
		pt, err := open(kek, w.Wrapped, rootAAD(version, p, w.Salt))
		if err != nil || !bytes.Equal(pt, w.Root) {
			t.Errorf("wrap %d %+v: does not unwrap to its root: %v", version, p, err)
		}
		other := uint32(Version1 + Version - version)
		if _, err := open(kek, w.Wrapped, rootAAD(other, p, w.Salt)); err == nil {
			t.Errorf("wrap %d %+v: unwraps with the root AAD of version %d too", version, p, other)
		}
	}
	if len(vs.Deployment) < 3 || len(vs.Grant) < 2 {
		t.Fatal("vectors.json lacks deployment or grant vectors")
	}
	for _, d := range vs.Deployment {
		dk, err := deriveDeploymentKey(d.Root, d.App, d.Deployment, d.Generation)
		if err != nil || !bytes.Equal(dk, d.DeploymentKey) {
			t.Errorf("deployment %s/%s/%d: key differs", d.App, d.Deployment, d.Generation)
		}
		if c, err := grantCheck(dk, d.App, d.Deployment, d.Generation); err != nil || !bytes.Equal(c, d.GrantCheck) {
			t.Errorf("deployment %s/%s/%d: grant check differs", d.App, d.Deployment, d.Generation)
		}
	}
	for _, g := range vs.Grant {
		ak, err := openGrant(g.DeploymentKey, g.Grant, g.App, g.Deployment, g.Generation, g.Epoch, g.MAC)
		if err != nil || !bytes.Equal(ak, g.AppKey) {
			t.Errorf("grant %s/%s: does not open to its app key: %v", g.App, g.Deployment, err)
		}
		if _, err := openGrant(g.DeploymentKey, g.Grant, g.App, g.Deployment, g.Generation, g.Epoch+1, g.MAC); err == nil {
			t.Errorf("grant %s/%s opens at another epoch", g.App, g.Deployment)
		}
	}
	for _, tv := range vs.Table {
		apps := map[string]*appSection{}
		for _, e := range tv.Apps {
			sec := &appSection{epoch: e.Epoch, check: e.Check, mac: e.MAC, deployments: map[string]*deployment{}}
			for _, d := range e.Deployments {
				sec.deployments[d.Deployment] = &deployment{generation: d.Generation, created: d.Created, rotated: d.Rotated, check: d.Check, grant: d.Grant}
			}
			for _, r := range e.Retired {
				sec.retired = append(sec.retired, retiredGrant{deployment: r.Deployment, generation: r.Generation, check: r.Check, date: r.Retired, reason: r.Reason})
			}
			apps[e.App] = sec
		}
		if m, err := tableMAC(tv.Root, tv.Generation, apps); err != nil || !bytes.Equal(m, tv.TableMAC) || !bytes.Equal(tableInput(tv.Generation, apps), tv.Input) {
			t.Errorf("table of %d apps: MAC or input differs", len(apps))
		}
	}
}
