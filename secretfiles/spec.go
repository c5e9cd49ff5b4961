package secretfiles

import (
	"fmt"
	"strings"

	"github.com/ov-init/ov-init/vault"
)

// How a secret reaches the app: the values of --secrets-as.
const (
	AsEnv   = "env"   // NAME=value in the environment (the default)
	AsFiles = "files" // NAME_FILE=DIR/NAME, a file on tmpfs or ramfs
	AsMemfd = "memfd" // NAME_FILE=/proc/self/fd/N, a sealed memfd
)

// DefaultDir is the default --secrets-dir.
const DefaultDir = "/run/ov"

// FileSuffix is what a secret's name becomes when it is delivered as a
// file: NAME_FILE, the convention of the official database images
// (POSTGRES_PASSWORD_FILE) and of Docker secrets.
const FileSuffix = "_FILE"

// suffixes are the per-secret choices of --secrets NAME:HOW, and the
// delivery each stands for.
var suffixes = map[string]string{"env": AsEnv, "file": AsFiles, "memfd": AsMemfd}

// ParseSpec reads one entry of --secrets: NAME, delivered as --secrets-as
// says (as is ""), or NAME:HOW with HOW env, file or memfd, which overrides
// --secrets-as for that secret.
func ParseSpec(spec string) (name, as string, err error) {
	name, how, hasHow := strings.Cut(spec, ":")
	if err := vault.ValidSecretName(name); err != nil {
		return "", "", err
	}
	if !hasHow {
		return name, "", nil
	}
	as, ok := suffixes[how]
	if !ok {
		return "", "", fmt.Errorf("secret %q: want NAME, NAME:env, NAME:file or NAME:memfd, not %q", name, spec)
	}
	return name, as, nil
}

// UsesFiles reports whether any secret goes to the secrets dir, with
// --secrets-as as and the --secrets specs (none: every secret, as as says).
// Specs that do not parse count for nothing.
func UsesFiles(as string, specs []string) bool {
	if len(specs) == 0 {
		return as == AsFiles
	}
	for _, s := range specs {
		_, how, err := ParseSpec(s)
		if how == "" {
			how = as
		}
		if err == nil && how == AsFiles {
			return true
		}
	}
	return false
}
