package vault

import (
	"errors"
	"testing"
)

func TestReservedNames(t *testing.T) {
	for _, name := range []string{
		"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH", "GLIBC_TUNABLES", "TMPDIR",
		"BASH_ENV", "BASH_FUNC_x", "ENV", "IFS", "PS4", "ZDOTDIR",
		"PYTHONPATH", "PYTHONWARNINGS", "PYTHONSTARTUP", "PERL5OPT", "PERL5DB", "RUBYOPT", "LUA_INIT",
		"NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "CLASSPATH", "OPENSSL_CONF",
		"BROWSER", "EDITOR", "PAGER", "GIT_SSH_COMMAND", "DOTNET_STARTUP_HOOKS",
	} {
		if err := ReservedName(name); !errors.Is(err, ErrReservedName) {
			t.Errorf("ReservedName(%q) = %v, want ErrReservedName", name, err)
		}
	}
	// Names people use for secrets, some close to a reserved one.
	for _, name := range []string{
		"DATABASE_URL", "DB_PASSWORD", "API_TOKEN", "NODE_AUTH_TOKEN", "GIT_TOKEN", "GITHUB_TOKEN",
		"JAVA_KEYSTORE_PASSWORD", "PATHS", "MYPATH", "path", "ld_preload", "SSL_KEY", "HOME_TOKEN",
	} {
		if err := ReservedName(name); err != nil {
			t.Errorf("ReservedName(%q) = %v, want nil", name, err)
		}
	}
}
