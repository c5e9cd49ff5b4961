package container

// Compose: every service of docker-compose.test.yml runs through the real
// Compose binaries, v2 (`docker compose`) and v1 (Debian's
// `docker-compose`), each in a project of its own that is always taken
// down, and none of them ever has a network. And the README's container sections: their commands run
// as shown, their YAML is cut from the files tested here.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/dockertest/v3/docker"

	"github.com/ov-init/ov-init/vault"
)

// composeFile is the file under test, at the repository root.
const composeFile = "docker-compose.test.yml"

// composeTimeout bounds one Compose command: nothing here waits on a
// network, so a command that takes longer is stuck.
const composeTimeout = 2 * time.Minute

// mountedDatabaseURL is DATABASE_URL of app web in the vault the
// `vaultfile` service bind-mounts: it differs from the baked vault's, so
// seeing it proves the mount wins.
const mountedDatabaseURL = "postgres://web:ovsec-mounted-4b9d@db/web"

// composeVersion is one Compose the suite runs under: every Compose test
// runs once per version, as subtests named after it ("v2", "v1").
type composeVersion struct {
	name  string   // the subtest's name, and a value of OV_COMPOSE
	argv  []string // the command
	major string   // how its `version --short` begins
	hint  string   // where it comes from, when it is missing
}

// composeVersions: v2, the CLI plugin scripts/compose-v2 builds, and v1,
// Debian's docker-compose 1.29, which scripts/docker-up installs (kept for
// as long as Debian ships it). OV_COMPOSE=v2 or v1 runs only that one.
var composeVersions = []composeVersion{
	{"v2", []string{"docker", "compose"}, "2.", "scripts/compose-v2 builds and installs it"},
	{"v1", []string{"docker-compose"}, "1.", "scripts/docker-up installs Debian's docker-compose"},
}

var (
	composeMu    sync.Mutex
	composeFound = map[string]string{} // name → version, once it ran
	composeErrs  = map[string]error{}  // name → why it does not run
)

// forEachCompose runs f as a subtest per Compose version (only OV_COMPOSE's
// when it is set), with that version's command line. A version that does
// not run fails the subtest on CI (CI set) and skips it elsewhere.
func forEachCompose(t *testing.T, f func(t *testing.T, compose []string)) {
	t.Helper()
	only := os.Getenv("OV_COMPOSE")
	if only != "" && !slices.ContainsFunc(composeVersions, func(v composeVersion) bool { return v.name == only }) {
		t.Fatalf("OV_COMPOSE=%q: want v2 or v1", only)
	}
	for _, v := range composeVersions {
		if only != "" && v.name != only {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			f(t, composeCommand(t, v))
		})
	}
}

// composeCommand returns v's command line once `version --short` shows it
// is that major version, and logs which Compose runs the test.
func composeCommand(t *testing.T, v composeVersion) []string {
	t.Helper()
	composeMu.Lock()
	version, found := composeFound[v.name]
	err := composeErrs[v.name]
	if !found && err == nil {
		version, err = composeVersionOf(v)
		if err != nil {
			composeErrs[v.name] = err
		} else {
			composeFound[v.name] = version
		}
	}
	composeMu.Unlock()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Logf("Compose %s: %s, version %s", v.name, strings.Join(v.argv, " "), version)
	return v.argv
}

// composeVersionOf runs v's `version --short` and checks its major version.
func composeVersionOf(v composeVersion) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), composeTimeout)
	defer cancel()
	argv := append(slices.Clone(v.argv), "version", "--short")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("`%s` does not run, so Compose %s cannot be tested (%v: %s); %s", strings.Join(argv, " "), v.name, err, strings.TrimSpace(errOut.String()), v.hint)
	}
	version := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	if !strings.HasPrefix(version, v.major) {
		return "", fmt.Errorf("`%s` is Compose %q, so Compose %s cannot be tested; %s", strings.Join(argv, " "), version, v.name, v.hint)
	}
	return version, nil
}

// composeProject is one Compose project on docker-compose.test.yml, named
// uniquely so tests never share containers.
type composeProject struct {
	t    *testing.T
	argv []string // the Compose command and its -f, -p
	name string
	env  []string
}

// newComposeProject returns a project run by the Compose command compose,
// whose OV_TEST_DIR is dir. Its containers and volumes are removed when the
// test ends, whatever happened.
func newComposeProject(t *testing.T, compose []string, dir string) *composeProject {
	t.Helper()
	name := fmt.Sprintf("ovcompose%d%d", os.Getpid(), time.Now().UnixNano()%1e9)
	p := &composeProject{
		t:    t,
		argv: append(slices.Clone(compose), "-f", filepath.Join(repo, composeFile), "-p", name),
		name: name,
		env:  append(os.Environ(), "OV_TEST_DIR="+dir),
	}
	t.Cleanup(func() {
		if out, _, code := p.run("down", "-v", "--remove-orphans"); code != 0 {
			t.Errorf("compose down: exit %d: %s", code, out)
		}
		if ids := p.containers(""); len(ids) > 0 {
			t.Errorf("compose down left containers %v", ids)
		}
	})
	return p
}

// run runs one Compose command and returns its stdout, stderr and status.
func (p *composeProject) run(args ...string) (stdout, stderr string, code int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), composeTimeout)
	defer cancel()
	argv := append(slices.Clone(p.argv), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = repo
	cmd.Env = p.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		p.t.Fatalf("%s: no answer within %v\n%s%s", strings.Join(argv, " "), composeTimeout, &out, &errOut)
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	case err != nil:
		p.t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return out.String(), errOut.String(), 0
}

// containers lists the ids of the project's containers, running or not,
// of one service or ("") of all, by the labels every Compose version sets.
func (p *composeProject) containers(service string) []string {
	p.t.Helper()
	args := []string{"ps", "-a", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project=" + p.name}
	if service != "" {
		args = append(args, "--filter", "label=com.docker.compose.service="+service)
	}
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		p.t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// containerOutput returns what a container wrote to stdout and to stderr.
func containerOutput(t *testing.T, id string) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := pool.Client.Logs(docker.LogsOptions{
		Container: id, OutputStream: &out, ErrorStream: &errOut, Stdout: true, Stderr: true,
	}); err != nil {
		t.Fatalf("logs of %s: %v", id, err)
	}
	return out.String(), errOut.String()
}

// exampleVaultPassword is the master password of newExampleVault's vaults.
const exampleVaultPassword = "example vault password"

// newExampleVault writes a vault holding one app with secrets at vaultPath,
// and the app's scoped machine key (root's, 0600) at keyPath.
func newExampleVault(t *testing.T, vaultPath, keyPath, app string, secrets map[string]string) {
	t.Helper()
	v, root, err := vault.New([]byte(exampleVaultPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Wipe()
	if err := v.CreateApp(root, app); err != nil {
		t.Fatal(err)
	}
	for name, value := range secrets {
		if err := v.SetSecret(root, app, name, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := saveVault(v, vaultPath); err != nil {
		t.Fatal(err)
	}
	key, err := v.AppKey(root, app)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyKey copies a key file to dir/name with mode.
func copyKey(t *testing.T, from, dir, name string, mode os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// composeTestDir makes the directory OV_TEST_DIR names: the files
// docker-compose.test.yml mounts.
func composeTestDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyKey(t, webKey, dir, "web.kek", 0o600)
	copyKey(t, webKey, dir, "web-0644.kek", 0o644)
	newExampleVault(t, filepath.Join(dir, "other-vault.json"), filepath.Join(dir, "other-web.kek"), "web",
		map[string]string{"DATABASE_URL": mountedDatabaseURL})
	return dir
}

// composeService is what one service of docker-compose.test.yml promises:
// its status, its output and, when inspect is set, its container.
type composeService struct {
	name    string
	code    int
	check   func(t *testing.T, stdout, stderr string)
	inspect func(t *testing.T, c *docker.Container)
}

var composeServices = []composeService{
	{"happy", 0, func(t *testing.T, stdout, stderr string) {
		env := dockerHelperEnv(t, stdout)
		if env["DATABASE_URL"] != webDatabaseURL || env["API_TOKEN"] != webAPIToken {
			t.Errorf("the app did not get web's secrets: %q", stdout)
		}
	}, nil},
	{"badkey", 78, func(t *testing.T, stdout, stderr string) {
		if !strings.Contains(stderr, "machine key has permissions 0644 — must be 0600") || stdout != "" {
			t.Errorf("stdout %q, stderr %q", stdout, stderr)
		}
	}, nil},
	{"vaultfile", 0, func(t *testing.T, stdout, stderr string) {
		env := dockerHelperEnv(t, stdout)
		if got := env["DATABASE_URL"]; got != mountedDatabaseURL {
			t.Errorf("DATABASE_URL = %q, want the mounted vault's %q", got, mountedDatabaseURL)
		}
		if _, ok := env["API_TOKEN"]; ok {
			t.Errorf("API_TOKEN came from the baked vault, not the mounted one")
		}
	}, nil},
	{"user", 0, func(t *testing.T, stdout, stderr string) {
		for _, want := range []string{
			"Uid: 10001 10001 10001 10001",
			"Gid: 10001 10001 10001 10001",
			"ppid: 1",
			"read: open /run/secrets/machine.kek: permission denied",
		} {
			if !strings.Contains(stdout, want+"\n") {
				t.Errorf("no %q in the app's status:\n%s", want, stdout)
			}
		}
	}, nil},
	{"files", 0, composeCheckFiles, func(t *testing.T, c *docker.Container) {
		// Compose's tmpfs: is Docker's --tmpfs, options and all.
		if got := c.HostConfig.Tmpfs; len(got) != 1 || got["/run/ov"] != "mode=0700" {
			t.Errorf("service files: tmpfs %v, want /run/ov with mode=0700", got)
		}
	}},
}

// composeCheckFiles checks the files service: the app, uid 10001, got
// DATABASE_URL_FILE and API_TOKEN_FILE and neither value in its
// environment; each file holds the vault's value exactly, mode 0400, of
// uid 10001, in a 0500 directory of uid 10001 on tmpfs; and no value is in
// the output (helper files reports lengths and SHA-256, never a value).
func composeCheckFiles(t *testing.T, stdout, stderr string) {
	t.Helper()
	r := sfParse(t, stdout)
	sfAssertWebSecretsAsFiles(t, r)
	sfAssertOnTheRecipesTmpfs(t, r)
	if len(r.Files) != 2 {
		t.Errorf("the app has %d NAME_FILE variables, want 2: %+v", len(r.Files), r.Files)
	}
	needles := dockerSecretNeedles(t)
	dockerAssertNoSecret(t, "the files service's stdout", stdout, needles)
	dockerAssertNoSecret(t, "the files service's stderr", stderr, needles)
}

// TestComposeServicesDoWhatTheirCommentsSay runs every service of
// docker-compose.test.yml with `up --exit-code-from`, and checks its exit
// status, its output, and that its container had no network; under each
// Compose version.
func TestComposeServicesDoWhatTheirCommentsSay(t *testing.T) {
	requireDocker(t)
	forEachCompose(t, testComposeServices)
}

func testComposeServices(t *testing.T, compose []string) {
	p := newComposeProject(t, compose, composeTestDir(t))

	out, errOut, code := p.run("config", "--services")
	if code != 0 {
		t.Fatalf("compose config: exit %d: %s", code, errOut)
	}
	var tested []string
	for _, s := range composeServices {
		tested = append(tested, s.name)
	}
	listed := strings.Fields(out)
	slices.Sort(listed)
	slices.Sort(tested)
	if !slices.Equal(listed, tested) {
		t.Fatalf("%s has services %v, this test runs %v: test every service", composeFile, listed, tested)
	}

	for _, s := range composeServices {
		t.Run(s.name, func(t *testing.T) {
			out, errOut, code := p.run("up", "--no-build", "--exit-code-from", s.name, s.name)
			if code != s.code {
				t.Errorf("up %s: exit %d, want %d\n%s%s", s.name, code, s.code, out, errOut)
			}
			ids := p.containers(s.name)
			if len(ids) != 1 {
				t.Fatalf("service %s has containers %v, want one", s.name, ids)
			}
			c, err := pool.Client.InspectContainer(ids[0])
			if err != nil {
				t.Fatal(err)
			}
			if c.HostConfig.NetworkMode != "none" {
				t.Errorf("service %s ran with network mode %q, want none", s.name, c.HostConfig.NetworkMode)
			}
			if c.Config.Image != appImage || c.State.ExitCode != s.code || c.HostConfig.Init {
				t.Errorf("service %s: image %q, init %v, exit %d", s.name, c.Config.Image, c.HostConfig.Init, c.State.ExitCode)
			}
			stdout, stderr := containerOutput(t, ids[0])
			s.check(t, stdout, stderr)
			if s.inspect != nil {
				s.inspect(t, c)
			}
		})
	}
}

// TestComposeRunMakesOVInitPID1 is `compose run --rm`: ov-init is PID 1 of
// the service's container (the app's parent is pid 1), the app gets its
// secrets (as files too: run keeps the service's tmpfs), and --rm leaves no
// container behind; under each Compose version.
func TestComposeRunMakesOVInitPID1(t *testing.T) {
	requireDocker(t)
	forEachCompose(t, testComposeRun)
}

func testComposeRun(t *testing.T, compose []string) {
	p := newComposeProject(t, compose, composeTestDir(t))

	stdout, stderr, code := p.run("run", "--rm", "-T", "happy", "/app/helper", "status")
	if code != 0 || !strings.Contains(stdout, "ppid: 1\n") || !strings.Contains(stdout, "Uid: 0 0 0 0\n") {
		t.Errorf("run happy status: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = p.run("run", "--rm", "-T", "happy")
	if env := dockerHelperEnv(t, stdout); code != 0 || env["DATABASE_URL"] != webDatabaseURL {
		t.Errorf("run happy: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = p.run("run", "--rm", "-T", "badkey")
	if code != 78 || !strings.Contains(stdout+stderr, "machine key has permissions 0644 — must be 0600") {
		t.Errorf("run badkey: exit %d, want 78\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = p.run("run", "--rm", "-T", "files")
	if code != 0 {
		t.Errorf("run files: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	} else {
		composeCheckFiles(t, stdout, stderr)
	}
	if ids := p.containers(""); len(ids) > 0 {
		t.Errorf("run --rm left containers %v", ids)
	}
}

// TestComposeFileNeedsOVTestDir: without OV_TEST_DIR Compose refuses the
// file instead of mounting keys from "/web.kek"; under each Compose version.
func TestComposeFileNeedsOVTestDir(t *testing.T) {
	requireDocker(t)
	forEachCompose(t, testComposeFileNeedsOVTestDir)
}

func testComposeFileNeedsOVTestDir(t *testing.T, compose []string) {
	argv := append(slices.Clone(compose), "-f", filepath.Join(repo, composeFile), "config")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = repo
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OV_TEST_DIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "set OV_TEST_DIR") {
		t.Errorf("compose config without OV_TEST_DIR: %v, %s", err, out)
	}
}

// The README's sections on containers: every command they show is run by
// TestReadmeDockerAndComposeCommandsRun, and every YAML they show is an
// excerpt of a file the tests run.
// A section's YAML may come from any of its files.
var readmeSections = map[string][]string{
	"Docker":           nil,
	"Secrets as files": nil,
	"Compose":          {composeFile},
	"Kubernetes":       {k8sManifest, k8sFilesManifest},
}

// readmeKeyPath and readmeVaultPath are the host paths the README's
// commands use, which TestReadmeDockerAndComposeCommandsRun replaces with
// (the key) or makes under a HOME of its own (the vault).
const (
	readmeKeyPath   = "/etc/ov/machine.kek"
	readmeVaultPath = ".config/ov/vault.json"
)

// readmeDatabaseURL is the secret the README's example server reports:
// "DATABASE_URL is set (32 characters)".
const readmeDatabaseURL = "postgres://myapp:s3cret@db/myapp"

// readmeFence is one fenced block of README.md.
type readmeFence struct {
	lang string
	body []string // its lines
	sub  string   // the "### " heading it is under, if any
}

// readmeSection returns the fenced blocks of README.md's "## title"
// section, and fails the test if there is no such section.
func readmeSection(t *testing.T, title string) []readmeFence {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return readmeFences(t, string(b), "## "+title)
}

// readmeFences returns the fenced blocks of the part of a Markdown text
// under heading (up to the next heading of the same level, or all of it
// when heading is "").
func readmeFences(t *testing.T, text, heading string) []readmeFence {
	t.Helper()
	lines := strings.Split(text, "\n")
	in := heading == ""
	found := in
	var fences []readmeFence
	var cur *readmeFence
	sub := ""
	for _, line := range lines {
		if cur != nil {
			if line == "```" {
				fences = append(fences, *cur)
				cur = nil
			} else {
				cur.body = append(cur.body, line)
			}
			continue
		}
		if heading != "" && strings.HasPrefix(line, "## ") {
			in = line == heading
			found = found || in
			sub = ""
			continue
		}
		if strings.HasPrefix(line, "### ") {
			sub = line
		}
		if lang, ok := strings.CutPrefix(line, "```"); ok && in {
			cur = &readmeFence{lang: lang, sub: sub}
		}
	}
	if !found {
		t.Fatalf("README.md has no section %q", heading)
	}
	if cur != nil {
		t.Fatalf("README.md: section %q: a fence is not closed", heading)
	}
	return fences
}

// readmeExpectation matches one line of output the README shows after a
// command ("#> TEXT"); "…" stands for any text.
func readmeExpectation(t *testing.T, text string) *regexp.Regexp {
	t.Helper()
	parts := strings.Split(text, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// ansiEscape is a colour sequence, which Compose v1 writes even to a pipe.
var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestReadmeYAMLIsFromTheTestedFiles: the YAML the README's container
// sections show is cut from the files the tests run, and the Kubernetes
// section shows no command (none is run: there is no cluster).
func TestReadmeYAMLIsFromTheTestedFiles(t *testing.T) {
	for title, files := range readmeSections {
		for _, f := range readmeSection(t, title) {
			switch {
			case f.sub == readmeDockerInit:
				continue // run and checked by TestDockerInit, on a daemon whose init is ov-init
			case f.lang == "sh" && title != "Kubernetes":
				continue // run by TestReadmeDockerAndComposeCommandsRun
			case f.lang == "yaml" && len(files) > 0:
				if !slices.ContainsFunc(files, func(file string) bool {
					b, err := os.ReadFile(filepath.Join(repo, file))
					if err != nil {
						t.Fatal(err)
					}
					return strings.Contains(string(b), strings.Join(f.body, "\n")+"\n")
				}) {
					t.Errorf("README.md, %s: this YAML is not an excerpt of %s:\n%s", title, strings.Join(files, " or "), strings.Join(f.body, "\n"))
				}
			default:
				t.Errorf("README.md, %s: a ```%s block, which no test runs or checks:\n%s", title, f.lang, strings.Join(f.body, "\n"))
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(repo, "deploy/kubernetes/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range readmeFences(t, string(b), "") {
		if f.lang != "console" && f.lang != "yaml" {
			t.Errorf("deploy/kubernetes/README.md: a ```%s block: its kubectl commands are not run by a test, so fence them as console", f.lang)
		}
	}
}

// TestReadmeDockerAndComposeCommandsRun runs the ```sh blocks of README.md's
// "Docker" (but its `docker run --init` part, which TestDockerInit runs),
// "Compose" and "Secrets as files" sections as written, in one bash -euo pipefail in
// the repository, with two substitutions: a key of its own for
// /etc/ov/machine.kek, and the Compose under test for `docker compose`. HOME
// is a directory holding the vault at ~/.config/ov/vault.json (app myapp),
// OV_TEST_DIR the keys of docker-compose.test.yml. Each "#> TEXT" line
// after a command must match a line of that block's output, in order. The
// blocks run once per Compose version, as its subtest.
func TestReadmeDockerAndComposeCommandsRun(t *testing.T) {
	requireDocker(t)
	forEachCompose(t, testReadmeCommands)
}

func testReadmeCommands(t *testing.T, composeArgv []string) {
	compose := strings.Join(composeArgv, " ")
	env, key := readmeEnv(t)
	env = append(env, "OV_TEST_DIR="+composeTestDir(t))
	t.Cleanup(func() {
		exec.Command("docker", "rm", "-f", "myapp").Run()
		down := exec.Command("sh", "-c", compose+" -f "+composeFile+" -p ovdemo down -v --remove-orphans")
		down.Dir, down.Env = repo, env
		down.Run()
	})

	const marker = "@@ov-readme-block@@"
	var script strings.Builder
	script.WriteString("trap 'echo \"README command failed: $BASH_COMMAND\" >&2' ERR\n")
	var expect [][]string // per block
	for _, title := range []string{"Docker", "Compose", "Secrets as files"} {
		for _, f := range readmeSection(t, title) {
			if f.lang != "sh" || f.sub == readmeDockerInit {
				continue
			}
			var want []string
			for _, line := range f.body {
				if text, ok := strings.CutPrefix(line, "#> "); ok {
					want = append(want, text)
				}
			}
			body := strings.Join(f.body, "\n")
			body = strings.ReplaceAll(body, readmeKeyPath, key)
			body = strings.ReplaceAll(body, "docker compose ", compose+" ")
			fmt.Fprintf(&script, "echo %s\n%s\n", marker, body)
			expect = append(expect, want)
		}
	}
	if len(expect) == 0 {
		t.Fatal("README.md: no ```sh block in Docker or Compose")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script.String())
	cmd.Dir, cmd.Env = repo, env
	out, err := cmd.CombinedOutput()
	text := ansiEscape.ReplaceAllString(string(out), "")
	if err != nil {
		t.Fatalf("the README's commands: %v\n%s", err, text)
	}
	blocks := strings.Split(text, marker+"\n")[1:]
	if len(blocks) != len(expect) {
		t.Fatalf("%d blocks ran, want %d:\n%s", len(blocks), len(expect), text)
	}
	for i, want := range expect {
		lines := strings.Split(blocks[i], "\n")
		for _, w := range want {
			re := readmeExpectation(t, w)
			for len(lines) > 0 && !re.MatchString(strings.TrimRight(lines[0], " \r")) {
				lines = lines[1:]
			}
			if len(lines) == 0 {
				t.Errorf("block %d: no line %q (in order) in its output:\n%s", i+1, w, blocks[i])
				break
			}
			lines = lines[1:]
		}
	}
	t.Logf("output of the README's commands:\n%s", text)
}

// readmeEnv is the environment the README's commands run in, and the key
// they use in place of /etc/ov/machine.kek: a HOME of their own holding the
// vault at ~/.config/ov/vault.json (app myapp), bin/ first in PATH, ov's
// master password in a file, and Go's caches where they were.
func readmeEnv(t *testing.T) (env []string, key string) {
	t.Helper()
	tmp := t.TempDir()
	home, key := filepath.Join(tmp, "home"), filepath.Join(tmp, "machine.kek")
	vaultPath := filepath.Join(home, readmeVaultPath)
	if err := os.MkdirAll(filepath.Dir(vaultPath), 0o700); err != nil {
		t.Fatal(err)
	}
	newExampleVault(t, vaultPath, key, "myapp", map[string]string{"DATABASE_URL": readmeDatabaseURL})
	gv := goCaches(t)
	// The README exports the vault with ov, which asks for the master
	// password on a terminal; here it reads it from a file.
	pwFile := filepath.Join(tmp, "password")
	if err := os.WriteFile(pwFile, []byte(exampleVaultPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(os.Environ(),
		"HOME="+home, "TMPDIR="+tmp,
		"PATH="+filepath.Join(repo, "bin")+string(filepath.ListSeparator)+os.Getenv("PATH"),
		"OV_PASSWORD_FILE="+pwFile, "XDG_STATE_HOME="+filepath.Join(tmp, "state"),
		"GOCACHE="+gv[0], "GOMODCACHE="+gv[1], "GOPATH="+gv[2])
	return env, key
}
