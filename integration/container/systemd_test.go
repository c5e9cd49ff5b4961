package container

// The README's systemd recipe on a real systemd: systemd as PID 1 of a
// container (no --privileged; see testdata/systemd/entrypoint) on the
// local bookworm image with systemd that scripts/debian-images builds. The
// README's commands run in it as root, as written: they install the
// static ov and deploy/systemd/myapp.service as they are, create the user
// deploy, derive its key and export the vault. The unit then runs the test
// app (testdata/server) as /opt/myapp/server; what it does is read with
// systemctl show and journalctl -u myapp. Containers and images are named
// ov-sd-…, networking off, removed at the end.

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
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

// journal returns what the service's invocation id wrote (its stdout and
// stderr, as journalctl -u myapp shows them, without systemd's own lines).
func (h *sdHost) journal(id string) string {
	h.t.Helper()
	return h.sh("journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=" + id)
}

// waitJournal waits until the current invocation of myapp wrote want, and
// returns its journal.
func (h *sdHost) waitJournal(want string) string {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		id := h.show("InvocationID")["InvocationID"]
		j := h.journal(id)
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
// (without it, it restarts: the negative control).
func TestSystemdUnitFromTheReadmeRunsTheAppAndStopsOnAConfigError(t *testing.T) {
	requireDebianImages(t)
	fences := readmeSection(t, "systemd")
	var blocks []readmeFence
	for _, f := range fences {
		if f.lang == "sh" {
			blocks = append(blocks, f)
		}
	}
	if len(blocks) != 2 {
		t.Fatalf("README.md, systemd: %d ```sh blocks, want 2: the host's set-up, and reading a failure", len(blocks))
	}
	v := deployVault(t)
	h, boot := sdBoot(t, sdImage(t, v))
	t.Logf("systemd booted to running in %v from docker run; systemd-analyze: %s", boot.Round(time.Millisecond), strings.TrimSpace(h.sh("systemd-analyze time | head -n 1")))
	runBlock := func(f readmeFence) string {
		t.Helper()
		out := readmeRunBlock(t, f, strings.NewReplacer(), func(script string) (string, error) {
			return h.exec(script, "bash", "-euo", "pipefail")
		})
		t.Logf("output of a README block:\n%s", out)
		return out
	}

	// The README's set-up, as written.
	setup := runBlock(blocks[0])
	deployUID := strings.TrimSpace(h.sh("id -u deploy"))
	needles := deployNeedles(t)
	dockerAssertNoSecret(t, "the output of the README's commands", setup, needles)
	key := h.sh("stat -c '%a %U %G' /etc/ov/machine.kek /etc/ov /etc/ov/vault.json")
	if key != "600 deploy deploy\n755 root root\n644 root root\n" {
		t.Errorf("key, directory, vault: %q, want 0600 deploy's, 0755 root's, 0644 root's", key)
	}

	t.Run("the app runs as deploy with its secrets", func(t *testing.T) {
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
				runBlock(blocks[1]) // the README's way to read this failure
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
		h.sh("systemctl start myapp")
		serverReport(t, h.waitJournal("server: ready"), deployUID+" (deploy)")
	})

	stop := time.Now()
	if out, err := run(repo, "docker", "stop", "-t", "20", h.name); err != nil {
		t.Errorf("docker stop: %v: %s", err, out)
	}
	t.Logf("docker stop (SIGRTMIN+3: systemd shuts down) took %v", time.Since(stop).Round(time.Millisecond))
}
