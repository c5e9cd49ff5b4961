// Package shellquote turns a string into one word that a user can paste into
// bash or zsh, for the commands ov and ov-init suggest in their messages.
//
// Invariant: [Quote]'s result is one line of printable text (no control
// character, no invalid UTF-8), and the shell reads it back as exactly the
// bytes it was given (except NUL, which no shell word can hold).
package shellquote

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// safe are the bytes a word may hold without quoting.
const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@%="

// Quote returns s as one shell word: s itself when it is not empty and
// holds only letters, digits and / . _ - + , : @ % =; in single quotes
// otherwise; and in ANSI-C quotes ($'…') when s holds a control character,
// DEL, invalid UTF-8 or another rune that does not print, with those bytes
// written as \xHH, so that the text stays on one line:
//
//	/run/secrets/machine.kek  ->  /run/secrets/machine.kek
//	/keys/my key              ->  '/keys/my key'
//	/keys/it's                ->  '/keys/it'\''s'
//	/keys/a<newline>b         ->  $'/keys/a\x0ab'
//	/keys/it's<tab>\          ->  $'/keys/it\'s\x09\\'
func Quote(s string) string {
	if s != "" && strings.Trim(s, safe) == "" {
		return s
	}
	if !needsEscapes(s) {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString("$'")
	writeEscaped(&b, s, true)
	b.WriteByte('\'')
	return b.String()
}

// writeEscaped writes s to b with every byte of a rune that does not print
// as \xHH; with ansiC, ' and \ are escaped too, as $'…' needs.
func writeEscaped(b *strings.Builder, s string, ansiC bool) {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case ansiC && r == '\'':
			b.WriteString(`\'`)
		case ansiC && r == '\\':
			b.WriteString(`\\`)
		case printable(r, n):
			b.WriteString(s[i : i+n])
		default: // every byte of it, invalid UTF-8 one byte at a time
			for _, c := range []byte(s[i : i+n]) {
				b.WriteString(`\x`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			}
		}
		i += n
	}
}

// needsEscapes reports whether s holds a byte or rune that must not appear
// as is: a control character, DEL, invalid UTF-8, a rune that does not print.
func needsEscapes(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !printable(r, n) {
			return true
		}
		i += n
	}
	return false
}

// printable reports whether the rune r, decoded from n bytes, may be written
// as is: valid UTF-8, and printable in strconv.IsPrint's sense (which keeps
// out every space but U+0020, and format characters such as U+200B or the
// bidirectional overrides).
func printable(r rune, n int) bool {
	if r == utf8.RuneError && n <= 1 {
		return false
	}
	if r < utf8.RuneSelf {
		return 0x20 <= r && r < 0x7f
	}
	return strconv.IsPrint(r)
}

// Line returns s with every byte or rune that does not print written as
// \xHH, and nothing else changed, so that text which quotes a user's input
// (a parser's error repeating an unknown flag, say) stays one line and
// cannot send escape sequences to a terminal or forge a line of its own.
func Line(s string) string {
	if !needsEscapes(s) {
		return s
	}
	var b strings.Builder
	writeEscaped(&b, s, false)
	return b.String()
}
