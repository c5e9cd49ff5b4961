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
