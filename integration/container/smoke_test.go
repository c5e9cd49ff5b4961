package container

import (
	"strings"
	"testing"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
)

func TestAppImageInjectsSecretsAsPID1(t *testing.T) {
	requireDocker(t)
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository: "ov-init-test-app",
		Tag:        "latest",
		Cmd:        []string{"/app/helper", "env"},
		Mounts:     []string{webKey + ":/run/secrets/machine.kek:ro"},
	}, func(hc *docker.HostConfig) {
		hc.NetworkMode = "none"
		hc.AutoRemove = false
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Purge(res)
	code, err := pool.Client.WaitContainer(res.Container.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	pool.Client.Logs(docker.LogsOptions{Container: res.Container.ID, OutputStream: &out, ErrorStream: &out, Stdout: true, Stderr: true})
	if code != 0 || !strings.Contains(out.String(), "DATABASE_URL="+webDatabaseURL) {
		t.Errorf("exit %d, output %q", code, out.String())
	}
}
