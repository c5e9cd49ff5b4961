package initcmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ov-init/ov-init/execstage"
)

// Issue 12: --secrets-as and --secrets-dir, as flags and as OV_* variables,
// for ov-init and for `ov run` alike (both parse Flags).
func TestSecretsAsAndDirComeFromFlagsAndVariables(t *testing.T) {
	o, _, ok := quietParse([]string{"--app", "web", "--secrets-as", "files", "--secrets-dir", "/run/x", "--", "app"}, nil)
	if !ok || o.SecretsAs != "files" || o.SecretsDir != "/run/x" || !o.given["secrets-as"] || !o.given["secrets-dir"] {
		t.Errorf("flags: %+v", o.Flags)
	}
	t.Setenv("OV_SECRETS_AS", "memfd")
	t.Setenv("OV_SECRETS_DIR", "/run/y")
	o, _, ok = quietParse([]string{"--app", "web", "--", "app"}, os.Environ())
	if !ok || o.SecretsAs != "memfd" || o.SecretsDir != "/run/y" {
		t.Errorf("variables: %+v", o.Flags)
	}
	for _, kv := range o.Env {
		if strings.HasPrefix(kv, "OV_SECRETS_") {
			t.Errorf("%q left in the app's environment", kv)
		}
	}
	os.Unsetenv("OV_SECRETS_AS")
	os.Unsetenv("OV_SECRETS_DIR")
	o, _, ok = quietParse([]string{"--app", "web", "--", "app"}, nil)
	if !ok || o.SecretsAs != "env" || o.SecretsDir != "/run/ov" || o.given["secrets-as"] || o.given["secrets-dir"] {
		t.Errorf("defaults: %+v, given %v", o.Flags, o.given)
	}
	if _, status, ok := quietParse([]string{"--app", "web", "--secrets-as", "file", "--", "app"}, nil); ok || status != 2 {
		t.Errorf("--secrets-as file: ok %v, status %d; want a usage error", ok, status)
	}
}

// With a secret delivered as a file, PID 1 gets the clean-up of the
// secrets dir (cleaned path) and the stage the dir; otherwise neither.
func TestSecretsModeWiresTheCleanupOfFiles(t *testing.T) {
	for _, c := range []struct {
		name    string
		as      string
		secrets []string
		dir     string // want in the stage's config; "" none
	}{
		{"Env", "env", nil, ""},
		{"Memfd", "memfd", nil, ""},
		{"Files", "files", nil, "/run/ov"},
		{"OneFile", "env", []string{"A", "B:file"}, "/run/ov"},
		{"NoFileAfterAll", "files", []string{"A:env", "B:memfd"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := Options{
				Flags:   Flags{App: "web", MachineKey: "/k", SecretsAs: c.as, SecretsDir: "/run//ov/", Secrets: c.secrets},
				Vault:   "/v",
				Command: []string{"app"},
				given:   map[string]bool{},
			}
			cfg, err := o.config()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.secretsMode(&cfg); err != nil {
				t.Fatal(err)
			}
			var stage execstage.Config
			if err := stage.UnmarshalBinary(cfg.StageConfig); err != nil {
				t.Fatal(err)
			}
			if stage.SecretsAs != c.as || stage.SecretsDir != c.dir {
				t.Errorf("stage gets --secrets-as %q, dir %q; want %q, %q", stage.SecretsAs, stage.SecretsDir, c.as, c.dir)
			}
			if (cfg.StageCleanup != nil) != (c.dir != "") {
				t.Errorf("PID 1's clean-up set: %v, want %v", cfg.StageCleanup != nil, c.dir != "")
			}
		})
	}
}

// PID 1's clean-up removes the files by name and says so at -v; a failure
// is one line at any verbosity.
func TestClearSecretsDirSaysWhatItDid(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"A", "B"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	type line struct {
		level int
		text  string
	}
	var lines []line
	logf := func(level int, format string, args ...any) {
		lines = append(lines, line{level, strings.TrimSpace(fmt.Sprintf(format, args...))})
	}
	clearSecretsDir(dir)(logf)
	if len(lines) != 1 || lines[0].level != 1 || !strings.Contains(lines[0].text, "removed 2 secret files from") {
		t.Errorf("log %+v, want one -v line saying 2 files were removed", lines)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d entries left", len(entries))
	}
	lines = nil
	clearSecretsDir(filepath.Join(dir, "missing"))(logf)
	if len(lines) != 1 || lines[0].level != 0 || !strings.Contains(lines[0].text, "does not exist") {
		t.Errorf("log %+v, want one line at level 0", lines)
	}
}
