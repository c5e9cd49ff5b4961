// Package container runs ov-init as the ENTRYPOINT of real containers on a
// real Docker daemon: images built locally FROM scratch (nothing is
// pulled), every container with networking off.
package container

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ory/dockertest/v3"

	"github.com/ov-init/ov-init/vault"
)

// Images the tests build. ov-init:latest is `make image`.
const (
	baseImage = "ov-init:latest"
	appImage  = "ov-init-test-app:latest"
)

// The fixture vault: app "web" with two secrets, app "api" with one.
const (
	webDatabaseURL = "postgres://web:ovsec-db-7f3a@db/web"
	webAPIToken    = "ovsec-token-19c2"
	apiSecret      = "ovsec-api-55e1"
)

var (
	repo       string // repository root
	work       string // temporary directory shared by the tests
	pool       *dockertest.Pool
	missing    string // why Docker tests cannot run, if they cannot
	vaultFile  string // the fixture vault
	webKey     string // scoped key of app web, 0600 root
	apiKey     string // scoped key of app api
	rootKey    string // unscoped key
	helperPath string // static helper program
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repo = filepath.Join(filepath.Dir(file), "..", "..")
	var err error
	if work, err = os.MkdirTemp("", "ov-container-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	missing = setUp()
	code := m.Run()
	os.RemoveAll(work)
	os.Exit(code)
}

// setUp builds the binaries, the fixture and the images on the Docker
// daemon that scripts/docker-up (run by make test) started. It returns what
// is missing when the tests cannot run.
func setUp() string {
	if os.Geteuid() != 0 {
		return "root (to bind-mount root-owned keys)"
	}
	p, err := dockertest.NewPool("")
	if err != nil {
		return "a Docker API client: " + err.Error()
	}
	if err := p.Client.Ping(); err != nil {
		return "a Docker daemon answering on its socket (start one with scripts/docker-up): " + err.Error()
	}
	pool = p
	if out, err := run(repo, "make", "--no-print-directory", "build", "image"); err != nil {
		return "`make build image`: " + out
	}
	helperPath = filepath.Join(work, "helper")
	cmd := exec.Command("go", "build", "-trimpath", "-o", helperPath, "./integration/helper")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "building the helper: " + string(out)
	}
	if err := makeFixture(); err != nil {
		return "the fixture vault: " + err.Error()
	}
	if err := buildAppImage(); err != nil {
		return "the test app image: " + err.Error()
	}
	return ""
}

// requireDocker skips a test, naming what is missing, except on CI, which
// never skips.
func requireDocker(t *testing.T) {
	t.Helper()
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("container tests need %s", missing)
	}
	t.Skipf("container tests need %s", missing)
}

func run(dir string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func makeFixture() error {
	v, root, err := vault.New([]byte("container test password"))
	if err != nil {
		return err
	}
	defer root.Wipe()
	for _, app := range []string{"web", "api"} {
		if err := v.CreateApp(root, app); err != nil {
			return err
		}
	}
	for _, s := range []struct{ app, name, value string }{
		{"web", "DATABASE_URL", webDatabaseURL},
		{"web", "API_TOKEN", webAPIToken},
		{"api", "API_SECRET", apiSecret},
	} {
		if err := v.SetSecret(root, s.app, s.name, []byte(s.value)); err != nil {
			return err
		}
	}
	vaultFile = filepath.Join(work, "vault.json")
	if err := saveVault(v, vaultFile); err != nil {
		return err
	}
	key := func(name string, b []byte) (string, error) {
		p := filepath.Join(work, name)
		return p, os.WriteFile(p, b, 0o600)
	}
	wk, err := v.AppKey(root, "web")
	if err != nil {
		return err
	}
	ak, err := v.AppKey(root, "api")
	if err != nil {
		return err
	}
	if webKey, err = key("web.kek", wk); err != nil {
		return err
	}
	if apiKey, err = key("api.kek", ak); err != nil {
		return err
	}
	rootKey, err = key("root.kek", root.Bytes())
	return err
}

// buildAppImage builds the image most tests run: ov-init as ENTRYPOINT with
// app "web", the helper as the app, the fixture vault baked in (its values
// are sealed) and an unprivileged user 10001 in /etc/passwd.
func buildAppImage() error {
	ctx := filepath.Join(work, "app-image")
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"Dockerfile": `FROM ` + baseImage + ` AS ov-init
FROM scratch
COPY --from=ov-init /ov-init /ov-init
COPY helper /app/helper
COPY vault.json /etc/ov/vault.json
COPY passwd /etc/passwd
COPY group /etc/group
ENTRYPOINT ["/ov-init", "--app", "web", "--"]
CMD ["/app/helper", "sleep"]
`,
		"passwd": "root:x:0:0:root:/root:/sbin/nologin\napp:x:10001:10001:app:/home/app:/sbin/nologin\n",
		"group":  "root:x:0:\napp:x:10001:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ctx, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, f := range []struct{ from, to string }{{helperPath, "helper"}, {vaultFile, "vault.json"}} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ctx, f.to), b, 0o755); err != nil {
			return err
		}
	}
	os.Chmod(filepath.Join(ctx, "vault.json"), 0o600)
	if out, err := run(ctx, "docker", "build", "-q", "-t", appImage, "."); err != nil {
		return fmt.Errorf("docker build: %v: %s", err, out)
	}
	return nil
}

// saveVault writes v to path, mode 0600.
func saveVault(v *vault.Vault, path string) error {
	data, err := v.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
