package container

// The README's systemd recipe on a real systemd: systemd as PID 1 of a
// container (no --privileged; see testdata/systemd/entrypoint) on the
// local bookworm image with systemd that scripts/debian-images builds. The
// README's commands run in it as root, as written: they install the
// static ov and deploy/systemd/myapp.service as they are, create the user
// deploy, derive its key and export the vault. The unit then runs the test
// app (testdata/server) as /opt/myapp/server; what it does is read with
// systemctl show and journalctl -u myapp. Then the drop-in of secrets as
// files (deploy/systemd/myapp.service.d/secrets-as-files.conf) is installed
// as it is, and what the app gets is read in /proc and /run/ov. Containers
// and images are named ov-sd-…, networking off, removed at the end.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sdTimeout bounds one command in the container; sdBootTimeout the boot.
const (
	sdTimeout     = time.Minute
	sdBootTimeout = 30 * time.Second
)

// sdHost is the booted container: the server of the README's recipe.
type sdHost struct {
	t    *testing.T
	name string
}

// on is the host for the (sub)test t: its failures end t, not the test
// that booted the host.
func (h *sdHost) on(t *testing.T) *sdHost { return &sdHost{t: t, name: h.name} }

// exec runs a command in the container as root, with stdin, and returns
// its output (stdout and stderr) and error.
func (h *sdHost) exec(stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sdTimeout)
	defer cancel()
	args := append([]string{"exec", "-i", "-e", "OV_PASSWORD_FILE=/root/ov-password", "-w", "/root/ov-init", h.name}, argv...)
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// sh runs a shell command in the container and fails the test unless it
// succeeds.
func (h *sdHost) sh(command string) string {
	h.t.Helper()
	out, err := h.exec("", "sh", "-ec", command)
	if err != nil {
		h.t.Fatalf("in the container: %s: %v\n%s", command, err, out)
	}
	return out
}

// show returns properties of myapp.service (systemctl show -p).
func (h *sdHost) show(props ...string) map[string]string {
	h.t.Helper()
	out := h.sh("systemctl show -p " + strings.Join(props, ",") + " myapp")
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

// journal returns what myapp's current invocation wrote (its stdout and
// stderr, as journalctl -u myapp shows them, without systemd's own lines):
// the lines stored with its invocation id, and the unit's lines stored
// after its main process started. journald looks a line's invocation id up
// when the line comes, from the process that wrote it (SCM_CREDENTIALS):
// for a process that writes one line and exits (ov refusing a key) that
// can fail, and the line gets the previous invocation's id, or none.
func (h *sdHost) journal() string {
	h.t.Helper()
	p := h.show("InvocationID", "ExecMainStartTimestampMonotonic")
	start, err := strconv.ParseUint(p["ExecMainStartTimestampMonotonic"], 10, 64)
	if err != nil {
		h.t.Fatalf("myapp's ExecMainStartTimestampMonotonic: %v", err)
	}
	out := h.sh("journalctl --no-pager -o json --output-fields=MESSAGE,_SYSTEMD_INVOCATION_ID _SYSTEMD_UNIT=myapp.service _TRANSPORT=stdout")
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			Message    json.RawMessage `json:"MESSAGE"`
			Invocation string          `json:"_SYSTEMD_INVOCATION_ID"`
			Monotonic  string          `json:"__MONOTONIC_TIMESTAMP"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			h.t.Fatalf("journalctl -o json: %v: %q", err, line)
		}
		mono, err := strconv.ParseUint(e.Monotonic, 10, 64)
		if err != nil {
			h.t.Fatalf("journalctl -o json: __MONOTONIC_TIMESTAMP: %v: %q", err, line)
		}
		if e.Invocation != p["InvocationID"] && mono < start {
			continue
		}
		var msg string
		var raw []byte // journalctl's JSON for a message that is not text
		if json.Unmarshal(e.Message, &msg) != nil && json.Unmarshal(e.Message, &raw) == nil {
			msg = string(raw)
		}
		b.WriteString(msg + "\n")
	}
	return b.String()
}

// waitJournal waits until the current invocation of myapp wrote want, and
// returns its journal.
func (h *sdHost) waitJournal(want string) string {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j := h.journal()
		if strings.Contains(j, want) {
			return j
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("myapp did not log %q within 10s; its journal:\n%s\n%s", want, j, h.sh("systemctl status --no-pager myapp || true"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitInactive waits until myapp's ActiveState is no longer activating,
// active or deactivating, and returns its properties.
func (h *sdHost) waitInactive() map[string]string {
	h.t.Helper()
	props := []string{"ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts", "InvocationID"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := h.show(props...)
		if p["ActiveState"] == "inactive" || p["ActiveState"] == "failed" {
			return p
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("myapp is still %s/%s after 10s", p["ActiveState"], p["SubState"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// appPID returns the pids of myapp's main process, ov, and of the app:
// ov's one child.
func (h *sdHost) appPID() (ov, app string) {
	h.t.Helper()
	ov = h.show("MainPID")["MainPID"]
	out := h.sh(`grep -lxE 'PPid:[[:space:]]+` + ov + `' /proc/[0-9]*/status 2>/dev/null || true`)
	var children []string
	for _, path := range strings.Fields(out) {
		children = append(children, strings.TrimSuffix(strings.TrimPrefix(path, "/proc/"), "/status"))
	}
	if ov == "0" || len(children) != 1 {
		h.t.Fatalf("myapp's main process %s (ov) has the children %v, want one: the app", ov, children)
	}
	return ov, children[0]
}

// environ returns the environment of process pid, as root reads it in
// /proc/PID/environ.
func (h *sdHost) environ(pid string) map[string]string {
	h.t.Helper()
	env := map[string]string{}
	for _, kv := range strings.Split(h.sh("cat /proc/"+pid+"/environ"), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// sdDropInPath is where the README's commands install the drop-in.
const sdDropInPath = "/etc/systemd/system/myapp.service.d/secrets-as-files.conf"

// sdImage builds the test's host image (testdata/systemd): the entrypoint,
// the test app as /opt/myapp/server, a checkout holding bin/ov and the
// unit, and root's vault with its password file.
func sdImage(t *testing.T, v *ovVault) string {
	t.Helper()
	ctx := t.TempDir()
	td := filepath.Join(repo, "integration", "container", "testdata")
	copyWithMode(t, filepath.Join(td, "systemd", "Dockerfile"), filepath.Join(ctx, "Dockerfile"), 0o644)
	copyWithMode(t, filepath.Join(td, "systemd", "entrypoint"), filepath.Join(ctx, "entrypoint"), 0o755)
	copyWithMode(t, filepath.Join(td, "server"), filepath.Join(ctx, "server"), 0o755)
	copyWithMode(t, filepath.Join(repo, "bin", "ov"), filepath.Join(ctx, "checkout", "bin", "ov"), 0o755)
	copyWithMode(t, filepath.Join(repo, systemdUnit), filepath.Join(ctx, "checkout", systemdUnit), 0o644)
	copyWithMode(t, filepath.Join(repo, systemdDropIn), filepath.Join(ctx, "checkout", systemdDropIn), 0o644)
	copyWithMode(t, v.path(), filepath.Join(ctx, "vault.json"), 0o600)
	copyWithMode(t, v.password, filepath.Join(ctx, "password"), 0o600)
	tag := prefixedName("ov-sd-host") + ":test"
	buildTestImage(t, ctx, tag)
	return tag
}

// sdBoot starts systemd as PID 1 of a container of image, as the issue's
// recipe does, and waits until systemctl is-system-running says running.
// It returns the host and how long the boot took.
func sdBoot(t *testing.T, image string) (*sdHost, time.Duration) {
	t.Helper()
	h := &sdHost{t: t, name: prefixedName("ov-sd")}
	start := time.Now()
	out, err := run(repo, "docker", "run", "-d", "--name", h.name, "--label", dockerTestLabel+"="+t.Name(),
		"--network", "none", "--cgroupns=private", "--cap-add", "SYS_ADMIN",
		"--tmpfs", "/run", "--tmpfs", "/run/lock", "--stop-signal", "SIGRTMIN+3", image)
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := run(repo, "docker", "rm", "-f", h.name); err != nil {
			t.Errorf("removing container %s: %v: %s", h.name, err, out)
		}
	})
	deadline := start.Add(sdBootTimeout)
	for {
		state, _ := h.exec("", "systemctl", "is-system-running")
		state = strings.TrimSpace(state)
		if state == "running" {
			return h, time.Since(start)
		}
		if state == "degraded" || time.Now().After(deadline) {
			failed, _ := h.exec("", "systemctl", "--failed", "--no-pager")
			logs, _ := run(repo, "docker", "logs", "--tail", "30", h.name)
			t.Fatalf("systemd is %q after %v, want running\n%s\n%s", state, time.Since(start).Round(time.Millisecond), failed, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSystemdUnitFromTheReadmeRunsTheAppAndStopsOnAConfigError runs the
// README's systemd section on systemd: its commands set the host up and
// start the unit, the app runs as deploy with myapp's secrets, systemctl
// stop reaches it as one SIGTERM and ends the unit with Result=success
// whether it exits on it or dies of it; a key with mode 0644, a key owned
// by root and a key behind a directory deploy cannot search each fail the
// unit with 78 and one line in the journal naming the fix, and
// RestartPreventExitStatus=78 keeps it failed instead of restarting
// (without it, it restarts: the negative control). Then secrets as files:
// the README's commands install the drop-in next to the unit as it is, and
// the app gets NAME_FILE=/run/ov/NAME and no value in its environment; the
// files are deploy's, 0400, in a 0500 directory on tmpfs, and hold the
// values; ov removes them when the app ends, and systemd removes /run/ov
// when the unit stops, even after a SIGKILL of ov and the app.
func TestSystemdUnitFromTheReadmeRunsTheAppAndStopsOnAConfigError(t *testing.T) {
	requireDebianImages(t)
	fences := readmeSection(t, "systemd")
	// The README's ```sh blocks: the host's set-up, reading a failure, and
	// the block that installs the drop-in (the one that names it).
	var blocks []readmeFence
	var dropInBlock readmeFence
	dropInShown := false
	for _, f := range fences {
		switch {
		case f.lang != "sh":
		case slices.ContainsFunc(f.body, func(line string) bool { return strings.Contains(line, filepath.Base(systemdDropIn)) }):
			dropInBlock, dropInShown = f, true
		default:
			blocks = append(blocks, f)
		}
	}
	if len(blocks) != 2 {
		t.Fatalf("README.md, systemd: %d ```sh blocks that do not name %s, want 2: the host's set-up, and reading a failure", len(blocks), filepath.Base(systemdDropIn))
	}
	v := deployVault(t)
	h, boot := sdBoot(t, sdImage(t, v))
	t.Logf("systemd booted to running in %v from docker run; systemd-analyze: %s", boot.Round(time.Millisecond), strings.TrimSpace(h.sh("systemd-analyze time | head -n 1")))
	runBlock := func(t *testing.T, f readmeFence) string {
		t.Helper()
		out := readmeRunBlock(t, f, strings.NewReplacer(), func(script string) (string, error) {
			return h.exec(script, "bash", "-euo", "pipefail")
		})
		t.Logf("output of a README block:\n%s", out)
		return out
	}

	// The README's set-up, as written.
	setup := runBlock(t, blocks[0])
	deployUID := strings.TrimSpace(h.sh("id -u deploy"))
	needles := deployNeedles(t)
	dockerAssertNoSecret(t, "the output of the README's commands", setup, needles)
	key := h.sh("stat -c '%a %U %G' /etc/ov/machine.kek /etc/ov /etc/ov/vault.json")
	if key != "600 deploy deploy\n755 root root\n644 root root\n" {
		t.Errorf("key, directory, vault: %q, want 0600 deploy's, 0755 root's, 0644 root's", key)
	}

	t.Run("the app runs as deploy with its secrets", func(t *testing.T) {
		h := h.on(t)
		j := h.waitJournal("server: ready")
		serverReport(t, j, deployUID+" (deploy)")
		p := h.show("MainPID", "ActiveState", "SubState", "NRestarts")
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["NRestarts"] != "0" {
			t.Errorf("myapp: %v, want active, running, no restart", p)
		}
		if !strings.Contains(j, ", ppid "+p["MainPID"]+", ") {
			t.Errorf("the app's parent is not the unit's main process %s (ov):\n%s", p["MainPID"], j)
		}
		if ov := h.sh("stat -c %U /proc/" + p["MainPID"]); ov != "deploy\n" {
			t.Errorf("ov runs as %q, want deploy", ov)
		}
		dockerAssertNoSecret(t, "the journal", h.sh("journalctl --no-pager -u myapp"), needles)
	})

	t.Run("systemctl stop: one SIGTERM, Result=success", func(t *testing.T) {
		h := h.on(t)
		h.waitJournal("server: ready")
		h.sh("systemctl stop myapp")
		p := h.waitInactive()
		j := h.waitJournal("server: shutting down")
		if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["ExecMainStatus"] != "0" {
			t.Errorf("after systemctl stop: %v, want inactive, success, status 0", p)
		}
		if strings.Count(j, "server: SIGTERM") != 1 || strings.Contains(j, "SIGUSR1") {
			t.Errorf("the app did not log exactly one SIGTERM:\n%s", j)
		}
	})

	t.Run("systemctl stop of an app that dies of SIGTERM: 143, Result=success", func(t *testing.T) {
		h := h.on(t)
		h.sh("touch /run/server-dies-on-term && systemctl start myapp")
		defer h.sh("rm -f /run/server-dies-on-term")
		h.waitJournal("server: ready (dies of SIGTERM)")
		h.sh("systemctl stop myapp")
		p := h.waitInactive()
		if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["ExecMainStatus"] != "143" {
			t.Errorf("after systemctl stop: %v, want inactive, success, status 143 (SuccessExitStatus=143)", p)
		}
	})

	// KillMode=mixed: systemctl stop signals ov alone, and the app gets what
	// ov forwards. With --rewrite TERM:USR1 in a drop-in, the app sees USR1
	// only; under KillMode=control-group, the negative control, systemd
	// sends it SIGTERM directly as well.
	for _, tc := range []struct {
		killMode string
		term     bool
	}{{"", false}, {"control-group", true}} {
		name := "KillMode of the unit: the app gets only what ov forwards"
		if tc.killMode != "" {
			name = "negative control: KillMode=" + tc.killMode + " signals the app directly"
		}
		t.Run(name, func(t *testing.T) {
			h := h.on(t)
			dropIn := "[Service]\nExecStart=\nExecStart=/usr/local/bin/ov run --rewrite TERM:USR1 --machine-key /etc/ov/machine.kek --app myapp -- /opt/myapp/server\n"
			if tc.killMode != "" {
				dropIn += "KillMode=" + tc.killMode + "\n"
			}
			h.sh("mkdir -p /run/systemd/system/myapp.service.d && printf '" + dropIn + "' > /run/systemd/system/myapp.service.d/ov-test.conf && systemctl daemon-reload && systemctl start myapp")
			defer h.sh("rm -r /run/systemd/system/myapp.service.d && systemctl daemon-reload")
			h.waitJournal("server: ready")
			h.sh("systemctl stop myapp")
			h.waitInactive()
			j := h.waitJournal("server: shutting down")
			if !strings.Contains(j, "server: SIGUSR1") || strings.Contains(j, "server: SIGTERM") != tc.term {
				t.Errorf("want SIGUSR1 (forwarded by ov) and SIGTERM %v (sent by systemd); the app's log:\n%s", tc.term, j)
			}
		})
	}

	// Each refused key: the unit fails with 78, one line in the journal,
	// and is not restarted.
	for i, tc := range []struct {
		name, breakIt, fixIt, want string
	}{
		{"a 0644 key", "chmod 0644 /etc/ov/machine.kek", "chmod 0600 /etc/ov/machine.kek",
			"machine key has permissions 0644 — must be 0600"},
		{"a key owned by root", "chown root:root /etc/ov/machine.kek", "chown deploy:deploy /etc/ov/machine.kek",
			"machine key is owned by uid 0 but current uid is " + deployUID},
		{"a key in a directory deploy cannot search", "chmod 0700 /etc/ov", "chmod 0755 /etc/ov",
			`directory "/etc/ov" is not searchable by uid ` + deployUID},
	} {
		t.Run(tc.name+": 78, failed, not restarted", func(t *testing.T) {
			h := h.on(t)
			h.sh(tc.breakIt + " && systemctl start myapp")
			defer h.sh(tc.fixIt + " && systemctl reset-failed myapp")
			p := h.waitInactive()
			j := h.waitJournal(tc.want) // journald may store the line after the unit failed
			if p["ActiveState"] != "failed" || p["Result"] != "exit-code" || p["ExecMainStatus"] != "78" || p["NRestarts"] != "0" {
				t.Errorf("myapp: %v, want failed, exit-code, status 78, no restart", p)
			}
			if strings.Count(j, "\n") != 1 || !strings.Contains(j, tc.want) {
				t.Errorf("the journal of the start: %q, want one line with %q", j, tc.want)
			}
			if i == 0 {
				runBlock(t, blocks[1]) // the README's way to read this failure
				// Watched past the unit's RestartSec: no restart comes.
				delay, err := time.ParseDuration(h.show("RestartUSec")["RestartUSec"])
				if err != nil {
					t.Fatalf("the unit's RestartSec: %v", err)
				}
				time.Sleep(delay + time.Second)
				if q := h.show("ActiveState", "NRestarts", "InvocationID"); q["ActiveState"] != "failed" || q["NRestarts"] != "0" || q["InvocationID"] != p["InvocationID"] {
					t.Errorf("after RestartSec: %v, want still failed, no restart, the same invocation", q)
				}
			}
		})
	}

	t.Run("negative control: without RestartPreventExitStatus=78 it restarts", func(t *testing.T) {
		h := h.on(t)
		h.sh("mkdir -p /run/systemd/system/myapp.service.d && printf '[Service]\\nRestartPreventExitStatus=\\nRestartSec=100ms\\n' > /run/systemd/system/myapp.service.d/ov-test.conf && systemctl daemon-reload && chmod 0644 /etc/ov/machine.kek && systemctl start myapp")
		defer h.sh("systemctl stop myapp; rm -r /run/systemd/system/myapp.service.d && systemctl daemon-reload && chmod 0600 /etc/ov/machine.kek && systemctl reset-failed myapp")
		deadline := time.Now().Add(5 * time.Second)
		for {
			p := h.show("NRestarts", "ActiveState", "SubState")
			if p["NRestarts"] != "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no restart within 5s: %v; the check of RestartPreventExitStatus cannot see one", p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("the fixed key starts again", func(t *testing.T) {
		h := h.on(t)
		h.sh("systemctl start myapp")
		serverReport(t, h.waitJournal("server: ready"), deployUID+" (deploy)")
	})

	// Secrets as files: the drop-in, installed next to the unit by the
	// README's commands.
	t.Run("secrets as files: the drop-in gives the app NAME_FILE, deploy's 0400 files on tmpfs, no value in any environment", func(t *testing.T) {
		h := h.on(t)
		// The control: with the unit alone, the app's environment holds
		// the value, and the check of /proc/APP/environ sees it.
		h.waitJournal("server: ready")
		if _, app := h.appPID(); h.environ(app)["DATABASE_URL"] != deploySecrets["DATABASE_URL"] {
			t.Fatalf("control: with the unit alone, the app's environment does not hold DATABASE_URL: the check of /proc/%s/environ cannot see one", app)
		}

		if !dropInShown {
			t.Fatalf("README.md, systemd: no ```sh block installs %s", filepath.Base(systemdDropIn))
		}
		dockerAssertNoSecret(t, "the output of the README's commands", runBlock(t, dropInBlock), needles)
		dropIn, err := os.ReadFile(filepath.Join(repo, systemdDropIn))
		if err != nil {
			t.Fatal(err)
		}
		if got := h.sh("cat " + sdDropInPath); got != string(dropIn) {
			t.Errorf("%s is not %s as it is:\n%s", sdDropInPath, systemdDropIn, got)
		}
		want := map[string]string{
			"DropInPaths": sdDropInPath, "Environment": "OV_SECRETS_AS=files",
			"RuntimeDirectory": "ov", "RuntimeDirectoryMode": "0700", "RuntimeDirectoryPreserve": "no",
		}
		p := h.show(slices.Sorted(maps.Keys(want))...)
		for k, v := range want {
			if p[k] != v {
				t.Errorf("systemctl show -p %s myapp: %q, want %q", k, p[k], v)
			}
		}

		j := h.waitJournal("server: ready")
		ov, app := h.appPID()
		if !regexp.MustCompile(`(?m)^server: pid ` + app + `, ppid ` + ov + `, uid ` + deployUID + ` \(deploy\)$`).MatchString(j) {
			t.Errorf("the app (pid %s, the one child of ov, pid %s) did not report itself as deploy's:\n%s", app, ov, j)
		}
		if p := h.show("ActiveState", "SubState", "NRestarts"); p["ActiveState"] != "active" || p["SubState"] != "running" || p["NRestarts"] != "0" {
			t.Errorf("myapp: %v, want active, running, no restart", p)
		}
		env, ovEnv := h.environ(app), h.environ(ov)
		for name, value := range deploySecrets {
			file := "/run/ov/" + name
			sum := sha256.Sum256([]byte(value))
			hash := hex.EncodeToString(sum[:])
			if got, ok := env[name+"_FILE"]; got != file {
				t.Errorf("the app's environment: %s_FILE=%q (set: %v), want %s", name, got, ok, file)
			}
			if _, ok := env[name]; ok {
				t.Errorf("the app's environment holds %s", name)
			}
			if _, ok := ovEnv[name]; ok {
				t.Errorf("ov's environment holds %s", name)
			}
			if line := "server: " + name + "_FILE=" + file + " sha256 " + hash + "\n"; !strings.Contains(j, line) {
				t.Errorf("the app did not read myapp's %s from %s (want the line %q):\n%s", name, file, line, j)
			}
			if got := h.sh("sha256sum " + file); got != hash+"  "+file+"\n" {
				t.Errorf("sha256sum %s: %q, want the SHA-256 of myapp's %s, %s", file, got, name, hash)
			}
		}
		if !strings.Contains(j, "server: OTHER_SECRET is not set\n") {
			t.Errorf("the app got another app's secret:\n%s", j)
		}
		for k := range env {
			if strings.HasPrefix(k, "OV_") {
				t.Errorf("the app's environment holds ov's setting %s", k)
			}
		}
		if ovEnv["OV_SECRETS_AS"] != "files" {
			t.Errorf("ov's environment: OV_SECRETS_AS=%q, want files (the drop-in's Environment=)", ovEnv["OV_SECRETS_AS"])
		}
		for what, text := range map[string]string{
			"the app's /proc/PID/environ": h.sh("tr '\\0' '\\n' < /proc/" + app + "/environ"),
			"ov's /proc/PID/environ":      h.sh("tr '\\0' '\\n' < /proc/" + ov + "/environ"),
		} {
			dockerAssertNoSecret(t, what, text, needles)
		}

		if got, want := h.sh("stat -c '%a %U %G %F %n' /run/ov /run/ov/*"), "500 deploy deploy directory /run/ov\n"+
			"400 deploy deploy regular file /run/ov/API_TOKEN\n400 deploy deploy regular file /run/ov/DATABASE_URL\n"; got != want {
			t.Errorf("/run/ov and its files: %q, want %q", got, want)
		}
		if got := h.sh("ls -A /run/ov"); got != "API_TOKEN\nDATABASE_URL\n" {
			t.Errorf("/run/ov holds %q, want API_TOKEN and DATABASE_URL alone", got)
		}
		if fs := h.sh("stat -f -c %T /run/ov"); fs != "tmpfs\n" {
			t.Errorf("/run/ov is on %q, want tmpfs", fs)
		}
		// Another uid reads nothing.
		out, err := h.exec("", "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", "/run/ov/DATABASE_URL")
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("nobody reading /run/ov/DATABASE_URL: %v: %q, want permission denied", err, out)
		}
		dockerAssertNoSecret(t, "what nobody read", out, needles)
		dockerAssertNoSecret(t, "the journal", h.sh("journalctl --no-pager -u myapp"), needles)
	})

	t.Run("secrets as files: systemctl stop, Result=success, and /run/ov is gone", func(t *testing.T) {
		h := h.on(t)
		h.waitJournal("server: ready")
		if got := h.sh("ls -A /run/ov"); got != "API_TOKEN\nDATABASE_URL\n" {
			t.Fatalf("/run/ov holds %q, want API_TOKEN and DATABASE_URL", got)
		}
		h.sh("systemctl stop myapp")
		p := h.waitInactive()
		j := h.waitJournal("server: shutting down")
		if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["ExecMainStatus"] != "0" {
			t.Errorf("after systemctl stop: %v, want inactive, success, status 0", p)
		}
		if strings.Count(j, "server: SIGTERM") != 1 {
			t.Errorf("the app did not log exactly one SIGTERM:\n%s", j)
		}
		if got := h.sh("ls -la /run/ov 2>&1 || true"); !strings.Contains(got, "No such file or directory") {
			t.Errorf("/run/ov after systemctl stop:\n%s", got)
		}
	})

	// Who removes the files: ov, as soon as the app ends (with
	// RuntimeDirectoryPreserve=yes systemd leaves /run/ov, and it is
	// empty); systemd, when no process can (a SIGKILL of ov and the app),
	// as the unit stops: the files of a killed ov are still there when
	// systemd is told to preserve the directory (the negative control).
	// testDropIn adds a drop-in of the test's to the unit, and returns
	// what removes it, with what it left.
	testDropIn := func(h *sdHost, lines string) func() {
		h.sh("mkdir -p /run/systemd/system/myapp.service.d && printf '[Service]\\n" + lines + "' > /run/systemd/system/myapp.service.d/ov-test.conf && systemctl daemon-reload")
		return func() {
			h.sh("systemctl stop myapp; systemctl reset-failed myapp || true; rm -r /run/systemd/system/myapp.service.d && systemctl daemon-reload && rm -rf /run/ov")
		}
	}
	t.Run("secrets as files: ov removes the files when the app ends (RuntimeDirectoryPreserve=yes keeps /run/ov)", func(t *testing.T) {
		h := h.on(t)
		defer testDropIn(h, "RuntimeDirectoryPreserve=yes\\n")()
		h.sh("systemctl start myapp")
		h.waitJournal("server: ready")
		if got := h.sh("ls -A /run/ov"); got != "API_TOKEN\nDATABASE_URL\n" {
			t.Fatalf("/run/ov holds %q, want API_TOKEN and DATABASE_URL", got)
		}
		h.sh("systemctl stop myapp")
		if p := h.waitInactive(); p["Result"] != "success" {
			t.Errorf("after systemctl stop: %v, want success", p)
		}
		if got := h.sh("stat -c '%U %F' /run/ov && ls -A /run/ov"); got != "deploy directory\n" {
			t.Errorf("/run/ov, kept by systemd, after the app ended: %q, want deploy's directory, empty", got)
		}
	})
	for _, preserve := range []bool{false, true} {
		name := "secrets as files: SIGKILL of ov and the app, and systemd removes /run/ov with the files in it"
		// TimeoutStopSec=2s: systemd in a container on cgroup v1 gets no
		// notice that a cgroup emptied, and after a SIGKILL of all its
		// processes at once it sometimes waits in stop-sigkill for the
		// timeout (90 s by default) though none is left.
		lines := "TimeoutStopSec=2s\\n"
		if preserve {
			name = "negative control: with RuntimeDirectoryPreserve=yes the files of a SIGKILLed ov stay"
			lines += "RuntimeDirectoryPreserve=yes\\n"
		}
		t.Run(name, func(t *testing.T) {
			h := h.on(t)
			defer testDropIn(h, lines)()
			h.sh("systemctl start myapp")
			h.waitJournal("server: ready")
			if got := h.sh("ls -A /run/ov"); got != "API_TOKEN\nDATABASE_URL\n" {
				t.Fatalf("/run/ov holds %q, want API_TOKEN and DATABASE_URL", got)
			}
			h.sh("systemctl kill -s KILL myapp")
			// Restart=on-failure: the unit waits RestartSec to start
			// again, with the directory of the killed one removed.
			killed := time.Now()
			for {
				p := h.show("ActiveState", "SubState", "Result")
				if p["SubState"] == "auto-restart" && p["Result"] == "signal" {
					break
				}
				if time.Since(killed) > 10*time.Second {
					t.Fatalf("myapp after SIGKILL: %v, want auto-restart, Result=signal", p)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("myapp in auto-restart %v after the SIGKILL", time.Since(killed).Round(time.Millisecond))
			got := h.sh("ls -A /run/ov 2>&1 || true")
			if want := "API_TOKEN\nDATABASE_URL\n"; preserve && got != want {
				t.Errorf("/run/ov, kept by systemd, after a SIGKILL of ov: %q, want the files ov could not remove, %q", got, want)
			}
			if !preserve && !strings.Contains(got, "No such file or directory") {
				t.Errorf("/run/ov after a SIGKILL of ov and the app: %q, want it removed by systemd", got)
			}
		})
	}

	stop := time.Now()
	if out, err := run(repo, "docker", "stop", "-t", "20", h.name); err != nil {
		t.Errorf("docker stop: %v: %s", err, out)
	}
	t.Logf("docker stop (SIGRTMIN+3: systemd shuts down) took %v", time.Since(stop).Round(time.Millisecond))
}
