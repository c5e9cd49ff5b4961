package kubernetes

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stateDir is where scripts/kubernetes-up keeps the cluster: one per
// machine, so a run killed half-way is cleaned up by the next.
const stateDir = "/var/lib/ov-init-k8s-test"

// cluster is the running single-node cluster.
type cluster struct {
	bin        string // etcd, the control plane, kubelet, kubectl
	state      string
	kubeconfig string // the admin's
	version    string // the kubelet's, as the node reports it
}

// up builds (or finds in the cache) the cluster's binaries and starts it,
// after clearing what an earlier run left.
func up() (*cluster, error) {
	script := func(name string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(repo, "scripts", name), args...)
		cmd.Stderr = os.Stderr // progress and timings, shown with -v or on failure
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("scripts/%s: %v", name, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	bin, err := script("kubernetes-build")
	if err != nil {
		return nil, err
	}
	if _, err := script("kubernetes-down", stateDir); err != nil {
		return nil, err
	}
	start := time.Now()
	cl := &cluster{bin: bin, state: stateDir}
	kubeconfig, err := script("kubernetes-up", stateDir, bin)
	if err != nil {
		// cl, so that TestMain takes down what did start.
		return cl, fmt.Errorf("%v (logs: %s/log)", err, stateDir)
	}
	cl.kubeconfig = kubeconfig
	v, err := cl.kubectl(nil, "get", "nodes", "-o", "jsonpath={.items[0].status.nodeInfo.kubeletVersion}")
	if err != nil {
		return cl, err
	}
	cl.version = strings.TrimSpace(v)
	fmt.Fprintf(os.Stderr, "kubernetes: node Ready, kubelet %s, %.1fs after kubernetes-up started\n", cl.version, time.Since(start).Seconds())
	return cl, nil
}

func (cl *cluster) down() error {
	cmd := exec.Command(filepath.Join(repo, "scripts", "kubernetes-down"), cl.state)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/kubernetes-down: %v\n%s", err, out)
	}
	return nil
}

// kubectl runs kubectl as the admin with env added.
func (cl *cluster) kubectl(env []string, args ...string) (string, error) {
	return run(work, append([]string{"KUBECONFIG=" + cl.kubeconfig}, env...), filepath.Join(cl.bin, "kubectl"), args...)
}

// ctr runs ctr against the node's containerd, in the kubelet's namespace.
func (cl *cluster) ctr(args ...string) (string, error) {
	return run(work, nil, "ctr", append([]string{"-a", filepath.Join(cl.state, "containerd.sock"), "-n", "k8s.io"}, args...)...)
}

// ns is a namespace of one test, and the operator's setting to use it: a
// kubeconfig whose context names it, so that the README's commands run as
// written, without -n, and land there.
type ns struct {
	t          *testing.T
	name       string
	dir        string // the operator's working directory
	home       string // the operator's HOME, a copy of the fixture's
	kubeconfig string
}

// newNamespace makes a namespace for t, deleted when t ends, and an
// operator's working directory with the fixture's vault and deploy/ (so
// that `kubectl apply -f deploy/kubernetes/…` reads the repository's).
func newNamespace(t *testing.T) *ns {
	t.Helper()
	requireCluster(t)
	b := make([]byte, 3)
	rand.Read(b)
	name := "t-" + hex.EncodeToString(b)
	// Not t.TempDir(): its name comes from the test's, and kubectl -f
	// takes a comma as a list of files.
	dir, err := os.MkdirTemp(work, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &ns{t: t, name: name, dir: dir}
	n.home = filepath.Join(n.dir, "home")
	if out, err := run(n.dir, nil, "cp", "-a", opHome, n.home); err != nil {
		t.Fatal(out, err)
	}
	if err := os.Symlink(filepath.Join(repo, "deploy"), filepath.Join(n.dir, "deploy")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kubectl(nil, "create", "namespace", name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kubectl(nil, "label", "namespace", name, "ov-k8s-test=1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectl(nil, "get", "events", "-n", name, "--sort-by=.lastTimestamp")
			t.Logf("events in %s:\n%s", name, out)
		}
		c.kubectl(nil, "delete", "namespace", name, "--wait=false")
	})
	cfg, err := os.ReadFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	n.kubeconfig = filepath.Join(n.dir, "kubeconfig")
	if err := os.WriteFile(n.kubeconfig, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	n.kubectl("config", "set-context", "--current", "--namespace="+name)
	return n
}

// env is the operator's environment in this namespace.
func (n *ns) env() []string { return operatorEnv(n.home, n.kubeconfig) }

// sh runs one of the README's command lines as the operator, in dir.
func (n *ns) sh(line string) string {
	n.t.Helper()
	out, err := run(n.dir, n.env(), "bash", "-euo", "pipefail", "-c", line)
	if err != nil {
		n.t.Fatalf("$ %s\n%v", line, err)
	}
	return out
}

// kubectl runs kubectl in the namespace and fails the test on an error.
func (n *ns) kubectl(args ...string) string {
	n.t.Helper()
	out, err := n.tryKubectl(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

func (n *ns) tryKubectl(args ...string) (string, error) {
	return run(n.dir, []string{"KUBECONFIG=" + n.kubeconfig}, filepath.Join(c.bin, "kubectl"), args...)
}

// apply applies a manifest, then, if any, a JSON patch to the object it
// made (kind/name), and says what it changed.
func (n *ns) apply(manifest string, object string, patch string) {
	n.t.Helper()
	n.kubectl("apply", "-f", manifest)
	if patch != "" {
		n.t.Logf("kubectl patch %s --type=json -p '%s'", object, patch)
		n.kubectl("patch", object, "--type=json", "-p", patch)
	}
}

// The parts of a Pod the tests read.
type pod struct {
	Metadata struct {
		Name              string  `json:"name"`
		UID               string  `json:"uid"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Status struct {
		Phase                 string            `json:"phase"`
		ContainerStatuses     []containerStatus `json:"containerStatuses"`
		InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	RestartCount int            `json:"restartCount"`
	ContainerID  string         `json:"containerID"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting"`
	Running *struct {
		StartedAt string `json:"startedAt"`
	} `json:"running"`
	Terminated *terminated `json:"terminated"`
}

type terminated struct {
	ExitCode int    `json:"exitCode"`
	Reason   string `json:"reason"`
}

// pods lists the namespace's pods matching selector.
func (n *ns) pods(selector string) []pod {
	n.t.Helper()
	var list struct {
		Items []pod `json:"items"`
	}
	if err := json.Unmarshal([]byte(n.kubectl("get", "pods", "-l", selector, "-o", "json")), &list); err != nil {
		n.t.Fatal(err)
	}
	return list.Items
}

// waitPod polls the one live pod matching selector until ok says it is
// as wanted, and returns it; it fails the test after within.
func (n *ns) waitPod(selector string, within time.Duration, what string, ok func(p pod) bool) pod {
	n.t.Helper()
	deadline := time.Now().Add(within)
	var last []pod
	for time.Now().Before(deadline) {
		last = n.pods(selector)
		for _, p := range last {
			if p.Metadata.DeletionTimestamp == nil && ok(p) {
				return p
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", "  ")
	n.t.Fatalf("no pod %s %s within %v; last seen:\n%s", selector, what, within, b)
	return pod{}
}

// container is the status of the pod's container named name.
func (p pod) container(name string) containerStatus {
	for _, s := range append(p.Status.ContainerStatuses, p.Status.InitContainerStatuses...) {
		if s.Name == name {
			return s
		}
	}
	return containerStatus{}
}

// waitLogs waits until the container's log holds want, and returns it.
func (n *ns) waitLogs(podName, container, want string, within time.Duration) string {
	n.t.Helper()
	deadline := time.Now().Add(within)
	var out string
	for time.Now().Before(deadline) {
		out, _ = n.tryKubectl("logs", podName, "-c", container)
		if strings.Contains(out, want) {
			return out
		}
		time.Sleep(250 * time.Millisecond)
	}
	n.t.Fatalf("the log of %s/%s never held %q within %v:\n%s", podName, container, want, within, out)
	return ""
}

// stopped is how a container ended after kubectl delete pod: its last
// state, when (after the delete) it was seen terminated, and its log as
// the node's CRI log file holds it, one "TIME STREAM TAG TEXT" line per
// line the container wrote, each with the time it was written.
type stopped struct {
	terminated
	after time.Duration
	start time.Time // of the delete
	log   string
}

// logged returns how long after the delete the container wrote a line
// holding text, and whether it did.
func (s stopped) logged(text string) (time.Duration, bool) {
	for _, line := range strings.Split(s.log, "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 4 || !strings.Contains(f[3], text) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			return 0, false
		}
		return at.Sub(s.start), true
	}
	return 0, false
}

// deletePod deletes the pod (kubectl delete pod, as an operator would) and
// returns how its container ended, read before the pod is gone.
func (n *ns) deletePod(podName, container string) stopped {
	n.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, "kubectl"), "get", "pod", podName, "-o", "json", "--watch", "--output-watch-events")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+n.kubeconfig)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	type event struct {
		Type   string `json:"type"`
		Object pod    `json:"object"`
	}
	events := make(chan event)
	go func() {
		defer close(events)
		dec := json.NewDecoder(bufio.NewReader(stdout))
		for {
			var e event
			if dec.Decode(&e) != nil {
				return // the watch ended, or was killed: see below
			}
			events <- e
		}
	}()
	defer func() {
		cmd.Process.Kill()
		for range events { // let the reader end
		}
		cmd.Wait()
	}()
	now, ok := <-events // the pod as it is now (ADDED)
	if !ok {
		n.t.Fatalf("kubectl get pod %s --watch ended at once", podName)
	}
	// The kubelet removes the container's log with the pod, which can be
	// before this watch reports the container terminated (at once, after
	// a SIGKILL): open the log now, and read it through the open file
	// once the container has ended.
	logs, _ := filepath.Glob(filepath.Join(c.state, "pod-logs", n.name+"_"+podName+"_"+now.Object.Metadata.UID, container, "*.log"))
	var open []*os.File
	for _, l := range logs {
		f, err := os.Open(l)
		if err != nil {
			n.t.Fatal(err)
		}
		defer f.Close()
		open = append(open, f)
	}
	if len(open) == 0 {
		n.t.Fatalf("no log of %s/%s on the node", podName, container)
	}
	start := time.Now()
	n.kubectl("delete", "pod", podName, "--wait=false")
	var last *stopped
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case e, ok := <-events:
			if !ok || e.Type == "DELETED" {
				if last == nil {
					n.t.Fatalf("pod %s was deleted without its container %s seen terminated", podName, container)
				}
				return *last
			}
			if s := e.Object.container(container); s.State.Terminated != nil && last == nil {
				last = &stopped{terminated: *s.State.Terminated, after: time.Since(start), start: start}
				for _, f := range open {
					b, err := io.ReadAll(f)
					if err != nil {
						n.t.Fatal(err)
					}
					last.log += string(b)
				}
				if last.log == "" {
					n.t.Fatalf("the log of %s/%s on the node is empty (%v)", podName, container, logs)
				}
			}
		case <-timeout:
			n.t.Fatalf("pod %s not gone 2 minutes after kubectl delete", podName)
		}
	}
}

// hostPID is the PID, in the node's PID namespace, of the container's
// first process (ov-init, PID 1 in the pod's).
func hostPID(t *testing.T, s containerStatus) int {
	t.Helper()
	id := strings.TrimPrefix(s.ContainerID, "containerd://")
	out, err := c.ctr("tasks", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == id {
			var pid int
			fmt.Sscan(f[1], &pid)
			return pid
		}
	}
	t.Fatalf("container %s is not among containerd's tasks:\n%s", id, out)
	return 0
}
