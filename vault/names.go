package vault

import (
	"bytes"
	"fmt"
)

// The rules, as quoted in errors.
const (
	appNameRule    = "[a-z0-9][a-z0-9._-]{0,62}"
	secretNameRule = "[A-Za-z_][A-Za-z0-9_]*, at most 255 bytes"
)

// ValidAppName reports whether app is a valid app name: 1 to 63 bytes of
// lowercase letters, digits, '.', '_' and '-', starting with a letter or digit.
// App names never hold '/', which keeps the HKDF info strings unambiguous.
func ValidAppName(app string) error {
	if app == "" || len(app) > MaxAppNameLen {
		return fmt.Errorf("invalid app name %q: must match %s", app, appNameRule)
	}
	for i := 0; i < len(app); i++ {
		c := app[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("invalid app name %q: must match %s", app, appNameRule)
		}
	}
	return nil
}

// ValidSecretName reports whether name is a valid secret name: an environment
// variable name of 1 to 255 bytes, letters, digits and '_', not starting with
// a digit.
func ValidSecretName(name string) error {
	if name == "" || len(name) > MaxSecretNameLen {
		return fmt.Errorf("invalid secret name %q: must match %s", name, secretNameRule)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || i > 0 && '0' <= c && c <= '9'
		if !ok {
			return fmt.Errorf("invalid secret name %q: must match %s", name, secretNameRule)
		}
	}
	return nil
}

// validValue reports whether value can be handed to a program as the value
// of an environment variable. The error never shows the value.
func validValue(name string, value []byte) error {
	if len(value) > MaxValueSize {
		return fmt.Errorf("value of secret %q is %d bytes, over the limit of %d (one execve string)", name, len(value), MaxValueSize)
	}
	if bytes.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("value of secret %q holds a NUL byte, which no environment variable can", name)
	}
	return nil
}

// reservedNames are environment variables that decide which program runs or
// which code a program loads: the command search path, the dynamic loader's
// and glibc's hooks, shell start-up files and word splitting, and the
// module and option hooks of common interpreters. A secret must never set
// one: whoever can write a vault (or holds a revoked key) would choose the
// code that runs, as root when ov-init starts as root.
var reservedNames = map[string]bool{
	"PATH": true,
	// glibc: gconv modules, locale data, the getconf helper.
	"GCONV_PATH": true, "GETCONF_DIR": true, "LOCPATH": true, "NLSPATH": true,
	// shells: start-up files, word splitting, options, prompt expansion.
	"BASH_ENV": true, "ENV": true, "IFS": true, "SHELLOPTS": true, "BASHOPTS": true,
	"PS4": true, "PROMPT_COMMAND": true, "CDPATH": true,
	// interpreters: module search paths, start-up code, injected options.
	"PYTHONPATH": true, "PYTHONHOME": true, "PYTHONSTARTUP": true, "PYTHONINSPECT": true,
	"PERL5LIB": true, "PERLLIB": true, "PERL5OPT": true,
	"RUBYLIB": true, "RUBYOPT": true,
	"NODE_OPTIONS": true, "NODE_PATH": true,
	"JAVA_TOOL_OPTIONS": true, "_JAVA_OPTIONS": true, "JDK_JAVA_OPTIONS": true, "CLASSPATH": true,
	"LUA_PATH": true, "LUA_CPATH": true, "PHPRC": true, "PHP_INI_SCAN_DIR": true,
}

// reservedPrefixes are families of such variables: every LD_* variable of
// the dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, …).
var reservedPrefixes = []string{"LD_"}

// ReservedName reports, as an error naming the variable, whether name is an
// environment variable that chooses which program runs or what code it
// loads (PATH, LD_*, GCONV_PATH, BASH_ENV, ENV, IFS, PYTHONPATH and the like;
// SPEC.md lists them). Such a name is refused as a secret when it is set and
// again when it would be injected, so a vault from an older or hostile writer
// cannot choose the app's code either. The error never holds a value.
func ReservedName(name string) error {
	reserved := reservedNames[name]
	for _, p := range reservedPrefixes {
		if len(name) >= len(p) && name[:len(p)] == p {
			reserved = true
		}
	}
	if !reserved {
		return nil
	}
	return fmt.Errorf("%w: %s decides which program runs or what code it loads, so no secret may set it", ErrReservedName, name)
}
