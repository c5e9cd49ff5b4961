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

// reservedNames are environment variables that decide which program runs
// or which code a program loads or runs: the command search path; every
// variable glibc itself drops for setuid programs (its UNSECURE_ENVVARS);
// shell start-up files, word splitting, prompts and options; the helper
// programs that libraries and tools start on their own (BROWSER, EDITOR,
// PAGER); TLS libraries' module loading; and the code and option hooks of
// common interpreters and runtimes. A secret must never set one: whoever
// can write a vault (or holds a revoked key) would choose the code that
// runs, as root when ov-init starts as root.
var reservedNames = map[string]bool{
	"PATH": true,
	// glibc's UNSECURE_ENVVARS (LD_* below).
	"GCONV_PATH": true, "GETCONF_DIR": true, "GLIBC_TUNABLES": true, "HOSTALIASES": true,
	"LOCALDOMAIN": true, "LOCPATH": true, "MALLOC_TRACE": true, "NIS_PATH": true, "NLSPATH": true,
	"RESOLV_HOST_CONF": true, "RES_OPTIONS": true, "TMPDIR": true, "TZDIR": true,
	// shells.
	"ENV": true, "IFS": true, "SHELLOPTS": true, "BASHOPTS": true, "PS4": true,
	"PROMPT_COMMAND": true, "CDPATH": true, "ZDOTDIR": true, "SHELL": true,
	// programs that other programs start.
	"BROWSER": true, "EDITOR": true, "VISUAL": true, "PAGER": true, "MANPAGER": true,
	"GIT_SSH_COMMAND": true, "GIT_SSH": true, "GIT_EXEC_PATH": true, "GIT_ASKPASS": true,
	"GIT_EDITOR": true, "GIT_PAGER": true, "GIT_EXTERNAL_DIFF": true, "GIT_PROXY_COMMAND": true,
	"GIT_CONFIG_GLOBAL": true, "GIT_CONFIG_SYSTEM": true, "GIT_CONFIG_COUNT": true, "SSH_ASKPASS": true,
	// TLS libraries load engines and providers named here.
	"OPENSSL_CONF": true, "OPENSSL_MODULES": true, "OPENSSL_ENGINES": true,
	// interpreters and runtimes (PYTHON*, PERL*, RUBY*, LUA_*, … below).
	"NODE_OPTIONS": true, "NODE_PATH": true, "NODE_REPL_EXTERNAL_MODULE": true,
	"CLASSPATH": true, "JAVA_TOOL_OPTIONS": true, "JDK_JAVA_OPTIONS": true, "JAVA_OPTIONS": true,
	"PHPRC": true, "PHP_INI_SCAN_DIR": true, "TCLLIBPATH": true, "GEM_PATH": true, "GEM_HOME": true,
	"RUBYGEMS_GEMDEPS": true, "R_PROFILE": true, "R_PROFILE_USER": true, "R_LIBS": true, "R_LIBS_USER": true,
	"DOTNET_STARTUP_HOOKS": true, "CORECLR_PROFILER_PATH": true,
}

// reservedPrefixes are whole families of such variables: the dynamic
// loader's (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, …), bash's (BASH_ENV,
// exported functions), and the interpreters' whose every variable is a
// setting of the interpreter (PYTHONWARNINGS can import a module,
// PERL5DB and PERL5OPT run code, LUA_INIT is code).
var reservedPrefixes = []string{"LD_", "DYLD_", "BASH_", "PYTHON", "PERL", "RUBY", "LUA_", "_JAVA_"}

// ReservedName reports, as an error naming the variable, whether name is an
// environment variable that chooses which program runs or what code it
// loads (PATH, LD_*, GCONV_PATH, BASH_ENV, ENV, IFS, PYTHON*, BROWSER and
// the like; SPEC.md lists them). Such a name is refused as a secret when it is set and
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
