package container

// Issue 12 on a real Docker daemon: secrets as files on the recipe's tmpfs
// (docker run --tmpfs /run/ov:mode=0700) for an app that runs as another
// user, and as sealed memfds in a read-only container without any tmpfs.
// Containers are named ov-sf-…, networking off, removed at the end.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sfSpec is a container of the app image for these tests.
type sfSpec struct {
	dockerSpec
	Tmpfs map[string]string // mount point → options, as docker run --tmpfs
}

// sfStart starts an app-image container named ov-sf-<test>-<random>, with
// the tmpfs mounts of s; removed when the test ends.
func sfStart(t *testing.T, s sfSpec) *dockerContainer {
	t.Helper()
	suffix := make([]byte, 4)
	rand.Read(suffix)
	name := "ov-sf-" + strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")) + "-" + hex.EncodeToString(suffix)
	opts := dockerOptions(t, s.dockerSpec)
	opts.Name = name
	opts.HostConfig.Tmpfs = s.Tmpfs
	return dockerCreateAndStart(t, "container "+name, opts)
}

// sfFile is helper files' account of one NAME_FILE (see integration/helper).
type sfFile struct {
	Path    string `json:"path"`
	Err     string `json:"err"`
	Size    int    `json:"size"`
	SHA256  string `json:"sha256"`
	Mode    string `json:"mode"`
	UID     uint32 `json:"uid"`
	FS      string `json:"fs"`
	Link    string `json:"link"`
	DirMode string `json:"dirmode"`
	DirUID  uint32 `json:"diruid"`
	Seals   int    `json:"seals"`
}

type sfReport struct {
	Env   []string          `json:"env"`
	Files map[string]sfFile `json:"files"`
}

func sfParse(t *testing.T, stdout string) sfReport {
	t.Helper()
	line, _, _ := strings.Cut(stdout, "\n")
	var r sfReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("app output is not helper files' JSON: %v: %q", err, stdout)
	}
	return r
}

// sfAssertWebSecretsAsFiles checks that the app got both web secrets through
// NAME_FILE only, exactly, and nothing of them or of OV_* in its
// environment.
func sfAssertWebSecretsAsFiles(t *testing.T, r sfReport) {
	t.Helper()
	for name, value := range map[string]string{"DATABASE_URL": webDatabaseURL, "API_TOKEN": webAPIToken} {
		f, ok := r.Files[name+"_FILE"]
		if !ok || f.Err != "" || f.Size != len(value) || f.SHA256 != fmt.Sprintf("%x", sha256.Sum256([]byte(value))) {
			t.Errorf("%s_FILE: %+v (set %v); want the vault's value exactly", name, f, ok)
		}
	}
	for _, kv := range r.Env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || k == "API_TOKEN" || strings.HasPrefix(k, "OV_") || strings.Contains(kv, "ovsec-") {
			t.Errorf("the app's environment holds %q", kv)
		}
	}
}

// sfRunFiles waits for a container running helper files to exit 0, and
// checks its report with sfAssertWebSecretsAsFiles.
func sfRunFiles(t *testing.T, ct *dockerContainer) (r sfReport, stdout, stderr string) {
	t.Helper()
	code := ct.wait(10 * time.Second)
	stdout, stderr = ct.logs()
	if code != 0 {
		t.Fatalf("exit %d; stderr %q", code, stderr)
	}
	r = sfParse(t, stdout)
	sfAssertWebSecretsAsFiles(t, r)
	return r, stdout, stderr
}

// sfAssertOnTheRecipesTmpfs checks that each web secret's file is
// /run/ov/NAME, 0400, of uid 10001, on tmpfs, in a 0500 directory of uid
// 10001.
func sfAssertOnTheRecipesTmpfs(t *testing.T, r sfReport) {
	t.Helper()
	for _, name := range []string{"DATABASE_URL", "API_TOKEN"} {
		f := r.Files[name+"_FILE"]
		if f.Path != "/run/ov/"+name || f.Mode != "0400" || f.UID != 10001 || f.FS != "tmpfs" || f.DirMode != "0500" || f.DirUID != 10001 {
			t.Errorf("%s_FILE: %+v; want /run/ov/%s, 0400, uid 10001, on tmpfs, in a 0500 directory of uid 10001", name, f, name)
		}
	}
}

// The README recipe: docker run --tmpfs /run/ov:mode=0700 -e OV_USER=…
// -e OV_SECRETS_AS=files. The app, uid 10001, reads 0400 files of its own
// in a 0500 directory on tmpfs; nothing of a value is in docker logs at
// -vvv.
func TestDockerSecretsAsFilesOnTheRecipesTmpfs(t *testing.T) {
	requireDocker(t)
	for _, c := range []struct{ name, tmpfs string }{
		{"Docker --tmpfs mode=0700", "mode=0700"},
		// A root-owned 0777 tmpfs, not sticky: taken, and made 0500.
		// (A Kubernetes memory emptyDir is 1777: see kubernetes_test.go.)
		{"root-owned mode=0777", "mode=0777"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := sfStart(t, sfSpec{
				dockerSpec: dockerSpec{
					Cmd:   []string{"/app/helper", "files"},
					Env:   []string{"OV_USER=10001:10001", "OV_SECRETS_AS=files", "OV_VERBOSE=3"},
					Binds: dockerKeyMount(webKey),
				},
				Tmpfs: map[string]string{"/run/ov": c.tmpfs},
			})
			r, stdout, stderr := sfRunFiles(t, ct)
			sfAssertOnTheRecipesTmpfs(t, r)
			needles := dockerSecretNeedles(t)
			dockerAssertNoSecret(t, "docker logs (stdout)", stdout, needles)
			dockerAssertNoSecret(t, "docker logs (stderr) at -vvv", stderr, needles)
			for _, want := range []string{"ov-init: as files in /run/ov: ", "ov-init: removed 2 secret files from /run/ov"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr at -vvv lacks %q: %q", want, stderr)
				}
			}
		})
	}
}

// The files go as soon as the app exits, seen from the host in the
// container's own tmpfs while ov-init still waits (the grace) for a daemon
// the app left behind.
func TestDockerSecretFilesAreRemovedWhenTheAppExits(t *testing.T) {
	requireDocker(t)
	ct := sfStart(t, sfSpec{
		dockerSpec: dockerSpec{
			Cmd:   []string{"/app/helper", "leftover", "0", "/scratch/daemon.log"},
			Env:   []string{"OV_USER=10001:10001", "OV_SECRETS_AS=files", "OV_GRACE=4s"},
			Binds: dockerKeyMount(webKey),
		},
		Tmpfs: map[string]string{"/run/ov": "mode=0700", "/scratch": "mode=1777"},
	})
	ct.waitLogs("daemon ", 5*time.Second)
	dir := fmt.Sprintf("/proc/%d/root/run/ov", ct.pid1())
	var left []os.DirEntry
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if left, err = os.ReadDir(dir); err != nil {
			t.Fatalf("reading the container's /run/ov from the host: %v", err)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) != 0 {
		t.Errorf("2s after the app exited, the container's /run/ov still holds %d files", len(left))
	}
	if st := ct.inspect().State; !st.Running {
		t.Fatalf("the container ended before the grace: the look above came too late to prove anything: %s", st.String())
	}
	if code := ct.wait(10 * time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

// memfd where no tmpfs is mounted: a read-only container, nothing written
// anywhere, the app (uid 10001) reads sealed descriptors.
func TestDockerSecretsAsMemfdInAReadOnlyContainer(t *testing.T) {
	requireDocker(t)
	ct := sfStart(t, sfSpec{dockerSpec: dockerSpec{
		Cmd:      []string{"/app/helper", "files"},
		Env:      []string{"OV_USER=10001:10001", "OV_SECRETS_AS=memfd", "OV_VERBOSE=3"},
		Binds:    dockerKeyMount(webKey),
		ReadOnly: true,
	}})
	r, stdout, stderr := sfRunFiles(t, ct)
	for _, name := range []string{"DATABASE_URL", "API_TOKEN"} {
		if f := r.Files[name+"_FILE"]; !strings.HasPrefix(f.Path, "/proc/self/fd/") || !strings.HasPrefix(f.Link, "/memfd:ov:"+name) || f.UID != 10001 || f.Mode != "0400" {
			t.Errorf("%s_FILE: %+v; want a memfd of uid 10001, 0400", name, f)
		}
	}
	needles := dockerSecretNeedles(t)
	dockerAssertNoSecret(t, "docker logs (stdout)", stdout, needles)
	dockerAssertNoSecret(t, "docker logs (stderr) at -vvv", stderr, needles)
}

// The recipe's mistakes: no tmpfs at /run/ov (the image's disk), and
// --tmpfs /run/ov without mode=0700 (Docker's default is 1777, shared).
// One line, 78, the app never starts.
func TestDockerSecretsAsFilesWithoutTheRecipesTmpfsIsRefused(t *testing.T) {
	requireDocker(t)
	for _, c := range []struct {
		name  string
		tmpfs map[string]string
		want  string
	}{
		{"NoTmpfs", nil, `ov-init: secrets dir "/run/ov" does not exist; fix: mount an in-memory file system there (docker run --tmpfs /run/ov:mode=0700`},
		{"TmpfsWithoutMode", map[string]string{"/run/ov": ""}, `ov-init: secrets dir "/run/ov" has the sticky bit (mode 1777)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := sfStart(t, sfSpec{
				dockerSpec: dockerSpec{
					Cmd:   []string{"/app/helper", "args", dockerAppStarted},
					Env:   []string{"OV_USER=10001:10001", "OV_SECRETS_AS=files"},
					Binds: dockerKeyMount(webKey),
				},
				Tmpfs: c.tmpfs,
			})
			code := ct.wait(10 * time.Second)
			stdout, stderr := ct.logs()
			if code != dockerExitConfig || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want %d and one line starting %q", code, stderr, dockerExitConfig, c.want)
			}
			if strings.Contains(stdout, dockerAppStarted) {
				t.Errorf("the app started: %q", stdout)
			}
		})
	}
}
