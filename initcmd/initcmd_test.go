package initcmd

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/ov-init/ov-init/execstage"
	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/reaper"
)

// Each fail-closed rule of config, and the settings it turns into a
// reaper.Config. The first broken rule is the error.
func TestConfigRules(t *testing.T) {
	ok := Options{Command: []string{"app"}, given: map[string]bool{}}
	with := func(f func(*Options)) Options {
		o := ok
		o.given = map[string]bool{}
		f(&o)
		return o
	}
	for _, c := range []struct {
		name string
		o    Options
		err  string // "" for none
	}{
		{"Plain", ok, ""},
		{"NoCommand", with(func(o *Options) { o.Command = nil }), "no command given"},
		{"NegativeTermDelay", with(func(o *Options) { o.TermDelay = -time.Second }), "positive duration"},
		{"NegativeGrace", with(func(o *Options) { o.Grace = -1 }), "positive duration"},
		{"GraceGivenZero", with(func(o *Options) { o.given["grace"] = true }), "--grace / OV_GRACE is 0"},
		{"GraceGiven", with(func(o *Options) { o.Grace, o.given["grace"] = time.Second, true }), ""},
		{"VaultGivenEmpty", with(func(o *Options) { o.App, o.given["app"], o.given["vault"], o.emptyVault = "web", true, true, true }), "--vault / OV_VAULT is empty"},
		{"MachineKeyGivenEmpty", with(func(o *Options) { o.App, o.given["app"], o.given["machine-key"] = "web", true, true }), "--machine-key / OV_MACHINE_KEY is empty"},
		{"RemapExit255", with(func(o *Options) { o.RemapExit = []int{0, 255} }), ""},
		{"RemapExit256", with(func(o *Options) { o.RemapExit = []int{143, 256} }), "--remap-exit 256: an exit status is 0..255"},
		{"RemapExitNegative", with(func(o *Options) { o.RemapExit = []int{-1} }), "--remap-exit -1"},
		{"RewriteWithoutColon", with(func(o *Options) { o.Rewrite = []string{"TERM"} }), `--rewrite "TERM": want FROM:TO`},
		{"RewriteUnknownSignal", with(func(o *Options) { o.Rewrite = []string{"TERM:NOPE"} }), `unknown signal "NOPE"`},
		{"RewriteKill", with(func(o *Options) { o.Rewrite = []string{"KILL:TERM"} }), `--rewrite "KILL:TERM": SIGKILL cannot be caught`},
		{"RewriteStop", with(func(o *Options) { o.Rewrite = []string{"STOP:0"} }), `SIGSTOP cannot be caught`},
		{"RewriteURG", with(func(o *Options) { o.Rewrite = []string{"URG:TERM"} }), `ov-init never forwards SIGURG`},
		{"RewriteCHLD", with(func(o *Options) { o.Rewrite = []string{"CHLD:HUP"} }), `ov-init never forwards SIGCHLD`},
		{"RewriteKillByNumber", with(func(o *Options) { o.Rewrite = []string{"9:15"} }), `SIGKILL cannot be caught`},
		{"RewriteSegvByNumber", with(func(o *Options) { o.Rewrite = []string{"11:15"} }), `ov-init never forwards SIGSEGV`},
		{"RewriteStopWithPrefix", with(func(o *Options) { o.Rewrite = []string{"SIGSTOP:HUP"} }), `SIGSTOP cannot be caught`},
		{"RewriteToKill", with(func(o *Options) { o.Rewrite = []string{"TERM:KILL", "USR1:0", "RTMIN+2:HUP"} }), ""},
		{"App", with(func(o *Options) { o.App, o.given["app"] = "web", true }), ""},
		{"AppGivenEmpty", with(func(o *Options) { o.given["app"] = true }), "--app / OV_APP:"},
		{"AppInvalid", with(func(o *Options) { o.App, o.given["app"] = "Web App", true }), "--app / OV_APP:"},
		{"MachineKeyWithoutApp", with(func(o *Options) { o.given["machine-key"] = true }), "--machine-key needs --app NAME"},
		{"VaultWithoutApp", with(func(o *Options) { o.given["vault"] = true }), "--vault needs --app NAME"},
		{"SecretsWithoutApp", with(func(o *Options) { o.Secrets, o.given["secrets"] = []string{"A"}, true }), "--secrets needs --app NAME"},
		{"PreserveEnvWithoutApp", with(func(o *Options) { o.PreserveEnv, o.given["preserve-env"] = true, true }), "--preserve-env needs --app NAME"},
		{"PreserveEnvSetWithoutApp", with(func(o *Options) { o.PreserveEnv = true }), "--secrets and --preserve-env need --app NAME"},
		{"SecretsGivenEmpty", with(func(o *Options) { o.App, o.given["secrets"] = "web", true }), "--secrets / OV_SECRETS is empty"},
		{"SecretsInvalidName", with(func(o *Options) { o.App, o.Secrets, o.given["secrets"] = "web", []string{"A", "B-C"}, true }), "--secrets:"},
		{"SecretsNamed", with(func(o *Options) { o.App, o.Secrets, o.given["secrets"] = "web", []string{"A", "B_2"}, true }), ""},
		// Issue 12: secrets as files or memfds.
		{"SecretsAsWithoutApp", with(func(o *Options) { o.SecretsAs, o.given["secrets-as"] = "files", true }), "--secrets-as needs --app NAME"},
		{"SecretsDirWithoutApp", with(func(o *Options) { o.SecretsDir, o.given["secrets-dir"] = "/run/ov", true }), "--secrets-dir needs --app NAME"},
		{"SecretsNamedHow", with(func(o *Options) {
			o.App, o.Secrets, o.given["secrets"] = "web", []string{"A:env", "B:file", "C:memfd", "D", "B:file"}, true
		}), ""},
		{"SecretsUnknownHow", with(func(o *Options) { o.App, o.Secrets, o.given["secrets"] = "web", []string{"A:files"}, true }), "NAME:file"},
		{"SecretsNamedTwiceInTwoWays", with(func(o *Options) { o.App, o.Secrets, o.given["secrets"] = "web", []string{"A", "A:file"}, true }), "names A twice"},
		{"SecretsDirForFiles", with(func(o *Options) {
			o.App, o.SecretsAs, o.SecretsDir, o.given["secrets-dir"] = "web", "files", "/run/x", true
		}), ""},
		{"SecretsDirForOneFile", with(func(o *Options) {
			o.App, o.Secrets, o.SecretsDir, o.given["secrets"], o.given["secrets-dir"] = "web", []string{"A", "B:file"}, "/x", true, true
		}), ""},
		{"SecretsDirRelative", with(func(o *Options) {
			o.App, o.SecretsAs, o.SecretsDir, o.given["secrets-dir"] = "web", "files", "run/ov", true
		}), "want an absolute path"},
		{"SecretsDirWithoutFiles", with(func(o *Options) {
			o.App, o.SecretsAs, o.SecretsDir, o.given["secrets-dir"] = "web", "memfd", "/run/ov", true
		}), "no secret is delivered as a file"},
		// The first broken rule is the one reported.
		{"FirstRuleWins", with(func(o *Options) { o.Command, o.Grace, o.given["vault"] = nil, -1, true }), "no command given"},
	} {
		_, err := c.o.config()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one with %q", c.name, err, c.err)
		}
	}
}

func TestConfigCarriesTheSignalSettings(t *testing.T) {
	o := Options{
		Flags:   Flags{KillGroup: true, RemapExit: []int{143, 130}, Rewrite: []string{"TERM:QUIT", "USR1:0"}, TermDelay: time.Second, Grace: 2 * time.Second, Verbose: 2},
		Command: []string{"app"},
		Env:     []string{"A=1"},
	}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.KillGroup || cfg.TermDelay != time.Second || cfg.Grace != 2*time.Second || cfg.Verbose != 2 ||
		!reflect.DeepEqual(cfg.RemapExit, map[int]bool{143: true, 130: true}) ||
		!reflect.DeepEqual(cfg.Rewrite, map[syscall.Signal]syscall.Signal{syscall.SIGTERM: syscall.SIGQUIT, syscall.SIGUSR1: 0}) ||
		!slices.Equal(cfg.Env, o.Env) || cfg.Log != os.Stderr {
		t.Errorf("config = %+v", cfg)
	}
	if cfg, _ := (Options{Command: []string{"app"}}).config(); cfg.RemapExit != nil || cfg.Rewrite != nil {
		t.Errorf("no --remap-exit or --rewrite: %v %v, want nil maps", cfg.RemapExit, cfg.Rewrite)
	}
}

func TestPlainModeLooksTheCommandUp(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "tool")
	os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644)
	env := []string{"PATH=" + dir}
	for _, c := range []struct {
		command string
		status  int
		path    string
	}{
		{"tool", 0, tool},
		{"missing", exitcode.NotFound, ""},
		{"data", exitcode.NotExecutable, ""},
	} {
		o := Options{Command: []string{c.command, "arg"}, Env: env}
		cfg, _ := o.config()
		status, err := o.plainMode(&cfg)
		if status != c.status || (err == nil) != (c.status == 0) || cfg.Path != c.path {
			t.Errorf("%s: status %d, error %v, path %q; want %d and %q", c.command, status, err, cfg.Path, c.status, c.path)
		}
		if c.status == 0 && (!slices.Equal(cfg.Argv, o.Command) || cfg.Credential != nil || cfg.Restrict != nil || cfg.StageFD != 0) {
			t.Errorf("%s: %+v, want the command as it is, no user, no stage", c.command, cfg)
		}
	}
}

func TestPlainModeUser(t *testing.T) {
	env := []string{"PATH=/usr/bin:/bin", "HOME=/somewhere", "HOME=/else"}
	run := func(f Flags) (reaper.Config, int, error) {
		o := Options{Flags: f, Command: []string{"sh"}, Env: env}
		cfg, _ := o.config()
		status, err := o.plainMode(&cfg)
		return cfg, status, err
	}
	if os.Geteuid() != 0 {
		_, status, err := run(Flags{User: "0"})
		if status != exitcode.Config || err == nil || !strings.Contains(err.Error(), "can only change user when it starts as root") {
			t.Errorf("--user as non-root: status %d, %v; want %d", status, err, exitcode.Config)
		}
		return
	}
	if _, status, err := run(Flags{User: "no-such-user-ov"}); status != exitcode.Config || err == nil {
		t.Errorf("--user no-such-user-ov: status %d, %v; want %d", status, err, exitcode.Config)
	}
	cfg, status, err := run(Flags{User: "0:0"})
	if status != 0 || err != nil || cfg.Credential == nil || cfg.Credential.Uid != 0 || cfg.Restrict == nil {
		t.Errorf("--user 0:0: status %d, %v, %+v; want uid 0, restricted", status, err, cfg)
	}
	homes := slices.DeleteFunc(slices.Clone(cfg.Env), func(kv string) bool { return !strings.HasPrefix(kv, "HOME=") })
	if len(homes) != 1 || homes[0] == "HOME=/somewhere" || homes[0] == "HOME=/else" {
		t.Errorf("HOME entries %q, want one, the user's", homes)
	}
	if cfg, _, _ := run(Flags{User: "0:0", AllowNewPrivs: true}); cfg.Restrict != nil {
		t.Error("--allow-new-privs: the app is still restricted")
	}
}

func TestSecretsModeStartsTheExecStage(t *testing.T) {
	o := Options{
		Flags:   Flags{App: "web", MachineKey: "/k", Secrets: []string{"A"}, PreserveEnv: true, User: "1001", Verbose: 1},
		Vault:   "/v",
		Command: []string{"app", "arg"},
	}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if status, err := o.secretsMode(&cfg); status != 0 || err != nil {
		t.Fatalf("secretsMode: %d, %v", status, err)
	}
	if cfg.Path != "/proc/self/exe" || cfg.StageFD < 3 || !slices.Equal(cfg.Argv, execstage.Argv("ov-init", cfg.StageFD, o.Command)) {
		t.Errorf("path %q, fd %d, argv %q: want ov-init itself as the exec stage", cfg.Path, cfg.StageFD, cfg.Argv)
	}
	if !execstage.Requested(cfg.Argv) {
		t.Errorf("argv %q does not start the exec stage", cfg.Argv)
	}
	var stage execstage.Config
	if err := stage.UnmarshalBinary(cfg.StageConfig); err != nil {
		t.Fatal(err)
	}
	want := execstage.Config{App: "web", MachineKey: "/k", Vault: "/v", Secrets: []string{"A"}, PreserveEnv: true, User: "1001", Verbose: 1, NoNewPrivs: true, SecretsAs: "env"}
	if !reflect.DeepEqual(stage, want) {
		t.Errorf("stage config %+v, want %+v", stage, want)
	}
	// No vault named: the default; --allow-new-privs: no no_new_privs.
	o.Vault, o.AllowNewPrivs = "", true
	cfg, _ = o.config()
	o.secretsMode(&cfg)
	stage.UnmarshalBinary(cfg.StageConfig)
	if stage.Vault != defaultVault() || stage.NoNewPrivs {
		t.Errorf("vault %q, no_new_privs %v; want %q and false", stage.Vault, stage.NoNewPrivs, defaultVault())
	}
}

// ovLike is a parser shaped like ov's: a global --vault of its own, with a
// default, and a run command that embeds Flags.
type ovLike struct {
	Vault        string `env:"OV_VAULT" default:"/home/u/.config/ov/vault.json"`
	PasswordFile string `env:"OV_PASSWORD_FILE"`
	Run          struct {
		Flags   `embed:""`
		Command []string `arg:"" optional:"" passthrough:"partial"`
	} `cmd:""`
}

func parseOvLike(t *testing.T, args, env []string) Options {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v) // kong reads the real environment
	}
	var c ovLike
	parser := kong.Must(&c, kong.ExplicitGroups([]kong.Group{{Key: "secrets", Title: "Secrets mode"}}), BytesOption)
	ctx, err := parser.Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	return New(ctx, c.Run.Flags, c.Vault, c.Run.Command, env)
}

func TestNewForOvRun(t *testing.T) {
	// ov's --vault, given, names the vault without asking for secrets mode.
	o := parseOvLike(t, []string{"run", "--vault", "/v", "--", "app", "--vault"}, []string{"PATH=/bin"})
	if o.Vault != "/v" || !slices.Equal(o.Command, []string{"app", "--vault"}) || o.given["vault"] {
		t.Errorf("ov run --vault /v: vault %q, command %q, given %v", o.Vault, o.Command, o.given)
	}
	if _, err := o.config(); err != nil {
		t.Errorf("ov run --vault without --app: %v", err)
	}
	// Not given, its default does not count: ov-init's default places do.
	o = parseOvLike(t, []string{"run", "app"}, []string{"PATH=/bin"})
	if o.Vault != "" {
		t.Errorf("ov run without --vault: vault %q, want the default places", o.Vault)
	}
	// From OV_VAULT; every variable of the parser's flags leaves the
	// app's environment, unknown OV_ ones stay.
	o = parseOvLike(t, []string{"run", "--", "app"},
		[]string{"PATH=/bin", "OV_VAULT=/e", "OV_PASSWORD_FILE=/pw", "OV_APP=web", "OV_UNKNOWN=1"})
	if o.Vault != "/e" || o.App != "web" || !o.given["app"] || o.given["vault"] {
		t.Errorf("from OV_*: vault %q, app %q, given %v", o.Vault, o.App, o.given)
	}
	if want := []string{"PATH=/bin", "OV_UNKNOWN=1"}; !slices.Equal(o.Env, want) {
		t.Errorf("app's environment %q, want %q", o.Env, want)
	}
}

func TestNewForOvInitRefusesVaultWithoutApp(t *testing.T) {
	o, _, ok := quietParse([]string{"--vault", "/v", "--", "app"}, []string{"PATH=/bin"})
	if !ok || o.Vault != "/v" || !o.given["vault"] {
		t.Fatalf("ov-init --vault /v: %+v", o)
	}
	if _, err := o.config(); err == nil || !strings.Contains(err.Error(), "--vault needs --app NAME") {
		t.Errorf("ov-init --vault without --app: %v", err)
	}
}

// The re-exec that secrets mode makes must reach the exec stage, in every
// main that calls Run: the first statement of each main that imports
// initcmd is `if execstage.Requested(os.Args) { os.Exit(execstage.Main(…)) }`.
func TestEveryMainRoutesTheExecStageFirst(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.Name}} {{.Dir}} {{join .Imports \" \"}}", "github.com/ov-init/ov-init/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	mains := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "main" || !slices.Contains(fields[2:], "github.com/ov-init/ov-init/initcmd") {
			continue
		}
		mains++
		if !routesStageFirst(t, filepath.Join(fields[1], "main.go")) {
			t.Errorf("%s/main.go: main's first statement must route the exec stage (execstage.Requested → execstage.Main)", fields[1])
		}
	}
	if mains < 2 {
		t.Errorf("found %d mains that call initcmd, want bin/ov-init's and ov's", mains)
	}
}

func routesStageFirst(t *testing.T, path string) bool {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	isCall := func(e ast.Expr, pkg, name string) bool {
		call, ok := e.(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		id, ok := sel.X.(*ast.Ident)
		return ok && id.Name == pkg && sel.Sel.Name == name
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "main" || fn.Recv != nil || len(fn.Body.List) == 0 {
			continue
		}
		st, ok := fn.Body.List[0].(*ast.IfStmt)
		if !ok || !isCall(st.Cond, "execstage", "Requested") || len(st.Body.List) != 1 {
			return false
		}
		exit, ok := st.Body.List[0].(*ast.ExprStmt)
		if !ok || !isCall(exit.X, "os", "Exit") {
			return false
		}
		return isCall(exit.X.(*ast.CallExpr).Args[0], "execstage", "Main")
	}
	return false
}

// The system vault gives way to the one in home only when nothing is
// there: a dangling link, a directory in the way, a path ov-init cannot
// search are the host's vault, whose error is reported; falling back would
// open another copy, maybe older, where revoked keys still work.
func TestDefaultVaultFallsBackOnlyWhenTheSystemVaultIsAbsent(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, filepath.Dir(UserVault)), 0o700); err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(home, UserVault)
	if err := os.WriteFile(user, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(dir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	system := filepath.Join(etc, "vault.json")

	if got := pickVault(system, home); got != user {
		t.Errorf("no system vault: %s, want %s", got, user)
	}
	if got := pickVault(system, ""); got != system {
		t.Errorf("no system vault, no home: %s, want %s", got, system)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), system); err != nil {
		t.Fatal(err)
	}
	if got := pickVault(system, home); got != system {
		t.Errorf("a dangling link at the system vault: %s, want %s", got, system)
	}
	// A directory that cannot be searched (EACCES): a path under a
	// regular file gives ENOTDIR, any error but ENOENT, as root can too.
	blocked := filepath.Join(user, "vault.json")
	if got := pickVault(blocked, home); got != blocked {
		t.Errorf("a system vault that cannot be reached (ENOTDIR): %s, want %s", got, blocked)
	}
}
