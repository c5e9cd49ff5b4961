package container

// Kubernetes: no cluster runs here, so these tests rebuild what the kubelet
// makes of deploy/kubernetes/ov-init-example.yaml and
// ov-init-files-example.yaml and run it on Docker: the secret volume's
// symlink farm on a tmpfs, root-owned, with the mode of defaultMode (and
// group-read with fsGroup); subPath's bind mount of the regular file the
// links lead to; an emptyDir with medium: Memory, a tmpfs mounted as the
// kubelet mounts it; and the containers' commands and securityContexts read
// from the manifests themselves, so a manifest cannot drift from what is
// tested.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ory/dockertest/v3/docker"
	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/secretfiles"
	"github.com/ov-init/ov-init/vault"
)

// The example manifests, relative to the repository root.
const (
	k8sManifest        = "deploy/kubernetes/ov-init-example.yaml"
	k8sFilesManifest   = "deploy/kubernetes/ov-init-files-example.yaml" // secrets as files
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

// k8sRecipe is what the tests take from a manifest: its one container,
// ov-init's, and the init containers that prepare its volumes.
type k8sRecipe struct {
	command     []string // the container's command: ov-init and its flags
	app         string   // its --app
	env         []string // the container's env, NAME=value
	defaultMode os.FileMode
	keyPath     string // mountPath of the key (subPath machine.kek)
	vaultPath   string // mountPath of the vault (subPath vault.json)
	capDrop     []string
	capAdd      []string
	secretsDir  string // mountPath of the emptyDir with medium: Memory; "" without one
	sizeLimit   string // that emptyDir's sizeLimit
	inits       []k8sInit
}

// k8sInit is an init container of the manifest, which mounts the emptyDir:
// the tests run it on the emptyDir, with its settings, before ov-init's
// container, as the kubelet does.
type k8sInit struct {
	name       string
	image      string
	command    []string
	user       string // runAsUser:runAsGroup
	capDrop    []string
	capAdd     []string
	readOnly   bool   // readOnlyRootFilesystem
	noNewPrivs bool   // allowPrivilegeEscalation: false
	mountPath  string // where it mounts the emptyDir
}

// k8sValues returns the values of every `key: value` line of a YAML text
// (list items "- key: value" too), comments stripped. The manifests are
// plain enough for this, and it keeps a YAML library out of go.mod.
func k8sValues(text, key string) []string {
	var vals []string
	for _, line := range strings.Split(text, "\n") {
		line = k8sStrip(line)
		line = strings.TrimPrefix(line, "- ")
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

// k8sStrip returns a YAML line without its indentation and its comment.
func k8sStrip(line string) string {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "#") {
		return ""
	}
	if i := strings.Index(line, " #"); i >= 0 {
		line = strings.TrimSpace(line[:i])
	}
	return line
}

// k8sItems returns the items of the block list under the first line
// "key:" of a YAML text, each as its own text: enough to tell one
// container, volume mount or volume from the next with k8sValues.
func k8sItems(text, key string) []string {
	lines := strings.Split(text, "\n")
	indent := func(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }
	start, keyIndent := -1, 0
	for i, line := range lines {
		if k8sStrip(line) == key+":" {
			start, keyIndent = i, indent(line)
			break
		}
	}
	if start < 0 {
		return nil
	}
	var items []string
	var cur []string
	itemIndent := -1
	for _, line := range lines[start+1:] {
		s := k8sStrip(line)
		if s == "" {
			continue
		}
		in, item := indent(line), strings.HasPrefix(s, "- ")
		if in < keyIndent || (in == keyIndent && !item) {
			break
		}
		if item && (itemIndent < 0 || in == itemIndent) {
			itemIndent = in
			if cur != nil {
				items = append(items, strings.Join(cur, "\n"))
			}
			cur = []string{line}
			continue
		}
		if itemIndent < 0 || in <= itemIndent {
			break
		}
		cur = append(cur, line)
	}
	if cur != nil {
		items = append(items, strings.Join(cur, "\n"))
	}
	return items
}

// k8sName is the name of a list item of k8sItems: its first line's.
func k8sName(item string) string {
	first, _, _ := strings.Cut(item, "\n")
	name, _ := strings.CutPrefix(k8sStrip(first), "- name:")
	return strings.TrimSpace(name)
}

// k8sText reads a manifest and returns helpers that fail the test unless
// a text holds one `key: value` (one), and unless that value is a
// ["…"] list (list).
func k8sText(t *testing.T, manifest string) (text string, one func(text, key string) string, list func(text, key string) []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, manifest))
	if err != nil {
		t.Fatal(err)
	}
	one = func(text, key string) string {
		t.Helper()
		v := k8sValues(text, key)
		if len(v) != 1 {
			t.Fatalf("%s: want one %q, found %q", manifest, key, v)
		}
		return v[0]
	}
	list = func(text, key string) []string {
		t.Helper()
		var l []string
		if err := json.Unmarshal([]byte(one(text, key)), &l); err != nil {
			t.Fatalf("%s: %s is not a [\"…\"] list: %v", manifest, key, err)
		}
		return l
	}
	return string(b), one, list
}

// readK8sRecipe reads a manifest and fails the test if it strays from
// the recipe of DESIGN.md ("Where it runs").
func readK8sRecipe(t *testing.T, manifest string) k8sRecipe {
	t.Helper()
	text, one, list := k8sText(t, manifest)
	containers := k8sItems(text, "containers")
	if len(containers) != 1 {
		t.Fatalf("%s: want one container, ov-init's, found %d", manifest, len(containers))
	}
	c := containers[0]
	var r k8sRecipe
	r.command = list(c, "command")
	if i := slices.Index(r.command, "--app"); i >= 0 && i+1 < len(r.command) {
		r.app = r.command[i+1]
	}
	if i := slices.Index(r.command, "--user"); i < 0 || i+1 >= len(r.command) || r.command[i+1] != "10001:10001" || r.app == "" || r.command[len(r.command)-1] != "--" {
		t.Fatalf("%s: the command should be ov-init --user 10001:10001 --app APP --, is %q", manifest, r.command)
	}
	for _, e := range k8sItems(c, "env") {
		r.env = append(r.env, k8sName(e)+"="+one(e, "value"))
	}
	volumes := map[string]string{}
	for _, v := range k8sItems(text, "volumes") {
		volumes[k8sName(v)] = v
	}
	var subPaths []string
	for _, m := range k8sItems(c, "volumeMounts") {
		name, path, sub := k8sName(m), one(m, "mountPath"), k8sValues(m, "subPath")
		v, ok := volumes[name]
		switch {
		case !ok:
			t.Fatalf("%s: volumeMount %s names no volume", manifest, name)
		case len(sub) == 1 && sub[0] == "machine.kek" && len(k8sValues(v, "secret")) == 1:
			mode, err := strconv.ParseUint(one(v, "defaultMode"), 0, 32) // "0600": octal, as Kubernetes' YAML
			if err != nil {
				t.Fatalf("%s: defaultMode: %v", manifest, err)
			}
			r.keyPath, r.defaultMode = path, os.FileMode(mode)
		case len(sub) == 1 && sub[0] == "vault.json" && len(k8sValues(v, "configMap")) == 1:
			r.vaultPath = path
		case len(sub) == 0 && len(k8sValues(v, "emptyDir")) == 1 && r.secretsDir == "":
			if got := one(v, "medium"); got != "Memory" {
				t.Fatalf("%s: the emptyDir %s has medium %s: ov-init writes secrets only to an in-memory file system", manifest, name, got)
			}
			r.secretsDir, r.sizeLimit = path, one(v, "sizeLimit")
			for _, ic := range k8sItems(text, "initContainers") {
				r.inits = append(r.inits, readK8sInit(t, manifest, ic, name, one, list))
			}
		default:
			t.Fatalf("%s: volumeMount %s at %s is not part of the recipe", manifest, name, path)
		}
		subPaths = append(subPaths, sub...)
	}
	if !slices.Equal(subPaths, []string{"machine.kek", "vault.json"}) || r.keyPath == "" || r.vaultPath == "" {
		t.Fatalf("%s: want the key and the vault mounted with subPath machine.kek and vault.json, from a secret and a configMap volume, found subPath %q", manifest, subPaths)
	}
	r.capDrop, r.capAdd = list(c, "drop"), list(c, "add")
	for key, want := range map[string]string{
		"runAsUser":                "0",
		"runAsGroup":               "0",
		"allowPrivilegeEscalation": "false",
		"readOnlyRootFilesystem":   "true",
	} {
		if got := one(c, key); got != want {
			t.Errorf("%s: %s is %s, want %s", manifest, key, got, want)
		}
	}
	if got := one(text, "automountServiceAccountToken"); got != "false" {
		t.Errorf("%s: automountServiceAccountToken is %s, want false", manifest, got)
	}
	if v := k8sValues(text, "fsGroup"); len(v) > 0 {
		t.Errorf("%s: fsGroup %v makes the key 0640, which ov-init refuses", manifest, v)
	}
	return r
}

// readK8sInit reads an init container that mounts the volume named volume,
// with k8sText's helpers.
func readK8sInit(t *testing.T, manifest, ic, volume string, one func(text, key string) string, list func(text, key string) []string) k8sInit {
	t.Helper()
	in := k8sInit{name: k8sName(ic), image: one(ic, "image"), command: list(ic, "command"),
		user: one(ic, "runAsUser") + ":" + one(ic, "runAsGroup"), capDrop: list(ic, "drop")}
	if len(k8sValues(ic, "add")) > 0 {
		in.capAdd = list(ic, "add")
	}
	in.readOnly = one(ic, "readOnlyRootFilesystem") == "true"
	in.noNewPrivs = one(ic, "allowPrivilegeEscalation") == "false"
	for _, m := range k8sItems(ic, "volumeMounts") {
		if k8sName(m) == volume {
			in.mountPath = one(m, "mountPath")
		}
	}
	if in.mountPath == "" {
		t.Fatalf("%s: init container %s does not mount %s", manifest, in.name, volume)
	}
	return in
}

// TestKubernetesManifestIsTheRecipe holds both example manifests (secrets
// in the environment, and as files) to the recipe: key by subPath at
// ov-init's default path, defaultMode 0600, no fsGroup, ov-init as root
// dropping the app to 10001, no API token; and the Secret's key named as
// the subPath says.
func TestKubernetesManifestIsTheRecipe(t *testing.T) {
	for _, manifest := range []string{k8sManifest, k8sFilesManifest} {
		r := readK8sRecipe(t, manifest)
		if r.defaultMode != 0o600 || r.keyPath != "/run/secrets/machine.kek" || r.vaultPath != "/etc/ov/vault.json" {
			t.Errorf("%s: defaultMode %04o, key at %s, vault at %s", manifest, r.defaultMode, r.keyPath, r.vaultPath)
		}
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
	env     []string // besides the manifest's
	keyFile string   // the machine key, as `ov auth derive-machine-key` wrote it
	name    string   // the containers' name prefix; Docker names them when ""
}

// newK8sPod returns the manifest's container with the key and the vault
// mounted as the manifest mounts them: both with subPath, the key from a
// secret volume with defaultMode, the vault from a configMap volume.
func newK8sPod(t *testing.T, manifest string) *k8sPod {
	t.Helper()
	r := readK8sRecipe(t, manifest)
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
	return dockerCreateAndStart(t, "the container", docker.CreateContainerOptions{
		Name: k8sContainerName(p.name),
		Config: &docker.Config{
			Image:      appImage,
			Entrypoint: p.recipe.command,
			Cmd:        p.cmd,
			Env:        append(slices.Clone(p.recipe.env), p.env...),
			User:       p.user,
			Labels:     map[string]string{dockerTestLabel: t.Name()},
		},
		HostConfig: &docker.HostConfig{
			NetworkMode:    "none",
			Binds:          p.binds,
			CapDrop:        p.recipe.capDrop,
			CapAdd:         p.capAdd,
			SecurityOpt:    []string{"no-new-privileges"}, // allowPrivilegeEscalation: false
			ReadonlyRootfs: true,
		},
	}).ID
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
	p := newK8sPod(t, k8sManifest)
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
			p := newK8sPod(t, k8sManifest)
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
			p := newK8sPod(t, k8sManifest)
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

// k8sContainerName returns prefix and a random suffix, or "" (Docker then
// names the container) when prefix is "".
func k8sContainerName(prefix string) string {
	if prefix == "" {
		return ""
	}
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// k8sTestName is the name prefix of the test's containers: ov-rc-k8s- and
// the test's name.
func k8sTestName(t *testing.T) string {
	name := "ov-rc-k8s-" + strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	return strings.TrimRight(name[:min(len(name), 100)], "-")
}

// k8sQuantity is a Kubernetes quantity such as sizeLimit's, in bytes: a
// number with no suffix or with Ki, Mi or Gi (the manifests use no other).
func k8sQuantity(t *testing.T, q string) int64 {
	t.Helper()
	unit := int64(1)
	for suffix, u := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			q, unit = n, u
		}
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("quantity %q: want a number of bytes, Ki, Mi or Gi", q)
	}
	return n * unit
}

// k8sEmptyDirMemory makes what the kubelet makes of an emptyDir with
// medium: Memory (pkg/volume/emptydir, setupTmpfs): a directory, mode 0777
// (setupDir), with a tmpfs mounted over it whose options are size=, the
// sizeLimit in bytes (the manifests set no memory limit, which would lower
// it), and noswap where the kernel has it (6.4 and later), nothing else.
// Without a mode= option the tmpfs's root has tmpfs's own default: 1777,
// root's. Unmounted when the test ends, after its containers are removed.
func k8sEmptyDirMemory(t *testing.T, sizeLimit string) string {
	t.Helper()
	size := k8sQuantity(t, sizeLimit)
	dir := filepath.Join(t.TempDir(), "empty-dir")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // past the umask, as setupDir
		t.Fatal(err)
	}
	opts := fmt.Sprintf("size=%d", size)
	err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts+",noswap")
	if err == unix.EINVAL { // a kernel before 6.4: the kubelet leaves noswap out
		err = unix.Mount("tmpfs", dir, "tmpfs", 0, opts)
	}
	if err != nil {
		t.Fatalf("mounting a tmpfs (needs root, CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			if err2 := unix.Unmount(dir, unix.MNT_DETACH); err2 != nil {
				t.Errorf("unmounting %s: %v, %v", dir, err, err2)
			}
		}
	})
	return dir
}

// k8sDirMode is a directory's mode and owner as the host sees them:
// "1777 0:0".
func k8sDirMode(t *testing.T, dir string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%04o %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
}

// k8sEntries lists a directory from the host: each name with its mode and
// owner ("0400 10001:10001"), or its type when it is not a regular file.
func k8sEntries(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.Name()), &st); err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fmt.Sprintf("%04o %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			m[e.Name()] += fmt.Sprintf(" type %#o", st.Mode&unix.S_IFMT)
		}
	}
	return m
}

// k8sRunInit runs an init container of the manifest on the emptyDir, with
// its image, command, user and securityContext, and fails the test unless
// it exits 0. Nothing is pulled here: the image must be on the daemon
// (scripts/debian-images tags debian:bookworm-slim).
func k8sRunInit(t *testing.T, in k8sInit, emptyDir string) {
	t.Helper()
	if _, err := pool.Client.InspectImage(in.image); err != nil {
		msg := fmt.Sprintf("init container %s: its image %s is not on the Docker daemon, and nothing is pulled here (scripts/debian-images tags debian:bookworm-slim): %v", in.name, in.image, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var secOpt []string
	if in.noNewPrivs {
		secOpt = []string{"no-new-privileges"}
	}
	c := dockerCreateAndStart(t, "init container "+in.name, docker.CreateContainerOptions{
		Name: k8sContainerName(k8sTestName(t) + "-" + in.name),
		Config: &docker.Config{
			Image:      in.image,
			Entrypoint: in.command, // command: the image's CMD does not apply
			User:       in.user,
			Labels:     map[string]string{dockerTestLabel: t.Name()},
		},
		HostConfig: &docker.HostConfig{
			NetworkMode:    "none",
			Binds:          []string{emptyDir + ":" + in.mountPath},
			CapDrop:        in.capDrop,
			CapAdd:         in.capAdd,
			SecurityOpt:    secOpt,
			ReadonlyRootfs: in.readOnly,
		},
	})
	if code, stdout, stderr := k8sWait(t, c.ID); code != 0 {
		t.Fatalf("init container %s (%q): exit %d\nstdout: %s\nstderr: %s", in.name, in.command, code, stdout, stderr)
	}
}

// newK8sFilesPod returns ov-init-files-example.yaml's container with the
// key and the vault mounted as in newK8sPod, and its emptyDir as the
// kubelet makes it, mounted at its mountPath; with init, after the
// manifest's init containers ran on it, as the kubelet runs them before
// the pod's containers. It returns the emptyDir's host path too.
func newK8sFilesPod(t *testing.T, init bool) (*k8sPod, string) {
	t.Helper()
	p := newK8sPod(t, k8sFilesManifest)
	p.name = k8sTestName(t)
	p.secretVolume(t, p.recipe.defaultMode, 0, true)
	dir := k8sEmptyDirMemory(t, p.recipe.sizeLimit)
	if init {
		for _, in := range p.recipe.inits {
			k8sRunInit(t, in, dir)
		}
	}
	p.binds = append(p.binds, dir+":"+p.recipe.secretsDir)
	return p, dir
}

// k8sAssertFiles checks helper files' report: the app got each of the
// manifest's app's secrets as NAME_FILE=DIR/NAME and nothing else, each
// file holds the value exactly, mode 0400, of uid 10001, in a 0500
// directory of uid 10001 on tmpfs; and neither a secret's name nor a value
// nor an OV_ setting is in the app's environment.
func k8sAssertFiles(t *testing.T, r k8sRecipe, rep sfReport) {
	t.Helper()
	for name, value := range k8sSecrets {
		f, ok := rep.Files[name+"_FILE"]
		if !ok || f.Err != "" || f.Size != len(value) || f.SHA256 != fmt.Sprintf("%x", sha256.Sum256([]byte(value))) ||
			f.Path != r.secretsDir+"/"+name || f.Mode != "0400" || f.UID != 10001 || f.FS != "tmpfs" || f.DirMode != "0500" || f.DirUID != 10001 {
			t.Errorf("%s_FILE: %+v (set %v); want %s/%s holding the vault's value, 0400, uid 10001, on tmpfs, in a 0500 directory of uid 10001", name, f, ok, r.secretsDir, name)
		}
	}
	if len(rep.Files) != len(k8sSecrets) {
		t.Errorf("the app has %d NAME_FILE variables, want %d: %+v", len(rep.Files), len(k8sSecrets), rep.Files)
	}
	for _, kv := range rep.Env {
		k, v, _ := strings.Cut(kv, "=")
		_, secret := k8sSecrets[k]
		if secret || strings.HasPrefix(k, "OV_") || slices.ContainsFunc(slices.Collect(maps.Values(k8sSecrets)), func(s string) bool { return strings.Contains(v, s) }) {
			t.Errorf("the app's environment holds %q", kv)
		}
	}
}

// k8sAssertNoSecret fails if text holds a value of k8sSecrets or the
// pod's machine key (raw, hex or base64).
func k8sAssertNoSecret(t *testing.T, p *k8sPod, what, text string) {
	t.Helper()
	key, err := os.ReadFile(p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	needles := map[string]string{"the key": string(key), "the key in hex": hex.EncodeToString(key), "the key in base64": base64.StdEncoding.EncodeToString(key)}
	for name, value := range k8sSecrets {
		needles[name] = value
	}
	for name, needle := range needles {
		if strings.Contains(text, needle) {
			t.Errorf("%s holds %s: %q", what, name, text)
		}
	}
}

// The secret files the manifest's app leaves in the emptyDir, as the host
// sees them.
var k8sWantFiles = map[string]string{"API_TOKEN": "0400 10001:10001", "DATABASE_URL": "0400 10001:10001"}

// TestKubernetesFilesRecipeDeliversFilesOnTheEmptyDir runs
// ov-init-files-example.yaml on its emptyDir as the kubelet mounts it. The
// init container makes it 0700; the app, uid 10001, gets NAME_FILE, each a
// 0400 file of its own in the emptyDir, which ov-init left 0500 and the
// app's; nothing of a value is in the logs at -vvv. A SIGTERM to PID 1 (the
// kubelet stopping the container) ends the app and the files go with it.
// The container starts again on the same emptyDir, as in a restart within
// the pod (init containers do not run again), and the app cannot open the
// key. A SIGKILL of ov-init leaves the files, and the next start replaces
// them.
func TestKubernetesFilesRecipeDeliversFilesOnTheEmptyDir(t *testing.T) {
	requireDocker(t)
	p, dir := newK8sFilesPod(t, true)
	if got := k8sDirMode(t, dir); got != "0700 0:0" {
		t.Fatalf("after the init container the emptyDir is %s, want 0700 0:0", got)
	}

	// Running, then stopped as the kubelet stops a container.
	p.cmd = []string{"/app/helper", "files", "sleep"}
	p.env = []string{"OV_VERBOSE=3"}
	id := p.start(t)
	k8sWaitOutput(t, id, "ready\n")
	stdout, _ := containerOutput(t, id)
	k8sAssertFiles(t, p.recipe, sfParse(t, stdout))
	if got := k8sDirMode(t, dir); got != "0500 10001:10001" {
		t.Errorf("while the app runs the emptyDir is %s, want 0500 10001:10001", got)
	}
	if got := k8sEntries(t, dir); !maps.Equal(got, k8sWantFiles) {
		t.Errorf("while the app runs the emptyDir holds %v, want %v", got, k8sWantFiles)
	}
	if err := pool.Client.KillContainer(docker.KillContainerOptions{ID: id, Signal: docker.SIGTERM}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := k8sWait(t, id)
	if code != 128+15 {
		t.Errorf("after SIGTERM: exit %d, want 143 (the app killed by it)\nstderr: %s", code, stderr)
	}
	if got := k8sEntries(t, dir); len(got) != 0 {
		t.Errorf("the files outlived the container: the emptyDir holds %v", got)
	}
	if want := "ov-init: removed 2 secret files from " + p.recipe.secretsDir; !strings.Contains(stderr, want) {
		t.Errorf("stderr at -vvv lacks %q:\n%s", want, stderr)
	}
	k8sAssertNoSecret(t, p, "stdout", stdout)
	k8sAssertNoSecret(t, p, "stderr at -vvv", stderr)

	// Restarted in the same pod: the emptyDir is as the last container
	// left it, the app's, 0500, empty.
	p.cmd = []string{"/app/helper", "status"}
	p.env = []string{"HELPER_TRY_READ=" + p.recipe.keyPath}
	code, stdout, stderr = p.run(t)
	if code != 0 {
		t.Errorf("restarted: exit %d\nstderr: %s", code, stderr)
	}
	for _, want := range []string{
		"Uid: 10001 10001 10001 10001",
		"ppid: 1",
		"read: open " + p.recipe.keyPath + ": permission denied",
	} {
		if !strings.Contains(stdout, want+"\n") {
			t.Errorf("restarted: no %q in the app's status:\n%s", want, stdout)
		}
	}
	if got := k8sEntries(t, dir); len(got) != 0 {
		t.Errorf("after the restarted container the emptyDir holds %v", got)
	}

	// ov-init killed with SIGKILL (the OOM killer's choice): nothing can
	// remove the files then; the emptyDir keeps them, and the next start
	// replaces them.
	p.cmd, p.env = []string{"/app/helper", "files", "sleep"}, nil
	id = p.start(t)
	k8sWaitOutput(t, id, "ready\n")
	if err := pool.Client.KillContainer(docker.KillContainerOptions{ID: id, Signal: docker.SIGKILL}); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := k8sWait(t, id); code != 128+9 {
		t.Errorf("after SIGKILL: exit %d, want 137\nstderr: %s", code, stderr)
	}
	if got := k8sEntries(t, dir); !maps.Equal(got, k8sWantFiles) {
		t.Errorf("after a SIGKILL of ov-init the emptyDir holds %v, want the files left, %v", got, k8sWantFiles)
	}
	p.cmd = []string{"/app/helper", "files"}
	code, stdout, stderr = p.run(t)
	if code != 0 {
		t.Fatalf("started again after the SIGKILL: exit %d\nstderr: %s", code, stderr)
	}
	k8sAssertFiles(t, p.recipe, sfParse(t, stdout))
	if got := k8sEntries(t, dir); len(got) != 0 {
		t.Errorf("after the last container the emptyDir holds %v", got)
	}
}

// TestKubernetesFilesRecipeRefusesWhatItLacks: what each addition of the
// files recipe is for. Without the init container ov-init refuses the
// kubelet's tmpfs, 1777 (sticky, like /tmp); without CHOWN it cannot give
// the directory to the app's user; without DAC_OVERRIDE it could not remove
// the files from the app's directory when the app exits. Each stops the
// container with status 78 and one line naming the fix, before the app
// starts and before anything is written or changed.
func TestKubernetesFilesRecipeRefusesWhatItLacks(t *testing.T) {
	requireDocker(t)
	for _, c := range []struct {
		name string
		init bool   // run the init container
		drop string // a capability the test takes from the manifest's
		mode string // the emptyDir's, before and after
		want []string
	}{
		{name: "no init container: the kubelet's tmpfs, 1777", init: false, mode: "1777 0:0",
			want: []string{`secrets dir "/run/ov" has the sticky bit`, "(mode 1777)"}},
		{name: "without CHOWN", init: true, drop: "CHOWN", mode: "0700 0:0",
			want: []string{`giving it to the app's user (uid 10001)`, "keep CAP_CHOWN"}},
		{name: "without DAC_OVERRIDE", init: true, drop: "DAC_OVERRIDE", mode: "0700 0:0",
			want: []string{"lacks CAP_DAC_OVERRIDE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, dir := newK8sFilesPod(t, c.init)
			if got := k8sDirMode(t, dir); got != c.mode {
				t.Fatalf("before the container the emptyDir is %s, want %s", got, c.mode)
			}
			if c.drop != "" {
				if !slices.Contains(p.capAdd, c.drop) {
					t.Fatalf("%s does not add %s", k8sFilesManifest, c.drop)
				}
				p.capAdd = slices.DeleteFunc(slices.Clone(p.capAdd), func(cp string) bool { return cp == c.drop })
			}
			p.cmd = []string{"/app/helper", "args", dockerAppStarted}
			code, stdout, stderr := p.run(t)
			if code != dockerExitConfig || strings.Contains(stdout, dockerAppStarted) {
				t.Errorf("exit %d, want %d, and the app never started; stdout: %q", code, dockerExitConfig, stdout)
			}
			for _, want := range c.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if n := strings.Count(stderr, "\n"); n != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", n, stderr)
			}
			t.Logf("exit %d, stderr: %s", code, stderr)
			if got := k8sDirMode(t, dir); got != c.mode {
				t.Errorf("the refusal changed the emptyDir: %s, was %s", got, c.mode)
			}
			if got := k8sEntries(t, dir); len(got) != 0 {
				t.Errorf("the refusal left %v in the emptyDir", got)
			}
		})
	}
}

// TestKubernetesFilesManifestIsTheRecipe holds ov-init-files-example.yaml
// to ov-init-example.yaml's recipe (the same command, key, vault and
// dropped capabilities) and to the files recipe: OV_SECRETS_AS=files, an
// emptyDir with medium: Memory and a sizeLimit at ov-init's default
// --secrets-dir, mounted in ov-init's container (the pod's only one) and
// one init container, root with no capability, read-only, that makes it
// 0700; and CHOWN and DAC_OVERRIDE besides SETUID, SETGID and KILL.
func TestKubernetesFilesManifestIsTheRecipe(t *testing.T) {
	env, files := readK8sRecipe(t, k8sManifest), readK8sRecipe(t, k8sFilesManifest)
	if len(env.env) != 0 || env.secretsDir != "" || len(env.inits) != 0 {
		t.Errorf("%s: env %q, emptyDir at %q, init containers %v: it is the recipe for secrets in the environment", k8sManifest, env.env, env.secretsDir, env.inits)
	}
	if !slices.Equal(files.command, env.command) || files.keyPath != env.keyPath || files.vaultPath != env.vaultPath ||
		files.defaultMode != env.defaultMode || !slices.Equal(files.capDrop, env.capDrop) {
		t.Errorf("%s strays from %s: command %q, key %s, vault %s, defaultMode %04o, drop %q", k8sFilesManifest, k8sManifest,
			files.command, files.keyPath, files.vaultPath, files.defaultMode, files.capDrop)
	}
	if !slices.Equal(files.env, []string{"OV_SECRETS_AS=files"}) {
		t.Errorf("%s: env %q, want OV_SECRETS_AS=files alone", k8sFilesManifest, files.env)
	}
	if files.secretsDir != secretfiles.DefaultDir || files.sizeLimit != "1Mi" {
		t.Errorf("%s: the emptyDir is at %q, sizeLimit %q; want ov-init's default --secrets-dir %s, 1Mi", k8sFilesManifest, files.secretsDir, files.sizeLimit, secretfiles.DefaultDir)
	}
	if want := append(slices.Clone(env.capAdd), "CHOWN", "DAC_OVERRIDE"); !slices.Equal(files.capAdd, want) {
		t.Errorf("%s: capabilities add %q, want %q", k8sFilesManifest, files.capAdd, want)
	}
	if len(files.inits) != 1 {
		t.Fatalf("%s: want one init container, found %d", k8sFilesManifest, len(files.inits))
	}
	in := files.inits[0]
	if !slices.Equal(in.command, []string{"chmod", "0700", in.mountPath}) || in.user != "0:0" || !slices.Equal(in.capDrop, []string{"ALL"}) ||
		len(in.capAdd) != 0 || !in.readOnly || !in.noNewPrivs {
		t.Errorf("%s: init container %+v; want chmod 0700 of the emptyDir as root, no capability, read-only, no privilege escalation", k8sFilesManifest, in)
	}
}
