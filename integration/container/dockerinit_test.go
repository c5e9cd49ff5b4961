package container

// `docker run --init` with ov-init as the daemon's init: a second dockerd,
// started by TestDockerInit and stopped when it ends, whose "init-path" is
// a copy of bin/ov-init (from the README's daemon.json). Docker bind-mounts
// that file into each --init container as /sbin/docker-init and runs
// `/sbin/docker-init -- ENTRYPOINT CMD` as PID 1; ov-init's flags can only
// be OV_* variables there. The image these tests run holds the helper app
// and no ov-init: whatever ov-init does in it, the daemon's did.
//
// Why the test starts the daemon, not a script: `go test -run DockerInit
// ./integration/container` then needs nothing else, runs against the
// ov-init just built from the working tree, and leaves nothing running.
// A second dockerd left running would also fool scripts/docker-up, which
// starts the main daemon only when no process is named dockerd.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ory/dockertest/v3/docker"
	"golang.org/x/sys/unix"
)

// Where the second daemon lives: its own socket, data root, exec root (and
// so its own managed containerd, socket and state under it), pid file and
// log, apart from the main daemon's /var/run/docker.sock, /var/lib/docker
// and /var/run/docker. The data root is kept between runs (the image cache);
// nothing runs once TestDockerInit has ended.
const (
	initDaemonHost    = "unix:///run/ov-docker-init.sock"
	initDaemonDir     = "/var/lib/ov-docker-init" // bin/ov-init (the init-path), daemon.json, docker/ (the data root)
	initDaemonExec    = "/run/ov-docker-init"
	initDaemonPidfile = "/run/ov-docker-init.pid"
	initDaemonLock    = "/run/ov-docker-init.lock" // one test run at a time uses the daemon
	initDaemonLog     = "/var/log/ov-docker-init.log"
)

// initImage is the image the tests run on the second daemon: the helper as
// ENTRYPOINT, /etc/passwd with user 10001, no ov-init and no vault.
const initImage = "ov-init-test-noinit:latest"

// The README's part on `docker run --init`, and the init-path its
// daemon.json names, which the test replaces with its copy of bin/ov-init.
const (
	readmeDockerInit = "### `docker run --init`"
	readmeInitPath   = "/usr/local/bin/ov-init"
)

// inContainerInit is where Docker mounts its init in an --init container,
// and how it starts it.
var inContainerInit = []string{"/sbin/docker-init", "--"}

// initDaemon is the second dockerd, for one run of TestDockerInit.
type initDaemon struct {
	client   *docker.Client
	initPath string // the ov-init it runs as docker-init
	pid      int
	done     chan struct{} // closed when dockerd has exited
}

func TestDockerInit(t *testing.T) {
	requireDocker(t)
	d := startInitDaemon(t)
	d.buildImage(t)

	t.Run("docker info and docker version show ov-init's commit", d.testVersion)
	t.Run("ov-init is PID 1 and the app its child", d.testPID1)
	t.Run("docker stop: the app gets SIGTERM and the container its status", d.testStop)
	t.Run("the app's exit status is the container's", d.testExitStatus)
	t.Run("docker kill -s HUP and USR1 reach the app", d.testKill)
	t.Run("orphans are reparented to ov-init and reaped", d.testOrphans)
	t.Run("secrets mode through OV_ variables", d.testSecrets)
	t.Run("the README's commands", d.testReadme)
}

// startInitDaemon starts the second dockerd, after stopping one a killed
// run may have left, and stops it when the test ends. It fails the test if
// the daemon does not answer within a minute.
func startInitDaemon(t *testing.T) *initDaemon {
	t.Helper()
	if _, err := exec.LookPath("dockerd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("TestDockerInit needs dockerd (scripts/docker-up installs Debian's docker.io)")
		}
		t.Skip("TestDockerInit needs dockerd (scripts/docker-up installs Debian's docker.io)")
	}
	lockInitDaemon(t)
	stopStaleInitDaemon(t)

	d := &initDaemon{initPath: filepath.Join(initDaemonDir, "bin", "ov-init"), done: make(chan struct{})}
	// A copy: bin/ov-init is rebuilt while containers may still run this one.
	copyWithMode(t, filepath.Join(repo, "bin", "ov-init"), d.initPath+".new", 0o755)
	if err := os.Rename(d.initPath+".new", d.initPath); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(initDaemonDir, "daemon.json")
	if err := os.WriteFile(config, []byte(readmeDaemonJSON(t, d.initPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(initDaemonLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	cmd := exec.Command("dockerd",
		"--config-file", config,
		"--data-root", filepath.Join(initDaemonDir, "docker"),
		"--exec-root", initDaemonExec,
		"--pidfile", initDaemonPidfile,
		"-H", initDaemonHost,
		"--bridge=none", "--iptables=false", "--ip6tables=false")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a Ctrl-C of go test does not reach it
	// before the cleanup below; and SIGTERM if the test binary dies
	// without cleaning up (a timeout, a kill). The parent-death signal
	// follows the thread that started dockerd: that thread stays locked
	// to this goroutine, which lives as long as dockerd does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(d.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	d.pid = cmd.Process.Pid
	t.Cleanup(func() { d.stop(t) })

	if d.client, err = docker.NewClient(initDaemonHost); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); d.client.Ping() != nil; time.Sleep(50 * time.Millisecond) {
		select {
		case <-d.done:
			t.Fatalf("dockerd exited before it answered on %s:\n%s", initDaemonHost, initDaemonLogTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer on %s within a minute:\n%s", initDaemonHost, initDaemonLogTail())
		}
	}
	t.Logf("second dockerd (pid %d, init-path %s) answered %v after its start", d.pid, d.initPath, time.Since(start).Round(time.Millisecond))
	// The containers of a run killed before its cleanup, stopped when its
	// daemon was.
	left, err := d.client.ListContainers(docker.ListContainersOptions{All: true, Filters: map[string][]string{"label": {dockerTestLabel}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range left {
		if err := d.client.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true}); err != nil {
			t.Fatalf("removing container %.12s, left by an earlier run: %v", c.ID, err)
		}
	}
	return d
}

// lockInitDaemon waits for the daemon's lock, held until the test ends, so
// that two runs of the tests never share or stop each other's daemon.
func lockInitDaemon(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(initDaemonLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("locking %s (another run of TestDockerInit holds it?): %v", initDaemonLock, err)
		}
	}
	t.Cleanup(func() { f.Close() })
}

// stopStaleInitDaemon stops the dockerd that its pid file names, left by
// a run that was killed before it could stop it.
func stopStaleInitDaemon(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(initDaemonPidfile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "\x00"+initDaemonPidfile+"\x00") {
		return // gone, or the pid is another process's now
	}
	t.Logf("stopping the second dockerd a previous run left (pid %d)", pid)
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
	}
}

// stop stops dockerd (its containers are gone: each test removes its own)
// and fails the test if a process of it stays: its containerd, a shim.
func (d *initDaemon) stop(t *testing.T) {
	start := time.Now()
	syscall.Kill(d.pid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		syscall.Kill(d.pid, syscall.SIGKILL)
		<-d.done
		t.Errorf("dockerd did not stop within 30s of SIGTERM; killed")
	}
	t.Logf("second dockerd stopped in %v", time.Since(start).Round(time.Millisecond))
	// Its managed containerd ends with it, and shims without containers.
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left = initDaemonProcesses()
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("processes of the second dockerd still run after it stopped:\n%s", strings.Join(left, "\n"))
	}
}

// initDaemonProcesses lists the processes whose command line names the
// second daemon's exec root, data root or socket: its containerd and shims.
func initDaemonProcesses() []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		for _, p := range []string{initDaemonExec, initDaemonDir, initDaemonHost} {
			if strings.Contains(cmdline, p) {
				found = append(found, e.Name()+": "+cmdline)
				break
			}
		}
	}
	return found
}

func initDaemonLogTail() string {
	b, _ := os.ReadFile(initDaemonLog)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// readmeDaemonJSON is the daemon.json of the README's `docker run --init`
// part, naming initPath instead of /usr/local/bin/ov-init.
func readmeDaemonJSON(t *testing.T, initPath string) string {
	t.Helper()
	var blocks []string
	for _, f := range readmeSection(t, "Docker") {
		if f.sub == readmeDockerInit && f.lang == "json" {
			blocks = append(blocks, strings.Join(f.body, "\n")+"\n")
		}
	}
	if len(blocks) != 1 {
		t.Fatalf("README.md, %s: %d ```json blocks, want one: the daemon.json", readmeDockerInit, len(blocks))
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(blocks[0]), &conf); err != nil || conf["init-path"] != readmeInitPath {
		t.Fatalf("README.md, %s: the daemon.json does not set init-path to %s (%v):\n%s", readmeDockerInit, readmeInitPath, err, blocks[0])
	}
	return strings.ReplaceAll(blocks[0], readmeInitPath, initPath)
}

// docker runs the docker CLI against the second daemon.
func (d *initDaemon) docker(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command("docker", append([]string{"-H", initDaemonHost}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// buildImage builds initImage on the second daemon from the helper and the
// passwd and group files of the app image (main_test.go's buildAppImage).
func (d *initDaemon) buildImage(t *testing.T) {
	t.Helper()
	start := time.Now()
	ctx := t.TempDir()
	copyWithMode(t, helperPath, filepath.Join(ctx, "helper"), 0o755)
	for _, f := range []string{"passwd", "group"} {
		copyWithMode(t, filepath.Join(work, "app-image", f), filepath.Join(ctx, f), 0o644)
	}
	dockerfile := `FROM scratch
COPY helper /app/helper
COPY passwd /etc/passwd
COPY group /etc/group
ENTRYPOINT ["/app/helper"]
CMD ["sleep"]
`
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := d.docker("build", "-q", "-t", initImage, ctx); err != nil {
		t.Fatalf("docker build on the second daemon: %v\n%s", err, stderr)
	}
	t.Logf("built %s in %v", initImage, time.Since(start).Round(time.Millisecond))
}

// start runs `docker run -d --network none FLAGS initImage ARGS...` on the
// second daemon; the container is removed when the test ends. The callers
// say --init themselves, so that its absence, in a negative control, shows.
func (d *initDaemon) start(t *testing.T, flags []string, args ...string) *dockerContainer {
	t.Helper()
	argv := append([]string{"run", "-d", "--network", "none", "--label", dockerTestLabel + "=" + t.Name()}, flags...)
	argv = append(append(argv, initImage), args...)
	started := time.Now()
	stdout, stderr, err := d.docker(argv...)
	id := strings.TrimSpace(stdout)
	if err != nil || id == "" {
		t.Fatalf("docker %s: %v\n%s", strings.Join(argv, " "), err, stderr)
	}
	t.Cleanup(func() {
		err := d.client.RemoveContainer(docker.RemoveContainerOptions{ID: id, Force: true, RemoveVolumes: true})
		var gone *docker.NoSuchContainer
		if err != nil && !errors.As(err, &gone) {
			t.Errorf("removing container %.12s: %v", id, err)
		}
	})
	return &dockerContainer{t: t, ID: id, started: started, client: d.client}
}

// run is start, then the container's status once it has exited.
func (d *initDaemon) run(t *testing.T, flags []string, args ...string) (*dockerContainer, int) {
	t.Helper()
	c := d.start(t, flags, args...)
	return c, c.wait(10 * time.Second)
}

// dockerInitVersionLine is ov-init's --version line; its second group is
// what dockerd reads as the init's commit.
var dockerInitVersionLine = regexp.MustCompile(`^ov-init version (\S+) - git\.([0-9A-Za-z_+-]+)\n$`)

func (d *initDaemon) testVersion(t *testing.T) {
	out, err := exec.Command(d.initPath, "--version").Output()
	m := dockerInitVersionLine.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("ov-init --version: %v, %q: want ov-init version VERSION - git.COMMIT", err, out)
	}
	commit := m[2]
	if head, err := exec.Command("git", "-C", repo, "rev-parse", "--short=7", "HEAD").Output(); err == nil && commit != strings.TrimSpace(string(head)) {
		t.Errorf("ov-init --version says commit %s, HEAD is %s: make build did not stamp it", commit, head)
	}
	t.Logf("ov-init --version: %s", strings.TrimSpace(string(out)))

	// docker info: the init binary, and its commit as "init version".
	info := d.initInfo(t)
	if info.InitBinary != d.initPath || info.InitCommit.ID != commit {
		t.Errorf("docker info: init binary %q, init commit %q; want %q and %q", info.InitBinary, info.InitCommit.ID, d.initPath, commit)
	}
	text, _, err := d.docker("info")
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	var shown []string
	for _, want := range []string{"Init Binary: " + d.initPath, "init version: " + commit} {
		if !slices.Contains(trimmedLines(text), want) {
			t.Errorf("docker info has no line %q:\n%s", want, text)
		}
		shown = append(shown, want)
	}
	t.Logf("docker info shows: %s", strings.Join(shown, "; "))

	// docker version: a component named after the init-path's file, with
	// the commit and no version (dockerd reads one only from tini).
	comp, ok := d.initComponent(t)
	if !ok || comp.Details["GitCommit"] != commit {
		t.Errorf("docker version: component ov-init %+v (found: %v), want GitCommit %s", comp, ok, commit)
	}
	text, _, err = d.docker("version")
	if err != nil {
		t.Fatalf("docker version: %v", err)
	}
	lines := trimmedLines(text)
	if i := slices.Index(lines, "ov-init:"); i < 0 || i+2 >= len(lines) ||
		!slices.Equal(strings.Fields(lines[i+1]), []string{"Version:"}) ||
		!slices.Equal(strings.Fields(lines[i+2]), []string{"GitCommit:", commit}) {
		t.Errorf("docker version does not show ov-init, no version, GitCommit %s:\n%s", commit, text)
	} else {
		t.Logf("docker version shows: %s / %s / %s", lines[i], lines[i+1], lines[i+2])
	}

	if warnings := initDaemonInitWarnings(d.initPath); len(warnings) > 0 {
		t.Errorf("dockerd warned about its init:\n%s", strings.Join(warnings, "\n"))
	}

	// Negative control: the line ov-init printed before ("ov-init
	// VERSION"), which dockerd cannot parse, gives no commit, no component
	// and a warning in the log; the checks above would see each.
	t.Run("negative control: a line dockerd cannot parse", func(t *testing.T) {
		real := d.initPath + ".real"
		if err := os.Rename(d.initPath, real); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.Rename(real, d.initPath); err != nil {
				t.Fatalf("putting ov-init back at %s: %v", d.initPath, err)
			}
		}()
		script := "#!/bin/sh\necho 'ov-init " + m[1] + "'\n"
		if err := os.WriteFile(d.initPath, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if info := d.initInfo(t); info.InitCommit.ID != "N/A" {
			t.Errorf("docker info: init commit %q from %q, want N/A", info.InitCommit.ID, "ov-init "+m[1])
		}
		if comp, ok := d.initComponent(t); ok {
			t.Errorf("docker version shows %+v from %q, want no component", comp, "ov-init "+m[1])
		}
		if warnings := initDaemonInitWarnings(d.initPath); len(warnings) == 0 {
			t.Errorf("dockerd logged no warning for %q: the check of its log sees nothing", "ov-init "+m[1])
		} else {
			t.Logf("dockerd logs: %s", warnings[0])
		}
	})
}

// dockerInfo is what `docker info` says of the daemon's init.
type dockerInfo struct {
	InitBinary string
	InitCommit struct{ ID, Expected string }
}

func (d *initDaemon) initInfo(t *testing.T) dockerInfo {
	t.Helper()
	out, stderr, err := d.docker("info", "--format", "{{json .}}")
	var info dockerInfo
	if err == nil {
		err = json.Unmarshal([]byte(out), &info)
	}
	if err != nil {
		t.Fatalf("docker info: %v\n%s", err, stderr)
	}
	return info
}

// dockerComponent is one of the server's components in `docker version`.
type dockerComponent struct {
	Name, Version string
	Details       map[string]string
}

// initComponent is the component named after the init-path's file,
// "ov-init".
func (d *initDaemon) initComponent(t *testing.T) (dockerComponent, bool) {
	t.Helper()
	out, stderr, err := d.docker("version", "--format", "{{json .Server.Components}}")
	var comps []dockerComponent
	if err == nil {
		err = json.Unmarshal([]byte(out), &comps)
	}
	if err != nil {
		t.Fatalf("docker version: %v\n%s", err, stderr)
	}
	for _, c := range comps {
		if c.Name == filepath.Base(d.initPath) {
			return c, true
		}
	}
	return dockerComponent{}, false
}

// initDaemonInitWarnings are the warnings and errors in the second
// daemon's log that name its init.
func initDaemonInitWarnings(initPath string) []string {
	b, _ := os.ReadFile(initDaemonLog)
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		if (strings.Contains(line, "level=warning") || strings.Contains(line, "level=error")) &&
			(strings.Contains(line, initPath) || strings.Contains(line, "docker-init")) {
			found = append(found, line)
		}
	}
	return found
}

func trimmedLines(text string) []string {
	lines := strings.Split(text, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return lines
}

func (d *initDaemon) testPID1(t *testing.T) {
	c := d.start(t, []string{"--init"}, "sleep")
	c.waitLogs("ready", 10*time.Second)
	pid := c.pid1()
	if !d.runsInit(pid) {
		t.Errorf("the container's PID 1 (host pid %d) is not the daemon's init-path %s", pid, d.initPath)
	}
	if ns := dockerNSPid(pid); ns != 1 {
		t.Errorf("ov-init (host pid %d) has pid %d in the container, want 1", pid, ns)
	}
	if got, want := procCmdline(pid), append(slices.Clone(inContainerInit), "/app/helper", "sleep"); !slices.Equal(got, want) {
		t.Errorf("PID 1's command line is %q, want %q", got, want)
	}
	procs := dockerProcsInPIDNamespaceOf(t, pid)
	if len(procs) != 2 {
		t.Fatalf("the container has processes %+v, want ov-init and the app", procs)
	}
	for _, p := range procs {
		if p.Pid == pid {
			continue
		}
		if p.PPid != pid || p.NSPid == 1 || !slices.Equal(procCmdline(p.Pid), []string{"/app/helper", "sleep"}) {
			t.Errorf("the app %+v, %q: want ov-init's child, /app/helper sleep", p, procCmdline(p.Pid))
		}
	}

	// Negative control: without --init the image's ENTRYPOINT is PID 1,
	// and the check of PID 1's executable says so.
	c = d.start(t, nil, "sleep")
	c.waitLogs("ready", 10*time.Second)
	pid = c.pid1()
	if d.runsInit(pid) || !slices.Equal(procCmdline(pid), []string{"/app/helper", "sleep"}) {
		t.Errorf("without --init, PID 1 (host pid %d, %q) is ov-init: the check of PID 1 proves nothing", pid, procCmdline(pid))
	}
}

// runsInit reports whether host process pid runs the daemon's init-path:
// the file Docker bind-mounts into the container, so the same inode.
func (d *initDaemon) runsInit(pid int) bool {
	exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	init, err := os.Stat(d.initPath)
	return err == nil && os.SameFile(exe, init)
}

// procCmdline is host process pid's argv.
func procCmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

func (d *initDaemon) testStop(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		args  []string
		want  int
		logs  string // in stdout: the app saw the signal
	}{
		{"untrapped TERM: 143", nil, []string{"sleep"}, dockerExitTERM, ""},
		{"an app that exits 42 on TERM: 42", []string{"-e", "HELPER_EXIT_ON_TERM=42"}, []string{"signals"}, 42, "SIGTERM|15"},
		{"OV_REMAP_EXIT=143: 0", []string{"-e", "OV_REMAP_EXIT=143"}, []string{"sleep"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := d.start(t, append([]string{"--init"}, tc.flags...), tc.args...)
			c.waitLogs("ready", 10*time.Second)
			start := time.Now()
			if _, stderr, err := d.docker("stop", "-t", "10", c.ID); err != nil {
				t.Fatalf("docker stop: %v\n%s", err, stderr)
			}
			took := time.Since(start)
			t.Logf("docker stop took %v", took.Round(time.Millisecond))
			stdout, stderr := c.logs()
			if code := c.inspect().State.ExitCode; code != tc.want {
				t.Errorf("exit %d after docker stop, want %d; stdout %q, stderr %q", code, tc.want, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.logs) {
				t.Errorf("the app did not report %s: stdout %q", tc.logs, stdout)
			}
			if took >= 3*time.Second {
				t.Errorf("docker stop took %v: the app did not end on the forwarded SIGTERM, Docker's SIGKILL after 10s did", took)
			}
		})
	}
}

func (d *initDaemon) testExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"exit", "3"}, 3},
		{[]string{"exit", "0"}, 0},
		{[]string{"die", "KILL"}, 128 + 9},
	} {
		c, code := d.run(t, []string{"--init"}, tc.args...)
		if code != tc.want {
			_, stderr := c.logs()
			t.Errorf("helper %s under --init: exit %d, want %d; stderr %q", strings.Join(tc.args, " "), code, tc.want, stderr)
		}
	}
}

func (d *initDaemon) testKill(t *testing.T) {
	c := d.start(t, []string{"--init"}, "signals")
	c.waitLogs("ready", 10*time.Second)
	for _, sig := range []struct{ name, want string }{{"HUP", "SIGHUP|1"}, {"USR1", "SIGUSR1|10"}} {
		if _, stderr, err := d.docker("kill", "-s", sig.name, c.ID); err != nil {
			t.Fatalf("docker kill -s %s: %v\n%s", sig.name, err, stderr)
		}
		c.waitLogs(sig.want, 5*time.Second)
	}
	if st := c.inspect().State; !st.Running {
		t.Errorf("the container stopped on HUP or USR1: %s", st.String())
	}
}

func (d *initDaemon) testOrphans(t *testing.T) {
	stay := []string{"-e", "HELPER_STAY=1"}

	t.Run("20 sleeping orphans: ov-init's children, reaped once killed", func(t *testing.T) {
		c := d.start(t, append([]string{"--init"}, stay...), "orphans", "20", "sleep")
		c.waitLogs("done", 10*time.Second)
		pid := c.pid1()
		var orphans []int
		for _, p := range dockerProcsInPIDNamespaceOf(t, pid) {
			if p.PPid == pid && !slices.Equal(procCmdline(p.Pid), []string{"/app/helper", "orphans", "20", "sleep"}) {
				orphans = append(orphans, p.Pid)
			}
		}
		if len(orphans) != 20 {
			t.Fatalf("ov-init (host pid %d) has %d children besides the app, want the 20 orphans", pid, len(orphans))
		}
		for _, o := range orphans {
			syscall.Kill(o, syscall.SIGKILL)
		}
		waitNoZombie(t, pid)
	})

	t.Run("200 orphans that exit at once", func(t *testing.T) {
		c := d.start(t, append([]string{"--init"}, stay...), "orphans", "200")
		c.waitLogs("done", 10*time.Second)
		waitNoZombie(t, c.pid1())
	})

	// Negative control: without --init the helper is PID 1, reaps only its
	// own child, and the look above sees the orphans' zombies.
	t.Run("negative control: without --init 50 zombies stay", func(t *testing.T) {
		c := d.start(t, stay, "orphans", "50")
		c.waitLogs("done", 10*time.Second)
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

// waitNoZombie waits until the container of PID 1 pid holds PID 1 and the
// app alone, no zombie, and fails the test if that takes over 5s.
func waitNoZombie(t *testing.T, pid int) {
	t.Helper()
	var procs []dockerProc
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		procs = dockerProcsInPIDNamespaceOf(t, pid)
		if dockerZombies(procs) == 0 && len(procs) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the container still has %d zombies among %d processes: %+v", dockerZombies(procs), len(procs), procs)
		}
	}
}

func (d *initDaemon) testSecrets(t *testing.T) {
	// The key as the README says: a regular file of 32 bytes, 0600, root's.
	if st, err := os.Stat(webKey); err != nil || st.Mode() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != 0 || st.Size() != 32 {
		t.Fatalf("the fixture key %s: %v, want a 32-byte file of mode 0600 owned by root", webKey, err)
	}
	const vaultIn = "/srv/ov/vault.json"
	secrets := func(key string, env ...string) []string {
		flags := []string{"--init", "-e", "OV_APP=web", "-e", "OV_VAULT=" + vaultIn,
			"-v", key + ":/run/secrets/machine.kek:ro", "-v", vaultFile + ":" + vaultIn + ":ro"}
		for _, e := range env {
			flags = append(flags, "-e", e)
		}
		return flags
	}
	needles := dockerSecretNeedles(t)

	t.Run("the app gets the secrets and no OV_ variable", func(t *testing.T) {
		c, code := d.run(t, secrets(webKey, "OV_VERBOSE=3"), "env")
		stdout, stderr := c.logs()
		if code != 0 || !strings.Contains(stderr, "injecting 2 secrets") {
			t.Fatalf("exit %d, stderr %q: want 0 and ov-init's verbose lines", code, stderr)
		}
		dockerAssertWebSecrets(t, dockerHelperEnv(t, stdout))
		dockerAssertNoSecret(t, "docker logs (stderr) at OV_VERBOSE=3", stderr, needles)
	})

	t.Run("OV_USER: the app runs as 10001 and cannot read the key", func(t *testing.T) {
		c, code := d.run(t, secrets(webKey, "OV_USER=10001:10001", "HELPER_TRY_READ=/run/secrets/machine.kek"), "status")
		stdout, stderr := c.logs()
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		for _, want := range []string{"Uid: 10001 10001 10001 10001\n", "read: open /run/secrets/machine.kek: permission denied\n", "ppid: 1\n"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("the app's status lacks %q:\n%s", want, stdout)
			}
		}
	})

	for _, tc := range []struct {
		name string
		key  func(t *testing.T) string
		want string
	}{
		{"a key of mode 0644 is refused: 78, one line", func(t *testing.T) string {
			return dockerKeyFile(t, webKey, func(p string) error { return os.Chmod(p, 0o644) })
		}, "machine key has permissions 0644 — must be 0600"},
		{"the key of another app is refused: 78, one line", func(*testing.T) string { return apiKey }, `is scoped to app "api", not "web"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, code := d.run(t, secrets(tc.key(t)), "args", dockerAppStarted)
			dockerAssertRefused(t, c, code, tc.want)
		})
	}
}

// testReadme runs the README's `docker run --init` commands as written on
// the second daemon (whose daemon.json is the README's), after the
// Docker section's block that builds myapp:latest, with the substitutions
// of TestReadmeDockerAndComposeCommandsRun and the test's init-path for
// /usr/local/bin/ov-init.
func (d *initDaemon) testReadme(t *testing.T) {
	env, key := readmeEnv(t)
	env = append(env, "DOCKER_HOST="+initDaemonHost)
	runScript := readmeScripts(env)
	replace := strings.NewReplacer(readmeKeyPath, key, readmeInitPath, d.initPath)
	var build *readmeFence
	var blocks []readmeFence
	for _, f := range readmeSection(t, "Docker") {
		switch {
		case f.lang != "sh":
		case f.sub == readmeDockerInit:
			for i := range f.body { // the "#>" lines too: they show the path
				f.body[i] = replace.Replace(f.body[i])
			}
			blocks = append(blocks, f)
		case build == nil && slices.ContainsFunc(f.body, func(l string) bool { return strings.Contains(l, "docker build -t myapp:latest") }):
			build = &f
		}
	}
	if build == nil || len(blocks) == 0 {
		t.Fatalf("README.md, Docker: want the block that builds myapp:latest (found: %v) and ```sh blocks in %s (found %d)", build != nil, readmeDockerInit, len(blocks))
	}
	readmeRunBlock(t, *build, replace, runScript)
	for _, f := range blocks {
		out := readmeRunBlock(t, f, replace, runScript)
		t.Logf("README block:\n%s\noutput:\n%s", strings.Join(f.body, "\n"), out)
	}
}
