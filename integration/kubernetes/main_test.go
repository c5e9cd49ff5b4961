// Package kubernetes runs ov-init on a real single-node Kubernetes: etcd,
// the control plane and a kubelet built from the Go module proxy
// (scripts/kubernetes-build), Debian's containerd and runc, started on
// loopback by scripts/kubernetes-up for this package and stopped by
// scripts/kubernetes-down when it ends. Images are written here as OCI
// archives and imported into containerd: nothing is pulled. Each test
// applies the recipe in deploy/kubernetes as written, in a namespace of its
// own.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The fixture: what the operator put in the vault with ov.
const (
	databaseURL = "postgres://myapp:ovsec-k8s-db-4d1e@db/myapp"
	apiToken    = "ovsec-k8s-token-8b07"
	password    = "correct horse battery staple, k8s"
)

// Images the tests run. myapp:latest is examples/myapp's image, as its
// Dockerfile builds it: ov-init, the app's export baked in, the app.
// ov-k8s-helper holds ov-init and the integration tests' helper app.
const (
	myappImage  = "docker.io/library/myapp:latest"
	helperImage = "docker.io/library/ov-k8s-helper:1"
	debianImage = "debian:bookworm-slim"
)

var (
	repo    string // repository root
	work    string // temporary directory shared by the tests
	missing string // why the tests cannot run, if they cannot
	c       *cluster
	binDir  string // ov-init, ov, server and helper, built for this run
	opHome  string // the operator's HOME: ~/.config/ov holds the vault
	// The image's baked vault: the export of myapp, made after the key of
	// deployment "image" was derived into imageKey.
	imageKey string
	// Whether debian:bookworm-slim (the files recipe's init container) is
	// on the node: it comes from the local Docker daemon's image.
	debianMissing string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repo = filepath.Join(filepath.Dir(file), "..", "..")
	var err error
	if work, err = os.MkdirTemp("", "ov-k8s-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// One run at a time: the cluster's state directory, ports and bridge
	// are the machine's, and each run starts by taking down what is there.
	lock, err := os.OpenFile("/run/ov-init-k8s-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
	}
	if err != nil && os.Geteuid() == 0 {
		fmt.Fprintln(os.Stderr, "kubernetes: the lock of the test cluster:", err)
		os.Exit(1)
	}
	missing = setUp()
	code := m.Run()
	if c != nil && os.Getenv("OV_K8S_KEEP") == "" {
		if err := c.down(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.RemoveAll(work)
	runtime.KeepAlive(lock) // its finalizer would close it, and release the lock
	os.Exit(code)
}

// setUp builds what the tests need and starts the cluster. It returns what
// is missing when the tests cannot run.
func setUp() string {
	if os.Geteuid() != 0 {
		return "root (to run containerd and the kubelet)"
	}
	binDir = filepath.Join(work, "bin")
	for name, pkg := range map[string]string{
		"ov-init": "./init", "ov": "./ov", "server": "./examples/myapp/server", "helper": "./integration/helper",
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(binDir, name), pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Sprintf("building %s: %s", pkg, out)
		}
	}
	var err error
	if c, err = up(); err != nil {
		return err.Error()
	}
	if err := makeFixture(); err != nil {
		return "the fixture vault: " + err.Error()
	}
	if err := importImages(); err != nil {
		return "the images: " + err.Error()
	}
	return ""
}

// requireCluster skips a test, naming what is missing, except on CI, which
// never skips.
func requireCluster(t *testing.T) {
	t.Helper()
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Kubernetes tests need %s", missing)
	}
	t.Skipf("Kubernetes tests need %s", missing)
}

// run runs a command in dir with env added to this process's, and returns
// its combined output.
func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// operatorEnv is the environment of the operator's ov and kubectl
// commands: ov-init's binaries first on PATH, the vault in home, the
// password from a file, kubectl talking to the cluster.
func operatorEnv(home, kubeconfig string) []string {
	return []string{
		"PATH=" + binDir + ":" + c.bin + ":" + os.Getenv("PATH"),
		"HOME=" + home,
		"OV_PASSWORD_FILE=" + filepath.Join(work, "password"),
		"KUBECONFIG=" + kubeconfig,
	}
}

// makeFixture makes the operator's vault as the README's flow does: myapp
// with two secrets; then the key of deployment "image" and the export
// baked into myapp:latest.
func makeFixture() error {
	if err := os.WriteFile(filepath.Join(work, "password"), []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	opHome = filepath.Join(work, "operator")
	if err := os.MkdirAll(opHome, 0o700); err != nil {
		return err
	}
	env := operatorEnv(opHome, c.kubeconfig)
	steps := []struct {
		stdin string
		args  []string
	}{
		{"", []string{"vault", "init"}},
		{"", []string{"app", "create", "myapp"}},
		{databaseURL, []string{"secret", "set", "DATABASE_URL", "--app", "myapp"}},
		{apiToken, []string{"secret", "set", "API_TOKEN", "--app", "myapp"}},
		{"", []string{"auth", "derive-machine-key", "--out", filepath.Join(work, "image.kek"), "--app", "myapp", "--deployment", "image"}},
		{"", []string{"vault", "export", "--app", "myapp", "--out", filepath.Join(work, "image.vault")}},
	}
	for _, s := range steps {
		cmd := exec.Command(filepath.Join(binDir, "ov"), s.args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(s.stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ov %s: %v\n%s", strings.Join(s.args, " "), err, out)
		}
	}
	imageKey = filepath.Join(work, "image.kek")
	return nil
}

// importImages writes myapp:latest and the helper image and imports them
// into the node's containerd, and debian:bookworm-slim from the local
// Docker daemon when there is one.
func importImages() error {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(binDir, name))
		if err != nil {
			panic(err)
		}
		return b
	}
	vaultJSON, err := os.ReadFile(filepath.Join(work, "image.vault"))
	if err != nil {
		return err
	}
	myapp, err := dockerfileImage(filepath.Join(repo, "examples/myapp/Dockerfile"), map[string]imageFile{
		"/ov-init":   {read("ov-init"), 0o755},
		"vault.json": {vaultJSON, 0o644},
		"server":     {read("server"), 0o755},
	})
	if err != nil {
		return err
	}
	myapp.name = myappImage
	for _, img := range []ociImage{
		myapp,
		{
			name: helperImage,
			files: map[string]imageFile{
				"ov-init":           {read("ov-init"), 0o755},
				"etc/ov/vault.json": {vaultJSON, 0o644},
				"app/helper":        {read("helper"), 0o755},
				"app/server":        {read("server"), 0o755},
			},
			entrypoint: []string{"/ov-init", "--"},
		},
	} {
		tarPath := filepath.Join(work, "image.tar")
		if err := ociArchive(img, tarPath); err != nil {
			return err
		}
		if _, err := c.ctr("images", "import", tarPath); err != nil {
			return err
		}
	}
	if out, err := run(work, nil, "docker", "image", "inspect", debianImage); err != nil {
		debianMissing = fmt.Sprintf("the local Docker image %s (scripts/docker-up, then scripts/debian-images): %s", debianImage, strings.TrimSpace(out))
		return nil
	}
	tarPath := filepath.Join(work, "debian.tar")
	if _, err := run(work, nil, "docker", "save", "-o", tarPath, debianImage); err != nil {
		return err
	}
	_, err = c.ctr("images", "import", tarPath)
	os.Remove(tarPath)
	return err
}

// dockerfileImage is the image a Dockerfile of FROM, COPY and ENTRYPOINT
// (JSON form) lines builds, each COPY's source taken from sources: so
// that myapp:latest is what examples/myapp/Dockerfile makes, whatever it
// comes to say.
func dockerfileImage(path string, sources map[string]imageFile) (ociImage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return ociImage{}, err
	}
	img := ociImage{files: map[string]imageFile{}}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] == "FROM":
		case f[0] == "COPY" && len(f) >= 3:
			src, dst := f[len(f)-2], f[len(f)-1]
			file, ok := sources[src]
			if !ok {
				return img, fmt.Errorf("%s: COPY of %s, which the test does not have", path, src)
			}
			img.files[strings.TrimPrefix(dst, "/")] = file
		case f[0] == "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "ENTRYPOINT"))), &img.entrypoint); err != nil {
				return img, fmt.Errorf("%s: ENTRYPOINT: %v", path, err)
			}
		default:
			return img, fmt.Errorf("%s: the test cannot build %q", path, line)
		}
	}
	return img, nil
}
