package container

// Kubernetes: no cluster runs here, so these tests rebuild what the kubelet
// makes of deploy/kubernetes/ov-init-example.yaml and run it on Docker:
// the secret volume's symlink farm on a tmpfs, root-owned, with the mode of
// defaultMode (and group-read with fsGroup); subPath's bind mount of the
// regular file the links lead to; and the container's command and
// securityContext read from the manifest itself, so the manifest cannot
// drift from what is tested.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ory/dockertest/v3/docker"
	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/vault"
)

// The example manifests, relative to the repository root.
const (
	k8sManifest        = "deploy/kubernetes/ov-init-example.yaml"
	k8sSecretsManifest = "deploy/kubernetes/machine-key-and-vault.example.yaml"
)

// k8sTimestampDir is the kubelet's name for one version of a volume's
// files; ..data points to it, and each file name to ..data/NAME.
const k8sTimestampDir = "..2026_11_28_12_00_00.123456789"

// k8sFSGroup is the gid an fsGroup would give the volume's files.
const k8sFSGroup = 2000

// k8sSecrets are the secrets of the manifest's app in the test's vault.
var k8sSecrets = map[string]string{
	"DATABASE_URL": "postgres://myapp:ovsec-k8s-61c0@db/myapp",
	"API_TOKEN":    "ovsec-k8s-token-d2e7",
}

// k8sRecipe is what the tests take from the manifest.
type k8sRecipe struct {
	command     []string // the container's command: ov-init and its flags
	app         string   // its --app
	defaultMode os.FileMode
	keyPath     string // mountPath of the key (subPath machine.kek)
	vaultPath   string // mountPath of the vault (subPath vault.json)
	capDrop     []string
	capAdd      []string
}

// k8sValues returns the values of every `key: value` line of a YAML text
// (list items "- key: value" too), comments stripped. The manifests are
// plain enough for this, and it keeps a YAML library out of go.mod.
func k8sValues(text, key string) []string {
	var vals []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		line = strings.TrimPrefix(line, "- ")
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

// readK8sRecipe reads the manifest and fails the test if it strays from
// the recipe of DESIGN.md ("Where it runs").
func readK8sRecipe(t *testing.T) k8sRecipe {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, k8sManifest))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	one := func(key string) string {
		t.Helper()
		v := k8sValues(text, key)
		if len(v) != 1 {
			t.Fatalf("%s: want one %q, found %q", k8sManifest, key, v)
		}
		return v[0]
	}
	list := func(key string) []string {
		t.Helper()
		var l []string
		if err := json.Unmarshal([]byte(one(key)), &l); err != nil {
			t.Fatalf("%s: %s is not a [\"…\"] list: %v", k8sManifest, key, err)
		}
		return l
	}
	var r k8sRecipe
	r.command = list("command")
	if i := slices.Index(r.command, "--app"); i >= 0 && i+1 < len(r.command) {
		r.app = r.command[i+1]
	}
	if i := slices.Index(r.command, "--user"); i < 0 || i+1 >= len(r.command) || r.command[i+1] != "10001:10001" || r.app == "" || r.command[len(r.command)-1] != "--" {
		t.Fatalf("%s: the command should be ov-init --user 10001:10001 --app APP --, is %q", k8sManifest, r.command)
	}
	mode, err := strconv.ParseUint(one("defaultMode"), 0, 32) // "0600": octal, as Kubernetes' YAML
	if err != nil {
		t.Fatalf("%s: defaultMode: %v", k8sManifest, err)
	}
	r.defaultMode = os.FileMode(mode)
	mounts, subPaths := k8sValues(text, "mountPath"), k8sValues(text, "subPath")
	if !slices.Equal(subPaths, []string{"machine.kek", "vault.json"}) || len(mounts) != 2 {
		t.Fatalf("%s: want the key and the vault mounted with subPath machine.kek and vault.json, found mountPath %q, subPath %q", k8sManifest, mounts, subPaths)
	}
	r.keyPath, r.vaultPath = mounts[0], mounts[1]
	r.capDrop, r.capAdd = list("drop"), list("add")
	for key, want := range map[string]string{
		"runAsUser":                    "0",
		"runAsGroup":                   "0",
		"automountServiceAccountToken": "false",
		"allowPrivilegeEscalation":     "false",
		"readOnlyRootFilesystem":       "true",
	} {
		if got := one(key); got != want {
			t.Errorf("%s: %s is %s, want %s", k8sManifest, key, got, want)
		}
	}
	if v := k8sValues(text, "fsGroup"); len(v) > 0 {
		t.Errorf("%s: fsGroup %v makes the key 0640, which ov-init refuses", k8sManifest, v)
	}
	return r
}

// TestKubernetesManifestIsTheRecipe holds the example manifests to the
// recipe: key by subPath at ov-init's default path, defaultMode 0600, no
// fsGroup, ov-init as root dropping the app to 10001, no API token; and the
// Secret's key named as the subPath says.
func TestKubernetesManifestIsTheRecipe(t *testing.T) {
	r := readK8sRecipe(t)
	if r.defaultMode != 0o600 || r.keyPath != "/run/secrets/machine.kek" || r.vaultPath != "/etc/ov/vault.json" {
		t.Errorf("defaultMode %04o, key at %s, vault at %s", r.defaultMode, r.keyPath, r.vaultPath)
	}
	b, err := os.ReadFile(filepath.Join(repo, k8sSecretsManifest))
	if err != nil {
		t.Fatal(err)
	}
	if len(k8sValues(string(b), "machine.kek")) != 1 || len(k8sValues(string(b), "vault.json")) != 1 {
		t.Errorf("%s: the Secret needs the key machine.kek and the ConfigMap vault.json, the subPaths of %s", k8sSecretsManifest, k8sManifest)
	}
}

// k8sVolume lays files out as the kubelet lays out a secret or configMap
// volume, on a tmpfs of its own (unmounted when the test ends):
//
//	..2026_11_28_12_00_00.123456789/NAME   regular file, uid 0, gid, mode
//	..data -> ..2026_11_28_12_00_00.123456789
//	NAME -> ..data/NAME
func k8sVolume(t *testing.T, files map[string][]byte, mode os.FileMode, gid int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "volume")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0755"); err != nil {
		t.Fatalf("mounting a tmpfs (needs root, CAP_SYS_ADMIN): %v", err)
	}
	// Registered before any container is made, so it runs after they are
	// removed; a detach covers a mount a container still pins.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			if err2 := unix.Unmount(dir, unix.MNT_DETACH); err2 != nil {
				t.Errorf("unmounting %s: %v, %v", dir, err, err2)
			}
		}
	})
	ts := filepath.Join(dir, k8sTimestampDir)
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(ts, name)
		if err := os.WriteFile(p, content, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(k8sTimestampDir, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// k8sSubPath is the file a subPath mount of name in volume shows the
// container: the regular file the volume's links lead to.
func k8sSubPath(t *testing.T, volume, name string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(filepath.Join(volume, name))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s is not a regular file: %v", p, err)
	}
	return p
}

// k8sPod is one container of the manifest's pod, on Docker.
type k8sPod struct {
	recipe  k8sRecipe
	binds   []string // host:container:ro
	user    string   // runAsUser:runAsGroup; "0:0" unless a test changes it
	capAdd  []string
	cmd     []string // args: the app
	env     []string
	keyFile string // the machine key, as `ov auth derive-machine-key` wrote it
}

// newK8sPod returns the manifest's container with the key and the vault
// mounted as the manifest mounts them: both with subPath, the key from a
// secret volume with defaultMode, the vault from a configMap volume.
func newK8sPod(t *testing.T) *k8sPod {
	t.Helper()
	r := readK8sRecipe(t)
	dir := t.TempDir()
	vaultPath, keyPath := filepath.Join(dir, "vault.json"), filepath.Join(dir, "machine.kek")
	newExampleVault(t, vaultPath, keyPath, r.app, k8sSecrets)
	// The ConfigMap holds what deploy/kubernetes/README.md puts there: the
	// export of the app, not the vault.
	vaultVolume := k8sVolume(t, map[string][]byte{"vault.json": exportExampleVault(t, vaultPath, r.app)}, 0o644, 0)
	p := &k8sPod{recipe: r, user: "0:0", capAdd: r.capAdd, keyFile: keyPath}
	p.binds = []string{k8sSubPath(t, vaultVolume, "vault.json") + ":" + r.vaultPath + ":ro"}
	return p
}

// exportExampleVault returns the export of app from the vault that
// newExampleVault wrote at vaultPath, as `ov vault export` writes it.
func exportExampleVault(t *testing.T, vaultPath, app string) []byte {
	t.Helper()
	v, err := vault.Load(vaultPath)
	if err != nil {
		t.Fatal(err)
	}
	root, err := v.Unlock([]byte(exampleVaultPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Wipe()
	exp, err := v.Export(root, app)
	if err != nil {
		t.Fatal(err)
	}
	b, err := exp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secretVolume mounts the key from a secret volume of the given mode and
// gid: with subPath (the recipe) or, without, the whole volume as a
// directory at the key's directory.
func (p *k8sPod) secretVolume(t *testing.T, mode os.FileMode, gid int, subPath bool) {
	t.Helper()
	key, err := os.ReadFile(p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	vol := k8sVolume(t, map[string][]byte{"machine.kek": key}, mode, gid)
	if subPath {
		p.binds = append(p.binds, k8sSubPath(t, vol, "machine.kek")+":"+p.recipe.keyPath+":ro")
	} else {
		p.binds = append(p.binds, vol+":"+filepath.Dir(p.recipe.keyPath)+":ro")
	}
}

// start creates and starts the container; it is removed when the test ends.
func (p *k8sPod) start(t *testing.T) string {
	t.Helper()
	c, err := pool.Client.CreateContainer(docker.CreateContainerOptions{
		Config: &docker.Config{
			Image:      appImage,
			Entrypoint: p.recipe.command,
			Cmd:        p.cmd,
			Env:        p.env,
			User:       p.user,
		},
		HostConfig: &docker.HostConfig{
			NetworkMode:    "none",
			Binds:          p.binds,
			CapDrop:        p.recipe.capDrop,
			CapAdd:         p.capAdd,
			SecurityOpt:    []string{"no-new-privileges"}, // allowPrivilegeEscalation: false
			ReadonlyRootfs: true,
		},
	})
	if err != nil {
		t.Fatalf("creating the container: %v", err)
	}
	t.Cleanup(func() {
		err := pool.Client.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true})
		var gone *docker.NoSuchContainer
		if err != nil && !errors.As(err, &gone) {
			t.Errorf("removing container %.12s: %v", c.ID, err)
		}
	})
	if err := pool.Client.StartContainer(c.ID, nil); err != nil {
		t.Fatalf("starting the container: %v", err)
	}
	return c.ID
}

// k8sWait waits for the container to exit and returns its status and output.
func k8sWait(t *testing.T, id string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := pool.Client.WaitContainerWithContext(id, ctx)
	stdout, stderr = containerOutput(t, id)
	if err != nil {
		t.Fatalf("container %.12s did not exit: %v\nstdout: %s\nstderr: %s", id, err, stdout, stderr)
	}
	return code, stdout, stderr
}

// run starts the container and waits for it to exit.
func (p *k8sPod) run(t *testing.T) (code int, stdout, stderr string) {
	t.Helper()
	return k8sWait(t, p.start(t))
}

// TestKubernetesSubPathRecipeInjectsSecretsAndHidesTheKey runs the
// manifest's container with the key mounted by subPath: the app gets its
// secrets, runs as 10001 under ov-init as PID 1, and cannot open the key.
func TestKubernetesSubPathRecipeInjectsSecretsAndHidesTheKey(t *testing.T) {
	requireDocker(t)
	p := newK8sPod(t)
	p.secretVolume(t, p.recipe.defaultMode, 0, true)

	p.cmd = []string{"/app/helper", "env"}
	code, stdout, stderr := p.run(t)
	env := dockerHelperEnv(t, stdout)
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	for name, value := range k8sSecrets {
		if env[name] != value {
			t.Errorf("%s = %q, want %q", name, env[name], value)
		}
	}

	p.cmd = []string{"/app/helper", "status"}
	p.env = []string{"HELPER_TRY_READ=" + p.recipe.keyPath}
	code, stdout, stderr = p.run(t)
	for _, want := range []string{
		"Uid: 10001 10001 10001 10001",
		"Gid: 10001 10001 10001 10001",
		"ppid: 1",
		"read: open " + p.recipe.keyPath + ": permission denied",
	} {
		if !strings.Contains(stdout, want+"\n") {
			t.Errorf("no %q in the app's status (exit %d):\n%s%s", want, code, stdout, stderr)
		}
	}
}

// TestKubernetesStopReachesTheAppOnlyWithCapKill: with the manifest's
// capabilities a TERM (kubectl delete pod, docker stop) reaches the app,
// which runs as another uid; without KILL it cannot (negative control: the
// reason KILL is in the manifest).
func TestKubernetesStopReachesTheAppOnlyWithCapKill(t *testing.T) {
	requireDocker(t)
	for _, withKill := range []bool{true, false} {
		t.Run("KILL="+strconv.FormatBool(withKill), func(t *testing.T) {
			p := newK8sPod(t)
			p.secretVolume(t, p.recipe.defaultMode, 0, true)
			if !withKill {
				p.capAdd = slices.DeleteFunc(slices.Clone(p.capAdd), func(c string) bool { return c == "KILL" })
			}
			p.cmd = []string{"/app/helper", "signals"}
			p.env = []string{"HELPER_EXIT_ON_TERM=0"}
			id := p.start(t)
			k8sWaitOutput(t, id, "ready\n")
			if err := pool.Client.KillContainer(docker.KillContainerOptions{ID: id, Signal: docker.SIGTERM}); err != nil {
				t.Fatal(err)
			}
			if withKill {
				code, stdout, stderr := k8sWait(t, id)
				if code != 0 || !strings.Contains(stdout, "SIGTERM|15\n") {
					t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
				}
				return
			}
			time.Sleep(time.Second)
			if stdout, _ := containerOutput(t, id); strings.Contains(stdout, "SIGTERM") {
				t.Errorf("without CAP_KILL the TERM still reached the app: the manifest's KILL is not needed\n%s", stdout)
			}
		})
	}
}

// k8sWaitOutput waits until the container's stdout holds want.
func k8sWaitOutput(t *testing.T, id, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		stdout, stderr := containerOutput(t, id)
		if strings.Contains(stdout, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q on stdout within 15s\nstdout: %s\nstderr: %s", want, stdout, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKubernetesKeyOutsideTheRecipeIsRefused: each way of straying from
// the recipe stops the pod with status 78 before the app starts, with the
// message that names the fix.
func TestKubernetesKeyOutsideTheRecipeIsRefused(t *testing.T) {
	requireDocker(t)
	for _, c := range []struct {
		name    string
		mode    os.FileMode
		gid     int
		subPath bool
		user    string
		want    []string
	}{
		{name: "secret volume without subPath: a symlink", mode: 0o600, subPath: false, user: "0:0",
			want: []string{"opening machine key: too many levels of symbolic links", "subPath"}},
		{name: "fsGroup adds group-read: 0640", mode: 0o640, gid: k8sFSGroup, subPath: true, user: "0:0",
			want: []string{"machine key has permissions 0640 — must be 0600"}},
		{name: "defaultMode left out: 0644", mode: 0o644, subPath: true, user: "0:0",
			want: []string{"machine key has permissions 0644 — must be 0600"}},
		{name: "runAsUser 10001 instead of 0", mode: 0o600, subPath: true, user: "10001:10001",
			want: []string{"machine key is owned by uid 0 but current uid is 10001", "run ov-init as root with --user"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newK8sPod(t)
			p.secretVolume(t, c.mode, c.gid, c.subPath)
			p.user = c.user
			p.cmd = []string{"/app/helper", "env"}
			code, stdout, stderr := p.run(t)
			if code != 78 || stdout != "" {
				t.Errorf("exit %d, want 78, and no output from the app; stdout: %q", code, stdout)
			}
			for _, want := range c.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if n := bytes.Count([]byte(stderr), []byte("\n")); n != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", n, stderr)
			}
		})
	}
}
