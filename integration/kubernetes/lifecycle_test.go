package kubernetes

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperPod is a bare Pod of the helper image whose container "app" runs
// command, with more of the container's fields (a probe, a hook).
func helperPod(n *ns, name string, restart string, grace int, command []string, more map[string]any) string {
	t := n.t
	t.Helper()
	ctr := map[string]any{"name": "app", "image": helperImage, "imagePullPolicy": "Never", "command": command}
	for k, v := range more {
		ctr[k] = v
	}
	b, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "labels": map[string]string{"app": name}},
		"spec": map[string]any{
			"restartPolicy":                 restart,
			"terminationGracePeriodSeconds": grace,
			"automountServiceAccountToken":  false,
			"enableServiceLinks":            false,
			"containers":                    []any{ctr},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(n.dir, name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStopTimingOnAKubelet deletes pods whose ov-init has --grace or
// --term-delay, next to terminationGracePeriodSeconds and a preStop hook,
// and checks, from the container's log on the node (each line stamped
// with the time it was written), when the app got its SIGTERM, and how
// the container ended: as the README's "Stopping a pod" says.
func TestStopTimingOnAKubelet(t *testing.T) {
	requireCluster(t)
	for _, c := range []struct {
		name    string
		grace   int // terminationGracePeriodSeconds
		command []string
		preStop []string
		ready   string
		// term is what the app writes when it gets SIGTERM, which it must
		// between termMin and termMax after the delete; "" when it must
		// never get it.
		term             string
		termMin, termMax time.Duration
		status           int
	}{
		{
			name: "--grace kills an app that ignores SIGTERM", grace: 30,
			command: []string{"/ov-init", "--grace", "2s", "--", "/app/helper", "daemon", "/dev/stdout"},
			ready:   "ready", term: "SIGTERM", termMin: 0, termMax: 2 * time.Second, status: 137,
		},
		{
			name: "--term-delay holds SIGTERM, then the app stops", grace: 30,
			command: []string{"/ov-init", "--term-delay", "3s", "--", "/app/server"},
			ready:   "server: ready", term: "server: terminated", termMin: 3 * time.Second, termMax: 5 * time.Second, status: 0,
		},
		{
			name: "a preStop hook runs first, then --term-delay", grace: 30,
			command: []string{"/ov-init", "--term-delay", "3s", "--", "/app/server"},
			preStop: []string{"/app/helper", "nap", "2s"},
			ready:   "server: ready", term: "server: terminated", termMin: 5 * time.Second, termMax: 8 * time.Second, status: 0,
		},
		{
			name: "a preStop hook past the grace period: the kubelet still sends SIGTERM, 2 s before its SIGKILL", grace: 3,
			command: []string{"/ov-init", "--", "/app/server"},
			preStop: []string{"/app/helper", "nap", "20s"},
			ready:   "server: ready", term: "server: terminated", termMin: 3 * time.Second, termMax: 5 * time.Second, status: 0,
		},
		{
			name: "a --term-delay past the grace period: the kubelet's SIGKILL, the app never told", grace: 3,
			command: []string{"/ov-init", "--term-delay", "20s", "--", "/app/server"},
			ready:   "server: ready", term: "", status: 137,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			n := newNamespace(t)
			more := map[string]any{}
			if c.preStop != nil {
				more["lifecycle"] = map[string]any{"preStop": map[string]any{"exec": map[string]any{"command": c.preStop}}}
			}
			n.kubectl("apply", "-f", helperPod(n, "stop", "Never", c.grace, c.command, more))
			n.waitPod("app=stop", 2*time.Minute, "running", running("app"))
			n.waitLogs("stop", "app", c.ready, 30*time.Second)
			st := n.deletePod("stop", "app")
			term, told := time.Duration(0), false
			if c.term != "" {
				term, told = st.logged(c.term)
			}
			t.Logf("terminationGracePeriodSeconds %d, preStop %q, %q: SIGTERM reached the app %v after kubectl delete pod (%v); exit %d (%s), seen %v after",
				c.grace, c.preStop, c.command, term, told, st.ExitCode, st.Reason, st.after)
			if st.ExitCode != c.status {
				t.Errorf("exit %d (%s), want %d", st.ExitCode, st.Reason, c.status)
			}
			switch {
			case c.term == "":
				if _, told := st.logged("server: terminated"); told {
					t.Errorf("the app got a SIGTERM:\n%s", st.log)
				}
			case !told:
				t.Errorf("the app never wrote %q:\n%s", c.term, st.log)
			case term < c.termMin || term > c.termMax:
				t.Errorf("the app got SIGTERM %v after the delete, want between %v and %v:\n%s", term, c.termMin, c.termMax, st.log)
			}
			if st.after > time.Duration(c.grace+5)*time.Second {
				t.Errorf("the container ended %v after the delete, past the pod's grace period of %d s", st.after, c.grace)
			}
		})
	}
}

// probeCount is how many times the kubelet ran a liveness probe of the
// pod with result, from its /metrics/probes. Asked of the kubelet itself,
// with the admin's certificate: the apiserver does not proxy to a node at
// a loopback address.
func probeCount(t *testing.T, namespace, podName, result string) int {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.state, "pki/admin.crt"), filepath.Join(c.state, "pki/admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert},
		// The kubelet's serving certificate is its own, self-signed.
		InsecureSkipVerify: true,
	}}}
	resp, err := client.Get("https://127.0.0.1:10250/metrics/probes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the kubelet's /metrics/probes: %s, %v", resp.Status, err)
	}
	out := string(b)
	re := regexp.MustCompile(`(?m)^prober_probe_total\{([^}]*)\} (\d+)`)
	total := 0
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		labels := m[1]
		if strings.Contains(labels, `namespace="`+namespace+`"`) && strings.Contains(labels, `pod="`+podName+`"`) &&
			strings.Contains(labels, `probe_type="Liveness"`) && strings.Contains(labels, `result="`+result+`"`) {
			n, _ := strconv.Atoi(m[2])
			total += n
		}
	}
	return total
}

// TestLivenessProbeWhileOvInitIsPID1 runs an exec liveness probe every
// second that leaves three orphans behind each time, which the kernel
// gives to the pod's PID 1: ov-init reaps them all, the probe keeps
// passing and the container is never restarted. The control: a probe
// that fails gets the container restarted, the kubelet's SIGTERM reaching
// the app through ov-init (the app's 0 in lastState).
func TestLivenessProbeWhileOvInitIsPID1(t *testing.T) {
	requireCluster(t)
	probe := func(cmd ...string) map[string]any {
		return map[string]any{"livenessProbe": map[string]any{
			"exec": map[string]any{"command": cmd}, "periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 5,
		}}
	}
	t.Run("passing probe", func(t *testing.T) {
		t.Parallel()
		n := newNamespace(t)
		n.kubectl("apply", "-f", helperPod(n, "live", "Always", 30, []string{"/ov-init", "--", "/app/server"}, probe("/app/helper", "orphans", "3")))
		p := n.waitPod("app=live", 2*time.Minute, "running", running("app"))
		pid1 := hostPID(t, p.container("app"))
		deadline := time.Now().Add(time.Minute)
		for probeCount(t, n.name, "live", "successful") < 8 && time.Now().Before(deadline) {
			time.Sleep(time.Second)
		}
		if got := probeCount(t, n.name, "live", "successful"); got < 8 {
			t.Fatalf("the kubelet ran the probe successfully %d times in a minute, want 8", got)
		}
		// A zombie may be seen for the moment between its exit and
		// ov-init's wait; none may be seen twice, half a second apart.
		seen := map[int]time.Time{}
		for range 20 {
			for _, q := range podProcs(t, pid1) {
				if q.state != "Z" {
					continue
				}
				if first, ok := seen[q.pid]; ok && time.Since(first) > 500*time.Millisecond {
					t.Fatalf("zombie %d (%s) not reaped for %v", q.pid, q.cmdline, time.Since(first))
				} else if !ok {
					seen[q.pid] = time.Now()
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		p = n.pods("app=live")[0]
		if s := p.container("app"); s.RestartCount != 0 || s.State.Running == nil || hostPID(t, s) != pid1 {
			t.Errorf("the container was restarted (restartCount %d) or is not running", s.RestartCount)
		}
		if failed := probeCount(t, n.name, "live", "failed"); failed != 0 {
			t.Errorf("the probe failed %d times", failed)
		}
	})
	t.Run("failing probe restarts the container", func(t *testing.T) {
		t.Parallel()
		n := newNamespace(t)
		n.kubectl("apply", "-f", helperPod(n, "dead", "Always", 30, []string{"/ov-init", "--", "/app/server"}, probe("/app/helper", "exit", "1")))
		p := n.waitPod("app=dead", 2*time.Minute, "restarted after a failed probe", func(p pod) bool {
			s := p.container("app")
			return s.RestartCount >= 1 && s.LastState.Terminated != nil
		})
		if st := p.container("app").LastState.Terminated; st.ExitCode != 0 {
			t.Errorf("the container stopped for its failed probe exited %d (%s), want the app's 0 after the kubelet's SIGTERM", st.ExitCode, st.Reason)
		}
	})
}

// TestVaultBakedIntoTheImage runs the recipe without its ConfigMap: ov-init
// opens the export baked into myapp:latest at /etc/ov/vault.json with the
// key of the deployment it was made for. A key granted after that export
// was made is refused with 78 and the fix, export again.
func TestVaultBakedIntoTheImage(t *testing.T) {
	requireCluster(t)
	noVaultMount := `[{"op":"remove","path":"/spec/template/spec/containers/0/volumeMounts/1"},` +
		`{"op":"remove","path":"/spec/template/spec/volumes/1"}]`
	t.Run("its own key", func(t *testing.T) {
		t.Parallel()
		n := newNamespace(t)
		n.sh("kubectl create secret generic myapp-machine-key --from-file=machine.kek=" + imageKey)
		n.apply(recipe, "deployment/myapp", noVaultMount)
		p := n.waitPod(myappPods, 2*time.Minute, "running", func(p pod) bool {
			return running("myapp")(p) && len(n.kubectl("get", "pod", p.Metadata.Name, "-o", "jsonpath={.spec.volumes}")) > 0 &&
				!strings.Contains(n.kubectl("get", "pod", p.Metadata.Name, "-o", "jsonpath={.spec.volumes}"), "myapp-vault")
		})
		logs := n.waitLogs(p.Metadata.Name, "myapp", "server: ready", 30*time.Second)
		if want := fmt.Sprintf("server: DATABASE_URL is set (%d characters)\n", len(databaseURL)); !strings.Contains(logs, want) {
			t.Errorf("kubectl logs lacks %q:\n%s", want, logs)
		}
	})
	t.Run("a key granted after the export", func(t *testing.T) {
		t.Parallel()
		n := newNamespace(t)
		n.sh("ov auth derive-machine-key --out myapp-k8s.kek --app myapp --deployment k8s")
		n.sh("kubectl create secret generic myapp-machine-key --from-file=machine.kek=myapp-k8s.kek")
		n.apply(recipe, "deployment/myapp", noVaultMount)
		p := n.waitPod(myappPods, 3*time.Minute, "restarted after 78", crashLooping(78))
		n.waitBackOff(p.Metadata.Name)
		logs := n.failedLog(p.Metadata.Name)
		if strings.Count(logs, "\n") != 1 || !strings.Contains(logs, "export again") {
			t.Errorf("kubectl logs is not one line saying to export again:\n%s", logs)
		}
	})
}

// TestFilesRecipeOnAKubelet applies ov-init-files-example.yaml as the
// README says: on the kubelet's own emptyDir (medium: Memory, which it
// mounts 1777), the init container makes it 0700 and the app gets its
// secrets as 0400 files of uid 10001 on a tmpfs, in a 0500 directory.
func TestFilesRecipeOnAKubelet(t *testing.T) {
	requireCluster(t)
	if debianMissing != "" {
		if os.Getenv("CI") != "" {
			t.Fatal("the files recipe needs " + debianMissing)
		}
		t.Skip("the files recipe needs " + debianMissing)
	}
	n := newNamespace(t)
	deployRecipe(n, filesRecipe)
	p := n.waitPod(myappPods, 3*time.Minute, "running", running("myapp"))
	if s := p.container("secrets-dir"); s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
		t.Errorf("the init container: %+v, want terminated with 0", s.State)
	}
	logs := n.waitLogs(p.Metadata.Name, "myapp", "server: ready", 30*time.Second)
	for _, want := range []string{
		fmt.Sprintf("server: DATABASE_URL_FILE is set (/run/ov/DATABASE_URL, %d characters)\n", len(databaseURL)),
		fmt.Sprintf("server: API_TOKEN_FILE is set (/run/ov/API_TOKEN, %d characters)\n", len(apiToken)),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("kubectl logs lacks %q:\n%s", want, logs)
		}
	}
	assertNoSecret(t, "kubectl logs", logs)

	pid1 := hostPID(t, p.container("myapp"))
	var app int
	for _, q := range podProcs(t, pid1) {
		if q.ppid == pid1 {
			app = q.pid
		}
	}
	dir := fmt.Sprintf("/proc/%d/root/run/ov", app)
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Errorf("the emptyDir is not a tmpfs (%x, %v)", fs.Type, err)
	}
	for path, want := range map[string]uint32{dir: unix.S_IFDIR | 0o500, dir + "/DATABASE_URL": unix.S_IFREG | 0o400, dir + "/API_TOKEN": unix.S_IFREG | 0o400} {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != want || st.Uid != 10001 {
			t.Errorf("%s: mode %o, uid %d, want %o and 10001", path, st.Mode, st.Uid, want)
		}
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", app))
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "the app's environment", string(env))

	st := n.deletePod(p.Metadata.Name, "myapp")
	if _, told := st.logged("server: terminated, shutting down"); !told || st.ExitCode != 0 || st.after > 5*time.Second {
		t.Errorf("kubectl delete pod: exit %d (%s) after %v, want the app's 0 at once, after its SIGTERM:\n%s", st.ExitCode, st.Reason, st.after, st.log)
	}
}
