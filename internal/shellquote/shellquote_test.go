package shellquote

import (
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/run/secrets/machine.kek", "/run/secrets/machine.kek"},
		{"a-b_c.d+e,f:g@h%i=j", "a-b_c.d+e,f:g@h%i=j"},
		{"", "''"},
		{"/keys/my key", "'/keys/my key'"},
		{"/keys/it's", `'/keys/it'\''s'`},
		{"/keys/$HOME", "'/keys/$HOME'"},
		{"`id`;*?[]~#!&|<>(){}\"\\", "'`id`;*?[]~#!&|<>(){}\"\\'"},
		{"/schlüssel/ключ", "'/schlüssel/ключ'"},
		{"/keys/a\nb", `$'/keys/a\x0ab'`},
		{"/keys/a\r\tb", `$'/keys/a\x0d\x09b'`},
		{"it's\n", `$'it\'s\x0a'`},
		{"back\\slash\x7f", `$'back\\slash\x7f'`},
		{"\x1b[31mred", `$'\x1b[31mred'`},
		{"bad\xffutf8", `$'bad\xffutf8'`},
		{"nbsp\u00a0zw\u200bbidi\u202e", `$'nbsp\xc2\xa0zw\xe2\x80\x8bbidi\xe2\x80\xae'`},
		{"é\x01", `$'é\x01'`},
		{"\x01a", `$'\x01a'`}, // \xHH takes at most two digits: the a stays an a
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// check asserts what every result promises: one line of printable UTF-8,
// no control character.
func check(t *testing.T, s, q string) {
	t.Helper()
	if !utf8.ValidString(q) {
		t.Fatalf("Quote(%q) = %q is not valid UTF-8", s, q)
	}
	for _, r := range q {
		if r < 0x20 || r == 0x7f || (r >= utf8.RuneSelf && !printable(r, utf8.RuneLen(r))) {
			t.Fatalf("Quote(%q) = %q holds %U", s, q, r)
		}
	}
}

// FuzzQuoteRoundTripsThroughBash checks that bash reads every result back as
// the bytes that were quoted, in the C and a UTF-8 locale. Without bash it
// checks only the form of the result.
func FuzzQuoteRoundTripsThroughBash(f *testing.F) {
	for _, s := range []string{"", "plain", "my key", "it's", "a\nb", "\\'\\", "$'x'", "bad\xff", "\u200b", "é\x01f", "'\\x41'"} {
		f.Add(s)
	}
	bash, err := exec.LookPath("bash")
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		check(t, s, q)
		if err != nil || strings.IndexByte(s, 0) >= 0 { // no shell word holds NUL
			return
		}
		for _, locale := range []string{"C", "C.UTF-8"} {
			cmd := exec.Command(bash, "-c", "printf %s "+q)
			cmd.Env = []string{"LC_ALL=" + locale}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("LC_ALL=%s bash -c %q: %v", locale, "printf %s "+q, err)
			}
			if string(out) != s {
				t.Fatalf("Quote(%q) = %s; LC_ALL=%s bash read it back as %q", s, q, locale, out)
			}
		}
	})
}

func TestLine(t *testing.T) {
	for in, want := range map[string]string{
		"unknown flag --x":     "unknown flag --x",
		"--x\nov-init: FORGED": `--x\x0aov-init: FORGED`,
		"red \x1b[31m":         `red \x1b[31m`,
		"k\xff ü":              `k\xff ü`,
		"tab\there\r":          `tab\x09here\x0d`,
		"rtl \u202e":           `rtl \xe2\x80\xae`,
	} {
		if got := Line(in); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
}
