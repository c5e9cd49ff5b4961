package container

// The README's Debian-based image (deploy/debian/Dockerfile): built as
// written, FROM the debian:bookworm-slim that scripts/debian-images makes
// locally with mmdebstrap (nothing is pulled), with the static ov, a vault
// exported by `ov vault export` and a test app; run with the key
// bind-mounted read-only. And what this file shares with systemd_test.go:
// a vault made by the real ov, the test app, and running a README block.
// Containers and images are named ov-deb-…, networking off, removed at the
// end.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ory/dockertest/v3/docker"
)

// The README's recipe files, relative to the repository root.
const (
	debianDockerfile = "deploy/debian/Dockerfile"
	systemdUnit      = "deploy/systemd/myapp.service"
	// systemdDropIn is the drop-in of secrets as files for the unit.
	systemdDropIn = "deploy/systemd/myapp.service.d/secrets-as-files.conf"
)

// The local images scripts/debian-images builds; debian:bookworm-slim is
// the slim one under the name the README's Dockerfile uses.
const (
	debianSlimImage    = "debian:bookworm-slim"
	debianSystemdImage = "ov-deb-bookworm-systemd:latest"
)

// deployApp is the app of the README's recipes; deploySecrets its secrets
// in the vault these tests make, deployOtherSecret the one secret of
// another app in that vault, which an export of myapp must not hold.
const (
	deployApp         = "myapp"
	deployOtherApp    = "other"
	deployOtherSecret = "ovsec-other-9d27"
	deployPassword    = "deploy test password"
)

var deploySecrets = map[string]string{
	"DATABASE_URL": "postgres://myapp:ovsec-deploy-3c8e@db/myapp",
	"API_TOKEN":    "ovsec-deploy-token-a41f",
}

// requireDebianImages is requireDocker, and the images of
// scripts/debian-images (run by make test after scripts/docker-up).
func requireDebianImages(t *testing.T) {
	t.Helper()
	requireDocker(t)
	for _, image := range []string{debianSlimImage, debianSystemdImage} {
		if _, err := pool.Client.InspectImage(image); err != nil {
			msg := fmt.Sprintf("the local image %s (scripts/debian-images builds it): %v", image, err)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// ovVault is a vault made by the real bin/ov, in a HOME of its own: the
// vault at ~/.config/ov/vault.json, as a person has it.
type ovVault struct {
	home     string
	password string // the password file
	env      []string
}

// newOVVault makes a vault with the master password deployPassword and,
// for each app, its secrets, with bin/ov (vault init, app create, secret
// set).
func newOVVault(t *testing.T, secrets map[string]map[string]string) *ovVault {
	t.Helper()
	dir := t.TempDir()
	v := &ovVault{home: filepath.Join(dir, "home"), password: filepath.Join(dir, "password")}
	if err := os.WriteFile(v.password, []byte(deployPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OV_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_") {
			v.env = append(v.env, kv)
		}
	}
	v.env = append(v.env, "HOME="+v.home, "XDG_STATE_HOME="+filepath.Join(v.home, ".local", "state"), "OV_PASSWORD_FILE="+v.password)
	v.ov(t, "", "vault", "init")
	for app, values := range secrets {
		v.ov(t, "", "app", "create", app)
		for name, value := range values {
			v.ov(t, value, "secret", "set", name, "--app", app)
		}
	}
	return v
}

// path is the vault file.
func (v *ovVault) path() string { return filepath.Join(v.home, ".config", "ov", "vault.json") }

// ov runs bin/ov with stdin and fails the test unless it exits 0.
func (v *ovVault) ov(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repo, "bin", "ov"), args...)
	cmd.Env = v.env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ov %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// deployVault is the vault of these tests: myapp with deploySecrets, and
// another app.
func deployVault(t *testing.T) *ovVault {
	t.Helper()
	return newOVVault(t, map[string]map[string]string{
		deployApp:      deploySecrets,
		deployOtherApp: {"OTHER_SECRET": deployOtherSecret},
	})
}

// deployNeedles is every form in which a secret of the vault, or a machine
// key, could leak: each value, and each key raw, in hex and in base64.
func deployNeedles(t *testing.T, keys ...string) map[string]string {
	t.Helper()
	needles := map[string]string{"OTHER_SECRET of other": deployOtherSecret}
	for name, value := range deploySecrets {
		needles[name+" of myapp"] = value
	}
	for i, path := range keys {
		key, err := os.ReadFile(path)
		if err != nil || len(key) != 32 {
			t.Fatalf("reading key %s: %v (%d bytes)", path, err, len(key))
		}
		name := fmt.Sprintf("key %d", i)
		needles[name+" (raw)"] = string(key)
		needles[name+" (hex)"] = hex.EncodeToString(key)
		needles[name+" (base64)"] = base64.StdEncoding.EncodeToString(key)
		needles[name+" (first half, hex)"] = hex.EncodeToString(key[:16])
	}
	return needles
}

// serverReport checks the test app's report (integration/container/testdata/server):
// it ran as uid (name), and got myapp's secrets, by their SHA-256, and no
// other app's.
func serverReport(t *testing.T, out string, uid string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^server: pid \d+, ppid \d+, uid ` + regexp.QuoteMeta(uid) + `$`).MatchString(out) {
		t.Errorf("the app did not run as uid %s:\n%s", uid, out)
	}
	for name, value := range deploySecrets {
		sum := sha256.Sum256([]byte(value))
		if want := "server: " + name + " sha256 " + hex.EncodeToString(sum[:]) + "\n"; !strings.Contains(out, want) {
			t.Errorf("the app did not get myapp's %s (want the line %q):\n%s", name, want, out)
		}
	}
	if !strings.Contains(out, "server: OTHER_SECRET is not set\n") {
		t.Errorf("the app got another app's secret:\n%s", out)
	}
}

// prefixedName is prefix-<pid>-<random>, for a container or an image of one
// test.
func prefixedName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(b))
}

// buildTestImage builds the context directory ctx as image tag, with no
// network, and removes the image when the test ends.
func buildTestImage(t *testing.T, ctx, tag string) {
	t.Helper()
	start := time.Now()
	if out, err := run(ctx, "docker", "build", "-q", "--network", "none", "--label", dockerTestLabel+"="+t.Name(), "-t", tag, "."); err != nil {
		t.Fatalf("docker build of %s: %v\n%s", tag, err, out)
	}
	t.Logf("built %s in %v", tag, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if out, err := run(repo, "docker", "image", "rm", tag); err != nil {
			t.Errorf("removing image %s: %v: %s", tag, err, out)
		}
	})
}

// copyWithMode copies from to to, with mode.
func copyWithMode(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// goCaches is `go env GOCACHE GOMODCACHE GOPATH`, for the environment of
// README commands that build Go code as the reader's shell would.
func goCaches(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	gv := strings.Fields(string(out))
	if len(gv) != 3 {
		t.Fatalf("go env: %q", out)
	}
	return gv
}

// readmeScripts runs a README block's script with bash -euo pipefail in
// the repository, with env, for at most 5 minutes: readmeRunBlock's
// runScript.
func readmeScripts(env []string) func(script string) (string, error) {
	return func(script string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = repo, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// readmeRunBlock runs one ```sh block of README.md, its text passed through
// replace, as one bash -euo pipefail script run by runScript, and checks
// that each of its "#> TEXT" lines matches a line of the output, in order
// ("…" matches any text). It returns the output.
func readmeRunBlock(t *testing.T, f readmeFence, replace *strings.Replacer, runScript func(script string) (string, error)) string {
	t.Helper()
	var want []string
	for _, line := range f.body {
		if text, ok := strings.CutPrefix(line, "#> "); ok {
			want = append(want, text)
		}
	}
	body := replace.Replace(strings.Join(f.body, "\n"))
	out, err := runScript("trap 'echo \"README command failed: $BASH_COMMAND\" >&2' ERR\n" + body + "\n")
	out = ansiEscape.ReplaceAllString(out, "")
	if err != nil {
		t.Fatalf("the README's commands: %v\n%s\n\nthe commands:\n%s", err, out, body)
	}
	lines := strings.Split(out, "\n")
	for _, w := range want {
		re := readmeExpectation(t, w)
		for len(lines) > 0 && !re.MatchString(strings.TrimRight(lines[0], " \r")) {
			lines = lines[1:]
		}
		if len(lines) == 0 {
			t.Errorf("no line %q (in order) in the output of the README's commands:\n%s", w, out)
			break
		}
		lines = lines[1:]
	}
	return out
}

// TestReadmeDebianAndSystemdShowTheTestedFiles: the README's sections on a
// Debian-based image and on systemd show deploy/debian/Dockerfile and
// deploy/systemd/myapp.service whole, as the tests run them, and every
// other block in them is a ```sh block that a test runs. The files hold
// the product page's lines. The systemd section may show the drop-in of
// secrets as files too, whole, with one more ```sh block: the commands
// that install it, which the systemd test runs.
func TestReadmeDebianAndSystemdShowTheTestedFiles(t *testing.T) {
	for _, s := range []struct {
		title, lang string
		// files[0] is shown once; each other file at most once, and then
		// with one more ```sh block, the commands that install it.
		files []string
		sh    int      // the ```sh blocks, each run by a test
		must  []string // lines of files[0]
	}{
		{"A Debian-based image", "dockerfile", []string{debianDockerfile}, 2, []string{
			"FROM debian:bookworm-slim\n",
			"COPY ov /usr/local/bin/ov\n",
			"COPY myapp.vault /etc/ov/vault.json\n",
			"COPY server /app/server\n",
			`ENTRYPOINT ["ov", "run", "--machine-key", "/run/secrets/machine.kek", "--app", "myapp", "--", "/app/server"]` + "\n",
		}},
		{"systemd", "ini", []string{systemdUnit, systemdDropIn}, 2, []string{
			"\nUser=deploy\n",
			"\nExecStart=/usr/local/bin/ov run --machine-key /etc/ov/machine.kek --app myapp -- /opt/myapp/server\n",
			"\nRestart=on-failure\n",
			"\nRestartPreventExitStatus=78\n",
		}},
	} {
		text := map[string]string{}
		for _, file := range s.files {
			b, err := os.ReadFile(filepath.Join(repo, file))
			if err != nil {
				t.Fatal(err)
			}
			text[file] = string(b)
		}
		for _, line := range s.must {
			if !strings.Contains(text[s.files[0]], line) {
				t.Errorf("%s: no line %q, which the product page has", s.files[0], strings.TrimSpace(line))
			}
		}
		shown, sh := map[string]int{}, 0
		for _, f := range readmeSection(t, s.title) {
			switch f.lang {
			case s.lang:
				got := strings.Join(f.body, "\n") + "\n"
				if i := slices.IndexFunc(s.files, func(file string) bool { return text[file] == got }); i >= 0 {
					shown[s.files[i]]++
				} else {
					t.Errorf("README.md, %s: this ```%s block is not %s as it is:\n%s", s.title, s.lang, strings.Join(s.files, " or "), got)
				}
			case "sh":
				sh++
			default:
				t.Errorf("README.md, %s: a ```%s block, which no test runs or checks:\n%s", s.title, f.lang, strings.Join(f.body, "\n"))
			}
		}
		wantSh := s.sh
		for i, file := range s.files {
			if i > 0 {
				wantSh += shown[file]
			}
			if shown[file] != 1 {
				t.Errorf("README.md, %s: %s shown %d times in ```%s blocks, want once", s.title, file, shown[file], s.lang)
			}
		}
		if sh != wantSh {
			t.Errorf("README.md, %s: %d ```sh blocks, want %d: the %d that the tests run, and the commands that install each other file shown (%v)", s.title, sh, wantSh, s.sh, s.files[1:])
		}
	}
}

// debianImage builds deploy/debian/Dockerfile, as it is, in a context
// holding the static bin/ov, the export of myapp from the test vault and
// the test app; it returns the image's tag and myapp's machine key
// (root's, 0600), derived by ov.
func debianImage(t *testing.T, v *ovVault) (tag, key string) {
	t.Helper()
	ctx := t.TempDir()
	copyWithMode(t, filepath.Join(repo, debianDockerfile), filepath.Join(ctx, "Dockerfile"), 0o644)
	copyWithMode(t, filepath.Join(repo, "bin", "ov"), filepath.Join(ctx, "ov"), 0o755)
	copyWithMode(t, filepath.Join(repo, "integration", "container", "testdata", "server"), filepath.Join(ctx, "server"), 0o755)
	// The key first: an export holds the deployments granted when it is
	// made.
	key = filepath.Join(t.TempDir(), "machine.kek")
	v.ov(t, "", "auth", "derive-machine-key", "--out", key, "--app", deployApp)
	export := filepath.Join(ctx, "myapp.vault")
	v.ov(t, "", "vault", "export", "--app", deployApp, "--out", export)
	b, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"` + deployOtherApp + `"`, "OTHER_SECRET", deployOtherSecret, deploySecrets["DATABASE_URL"]} {
		if strings.Contains(string(b), s) {
			t.Fatalf("the export of %s holds %q", deployApp, s)
		}
	}
	tag = prefixedName("ov-deb-myapp") + ":test"
	buildTestImage(t, ctx, tag)
	return tag, key
}

// debianStart starts a container of image, named ov-deb-…, with the key
// mounted read-only at /run/secrets/machine.kek; removed when the test
// ends.
func debianStart(t *testing.T, image, key string, env, cmd []string) *dockerContainer {
	t.Helper()
	name := prefixedName("ov-deb")
	return dockerCreateAndStart(t, "container "+name, docker.CreateContainerOptions{
		Name: name,
		Config: &docker.Config{
			Image:  image,
			Cmd:    cmd,
			Env:    env,
			Labels: map[string]string{dockerTestLabel: t.Name()},
		},
		HostConfig: &docker.HostConfig{NetworkMode: "none", Binds: dockerKeyMount(key)},
	})
}

// TestDebianImageFromTheReadmeRunsTheAppWithItsSecrets builds the README's
// Debian Dockerfile as written and runs it as the README says: ov (ov run,
// that is ov-init) is PID 1 and the app gets myapp's secrets; docker stop
// gives the app's status, 0 for an app that exits on SIGTERM and 143 for
// one that dies of it; a 0644 key stops the container with 78 and one
// line; no secret and no key ever shows in docker logs.
func TestDebianImageFromTheReadmeRunsTheAppWithItsSecrets(t *testing.T) {
	requireDebianImages(t)
	image, key := debianImage(t, deployVault(t))
	needles := deployNeedles(t, key)
	noSecret := func(t *testing.T, c *dockerContainer) {
		t.Helper()
		stdout, stderr := c.logs()
		dockerAssertNoSecret(t, "docker logs", stdout+stderr, needles)
	}

	t.Run("the app gets its secrets under ov as PID 1", func(t *testing.T) {
		c, code := dockerRunDebian(t, image, key, nil, []string{"--once"})
		stdout, stderr := c.logs()
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, want 0\nstdout: %q\nstderr: %q", code, stdout, stderr)
		}
		serverReport(t, stdout, "0 (root)")
		if !strings.Contains(stdout, ", ppid 1, ") {
			t.Errorf("the app's parent is not PID 1 (ov):\n%s", stdout)
		}
		noSecret(t, c)
	})

	for _, tc := range []struct {
		name string
		env  []string
		want int
		log  string
	}{
		{"docker stop gives 0 when the app exits on SIGTERM", nil, 0, "server: SIGTERM\nserver: shutting down\n"},
		{"docker stop gives 143 when the app dies of SIGTERM", []string{"SERVER_ON_TERM=die"}, dockerExitTERM, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := debianStart(t, image, key, tc.env, nil)
			c.waitLogs("server: ready", 10*time.Second)
			start := time.Now()
			if err := pool.Client.StopContainer(c.ID, 10); err != nil {
				t.Fatalf("docker stop: %v", err)
			}
			took := time.Since(start)
			st := c.inspect().State
			stdout, stderr := c.logs()
			t.Logf("docker stop took %v, exit %d", took.Round(time.Millisecond), st.ExitCode)
			if st.ExitCode != tc.want || !strings.Contains(stdout, tc.log) {
				t.Errorf("exit %d after docker stop, want %d and %q in the log\nstdout: %q\nstderr: %q", st.ExitCode, tc.want, tc.log, stdout, stderr)
			}
			if took >= 5*time.Second {
				t.Errorf("docker stop took %v: the forwarded SIGTERM did not end the app, Docker's SIGKILL did", took)
			}
			noSecret(t, c)
		})
	}

	t.Run("a 0644 key stops the container with 78 and one line", func(t *testing.T) {
		bad := dockerKeyFile(t, key, func(p string) error { return os.Chmod(p, 0o644) })
		c, code := dockerRunDebian(t, image, bad, nil, nil)
		stdout, stderr := c.logs()
		logs := stdout + stderr
		if code != dockerExitConfig {
			t.Errorf("exit %d, want %d", code, dockerExitConfig)
		}
		if strings.Count(logs, "\n") != 1 || !strings.HasSuffix(logs, "\n") || !strings.Contains(logs, "machine key has permissions 0644 — must be 0600") {
			t.Errorf("docker logs: %q, want one line with the page's message", logs)
		}
		if strings.Contains(logs, "server:") {
			t.Errorf("the app started: %q", logs)
		}
		noSecret(t, c)
	})
}

// dockerRunDebian runs a container of image with the key and waits for it
// to exit.
func dockerRunDebian(t *testing.T, image, key string, env, cmd []string) (*dockerContainer, int) {
	t.Helper()
	c := debianStart(t, image, key, env, cmd)
	return c, c.wait(10 * time.Second)
}

// TestReadmeDebianImageCommandsRun runs the ```sh blocks of the README's
// "A Debian-based image" as written, in bash in the repository, with a
// vault of its own at ~/.config/ov/vault.json (app myapp, its DATABASE_URL
// 32 characters long, as the README shows), bin/ on PATH for ov, a key of
// its own in place of /etc/ov/machine.kek, and names of its own for the
// image and the container.
func TestReadmeDebianImageCommandsRun(t *testing.T) {
	requireDebianImages(t)
	v := newOVVault(t, map[string]map[string]string{deployApp: {"DATABASE_URL": readmeDatabaseURL}})
	key := filepath.Join(t.TempDir(), "machine.kek")
	v.ov(t, "", "auth", "derive-machine-key", "--out", key, "--app", deployApp)
	image, container := prefixedName("ov-deb-readme")+":test", prefixedName("ov-deb-readme")
	t.Cleanup(func() {
		run(repo, "docker", "rm", "-f", container)
		run(repo, "docker", "image", "rm", image)
	})
	gv := goCaches(t)
	env := append(v.env, "TMPDIR="+t.TempDir(), "PATH="+filepath.Join(repo, "bin")+":"+os.Getenv("PATH"),
		"GOCACHE="+gv[0], "GOMODCACHE="+gv[1], "GOPATH="+gv[2])
	replace := strings.NewReplacer(readmeKeyPath, key, "myapp:debian", image, "myapp-debian", container)

	fences := readmeSection(t, "A Debian-based image")
	for _, f := range fences {
		if f.lang != "sh" {
			continue
		}
		out := readmeRunBlock(t, f, replace, readmeScripts(env))
		dockerAssertNoSecret(t, "the output of the README's commands", out, map[string]string{"DATABASE_URL": readmeDatabaseURL})
		t.Logf("output of a README block:\n%s", out)
	}
	if _, err := pool.Client.InspectContainer(container); err == nil {
		t.Errorf("the README's commands left the container %s", container)
	}
}
