package vault

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"
)

// fastKDF keeps tests fast. It is the only way the Argon2id cost is lowered,
// and only _test.go files set it.
var fastKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func init() { testKDF = &fastKDF }

// detReader is a deterministic stream: block i is
// SHA-256(seed || uint64be(i)). SPEC.md documents it for the vectors.
type detReader struct {
	seed  string
	block uint64
	buf   []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			h := sha256.New()
			h.Write([]byte(r.seed))
			h.Write(binary.BigEndian.AppendUint64(nil, r.block))
			r.block++
			r.buf = h.Sum(nil)
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

// withRandom makes the package's randomness come from r for the test.
func withRandom(t testing.TB, r interface{ Read([]byte) (int, error) }) {
	t.Helper()
	old := random
	random = r
	t.Cleanup(func() { random = old })
}

var testPassword = []byte("correct horse battery staple")

// newTestVault returns a vault with apps "web" (DB_PASSWORD, API_TOKEN) and
// "api" (TOKEN), and its root key.
func newTestVault(t testing.TB) (*Vault, *Root) {
	t.Helper()
	v, root, err := New(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"web", "api"} {
		if err := v.CreateApp(root, app); err != nil {
			t.Fatal(err)
		}
	}
	mustSet(t, v, root, "web", "DB_PASSWORD", "hunter2")
	mustSet(t, v, root, "web", "API_TOKEN", "tok-web")
	mustSet(t, v, root, "api", "TOKEN", "tok-api")
	return v, root
}

func mustSet(t testing.TB, v *Vault, root *Root, app, name, value string) {
	t.Helper()
	if err := v.SetSecret(root, app, name, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func mustAppKey(t testing.TB, v *Vault, root *Root, app string) []byte {
	t.Helper()
	k, err := v.AppKey(root, app)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// secretsMap opens app with key and returns name -> value.
func secretsMap(t testing.TB, v *Vault, app string, key []byte) map[string]string {
	t.Helper()
	ss, err := v.Open(app, key, nil)
	if err != nil {
		t.Fatalf("Open(%q): %v", app, err)
	}
	m := make(map[string]string)
	for _, s := range ss {
		m[s.Name] = string(s.Value)
	}
	return m
}

// reparse round-trips v through Marshal and Parse.
func reparse(t testing.TB, v *Vault) *Vault {
	t.Helper()
	data, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(Marshal(v)): %v\n%s", err, data)
	}
	return v2
}

// remac recomputes app's MAC with the real key, and the table MAC, the way
// only a holder of the root key could: it isolates the AEAD's own
// protection from the MACs'.
func remac(t testing.TB, v *Vault, root *Root, app string) {
	t.Helper()
	sec := v.apps[app]
	ak, err := deriveAppKey(root.Bytes(), app, sec.epoch)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := deriveAppKeys(ak)
	if err != nil {
		t.Fatal(err)
	}
	sec.mac = appMAC(keys.mac, app, sec.epoch, sec.secrets)
	retable(t, v, root)
}

// retable recomputes the table MAC of a format-2 vault with the root key.
func retable(t testing.TB, v *Vault, root *Root) {
	t.Helper()
	if v.version != Version {
		return
	}
	m, err := tableMAC(root.Bytes(), v.generation, v.apps)
	if err != nil {
		t.Fatal(err)
	}
	v.tableMAC = m
}

// forgeSection builds a complete, consistent section of app at epoch from
// appKey alone — what a holder of that (possibly revoked) app key can
// write: its check value, its MAC and its values sealed under it.
func forgeSection(t testing.TB, appKey []byte, app string, epoch uint32, values map[string]string) *appSection {
	t.Helper()
	keys, err := deriveAppKeys(appKey)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.wipe()
	secrets := make(map[string][]byte)
	for name, value := range values {
		if secrets[name], err = seal(keys.value, []byte(value), valueAAD(app, epoch, name)); err != nil {
			t.Fatal(err)
		}
	}
	return &appSection{
		epoch:   epoch,
		check:   checkValue(keys.check, app, epoch),
		mac:     appMAC(keys.mac, app, epoch, secrets),
		secrets: secrets,
	}
}

// toV1 rewrites v in the format-1 layout, as the format-1 writer wrote it:
// version 1, no generation, no table MAC, the root key re-sealed under the same KEK with
// the root AAD of version 1 and the same nonce. root must hold the KEK of
// v's header (from New or Unlock).
func toV1(t testing.TB, v *Vault, root *Root) {
	t.Helper()
	if !root.hasKEK {
		t.Fatal("toV1: root has no KEK")
	}
	nonce := slices.Clone(v.wrappedRoot[:24])
	old := random
	random = bytes.NewReader(nonce)
	sealed, err := seal(root.kek[:], root.Bytes(), rootAAD(Version1, v.kdf, v.salt))
	random = old
	if err != nil {
		t.Fatal(err)
	}
	v.version, v.generation, v.tableMAC, v.wrappedRoot = Version1, 0, nil, sealed
}

// marshal is v.Marshal or the end of the test.
func marshal(t testing.TB, v *Vault) []byte {
	t.Helper()
	data, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// mustParse is Parse or the end of the test.
func mustParse(t testing.TB, data []byte) *Vault {
	t.Helper()
	v, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v\n%.600s", err, data)
	}
	return v
}

func wantErrIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// goldenDate is the clock of the golden vault and of tests that compare dates.
var goldenDate = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// withClock makes the dates the vault writes now.
func withClock(t testing.TB, now time.Time) {
	t.Helper()
	old := clock
	clock = func() time.Time { return now }
	t.Cleanup(func() { clock = old })
}
