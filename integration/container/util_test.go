package container

// Helpers of the docker_test.go tests: one container per call, created from
// a local image only (CreateContainer never pulls), networking off, removed
// when the test ends whatever happened; and a look at a container's
// processes from the host, through /proc.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ory/dockertest/v3/docker"

	"github.com/ov-init/ov-init/internal/procstat"
)

// dockerTestLabel marks every container these tests create, so one left
// behind can be found: docker ps -a --filter label=ov-init.test.
const dockerTestLabel = "ov-init.test"

// dockerSpec says how to run one container. Zero values mean the app image
// as built: its ENTRYPOINT (ov-init --app web --) and CMD.
type dockerSpec struct {
	Entrypoint []string // overrides the image's ENTRYPOINT when non-nil
	Cmd        []string // overrides the image's CMD when non-nil
	Env        []string
	Binds      []string // host:container[:ro]
	ReadOnly   bool     // a read-only root filesystem
}

// dockerContainer is a started container of one test.
type dockerContainer struct {
	t       *testing.T
	ID      string
	started time.Time      // just before StartContainer, for wall-clock timings
	client  *docker.Client // its daemon's; nil: pool's, the daemon of scripts/docker-up
}

// api is the client of the container's daemon.
func (c *dockerContainer) api() *docker.Client {
	if c.client != nil {
		return c.client
	}
	return pool.Client
}

// dockerStart creates and starts a container of appImage. It is removed
// (killed first if needed) when the test ends, even when it fails.
func dockerStart(t *testing.T, s dockerSpec) *dockerContainer {
	t.Helper()
	return dockerCreateAndStart(t, "a container of "+appImage, dockerOptions(t, s))
}

// dockerOptions are the options of an unnamed container of appImage as s
// says, networking off.
func dockerOptions(t *testing.T, s dockerSpec) docker.CreateContainerOptions {
	return docker.CreateContainerOptions{
		Config: &docker.Config{
			Image:      appImage,
			Entrypoint: s.Entrypoint,
			Cmd:        s.Cmd,
			Env:        s.Env,
			Labels:     map[string]string{dockerTestLabel: t.Name()},
		},
		HostConfig: &docker.HostConfig{
			NetworkMode:    "none",
			Binds:          s.Binds,
			ReadonlyRootfs: s.ReadOnly,
		},
	}
}

// dockerCreateAndStart creates a container as opts says and starts it; it
// is removed (killed first if needed) when the test ends, even when it
// fails. what names it in failures ("init container x").
func dockerCreateAndStart(t *testing.T, what string, opts docker.CreateContainerOptions) *dockerContainer {
	t.Helper()
	c, err := pool.Client.CreateContainer(opts)
	if err != nil {
		t.Fatalf("creating %s: %v", what, err)
	}
	t.Cleanup(func() {
		err := pool.Client.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true})
		var gone *docker.NoSuchContainer
		if err != nil && !errors.As(err, &gone) {
			t.Errorf("removing %s (%.12s): %v", what, c.ID, err)
		}
	})
	dc := &dockerContainer{t: t, ID: c.ID, started: time.Now()}
	if err := pool.Client.StartContainer(c.ID, nil); err != nil {
		t.Fatalf("starting %s (%.12s): %v", what, c.ID, err)
	}
	return dc
}

// dockerRun starts a container and waits for it to exit.
func dockerRun(t *testing.T, s dockerSpec) (c *dockerContainer, code int) {
	t.Helper()
	c = dockerStart(t, s)
	return c, c.wait(10 * time.Second)
}

// wait waits for the container to exit and returns its status; it fails the
// test if that takes longer than within.
func (c *dockerContainer) wait(within time.Duration) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	code, err := c.api().WaitContainerWithContext(c.ID, ctx)
	if err != nil {
		stdout, stderr := c.logs()
		c.t.Fatalf("container %.12s did not exit within %v: %v\nstdout: %q\nstderr: %q", c.ID, within, err, stdout, stderr)
	}
	return code
}

func (c *dockerContainer) inspect() *docker.Container {
	c.t.Helper()
	info, err := c.api().InspectContainer(c.ID)
	if err != nil {
		c.t.Fatalf("inspecting container %.12s: %v", c.ID, err)
	}
	return info
}

// lifetime is how long the container ran, as Docker recorded it.
func (c *dockerContainer) lifetime() time.Duration {
	c.t.Helper()
	st := c.inspect().State
	if st.Running || st.FinishedAt.IsZero() {
		c.t.Fatalf("container %.12s has not finished: %s", c.ID, st.String())
	}
	return st.FinishedAt.Sub(st.StartedAt)
}

// logs returns what the container wrote so far on stdout and stderr.
func (c *dockerContainer) logs() (stdout, stderr string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	err := c.api().Logs(docker.LogsOptions{
		Container: c.ID, OutputStream: &out, ErrorStream: &errb, Stdout: true, Stderr: true,
	})
	if err != nil {
		c.t.Fatalf("logs of container %.12s: %v", c.ID, err)
	}
	return out.String(), errb.String()
}

// waitLogs polls the container's stdout until it holds want, and fails the
// test if it does not within the deadline.
func (c *dockerContainer) waitLogs(want string, within time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		stdout, stderr := c.logs()
		if strings.Contains(stdout, want) {
			return stdout
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("container %.12s did not print %q within %v\nstdout: %q\nstderr: %q", c.ID, want, within, stdout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid1 returns the host pid of the container's first process: ov-init,
// unless the entrypoint was overridden.
func (c *dockerContainer) pid1() int {
	c.t.Helper()
	st := c.inspect().State
	if !st.Running || st.Pid <= 0 {
		c.t.Fatalf("container %.12s is not running: %s", c.ID, st.String())
	}
	return st.Pid
}

// dockerHelperEnv parses the output of `helper env` (one JSON array).
func dockerHelperEnv(t *testing.T, stdout string) map[string]string {
	t.Helper()
	var list []string
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("app output is not helper env's JSON: %v: %q", err, stdout)
	}
	env := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// dockerAssertWebSecrets checks that env holds the two secrets of app web,
// with their vault values, and none of ov-init's own OV_* settings.
func dockerAssertWebSecrets(t *testing.T, env map[string]string) {
	t.Helper()
	for name, want := range map[string]string{"DATABASE_URL": webDatabaseURL, "API_TOKEN": webAPIToken} {
		if got, ok := env[name]; got != want {
			t.Errorf("app's %s is %q (set: %v), want the vault's value %q", name, got, ok, want)
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "OV_") {
			t.Errorf("app's environment holds ov-init's own setting %s", k)
		}
	}
}

// dockerSecretNeedles is every form in which a fixture secret or machine
// key could leak: each value, and each key raw, in hex and in base64.
func dockerSecretNeedles(t *testing.T) map[string]string {
	t.Helper()
	needles := map[string]string{
		"DATABASE_URL of web": webDatabaseURL,
		"API_TOKEN of web":    webAPIToken,
		"API_SECRET of api":   apiSecret,
	}
	for name, path := range map[string]string{"web key": webKey, "api key": apiKey, "root key": rootKey} {
		key, err := os.ReadFile(path)
		if err != nil || len(key) != 32 {
			t.Fatalf("reading the fixture %s: %v (%d bytes)", name, err, len(key))
		}
		needles[name+" (raw)"] = string(key)
		needles[name+" (hex)"] = hex.EncodeToString(key)
		needles[name+" (HEX)"] = strings.ToUpper(hex.EncodeToString(key))
		needles[name+" (base64)"] = base64.StdEncoding.EncodeToString(key)
		needles[name+" (base64url)"] = base64.RawURLEncoding.EncodeToString(key)
		needles[name+" (first half, hex)"] = hex.EncodeToString(key[:16])
	}
	return needles
}

// dockerAssertNoSecret fails if text holds any of the needles.
func dockerAssertNoSecret(t *testing.T, what, text string, needles map[string]string) {
	t.Helper()
	for name, needle := range needles {
		if strings.Contains(text, needle) {
			t.Errorf("%s holds the %s: %q", what, name, text)
		}
	}
}

// dockerKeyFile writes a copy of a fixture key into a fresh directory,
// changed by edit (mode, owner, length), and returns its path.
func dockerKeyFile(t *testing.T, from string, edit func(path string) error) string {
	t.Helper()
	key, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "machine.kek")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		if err := edit(path); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// dockerProc is a process of a container, as the host sees it.
type dockerProc struct {
	Pid   int  // host pid
	PPid  int  // host pid of its parent
	State byte // R, S, Z, …
	NSPid int  // its pid inside the container's PID namespace
}

// dockerProcsInPIDNamespaceOf lists the host's processes that are in the PID
// namespace of process pid (the container's PID 1), zombies included.
func dockerProcsInPIDNamespaceOf(t *testing.T, pid int) []dockerProc {
	t.Helper()
	stats, err := procstat.InPIDNamespaceOf(pid)
	if err != nil {
		t.Fatalf("PID namespace of host pid %d: %v", pid, err)
	}
	procs := make([]dockerProc, 0, len(stats))
	for _, s := range stats {
		procs = append(procs, dockerProc{Pid: s.PID, PPid: s.PPID, State: s.State, NSPid: dockerNSPid(s.PID)})
	}
	return procs
}

// dockerNSPid is the innermost pid of host pid p: the last field of NSpid
// in /proc/p/status, or 0 when that cannot be read.
func dockerNSPid(p int) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}

// dockerZombies counts the zombies among procs.
func dockerZombies(procs []dockerProc) int {
	n := 0
	for _, p := range procs {
		if p.State == 'Z' {
			n++
		}
	}
	return n
}

// dockerAssertRefused checks that ov-init refused to start the app in c,
// which exited with code: 78, one ov-init line on stderr holding want, and
// nothing of the app's (which prints dockerAppStarted when it starts).
func dockerAssertRefused(t *testing.T, c *dockerContainer, code int, want string) {
	t.Helper()
	stdout, stderr := c.logs()
	if code != dockerExitConfig {
		t.Errorf("exit %d, want %d", code, dockerExitConfig)
	}
	if !strings.HasPrefix(stderr, "ov-init: ") || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line: ov-init: …%s…", stderr, want)
	}
	if strings.Contains(stdout, dockerAppStarted) {
		t.Errorf("the app started: stdout %q", stdout)
	}
}
