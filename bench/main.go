// Command bench measures ov-init against tini, dumb-init and catatonit,
// side by side in one run, and prints a markdown table with each figure and
// its ratio to tini. It installs the peers it lacks from Debian, runs every
// init as PID 1 of a fresh PID namespace (root needed), and interleaves the
// inits so that machine drift hits all alike. `make bench` runs it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ov-init/ov-init/vault"
)

var (
	runs      = flag.Int("runs", 100, "start-up runs per init")
	reapRuns  = flag.Int("reap-runs", 7, "reaping runs per init")
	orphans   = flag.Int("orphans", 5000, "orphaned zombies per reaping run")
	sigRuns   = flag.Int("signals", 200, "signal round trips per init")
	idleFor   = flag.Duration("idle", 10*time.Second, "idle window")
	ovInit    = flag.String("ov-init", "bin/ov-init", "the ov-init binary")
	helperBin = flag.String("helper", "", "the helper program (built from integration/helper when empty)")
)

// An init under test, with the arguments that put the app after it.
type initCmd struct {
	name string
	path string
	args []string
}

func (i initCmd) argv(app ...string) []string {
	return append(append([]string{i.path}, i.args...), app...)
}

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fail("bench needs root: every init runs as PID 1 of a new PID namespace")
	}
	work, err := os.MkdirTemp("", "ov-bench-")
	check(err)
	defer os.RemoveAll(work)
	defer runAtExit()

	peers := installPeers()
	helper := *helperBin
	if helper == "" {
		helper = filepath.Join(work, "helper")
		build(helper, "./integration/helper")
	}
	ov, err := filepath.Abs(*ovInit)
	check(err)
	secrets1, secrets50, deployments100 := secretsFixture(work)
	secretsDir := memDir(filepath.Join(work, "run-ov"))

	inits := append(peers, initCmd{"ov-init", ov, []string{"--"}})
	startInits := append(append([]initCmd{}, inits...),
		initCmd{"ov-init, 1 secret", ov, append(secrets1, "--")},
		initCmd{"ov-init, 50 secrets", ov, append(secrets50, "--")},
		initCmd{"ov-init, 50 secrets as files", ov, slices.Concat(secrets50, []string{"--secrets-as", "files", "--secrets-dir", secretsDir, "--"})},
		initCmd{"ov-init, 50 secrets as memfds", ov, slices.Concat(secrets50, []string{"--secrets-as", "memfd", "--"})},
		initCmd{"ov-init, 100 deployments, 50 secrets", ov, append(deployments100, "--")})

	fmt.Fprintln(os.Stderr, "bench: start-up overhead")
	startup := measureStartup(startInits, helper)
	fmt.Fprintln(os.Stderr, "bench: reaping")
	reaping := measureReaping(inits, helper)
	fmt.Fprintln(os.Stderr, "bench: signal round trip")
	roundTrip := measureRoundTrip(inits, helper)
	fmt.Fprintln(os.Stderr, "bench: memory, threads, idle cost")
	idle := measureIdle(inits, helper)

	printTable(startInits, inits, startup, reaping, roundTrip, idle)
}

// installPeers finds tini, dumb-init and catatonit, installing Debian's
// packages for the missing ones.
func installPeers() []initCmd {
	peers := []initCmd{
		{"tini", "tini", []string{"-s", "--"}},
		{"dumb-init", "dumb-init", []string{"--"}},
		{"catatonit", "catatonit", []string{"--"}},
	}
	var missing []string
	for _, p := range peers {
		if _, err := exec.LookPath(p.path); err != nil {
			missing = append(missing, p.path)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "bench: installing %s from Debian\n", strings.Join(missing, ", "))
		cmd := exec.Command("sh", "-c", "apt-get update -qq && apt-get install -y -qq "+strings.Join(missing, " "))
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			fail("installing %v: %v\n%s", missing, err, out)
		}
	}
	for i := range peers {
		path, err := exec.LookPath(peers[i].path)
		check(err)
		peers[i].path = path
	}
	return peers
}

// atExit runs when bench ends, on fail too (which skips deferred calls).
var atExit []func()

// memDir mounts a tmpfs (mode 0700, as docker run --tmpfs /run/ov:mode=0700)
// at dir for --secrets-as files, unmounted when bench ends.
func memDir(dir string) string {
	check(os.Mkdir(dir, 0o700))
	check(syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700"))
	atExit = append(atExit, func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func build(out, pkg string) {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		fail("building %s: %v\n%s", pkg, err, b)
	}
}

// secretsFixture makes a vault with an app of 1 secret and one of 50, and
// legacy app keys for both; it returns ov-init's arguments for each, and
// for the app of 50 secrets opened with the last of 100 deployment keys.
func secretsFixture(work string) ([]string, []string, []string) {
	v, root, err := vault.New([]byte("bench password"))
	check(err)
	defer root.Wipe()
	for _, app := range []string{"one", "fifty"} {
		check(v.CreateApp(root, app))
	}
	check(v.SetSecret(root, "one", "SECRET_0", []byte("value-0-0123456789abcdef")))
	for i := 0; i < 50; i++ {
		check(v.SetSecret(root, "fifty", fmt.Sprintf("SECRET_%d", i), []byte(fmt.Sprintf("value-%d-0123456789abcdef0123456789", i))))
	}
	var dk []byte
	for i := 0; i < 100; i++ {
		clear(dk)
		dk, _, err = v.DeploymentKey(root, "fifty", fmt.Sprintf("host-%03d", i))
		check(err)
	}
	dkf := filepath.Join(work, "deployment.kek")
	check(os.WriteFile(dkf, dk, 0o600))
	clear(dk)
	vf := filepath.Join(work, "vault.json")
	data, err := v.Marshal()
	check(err)
	check(os.WriteFile(vf, data, 0o600))
	args := func(app string) []string {
		k, err := v.AppKey(root, app)
		check(err)
		kf := filepath.Join(work, app+".kek")
		check(os.WriteFile(kf, k, 0o600))
		return []string{"--vault", vf, "--machine-key", kf, "--app", app}
	}
	return args("one"), args("fifty"), []string{"--vault", vf, "--machine-key", dkf, "--app", "fifty"}
}

// pid1 starts argv as PID 1 of a new PID namespace.
func pid1(argv []string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	return cmd
}

func timeRun(argv []string) time.Duration {
	cmd := pid1(argv)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		fail("%v: %v\n%s", argv, err, out)
	}
	return time.Since(start)
}

func measureStartup(inits []initCmd, helper string) map[string]float64 {
	app := []string{helper, "exit", "0"}
	samples := map[string][]float64{}
	for i := 0; i < *runs; i++ {
		samples[""] = append(samples[""], ms(timeRun(app)))
		for _, in := range inits {
			samples[in.name] = append(samples[in.name], ms(timeRun(in.argv(app...))))
		}
	}
	base := median(samples[""])
	out := map[string]float64{}
	for _, in := range inits {
		out[in.name] = median(samples[in.name]) - base
	}
	return out
}

func measureReaping(inits []initCmd, helper string) map[string]float64 {
	samples := map[string][]float64{}
	for i := 0; i < *reapRuns; i++ {
		for _, in := range inits {
			out, err := pid1(in.argv(helper, "reaped", strconv.Itoa(*orphans))).Output()
			if err != nil {
				fail("%s: reaping: %v: %s", in.name, err, out)
			}
			var n, us int
			if _, err := fmt.Sscanf(string(out), "reaped %d in %d us", &n, &us); err != nil {
				fail("%s: reaping: %q", in.name, out)
			}
			samples[in.name] = append(samples[in.name], float64(us)/1000)
		}
	}
	out := map[string]float64{}
	for k, v := range samples {
		out[k] = median(v)
	}
	return out
}

// running is an init with the helper app started under it.
type running struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

func start(in initCmd, app ...string) *running {
	cmd := pid1(in.argv(app...))
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	r := &running{cmd: cmd, lines: bufio.NewScanner(out)}
	if !r.lines.Scan() || r.lines.Text() != "ready" {
		fail("%s: the app did not start", in.name)
	}
	return r
}

func (r *running) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

func measureRoundTrip(inits []initCmd, helper string) map[string]float64 {
	samples := map[string][]float64{}
	const rounds = 4
	for round := 0; round < rounds; round++ {
		for _, in := range inits {
			r := start(in, helper, "signals")
			for i := 0; i < *sigRuns/rounds; i++ {
				t := time.Now()
				check(r.cmd.Process.Signal(syscall.SIGUSR1))
				if !r.lines.Scan() {
					fail("%s: the app stopped answering", in.name)
				}
				samples[in.name] = append(samples[in.name], float64(time.Since(t).Microseconds()))
			}
			r.stop()
		}
	}
	out := map[string]float64{}
	for k, v := range samples {
		out[k] = median(v)
	}
	return out
}

type idleFigures struct {
	hwmKiB, anonKiB, threads, ticks, wakeups int
}

// measureIdle starts every init with a sleeping app, all at once, and reads
// their memory, threads, CPU ticks and context switches over the window.
func measureIdle(inits []initCmd, helper string) map[string]idleFigures {
	rs := make([]*running, len(inits))
	for i, in := range inits {
		rs[i] = start(in, helper, "sleep")
		defer rs[i].stop()
	}
	time.Sleep(500 * time.Millisecond)
	type snap struct{ ticks, switches int }
	before := make([]snap, len(rs))
	for i, r := range rs {
		t, s := cpuAndSwitches(r.cmd.Process.Pid)
		before[i] = snap{t, s}
	}
	time.Sleep(*idleFor)
	out := map[string]idleFigures{}
	for i, r := range rs {
		t, s := cpuAndSwitches(r.cmd.Process.Pid)
		st := status(r.cmd.Process.Pid)
		out[inits[i].name] = idleFigures{
			hwmKiB:  kib(st["VmHWM"]),
			anonKiB: kib(st["RssAnon"]),
			threads: kib(st["Threads"]),
			ticks:   t - before[i].ticks,
			wakeups: s - before[i].switches,
		}
	}
	return out
}

// status reads /proc/PID/status, or a thread's with a task id.
func status(pid int, task ...string) map[string]string {
	path := fmt.Sprintf("/proc/%d/status", pid)
	if len(task) > 0 {
		path = fmt.Sprintf("/proc/%d/task/%s/status", pid, task[0])
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return map[string]string{}
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func kib(s string) int {
	n, _ := strconv.Atoi(strings.Fields(s + " 0")[0])
	return n
}

// cpuAndSwitches returns utime+stime of pid in clock ticks and the context
// switches of all its threads: each one is a wake-up.
func cpuAndSwitches(pid int) (int, int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	switches := 0
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		m := status(pid, task.Name())
		switches += kib(m["voluntary_ctxt_switches"]) + kib(m["nonvoluntary_ctxt_switches"])
	}
	return ut + st, switches
}

func printTable(startInits, inits []initCmd, startup, reaping, roundTrip map[string]float64, idle map[string]idleFigures) {
	ratio := func(v, base float64) string {
		if base == 0 {
			if v == 0 {
				return "="
			}
			return "—"
		}
		return fmt.Sprintf("%.2f×", v/base)
	}
	cell := func(format string, v, base float64) string {
		return fmt.Sprintf(format+" (%s)", v, ratio(v, base))
	}
	fmt.Printf("Machine: %s, %d cores, %s; %s; %s\n\n", cpuModel(), runtime.NumCPU(), kernel(), runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Command: `make bench` (start-up: median of %d runs; reaping: median of %d runs of %d orphans; round trip: median of %d signals; idle: %v)\n\n",
		*runs, *reapRuns, *orphans, *sigRuns, *idleFor)
	header := "| figure (ratio to tini) |"
	sep := "| --- |"
	for _, in := range startInits {
		header += " " + in.name + " |"
		sep += " --- |"
	}
	fmt.Println(header)
	fmt.Println(sep)
	row := func(name string, f func(in initCmd) string) {
		line := "| " + name + " |"
		for _, in := range startInits {
			line += " " + f(in) + " |"
		}
		fmt.Println(line)
	}
	has := func(m map[string]float64, in initCmd) bool { _, ok := m[in.name]; return ok }
	row("start-up overhead, ms", func(in initCmd) string { return cell("%.2f", startup[in.name], startup["tini"]) })
	row("reaping 5000 orphans, ms", func(in initCmd) string {
		if !has(reaping, in) {
			return ""
		}
		return cell("%.1f", reaping[in.name], reaping["tini"])
	})
	row("signal round trip, µs", func(in initCmd) string {
		if !has(roundTrip, in) {
			return ""
		}
		return cell("%.0f", roundTrip[in.name], roundTrip["tini"])
	})
	idleRow := func(name string, get func(idleFigures) float64, format string) {
		row(name, func(in initCmd) string {
			f, ok := idle[in.name]
			if !ok {
				return ""
			}
			return cell(format, get(f), get(idle["tini"]))
		})
	}
	idleRow("peak RSS (VmHWM), MiB", func(f idleFigures) float64 { return float64(f.hwmKiB) / 1024 }, "%.2f")
	idleRow("private memory (RssAnon), MiB", func(f idleFigures) float64 { return float64(f.anonKiB) / 1024 }, "%.2f")
	idleRow("threads", func(f idleFigures) float64 { return float64(f.threads) }, "%.0f")
	idleRow(fmt.Sprintf("idle CPU, ticks in %v", *idleFor), func(f idleFigures) float64 { return float64(f.ticks) }, "%.0f")
	idleRow(fmt.Sprintf("idle wake-ups in %v", *idleFor), func(f idleFigures) float64 { return float64(f.wakeups) }, "%.0f")
	sizes := map[string]float64{}
	for _, in := range inits {
		fi, err := os.Stat(in.path)
		check(err)
		sizes[in.name] = float64(fi.Size()) / (1 << 20)
	}
	row("binary size, MiB", func(in initCmd) string {
		if !has(sizes, in) {
			return ""
		}
		return cell("%.2f", sizes[in.name], sizes["tini"])
	})
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return "linux"
	}
	b := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return "Linux " + string(b)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	runAtExit()
	os.Exit(1)
}

func runAtExit() {
	for i := len(atExit) - 1; i >= 0; i-- {
		atExit[i]()
	}
	atExit = nil
}
