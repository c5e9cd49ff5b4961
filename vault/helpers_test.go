package vault

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
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

// remac recomputes app's MAC with the real key, the way only a key holder
// could: it isolates the AEAD's own protection from the MAC's.
func remac(t testing.TB, v *Vault, root *Root, app string) {
	t.Helper()
	sec := v.apps[app]
	ak := mustAppKey(t, v, root, app)
	keys, err := deriveAppKeys(ak)
	if err != nil {
		t.Fatal(err)
	}
	sec.mac = appMAC(keys.mac, app, sec.epoch, sec.secrets)
}

func wantErrIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}
