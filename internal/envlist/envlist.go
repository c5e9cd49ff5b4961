// Package envlist reads and changes an environment held as execve(2) takes
// it: a list of "NAME=value" strings, in which a name may appear more than
// once.
//
// One rule for such duplicates, everywhere ov-init handles an environment:
// [Get] returns the first, as getenv(3) in glibc and Go's os.Getenv do (so
// the PATH ov-init searches is the one a C execvp(3) would search); [Set]
// and [Unset] act on every occurrence, so that after Set the app sees the
// name exactly once, whatever rule its own language applies (Python's
// os.environ and Go's os/exec keep the last). Entries without "=" are
// nobody's variable: they are never matched and are left in place.
//
// No function changes the slice it is given.
package envlist

import "strings"

// Get returns the value of the first entry for name.
func Get(env []string, name string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// Set returns env with name=value in place of the first entry for name and
// every later entry for name removed, or with name=value appended when env
// has none.
func Set(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	set := false
	for _, kv := range env {
		if !is(kv, name) {
			out = append(out, kv)
		} else if !set {
			out = append(out, name+"="+value)
			set = true
		}
	}
	if !set {
		out = append(out, name+"="+value)
	}
	return out
}

// Unset returns env without any entry for the names.
func Unset(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		for _, name := range names {
			if is(kv, name) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// is reports whether kv is an entry for name.
func is(kv, name string) bool {
	return len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name
}
