package layering

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ov-init/ov-init"

// pkg is what go list says of one package.
type pkg struct {
	ImportPath string
	Name       string
	Imports    []string
	Standard   bool
}

func list(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}

func own(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

func internal(path string) bool { return strings.HasPrefix(path, module+"/internal/") }

// leaves are the low-level packages: each does one job on the kernel or the
// file system and imports nothing of this module but internal helpers and
// the leaves listed before it (reaper needs the exit-status table, execvp's
// rules and signal names; execpath the table).
var leaves = []string{"exitcode", "signame", "execpath", "account", "keyload", "privs", "reaper"}

func TestLayering(t *testing.T) {
	pkgs := list(t)
	// The rules below name packages: a rename must not make one vacuous.
	for _, rel := range append(slices.Clone(leaves), "vault") {
		if _, ok := pkgs[module+"/"+rel]; !ok {
			t.Fatalf("no package %s: update the rules of this test", rel)
		}
	}
	for path, p := range pkgs {
		rel := strings.TrimPrefix(path, module+"/")
		for _, imp := range p.Imports {
			if !own(imp) {
				continue
			}
			// Nothing imports a main package.
			if q, ok := pkgs[imp]; ok && q.Name == "main" {
				t.Errorf("%s imports the main package %s", rel, imp)
			}
			// Internal helpers are leaves themselves.
			if internal(path) {
				t.Errorf("internal package %s imports %s", rel, imp)
			}
			if i := slices.Index(leaves, rel); i >= 0 && !internal(imp) && !slices.Contains(leaves[:i], strings.TrimPrefix(imp, module+"/")) {
				t.Errorf("%s is a leaf package and must not import %s", rel, imp)
			}
		}
		// The vault format depends on the standard library and
		// x/crypto only, so that it can be read and reviewed alone.
		if rel == "vault" {
			for _, imp := range p.Imports {
				if !isStd(imp) && !strings.HasPrefix(imp, "golang.org/x/crypto/") {
					t.Errorf("vault imports %s: only the standard library and golang.org/x/crypto", imp)
				}
			}
		}
	}
}

// isStd reports whether imp is a standard-library package: no dot in its
// first path element.
func isStd(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}
