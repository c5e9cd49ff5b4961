package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validFile is a marshalled test vault (format 2).
func validFile(t *testing.T) []byte {
	t.Helper()
	v, _ := newTestVault(t)
	data, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// validFileV1 is a marshalled test vault in format 1.
func validFileV1(t *testing.T) []byte {
	t.Helper()
	v, root := newTestVault(t)
	toV1(t, v, root)
	return marshal(t, v)
}

// editJSON decodes data generically, applies edit and encodes it again.
func editJSON(t *testing.T, data []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stripDeployments drops the format-2 fields of every app section.
func stripDeployments(m map[string]any) {
	for _, a := range obj(m, "apps") {
		delete(a.(map[string]any), "deployments")
		delete(a.(map[string]any), "retired")
	}
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

func b64(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }

func TestParseRefusesMalformedFiles(t *testing.T) {
	type tc struct {
		name string
		edit func(m map[string]any) // a structural edit, or
		raw  func(s string) string  // a textual one
		want string                 // in the error text
	}
	setKDF := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { obj(m, "kdf")[k] = v }
	}
	setApp := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { obj(m, "apps", "web")[k] = v }
	}
	setSecret := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { obj(m, "apps", "web", "secrets")[k] = v }
	}
	cases := []tc{
		{name: "version 3", edit: func(m map[string]any) { m["version"] = 3 }, want: "unsupported vault version 3 (this build reads versions 1 and 2)"},
		{name: "version 0", edit: func(m map[string]any) { m["version"] = 0 }, want: "unsupported vault version 0"},
		{name: "version 1.0", edit: func(m map[string]any) { m["version"] = json.Number("1.0") }, want: "unsupported vault version (this build"},
		{name: "version string", edit: func(m map[string]any) { m["version"] = "1" }, want: "unsupported vault version (this build"},
		{name: "version 1 with table_mac", edit: func(m map[string]any) { m["version"] = 1; delete(m, "generation"); stripDeployments(m) }, want: `unknown field "table_mac"`},
		{name: "version 1 with generation", edit: func(m map[string]any) { m["version"] = 1; delete(m, "table_mac"); stripDeployments(m) }, want: `unknown field "generation"`},
		{name: "version 2 without generation", edit: func(m map[string]any) { delete(m, "generation") }, want: `missing field "generation"`},
		{name: "generation 0", edit: func(m map[string]any) { m["generation"] = 0 }, want: "generation must be at least 1"},
		{name: "generation over uint32", edit: func(m map[string]any) { m["generation"] = 1 << 32 }, want: `"generation" must be an integer from 0 to 4294967295`},
		{name: "generation negative", edit: func(m map[string]any) { m["generation"] = -1 }, want: `"generation" must be an integer`},
		{name: "generation exponent", edit: func(m map[string]any) { m["generation"] = json.Number("1e1") }, want: `"generation" must be an integer`},
		{name: "generation string", edit: func(m map[string]any) { m["generation"] = "5" }, want: `"generation" must be a number`},
		{name: "generation null", edit: func(m map[string]any) { m["generation"] = nil }, want: `"generation" must be a number`},
		{name: "version 2 without table_mac", edit: func(m map[string]any) { delete(m, "table_mac") }, want: `missing field "table_mac"`},
		{name: "table_mac short", edit: func(m map[string]any) { m["table_mac"] = b64(31) }, want: "table_mac must decode to 32 bytes, not 31"},
		{name: "table_mac null", edit: func(m map[string]any) { m["table_mac"] = nil }, want: `"table_mac" must be a string`},
		{name: "version missing", edit: func(m map[string]any) { delete(m, "version") }, want: `missing field "version"`},
		{name: "unknown top field", edit: func(m map[string]any) { m["extra"] = 1 }, want: `unknown field "extra"`},
		{name: "unknown kdf field", edit: setKDF("pepper", "x"), want: `unknown field "pepper"`},
		{name: "unknown app field", edit: setApp("note", "x"), want: `unknown field "note"`},
		{name: "field in other case", raw: func(s string) string { return strings.Replace(s, `"kdf"`, `"KDF"`, 1) }, want: `unknown field "KDF"`},
		{name: "duplicate secret", raw: func(s string) string {
			return strings.Replace(s, `"secrets":{`, `"secrets":{"TOKEN":"`+b64(40)+`",`, 1)
		}, want: `key "TOKEN" twice`},
		{name: "duplicate field", raw: func(s string) string { return strings.Replace(s, `{`, `{"version":1,`, 1) }, want: `key "version" twice`},
		// The same key spelled with an escape: JSON compares decoded keys.
		{name: "duplicate field escaped", raw: func(s string) string { return strings.Replace(s, `{`, `{"\u0076ersion":1,`, 1) }, want: `key "version" twice`},
		{name: "duplicate app field escaped", raw: func(s string) string {
			return strings.Replace(s, `"secrets":{`, `"\u0065poch":1,"secrets":{`, 1)
		}, want: `key "epoch" twice`},
		{name: "missing apps", edit: func(m map[string]any) { delete(m, "apps") }, want: `missing field "apps"`},
		{name: "missing salt", edit: func(m map[string]any) { delete(obj(m, "kdf"), "salt") }, want: `missing field "salt"`},
		{name: "missing secrets", edit: func(m map[string]any) { delete(obj(m, "apps", "web"), "secrets") }, want: `missing field "secrets"`},
		{name: "null apps", edit: func(m map[string]any) { m["apps"] = nil }, want: `"apps" must be an object`},
		{name: "null value", edit: setSecret("TOKEN", nil), want: "must be a string"},
		{name: "array apps", edit: func(m map[string]any) { m["apps"] = []any{} }, want: "must be an object"},
		{name: "trailing garbage", raw: func(s string) string { return s + "x" }, want: "invalid JSON"},
		{name: "trailing object", raw: func(s string) string { return s + "{}" }, want: "invalid JSON"},
		{name: "not an object", raw: func(string) string { return `[]` }, want: "invalid JSON"},
		{name: "empty", raw: func(string) string { return `` }, want: "invalid JSON"},
		{name: "null", raw: func(string) string { return `null` }, want: `missing field "version"`},
		{name: "truncated", raw: func(s string) string { return s[:len(s)/2] }, want: "invalid JSON"},
		{name: "kdf alg", edit: setKDF("alg", "scrypt"), want: `unsupported kdf "scrypt"`},
		{name: "kdf time 0", edit: setKDF("time", 0), want: "kdf.time 0 is under the minimum of 1"},
		{name: "kdf time 11", edit: setKDF("time", 11), want: "kdf.time 11 is over the limit of 10"},
		{name: "kdf time 100", edit: setKDF("time", 100), want: "kdf.time 100 is over the limit of 10"},
		{name: "kdf memory 4 GiB", edit: setKDF("memory_kib", 4<<20), want: "kdf.memory_kib 4194304 is over the limit of 1048576 (1 GiB)"},
		{name: "kdf memory over 1 GiB", edit: setKDF("memory_kib", 1<<20+1), want: "kdf.memory_kib 1048577 is over the limit of 1048576"},
		{name: "kdf memory under 8 per thread", edit: setKDF("memory_kib", 7), want: "kdf.memory_kib 7 is under the minimum of 8"},
		{name: "kdf threads 17", edit: setKDF("threads", 17), want: "kdf.threads 17 is over the limit of 16"},
		{name: "kdf threads 255", edit: setKDF("threads", 255), want: "kdf.threads 255 is over the limit of 16"},
		{name: "kdf memory over uint32", edit: setKDF("memory_kib", 1<<32), want: "integer from 0 to 4294967295"},
		{name: "kdf threads 0", edit: setKDF("threads", 0), want: "kdf.threads 0 is under the minimum of 1"},
		{name: "kdf threads 256", edit: setKDF("threads", 256), want: "integer from 0 to 255"},
		{name: "kdf time negative", edit: setKDF("time", -1), want: "integer from 0 to"},
		{name: "kdf time float", edit: setKDF("time", 1.5), want: "integer from 0 to"},
		{name: "kdf time exponent", edit: setKDF("time", json.Number("1e0")), want: "integer from 0 to"},
		{name: "kdf time string", edit: setKDF("time", "1"), want: "must be a number"},
		{name: "salt bad base64", edit: setKDF("salt", "!!!!"), want: "kdf.salt is not canonical"},
		{name: "salt url base64", edit: setKDF("salt", "-_-_-_-_-_-_-_-_-_-_-w=="), want: "kdf.salt is not canonical"},
		{name: "salt unpadded", edit: setKDF("salt", strings.TrimRight(b64(16), "=")), want: "kdf.salt is not canonical"},
		{name: "salt with newline", edit: setKDF("salt", b64(12)+"\n"+b64(3)), want: "kdf.salt is not canonical"},
		{name: "salt with padding bits", edit: setKDF("salt", "AAAAAAAAAAAAAAAAAAAAAB=="), want: "kdf.salt is not canonical"},
		{name: "salt short", edit: setKDF("salt", b64(15)), want: "kdf.salt must decode to 16 bytes, not 15"},
		{name: "wrapped root short", edit: func(m map[string]any) { m["wrapped_root"] = b64(71) }, want: "wrapped_root must decode to 72 bytes"},
		{name: "root check long", edit: func(m map[string]any) { m["root_check"] = b64(33) }, want: "root_check must decode to 32 bytes"},
		{name: "check short", edit: setApp("check", b64(31)), want: "apps.web.check must decode to 32 bytes"},
		{name: "mac empty", edit: setApp("mac", ""), want: "apps.web.mac must decode to 32 bytes, not 0"},
		{name: "value too short", edit: setSecret("TOKEN", b64(39)), want: "must decode to 40..130855 bytes, not 39"},
		{name: "value too long", edit: setSecret("TOKEN", b64(40+MaxValueSize+1)), want: "not 130856"},
		{name: "value bad base64", edit: setSecret("TOKEN", "@@@@"), want: "apps.web.secrets.TOKEN is not canonical"},
		{name: "epoch 0", edit: setApp("epoch", 0), want: "epoch must be at least 1"},
		{name: "epoch over uint32", edit: setApp("epoch", 1<<32), want: `"apps.web.epoch" must be an integer`},
		{name: "app name upper", raw: func(s string) string { return strings.Replace(s, `"web":`, `"Web":`, 1) }, want: `invalid app name "Web"`},
		{name: "app name slash", raw: func(s string) string { return strings.Replace(s, `"web":`, `"a/b":`, 1) }, want: `invalid app name "a/b"`},
		{name: "app name empty", raw: func(s string) string { return strings.Replace(s, `"web":`, `"":`, 1) }, want: `invalid app name ""`},
		{name: "app name control", raw: func(s string) string { return strings.Replace(s, `"web":`, `"w\u001b[31m":`, 1) }, want: `invalid app name "w\x1b[31m"`},
		{name: "secret name digit", raw: func(s string) string { return strings.Replace(s, `"TOKEN":`, `"1TOKEN":`, 1) }, want: `invalid secret name "1TOKEN"`},
		{name: "secret name equals", raw: func(s string) string { return strings.Replace(s, `"TOKEN":`, `"TO=KEN":`, 1) }, want: `invalid secret name "TO=KEN"`},
		{name: "secret name too long", raw: func(s string) string {
			return strings.Replace(s, `"TOKEN":`, `"`+strings.Repeat("T", 256)+`":`, 1)
		}, want: "invalid secret name"},
		{name: "deep nesting", raw: func(string) string { return strings.Repeat("[", 100000) }, want: "invalid JSON"},
	}
	base := validFile(t)
	if _, err := Parse(base); err != nil {
		t.Fatal(err)
	}
	// Compact the base so textual edits see `"secrets":{` and `"web":`.
	var buf bytes.Buffer
	if err := json.Compact(&buf, base); err != nil {
		t.Fatal(err)
	}
	compact := buf.String()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var data []byte
			if c.edit != nil {
				data = editJSON(t, base, c.edit)
			} else {
				data = []byte(c.raw(compact))
				if string(data) == compact {
					t.Fatal("textual edit changed nothing")
				}
			}
			v, err := Parse(data)
			if err == nil {
				t.Fatalf("Parse accepted it:\n%.400s", data)
			}
			if v != nil {
				t.Fatal("Parse returned a vault with an error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %q, want it to contain %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "parsing vault: ") {
				t.Fatalf("error = %q lacks context", err)
			}
		})
	}
}

func TestParseUnsupportedVersionIsErrUnsupportedVersionEvenWithNewFields(t *testing.T) {
	data := []byte(`{"version": 3, "something_new": {"a": [1, 2]}}`)
	_, err := Parse(data)
	wantErrIs(t, err, ErrUnsupportedVersion)
	if !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("error does not name the version: %v", err)
	}
}

// TestUnsupportedVersionErrorNeverEchoesTheToken: a crafted vault printed a
// forged second "ov-init:" line through the version's raw JSON token.
func TestUnsupportedVersionErrorNeverEchoesTheToken(t *testing.T) {
	const generic = "parsing vault: unsupported vault version (this build reads versions 1 and 2)"
	for token, want := range map[string]string{
		`"1\n ov-init: forged"`:      generic,
		`"2"`:                        generic,
		`"\u001b[2K\rok"`:            generic,
		`12345678901`:                generic, // 11 digits: not a short decimal
		`99999999999999999999999999`: generic,
		`1e0`:                        generic,
		`-1`:                         generic,
		`2.0`:                        generic,
		`true`:                       generic,
		`{"a":"\nov-init: forged"}`:  generic,
		`["ov-init: forged"]`:        generic,
		`4294967296`:                 "parsing vault: unsupported vault version 4294967296 (this build reads versions 1 and 2)",
		`3`:                          "parsing vault: unsupported vault version 3 (this build reads versions 1 and 2)",
		`1234567890`:                 "parsing vault: unsupported vault version 1234567890 (this build reads versions 1 and 2)",
	} {
		data := []byte(`{"version": ` + token + `, "kdf": {}}`)
		_, err := Parse(data)
		wantErrIs(t, err, ErrUnsupportedVersion)
		if err.Error() != want {
			t.Errorf("version %s: error %q, want %q", token, err, want)
		}
		if strings.ContainsAny(err.Error(), "\n\r\x1b") || strings.Contains(err.Error(), "forged") {
			t.Errorf("version %s: error %q echoes the token", token, err)
		}
	}
}

func TestParseAcceptsBothVersionsWithAnyWhitespace(t *testing.T) {
	for _, data := range [][]byte{validFile(t), validFileV1(t)} {
		spaced := bytes.Replace(data, []byte(`"version":`), []byte("\"version\" \t\n :\r\n "), 1)
		if bytes.Equal(spaced, data) {
			t.Fatal("edit changed nothing")
		}
		v := mustParse(t, spaced)
		if out := marshal(t, v); !bytes.Equal(out, data) {
			t.Fatalf("version %d did not round-trip:\n%s", v.Version(), out)
		}
	}
}

func TestParseAcceptsStrongerKDFParamsWithinBounds(t *testing.T) {
	data := editJSON(t, validFile(t), func(m map[string]any) {
		k := obj(m, "kdf")
		k["time"], k["memory_kib"], k["threads"] = MaxKDFTime, MaxKDFMemoryKiB, MaxKDFThreads
	})
	v, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if v.kdf != (KDFParams{Time: MaxKDFTime, MemoryKiB: MaxKDFMemoryKiB, Threads: MaxKDFThreads}) {
		t.Fatalf("kdf = %+v", v.kdf)
	}
}

// TestKDFBoundsAreWhatARealWriterWouldChoose: ov runs Argon2id with the
// file's parameters before anything is authenticated; a file asking for
// m = 4 GiB, t = 100 made ov die out of memory. The bounds hold for both
// versions, at Parse and again at Unlock.
func TestKDFBoundsAreWhatARealWriterWouldChoose(t *testing.T) {
	if MaxKDFMemoryKiB != 1<<20 || MaxKDFTime != 10 || MaxKDFThreads != 16 {
		t.Fatalf("bounds = m %d, t %d, p %d; SPEC.md says 1 GiB, 10, 16", MaxKDFMemoryKiB, MaxKDFTime, MaxKDFThreads)
	}
	if err := checkKDF(DefaultKDF); err != nil {
		t.Fatalf("DefaultKDF is out of bounds: %v", err)
	}
	for _, base := range [][]byte{validFile(t), validFileV1(t)} {
		data := editJSON(t, base, func(m map[string]any) {
			k := obj(m, "kdf")
			k["time"], k["memory_kib"] = 100, 4<<20
		})
		_, err := Parse(data)
		if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), "kdf.time 100 is over the limit of 10") {
			t.Fatalf("Parse = %v", err)
		}
	}
	// A Vault that got past Parse some other way still does not run it.
	v, _ := newTestVault(t)
	v.kdf.MemoryKiB = 4 << 20
	if _, err := v.Unlock(testPassword); err == nil || !strings.Contains(err.Error(), "kdf.memory_kib 4194304 is over the limit") {
		t.Fatalf("Unlock = %v", err)
	}
}

func TestParseRefusesOversizeFile(t *testing.T) {
	data := validFile(t)
	big := append(data[:len(data)-2:len(data)-2], bytes.Repeat([]byte(" "), MaxFileSize)...)
	big = append(big, "}\n"...)
	_, err := Parse(big)
	if err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("Parse of %d bytes = %v", len(big), err)
	}
	_, err = Parse(big[len(big)-MaxFileSize:]) // exactly at the limit: read, then refused as JSON
	if err == nil || strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("Parse at the limit = %v", err)
	}
}

func TestMarshalIsDeterministicAndSorted(t *testing.T) {
	v, _ := newTestVault(t)
	a, _ := v.Marshal()
	for range 10 {
		if b, _ := v.Marshal(); !bytes.Equal(a, b) {
			t.Fatal("Marshal is not deterministic")
		}
	}
	s := string(a)
	if strings.Index(s, `"api"`) > strings.Index(s, `"web"`) || strings.Index(s, `"API_TOKEN"`) > strings.Index(s, `"DB_PASSWORD"`) {
		t.Fatalf("keys are not sorted:\n%s", s)
	}
	order := []string{`"version"`, `"generation"`, `"kdf"`, `"alg"`, `"time"`, `"memory_kib"`, `"threads"`, `"salt"`, `"wrapped_root"`, `"root_check"`, `"table_mac"`, `"apps"`}
	last := -1
	for _, k := range order {
		i := strings.Index(s, k)
		if i < last {
			t.Fatalf("field %s out of order", k)
		}
		last = i
	}
}

func TestLoadErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	_, err := Load(missing)
	if err == nil || !strings.Contains(err.Error(), `"`+missing+`"`) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) = %v", err)
	}
	if strings.Count(err.Error(), missing) != 1 {
		t.Fatalf("path repeated: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version": 9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) || !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("Load(bad) = %v", err)
	}
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Load(dir) = %v", err)
	}
}

func TestLoadRefusesOversizeFileWithoutReadingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil { // sparse: 1 TiB that Load must not read
		t.Skipf("cannot create a sparse file here: %v", err)
	}
	f.Close()
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("Load = %v", err)
	}
}
