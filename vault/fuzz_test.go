package vault

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParse holds Parse to: never panic, and anything it accepts marshals
// and parses again to the same bytes.
func FuzzParse(f *testing.F) {
	for _, name := range []string{goldenFile, goldenV2File, exportFile} {
		golden, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(golden)
	}
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":3}`))
	f.Add([]byte(`{"version":"1\n ov-init: forged"}`))
	f.Add([]byte(`{"version":1,"kdf":{"alg":"argon2id","time":1,"memory_kib":8,"threads":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA=="},` +
		`"wrapped_root":"","root_check":"","apps":{}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			if v != nil {
				t.Fatal("Parse returned a vault and an error")
			}
			return
		}
		out, err := v.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed vault: %v", err)
		}
		v2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(data))): %v\n%s", err, out)
		}
		out2, err := v2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("Marshal is not stable: %v", err)
		}
		if v2.Version() != v.Version() || v2.Exported() != v.Exported() {
			t.Fatalf("version %d (export %q) became %d (export %q)", v.Version(), v.Exported(), v2.Version(), v2.Exported())
		}
		// Whatever a hostile file holds, opening it fails cleanly.
		key := make([]byte, KeySize)
		for _, app := range v.Apps() {
			if _, err := v.SecretNames(app); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Open(app, key, nil); err == nil {
				t.Fatal("a zero key opened a fuzzed app")
			}
		}
	})
}
