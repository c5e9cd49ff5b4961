package kubernetes

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	recipe      = "deploy/kubernetes/ov-init-example.yaml"
	filesRecipe = "deploy/kubernetes/ov-init-files-example.yaml"
	myappPods   = "app.kubernetes.io/name=myapp"
)

// readmeCommands are the command lines of the first console block of
// deploy/kubernetes/README.md, the one that creates the Secret and the
// ConfigMap and applies the recipe, as written there.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "deploy/kubernetes/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "```console":
			in = true
		case in && line == "```":
			return cmds
		case in && strings.HasPrefix(line, "$ "):
			cmds = append(cmds, strings.TrimPrefix(line, "$ "))
		}
	}
	t.Fatal("deploy/kubernetes/README.md has no console block")
	return nil
}

// deployRecipe runs the README's commands in n: the key of deployment k8s
// into a Secret, myapp's export into a ConfigMap, and, when manifest is
// the README's own, the kubectl apply of it as written; another manifest
// is applied instead of that last line.
func deployRecipe(n *ns, manifest string) {
	n.t.Helper()
	for _, line := range readmeCommands(n.t) {
		if strings.HasPrefix(line, "kubectl apply -f ") && strings.TrimPrefix(line, "kubectl apply -f ") != manifest {
			line = "kubectl apply -f " + manifest
		}
		n.sh(line)
	}
}

// proc is a process of the node as /proc shows it.
type proc struct {
	pid, ppid, uid int
	state          string
	cmdline        string
}

func readProc(pid int) (proc, bool) {
	p := proc{pid: pid}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, false
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "State:":
			p.state = f[1]
		case "PPid:":
			p.ppid, _ = strconv.Atoi(f[1])
		case "Uid:":
			p.uid, _ = strconv.Atoi(f[2]) // effective
		}
	}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	p.cmdline = strings.TrimRight(strings.ReplaceAll(string(cmd), "\x00", " "), " ")
	return p, true
}

// podProcs lists the processes in the PID namespace of the node's
// process pid.
func podProcs(t *testing.T, pid int) []proc {
	t.Helper()
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var procs []proc
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", n)); err != nil || ns != want {
			continue
		}
		if p, ok := readProc(n); ok {
			procs = append(procs, p)
		}
	}
	return procs
}

// assertNoSecret fails when text holds a secret value.
func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, v := range []string{databaseURL, apiToken} {
		if strings.Contains(text, v) {
			t.Errorf("%s holds a secret value", what)
		}
	}
}

func running(name string) func(p pod) bool {
	return func(p pod) bool { return p.container(name).State.Running != nil }
}

// TestRecipeOnAKubelet applies deploy/kubernetes as its README says: the
// app gets its secrets as 10001 under ov-init as PID 1, with the key and
// the export from a Secret and a ConfigMap mounted with subPath; no secret
// reaches the log, at -vvv either; `kubectl delete pod` stops the app
// through ov-init with its own status, at once.
func TestRecipeOnAKubelet(t *testing.T) {
	n := newNamespace(t)
	deployRecipe(n, recipe)
	p := n.waitPod(myappPods, 2*time.Minute, "running", running("myapp"))
	logs := n.waitLogs(p.Metadata.Name, "myapp", "server: ready", 30*time.Second)
	for _, want := range []string{
		", uid 10001\n",
		fmt.Sprintf("server: DATABASE_URL is set (%d characters)\n", len(databaseURL)),
		fmt.Sprintf("server: API_TOKEN is set (%d characters)\n", len(apiToken)),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("kubectl logs lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "server: pid 1,") {
		t.Errorf("the app is PID 1, not ov-init:\n%s", logs)
	}
	assertNoSecret(t, "kubectl logs", logs)

	// On the node: ov-init is the container's first process (PID 1 of the
	// pod's PID namespace), root; the app is its child, 10001; the key
	// it was given is root's, 0600, a regular file.
	pid1 := hostPID(t, p.container("myapp"))
	init, _ := readProc(pid1)
	if init.cmdline != "/ov-init --user 10001:10001 --app myapp -- /app/server" || init.uid != 0 {
		t.Errorf("the container's first process is %q as uid %d, want ov-init as root", init.cmdline, init.uid)
	}
	var app *proc
	for _, q := range podProcs(t, pid1) {
		if q.ppid == pid1 {
			app = &q
		}
	}
	if app == nil || app.cmdline != "/app/server" || app.uid != 10001 {
		t.Fatalf("ov-init's child is %+v, want /app/server as 10001", app)
	}
	// 10001, with no capability left (no CAP_DAC_OVERRIDE or
	// CAP_DAC_READ_SEARCH): it cannot open a root-owned 0600 file.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", app.pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nCapEff:\t0000000000000000\n") {
		t.Errorf("the app has capabilities:\n%s", status)
	}
	var st unix.Stat_t
	if err := unix.Lstat(fmt.Sprintf("/proc/%d/root/run/secrets/machine.kek", app.pid), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != unix.S_IFREG|0o600 || st.Uid != 0 {
		t.Errorf("the key in the container is mode %o, uid %d: want a regular file, 0600, root's", st.Mode, st.Uid)
	}

	// ov-init's diagnostics at -vvv (OV_VERBOSE=3, a rollout): still no
	// value in the log.
	first := p.Metadata.Name
	n.kubectl("set", "env", "deployment/myapp", "OV_VERBOSE=3")
	p = n.waitPod(myappPods, 2*time.Minute, "running with OV_VERBOSE=3", func(p pod) bool {
		return p.Metadata.Name != first && running("myapp")(p) && strings.Contains(n.kubectl("get", "pod", p.Metadata.Name, "-o", "jsonpath={.spec.containers[0].env}"), "OV_VERBOSE")
	})
	logs = n.waitLogs(p.Metadata.Name, "myapp", "server: ready", 30*time.Second)
	if !strings.Contains(logs, "ov-init: ") {
		t.Errorf("at -vvv ov-init said nothing:\n%s", logs)
	}
	assertNoSecret(t, "kubectl logs at -vvv", logs)

	// kubectl delete pod: the kubelet's SIGTERM goes to ov-init, which
	// forwards it; the app shuts down and its 0 is the container's.
	end := n.deletePod(p.Metadata.Name, "myapp")
	term, told := end.logged("server: terminated, shutting down")
	t.Logf("kubectl delete pod: SIGTERM reached the app %v after the delete; the container ended with %d (%s), seen %v after", term, end.ExitCode, end.Reason, end.after)
	if !told {
		t.Errorf("the app never got its SIGTERM:\n%s", end.log)
	}
	if end.ExitCode != 0 {
		t.Errorf("after kubectl delete pod the container exited %d (%s), want the app's 0", end.ExitCode, end.Reason)
	}
	if end.after > 5*time.Second {
		t.Errorf("the container took %v to stop, want about a second (the grace period is 30 s)", end.after)
	}
}
