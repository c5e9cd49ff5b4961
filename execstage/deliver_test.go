package execstage

import (
	"slices"
	"strings"
	"testing"

	"github.com/ov-init/ov-init/secretfiles"
	"github.com/ov-init/ov-init/vault"
)

func secretNames(secrets []vault.Secret) []string {
	var n []string
	for _, s := range secrets {
		n = append(n, s.Name)
	}
	return n
}

// How each secret reaches the app, and the environment the app starts
// with: NAME_FILE instead of NAME for a file or a memfd (issue 12).
func TestPlanGivesFileSecretsAsNAME_FILE(t *testing.T) {
	inherited := []string{"PATH=/bin", "DB=inherited", "KEEP=1"}
	secrets := []vault.Secret{{Name: "DB", Value: []byte("v1")}, {Name: "TLS", Value: []byte("v2")}, {Name: "API", Value: []byte("v3")}}
	for _, c := range []struct {
		name          string
		cfg           Config
		env           []string
		files, memfds []string
	}{
		{"Env", Config{}, []string{"PATH=/bin", "DB=v1", "KEEP=1", "TLS=v2", "API=v3"}, nil, nil},
		{"Files", Config{SecretsAs: secretfiles.AsFiles, SecretsDir: "/run/ov"},
			[]string{"PATH=/bin", "KEEP=1", "DB_FILE=/run/ov/DB", "TLS_FILE=/run/ov/TLS", "API_FILE=/run/ov/API"},
			[]string{"DB", "TLS", "API"}, nil},
		{"Memfd", Config{SecretsAs: secretfiles.AsMemfd},
			[]string{"PATH=/bin", "KEEP=1"}, nil, []string{"DB", "TLS", "API"}},
		{"Mixed", Config{Secrets: []string{"DB", "TLS:file", "API:memfd"}, SecretsDir: "/s"},
			[]string{"PATH=/bin", "DB=v1", "KEEP=1", "TLS_FILE=/s/TLS"}, []string{"TLS"}, []string{"API"}},
		{"MixedOverFiles", Config{Secrets: []string{"DB:env", "TLS", "API:memfd"}, SecretsAs: secretfiles.AsFiles, SecretsDir: "/s"},
			[]string{"PATH=/bin", "DB=v1", "KEEP=1", "TLS_FILE=/s/TLS"}, []string{"TLS"}, []string{"API"}},
		// --preserve-env: the inherited DB wins, as in env mode, and no
		// file is written for it.
		{"PreserveEnv", Config{SecretsAs: secretfiles.AsFiles, SecretsDir: "/s", PreserveEnv: true},
			[]string{"PATH=/bin", "DB=inherited", "KEEP=1", "TLS_FILE=/s/TLS", "API_FILE=/s/API"}, []string{"TLS", "API"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := plan(c.cfg, inherited, secrets)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.env, c.env) {
				t.Errorf("env %q, want %q", d.env, c.env)
			}
			if got := secretNames(d.files); !slices.Equal(got, c.files) {
				t.Errorf("files %q, want %q", got, c.files)
			}
			if got := secretNames(d.memfds); !slices.Equal(got, c.memfds) {
				t.Errorf("memfds %q, want %q", got, c.memfds)
			}
		})
	}
}

// A NAME_FILE that ov-init would set but cannot: refused before anything
// is written, in one line that names the variable and never a value.
func TestPlanRefusesANAME_FILEItCannotSet(t *testing.T) {
	files := Config{SecretsAs: secretfiles.AsFiles, SecretsDir: "/run/ov"}
	for _, c := range []struct {
		name      string
		cfg       Config
		inherited []string
		secrets   []string
		want      []string
	}{
		{"InheritedNAME_FILE", files, []string{"DB_FILE=/run/secrets/db"}, []string{"DB"},
			[]string{"already sets DB_FILE", "secret DB as a file", "--preserve-env", "--secrets DB:env"}},
		{"InheritedNAME_FILEForAMemfd", Config{SecretsAs: secretfiles.AsMemfd}, []string{"DB_FILE="}, []string{"DB"},
			[]string{"already sets DB_FILE", "as a memfd"}},
		{"ReservedNAME_FILE", files, nil, []string{"BASH"},
			[]string{"BASH_FILE", "decides which program runs"}},
		{"AnotherSecretsName", files, nil, []string{"A", "A_FILE"},
			[]string{"secret A as a file is given to the app as A_FILE", "secret of that name"}},
		{"AnotherSecretsNameInMixedMode", Config{Secrets: []string{"A:memfd", "A_FILE"}}, nil, []string{"A", "A_FILE"},
			[]string{"as A_FILE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var secrets []vault.Secret
			for _, n := range c.secrets {
				secrets = append(secrets, vault.Secret{Name: n, Value: []byte("ovsec-value")})
			}
			_, err := plan(c.cfg, c.inherited, secrets)
			if err == nil {
				t.Fatal("planned")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "ovsec-") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q holds a value or more than one line", err)
			}
		})
	}
	// --preserve-env keeps the inherited NAME_FILE and skips the secret.
	d, err := plan(Config{SecretsAs: secretfiles.AsFiles, SecretsDir: "/s", PreserveEnv: true},
		[]string{"DB_FILE=/run/secrets/db"}, []vault.Secret{{Name: "DB", Value: []byte("v")}})
	if err != nil || len(d.files) != 0 || !slices.Equal(d.env, []string{"DB_FILE=/run/secrets/db"}) || !slices.Equal(d.skipped, []string{"DB"}) {
		t.Errorf("--preserve-env with DB_FILE inherited: %v, env %q, files %d, skipped %q", err, d.env, len(d.files), d.skipped)
	}
}
