package kubernetes

import (
	"strings"
	"testing"
	"time"
)

// crashLooping returns a test of a pod whose container was restarted
// after it ended with status.
func crashLooping(status int) func(p pod) bool {
	return func(p pod) bool {
		s := p.container("myapp")
		return s.RestartCount >= 1 && s.LastState.Terminated != nil && s.LastState.Terminated.ExitCode == status
	}
}

// waitBackOff waits for the kubelet's BackOff event of the pod: it went
// to CrashLoopBackOff, the kubelet backing off from a container that
// failed, rather than restarting one that "succeeded" in a silent loop.
// (The pod's status shows the reason CrashLoopBackOff only for a moment
// of each back-off: the kubelet reports the last termination the rest of
// the time, and kubectl get pod says Error.)
func (n *ns) waitBackOff(podName string) {
	n.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out := n.kubectl("get", "events", "--field-selector", "involvedObject.name="+podName+",reason=BackOff", "-o", "jsonpath={.items[*].message}")
		if strings.Contains(out, "Back-off restarting failed container myapp") {
			return
		}
		time.Sleep(time.Second)
	}
	n.t.Fatalf("no BackOff event for pod %s within a minute", podName)
}

// failedLog is what kubectl logs shows of the crash-looping container's
// last run: the current container's, which the kubelet reports
// terminated while it backs off, or --previous's once it has started the
// next. (The kubelet keeps one dead container's log: the one before may
// be gone, and kubectl logs then prints "unable to retrieve container
// logs".)
func (n *ns) failedLog(podName string) string {
	n.t.Helper()
	deadline := time.Now().Add(time.Minute)
	var out string
	for time.Now().Before(deadline) {
		for _, previous := range []string{"--previous=false", "--previous=true"} {
			var err error
			out, err = n.tryKubectl("logs", podName, "-c", "myapp", previous)
			if err == nil && out != "" && !strings.HasPrefix(out, "unable to retrieve container logs") {
				return out
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	n.t.Fatalf("kubectl logs of %s never showed its last run: %s", podName, out)
	return ""
}

// TestWhatPeopleGetWrongIsRefusedOnAKubelet applies the recipe as the
// README says, then changes the one thing people get wrong: each time the
// container ends with 78 and one line naming the fix, which kubectl logs
// shows; the app never starts; and the Deployment (restartPolicy Always)
// goes to CrashLoopBackOff with 78 in lastState.
func TestWhatPeopleGetWrongIsRefusedOnAKubelet(t *testing.T) {
	requireCluster(t)
	for _, c := range []struct {
		name  string
		patch string
		want  []string
	}{
		{
			name: "secret volume without subPath: a symlink",
			patch: `[{"op":"remove","path":"/spec/template/spec/containers/0/volumeMounts/0/subPath"},` +
				`{"op":"replace","path":"/spec/template/spec/containers/0/volumeMounts/0/mountPath","value":"/run/secrets"}]`,
			want: []string{`opening machine key: too many levels of symbolic links ("/run/secrets/machine.kek")`, "(Kubernetes: mount it with subPath and defaultMode 0600)"},
		},
		{
			name:  "fsGroup set: 0640",
			patch: `[{"op":"add","path":"/spec/template/spec/securityContext","value":{"fsGroup":2000}}]`,
			want:  []string{"machine key has permissions 0640 — must be 0600", "(Kubernetes: defaultMode 0600 and no fsGroup)"},
		},
		{
			name:  "defaultMode left out: 0644",
			patch: `[{"op":"remove","path":"/spec/template/spec/volumes/0/secret/defaultMode"}]`,
			want:  []string{"machine key has permissions 0644 — must be 0600", "(Kubernetes: defaultMode 0600 and no fsGroup)"},
		},
		{
			name: "ov-init not root: runAsUser 1000",
			patch: `[{"op":"replace","path":"/spec/template/spec/containers/0/securityContext/runAsUser","value":1000},` +
				`{"op":"replace","path":"/spec/template/spec/containers/0/securityContext/runAsGroup","value":1000}]`,
			want: []string{"machine key is owned by uid 0 but current uid is 1000", "fix: run ov-init as root with --user", "(Kubernetes: a Secret volume is always root's: runAsUser 0, mount the key with subPath, pass --user)"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			n := newNamespace(t)
			deployRecipe(n, recipe)
			n.apply(recipe, "deployment/myapp", c.patch)
			// Only the patched ReplicaSet's pods can end with 78.
			p := n.waitPod(myappPods, 3*time.Minute, "restarted after 78", crashLooping(78))
			n.waitBackOff(p.Metadata.Name)
			logs := n.failedLog(p.Metadata.Name)
			if strings.Count(logs, "\n") != 1 || !strings.HasPrefix(logs, "ov-init: ") {
				t.Errorf("kubectl logs is not one ov-init line:\n%s", logs)
			}
			for _, want := range c.want {
				if !strings.Contains(logs, want) {
					t.Errorf("kubectl logs lacks %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, "server:") {
				t.Errorf("the app started:\n%s", logs)
			}
		})
	}
}
