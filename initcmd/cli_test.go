package initcmd

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/ov-init/ov-init/execstage"
)

func TestPlainMatchesKong(t *testing.T) {
	for _, args := range [][]string{
		{"--", "app"},
		{"--", "app", "-v", "--app", "x"},
		{"app", "--grace", "1s"},
		{"--", "--"},
		{"/bin/sh", "-c", "echo hi"},
	} {
		env := []string{"PATH=/bin", "HOME=/root"}
		fast, ok := plain(args, env)
		if !ok {
			t.Fatalf("plain(%q) was not taken", args)
		}
		slow, _, ok := parse(args, env)
		if !ok {
			t.Fatalf("kong refused %q", args)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%q:\nplain %+v\nkong  %+v", args, fast, slow)
		}
	}
}

func TestPlainLeavesFlagsAndSettingsToKong(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  []string
	}{
		{[]string{"-v", "--", "app"}, nil},
		{[]string{"--app", "x", "--", "app"}, nil},
		{[]string{"--help"}, nil},
		{[]string{}, nil},
		{[]string{"--"}, nil},
		{[]string{"--", "app"}, []string{"OV_APP=x"}},
		{[]string{"app"}, []string{"A=1", "OV_VERBOSE=1"}},
	} {
		if _, ok := plain(c.args, c.env); ok {
			t.Errorf("plain took %q with env %q", c.args, c.env)
		}
	}
}

func TestSettingsComeFromTheEnvironment(t *testing.T) {
	t.Setenv("OV_KILL_GROUP", "1")
	t.Setenv("OV_REMAP_EXIT", "143,130")
	t.Setenv("OV_REWRITE", "TERM:QUIT,USR1:0")
	t.Setenv("OV_GRACE", "3s")
	t.Setenv("OV_TERM_DELAY", "2s")
	t.Setenv("OV_VERBOSE", "2")
	t.Setenv("OV_APP", "web")
	t.Setenv("OV_SECRETS", "A,B")
	t.Setenv("OV_USER", "1001:1001")
	t.Setenv("OV_PRESERVE_ENV", "true")
	t.Setenv("OV_MACHINE_KEY", "/k")
	t.Setenv("OV_VAULT", "/v")
	o, _, ok := parse([]string{"--", "app"}, os.Environ())
	if !ok {
		t.Fatal("parse failed")
	}
	f := o.Flags
	if !f.KillGroup || !reflect.DeepEqual(f.RemapExit, []int{143, 130}) || strings.Join(f.Rewrite, " ") != "TERM:QUIT USR1:0" ||
		f.Grace.String() != "3s" || f.TermDelay.String() != "2s" || f.Verbose != 2 || f.App != "web" ||
		strings.Join(f.Secrets, ",") != "A,B" || f.User != "1001:1001" || !f.PreserveEnv || f.MachineKey != "/k" || o.Vault != "/v" {
		t.Errorf("settings from OV_* not all read: %+v vault %q", f, o.Vault)
	}
	for _, kv := range o.Env {
		if strings.HasPrefix(kv, "OV_") {
			t.Errorf("ov-init's own setting %q left in the app's environment", kv)
		}
	}
}

func TestParseRewrite(t *testing.T) {
	for _, bad := range []string{"TERM", "TERM:", ":QUIT", "NOPE:QUIT", "TERM:NOPE", "0:TERM", "TERM:65"} {
		if _, _, err := parseRewrite(bad); err == nil {
			t.Errorf("parseRewrite(%q) accepted", bad)
		}
	}
	if from, to, err := parseRewrite("USR1:0"); err != nil || from != 10 || to != 0 {
		t.Errorf("parseRewrite(USR1:0) = %v %v %v", from, to, err)
	}
}

// FuzzCommandLine feeds arbitrary arguments and OV_* settings to the
// parser: it must never panic, and whenever the plain fast path takes the
// input, kong must agree with it.
func FuzzCommandLine(f *testing.F) {
	f.Add("--\x00app", "")
	f.Add("-v\x00-g\x00--\x00app\x00x", "")
	f.Add("--rewrite\x00TERM:QUIT\x00app", "OV_GRACE=1s")
	f.Add("-e\x00300\x00--\x00app", "OV_REMAP_EXIT=1,2")
	f.Add("--app\x00web\x00--secrets\x00A,B\x00--\x00env", "OV_USER=1:1")
	f.Add("--app\x00web\x00--secrets-as\x00files\x00--secrets\x00A,B:memfd\x00--\x00env", "OV_SECRETS_DIR=/run/ov")
	f.Fuzz(func(t *testing.T, args, setting string) {
		argv := strings.Split(args, "\x00")
		env := []string{"PATH=/bin"}
		if k, v, ok := strings.Cut(setting, "="); ok && strings.HasPrefix(k, "OV_") && !strings.ContainsAny(k+v, "\x00") {
			t.Setenv(k, v)
			env = append(env, setting)
		}
		slow, _, slowOK := quietParse(argv, env)
		if fast, ok := plain(argv, env); ok {
			if !slowOK || !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: plain %+v, kong (%v) %+v", argv, fast, slowOK, slow)
			}
		}
		if slowOK {
			// Whatever kong accepts, the checks after it must handle.
			_, _ = slow.config()
		}
	})
}

// quietParse is parse with kong's help and errors sent nowhere.
func quietParse(args, env []string) (Options, int, bool) {
	stdout, stderr := os.Stdout, os.Stderr
	null, _ := os.Open(os.DevNull)
	os.Stdout, os.Stderr = null, null
	defer func() { os.Stdout, os.Stderr = stdout, stderr; null.Close() }()
	return parse(args, env)
}

func FuzzParseRewrite(f *testing.F) {
	for _, s := range []string{"TERM:QUIT", "USR1:0", "RTMIN+3:HUP", "15:3", "sigterm:sigkill", ":", "RTMAX-0:RTMIN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		from, to, err := parseRewrite(spec)
		if err != nil {
			return
		}
		if from < 1 || from > 64 || to < 0 || to > 64 {
			t.Fatalf("parseRewrite(%q) = %d:%d, outside 1..64 / 0..64", spec, from, to)
		}
	})
}

// `ov run` is ov-init under ov's parser: every line it prints, its exec
// stage's and the reaper's included, starts "ov: "; ov-init's "ov-init: "
// (issue 11). The name comes from the parser, so neither command sets it.
func TestProgIsTheParsersName(t *testing.T) {
	args := []string{"--app", "web", "--", "app"}
	o, _, ok := parse(args, nil)
	if !ok {
		t.Fatal("parse failed")
	}
	fast, _ := plain([]string{"--", "app"}, nil)
	var run struct {
		Flags   `embed:""`
		Command []string `arg:"" optional:"" passthrough:"partial"`
	}
	p := kong.Must(&run, kong.Name("ov"), kong.ExplicitGroups([]kong.Group{{Key: secretsGroup, Title: "secrets"}}))
	ctx, err := p.Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		o    Options
		want string
	}{{o, "ov-init"}, {fast, "ov-init"}, {New(ctx, run.Flags, "", run.Command, nil), "ov"}} {
		if got := c.o.Prog(); got != c.want {
			t.Errorf("Prog() = %q, want %q", got, c.want)
		}
		cfg, err := c.o.config()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Prog != c.want {
			t.Errorf("reaper.Config.Prog = %q, want %q", cfg.Prog, c.want)
		}
		if c.o.App == "" {
			continue
		}
		if _, err := c.o.secretsMode(&cfg); err != nil {
			t.Fatal(err)
		}
		if got := execstage.Prog(cfg.Argv); got != c.want {
			t.Errorf("the exec stage (argv %q) speaks as %q, want %q", cfg.Argv, got, c.want)
		}
	}
}
