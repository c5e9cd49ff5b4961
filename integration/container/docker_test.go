package container

// The promises of README.md, checked on real containers through the Docker
// API: ov-init as the ENTRYPOINT of the app image, PID 1 of the container,
// the machine key bind-mounted at /run/secrets/machine.kek. What Docker
// cannot show (PID 1's environment, zombies) is read from the host's /proc
// through the container's host pids.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ory/dockertest/v3/docker"
)

// Exit statuses of README.md's table.
const (
	dockerExitConfig = 78       // machine key, vault or secret error: the app never started
	dockerExitTERM   = 128 + 15 // the app was killed by SIGTERM
)

// dockerAppStarted is what the app prints when it starts, in the tests
// where it must not.
const dockerAppStarted = "app-started"

// dockerKeyMount mounts key read-only at the default machine key path.
func dockerKeyMount(key string) []string {
	return []string{key + ":/run/secrets/machine.kek:ro"}
}

func TestDockerSecretsReachTheAppButNotPID1(t *testing.T) {
	requireDocker(t)

	t.Run("app environment", func(t *testing.T) {
		c, code := dockerRun(t, dockerSpec{Cmd: []string{"/app/helper", "env"}, Binds: dockerKeyMount(webKey)})
		stdout, stderr := c.logs()
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		dockerAssertWebSecrets(t, dockerHelperEnv(t, stdout))
	})

	t.Run("app is a child of PID 1", func(t *testing.T) {
		c, code := dockerRun(t, dockerSpec{Cmd: []string{"/app/helper", "status"}, Binds: dockerKeyMount(webKey)})
		stdout, stderr := c.logs()
		if code != 0 || !strings.Contains(stdout, "\nppid: 1\n") || strings.Contains(stdout, "\npid: 1\n") {
			t.Errorf("want the app's ppid 1 (ov-init) and its own pid not 1; exit %d\nstdout: %q\nstderr: %q", code, stdout, stderr)
		}
	})

	t.Run("PID 1 seen from the host", func(t *testing.T) {
		c := dockerStart(t, dockerSpec{Cmd: []string{"/app/helper", "sleep"}, Binds: dockerKeyMount(webKey)})
		c.waitLogs("ready", 5*time.Second)
		pid := c.pid1()
		needles := dockerSecretNeedles(t)

		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || !strings.HasSuffix(exe, "/ov-init") {
			t.Errorf("the container's first process (host pid %d) runs %q (%v), want /ov-init", pid, exe, err)
		}
		if ns := dockerNSPid(pid); ns != 1 {
			t.Errorf("ov-init (host pid %d) has pid %d in the container, want 1", pid, ns)
		}
		for _, file := range []string{"environ", "cmdline"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
			if err != nil {
				t.Fatal(err)
			}
			dockerAssertNoSecret(t, "ov-init's (PID 1's) /proc/PID/"+file, string(b), needles)
		}

		// The same look at the app must find the secrets, or the check
		// above proves nothing.
		var app []dockerProc
		for _, p := range dockerProcsInPIDNamespaceOf(t, pid) {
			if p.PPid == pid {
				app = append(app, p)
			}
		}
		if len(app) != 1 {
			t.Fatalf("ov-init (host pid %d) has children %+v, want the app alone", pid, app)
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", app[0].Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range []string{"DATABASE_URL=" + webDatabaseURL, "API_TOKEN=" + webAPIToken} {
			if !strings.Contains("\x00"+string(env), "\x00"+kv+"\x00") {
				t.Errorf("the app's /proc/PID/environ lacks %s: the environ check of PID 1 would see nothing", strings.SplitN(kv, "=", 2)[0])
			}
		}

		top, err := pool.Client.TopContainer(c.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		initRow, appRow := false, false
		for _, p := range top.Processes {
			row := strings.Join(p, " ")
			rows = append(rows, row)
			initRow = initRow || strings.HasSuffix(row, " /ov-init --app web -- /app/helper sleep")
			appRow = appRow || strings.HasSuffix(row, " /app/helper sleep") && !strings.Contains(row, "/ov-init")
		}
		text := strings.Join(rows, "\n")
		dockerAssertNoSecret(t, "docker top", text, needles)
		if !initRow || !appRow || len(rows) != 2 {
			t.Errorf("docker top shows\n%s\nwant ov-init and the app, nothing else", text)
		}
	})
}

func TestDockerStopEndsAppWith143WellBeforeTheKill(t *testing.T) {
	requireDocker(t)
	for _, tc := range []struct {
		name string
		env  []string
		want int
	}{
		{"untrapped TERM", nil, dockerExitTERM},
		{"OV_REMAP_EXIT=143", []string{"OV_REMAP_EXIT=143"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dockerStart(t, dockerSpec{Cmd: []string{"/app/helper", "sleep"}, Env: tc.env, Binds: dockerKeyMount(webKey)})
			c.waitLogs("ready", 5*time.Second)
			start := time.Now()
			if err := pool.Client.StopContainer(c.ID, 10); err != nil {
				t.Fatalf("docker stop: %v", err)
			}
			took := time.Since(start)
			st := c.inspect().State
			t.Logf("docker stop took %v", took.Round(time.Millisecond))
			if st.ExitCode != tc.want {
				_, stderr := c.logs()
				t.Errorf("exit %d after docker stop, want %d; stderr %q", st.ExitCode, tc.want, stderr)
			}
			if took >= 3*time.Second {
				t.Errorf("docker stop took %v: the app did not end on the forwarded SIGTERM, Docker's SIGKILL after 10s did", took)
			}
		})
	}
}

func TestDockerKillForwardsUSR1AndHUPToTheApp(t *testing.T) {
	requireDocker(t)
	c := dockerStart(t, dockerSpec{Cmd: []string{"/app/helper", "signals"}, Binds: dockerKeyMount(webKey)})
	c.waitLogs("ready", 5*time.Second)
	for _, sig := range []struct {
		sig  docker.Signal
		want string
	}{
		{docker.SIGUSR1, "SIGUSR1|10"},
		{docker.SIGHUP, "SIGHUP|1"},
	} {
		if err := pool.Client.KillContainer(docker.KillContainerOptions{ID: c.ID, Signal: sig.sig}); err != nil {
			t.Fatalf("docker kill -s %d: %v", sig.sig, err)
		}
		c.waitLogs(sig.want, 5*time.Second)
	}
	if st := c.inspect().State; !st.Running {
		t.Errorf("the container stopped on USR1 or HUP: %s", st.String())
	}
}

func TestDockerNoZombieIsLeftInTheContainer(t *testing.T) {
	requireDocker(t)

	t.Run("ov-init reaps 200 orphans", func(t *testing.T) {
		c := dockerStart(t, dockerSpec{
			Cmd: []string{"/app/helper", "orphans", "200"}, Env: []string{"HELPER_STAY=1"}, Binds: dockerKeyMount(webKey),
		})
		c.waitLogs("done", 5*time.Second)
		pid := c.pid1()
		var procs []dockerProc
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			procs = dockerProcsInPIDNamespaceOf(t, pid)
			if dockerZombies(procs) == 0 && len(procs) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 5s the container still has %d zombies among %d processes: %+v", dockerZombies(procs), len(procs), procs)
			}
		}
	})

	// Negative control: the same app as PID 1, which reaps only its own
	// child, leaves the orphans as zombies, and the look above sees them.
	t.Run("helper as PID 1 leaves 50 zombies", func(t *testing.T) {
		c := dockerStart(t, dockerSpec{
			Entrypoint: []string{"/app/helper"}, Cmd: []string{"orphans", "50"}, Env: []string{"HELPER_STAY=1"},
		})
		c.waitLogs("done", 5*time.Second)
		pid := c.pid1()
		var procs []dockerProc
		for deadline := time.Now().Add(5 * time.Second); dockerZombies(procs) < 50; time.Sleep(20 * time.Millisecond) {
			procs = dockerProcsInPIDNamespaceOf(t, pid)
			if time.Now().After(deadline) {
				t.Fatalf("without ov-init the container shows %d zombies, want 50: the zombie check cannot see them", dockerZombies(procs))
			}
		}
	})
}

func TestDockerBadKeyMountFailsFastWith78(t *testing.T) {
	requireDocker(t)
	webKeyBytes, err := os.ReadFile(webKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		binds func(t *testing.T) []string
		want  string
	}{
		{"mode 0644", func(t *testing.T) []string {
			return dockerKeyMount(dockerKeyFile(t, webKey, func(p string) error { return os.Chmod(p, 0o644) }))
		}, "machine key has permissions 0644 — must be 0600"},
		{"owned by uid 1001", func(t *testing.T) []string {
			return dockerKeyMount(dockerKeyFile(t, webKey, func(p string) error { return os.Chown(p, 1001, 1001) }))
		}, "machine key is owned by uid 1001 but current uid is 0"},
		{"symlink", func(t *testing.T) []string {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "real.kek"), webKeyBytes, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("real.kek", filepath.Join(dir, "machine.kek")); err != nil {
				t.Fatal(err)
			}
			return []string{dir + ":/run/secrets:ro"}
		}, "opening machine key: too many levels of symbolic links"},
		{"31 bytes", func(t *testing.T) []string {
			return dockerKeyMount(dockerKeyFile(t, webKey, func(p string) error { return os.Truncate(p, 31) }))
		}, "machine key must be exactly 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, code := dockerRun(t, dockerSpec{Cmd: []string{"/app/helper", "args", dockerAppStarted}, Binds: tc.binds(t)})
			dockerAssertRefused(t, c, code, tc.want)
			life := c.lifetime()
			t.Logf("refused after %v", life.Round(time.Millisecond))
			if life >= 2*time.Second {
				t.Errorf("the container ran %v before refusing the key, want under 2s", life)
			}
		})
	}
}

func TestDockerReadOnlyRootFilesystemStillInjectsSecrets(t *testing.T) {
	requireDocker(t)
	c, code := dockerRun(t, dockerSpec{Cmd: []string{"/app/helper", "env"}, Binds: dockerKeyMount(webKey), ReadOnly: true})
	stdout, stderr := c.logs()
	if !c.inspect().HostConfig.ReadonlyRootfs {
		t.Fatal("the container's root filesystem is not read-only")
	}
	if code != 0 {
		t.Fatalf("exit %d on a read-only root filesystem, stderr %q", code, stderr)
	}
	dockerAssertWebSecrets(t, dockerHelperEnv(t, stdout))
}

func TestDockerLogsNeverHoldASecret(t *testing.T) {
	requireDocker(t)
	needles := dockerSecretNeedles(t)
	badMode := dockerKeyFile(t, webKey, func(p string) error { return os.Chmod(p, 0o644) })
	for _, tc := range []struct {
		name    string
		key     string
		cmd     []string
		env     []string
		code    int
		verbose string // in stderr, so the run was verbose for real
	}{
		{"scoped key", webKey, []string{"/app/helper", "exit", "0"}, nil, 0, "injecting 2 secrets"},
		{"root key", rootKey, []string{"/app/helper", "exit", "0"}, nil, 0, "injecting 2 secrets"},
		{"app killed by TERM", webKey, []string{"/app/helper", "die", "TERM"}, nil, dockerExitTERM, "ov-init:"},
		{"command not found", webKey, []string{"/app/nope"}, nil, 127, "/app/nope"},
		{"key of app api", apiKey, []string{"/app/helper", "exit", "0"}, nil, dockerExitConfig, `"api"`},
		{"key mode 0644", badMode, []string{"/app/helper", "exit", "0"}, nil, dockerExitConfig, "0644"},
		{"missing named secret", webKey, []string{"/app/helper", "exit", "0"}, []string{"OV_SECRETS=DATABASE_URL,NOPE"}, dockerExitConfig, "NOPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, code := dockerRun(t, dockerSpec{Cmd: tc.cmd, Env: append([]string{"OV_VERBOSE=3"}, tc.env...), Binds: dockerKeyMount(tc.key)})
			stdout, stderr := c.logs()
			if code != tc.code || !strings.Contains(stderr, tc.verbose) {
				t.Errorf("exit %d, want %d; stderr %q, want it to hold %q", code, tc.code, stderr, tc.verbose)
			}
			dockerAssertNoSecret(t, "docker logs (stdout)", stdout, needles)
			dockerAssertNoSecret(t, "docker logs (stderr)", stderr, needles)
		})
	}
}

func TestDockerUserRunsAppUnprivilegedThatCannotReadTheKey(t *testing.T) {
	requireDocker(t)
	user := "OV_USER=10001:10001"

	c, code := dockerRun(t, dockerSpec{
		Cmd:   []string{"/app/helper", "status"},
		Env:   []string{user, "HELPER_TRY_READ=/run/secrets/machine.kek"},
		Binds: dockerKeyMount(webKey),
	})
	stdout, stderr := c.logs()
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"Uid: 10001 10001 10001 10001\n",
		"Gid: 10001 10001 10001 10001\n",
		"read: open /run/secrets/machine.kek: permission denied\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("app status lacks %q:\n%s", want, stdout)
		}
	}

	c, code = dockerRun(t, dockerSpec{Cmd: []string{"/app/helper", "env"}, Env: []string{user}, Binds: dockerKeyMount(webKey)})
	stdout, stderr = c.logs()
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	env := dockerHelperEnv(t, stdout)
	dockerAssertWebSecrets(t, env)
	if env["HOME"] != "/home/app" {
		t.Errorf("app's HOME is %q, want /home/app: HOME follows the user", env["HOME"])
	}
}

func TestDockerKeyOfAnotherAppIsRefusedNamingIt(t *testing.T) {
	requireDocker(t)
	c, code := dockerRun(t, dockerSpec{Cmd: []string{"/app/helper", "args", dockerAppStarted}, Binds: dockerKeyMount(apiKey)})
	stdout, stderr := c.logs()
	if code != dockerExitConfig {
		t.Errorf("exit %d with the key of app api, want %d", code, dockerExitConfig)
	}
	if want := `is scoped to app "api", not "web"`; !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line that holds %q", stderr, want)
	}
	if strings.Contains(stdout, dockerAppStarted) {
		t.Errorf("the app started: stdout %q", stdout)
	}
}

func TestDockerUnscopedRootKeyOpensTheApp(t *testing.T) {
	requireDocker(t)
	c, code := dockerRun(t, dockerSpec{Cmd: []string{"/app/helper", "env"}, Binds: dockerKeyMount(rootKey)})
	stdout, stderr := c.logs()
	if code != 0 {
		t.Fatalf("exit %d with the root key, stderr %q", code, stderr)
	}
	dockerAssertWebSecrets(t, dockerHelperEnv(t, stdout))
}
