package execstage

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// The hand-off: PID 1 starts the exec stage as
//
//	ov-init __ov_exec_stage FD ARGV...
//
// (`ov __ov_exec_stage …` under `ov run`: argv[0] only names the program
// in the stage's messages) with the app's argv as it was given, byte for
// byte, and FD one end of a stream socket. Through FD comes the Config,
// encoded by MarshalBinary, then end of file; back goes a 0 byte just
// before execve (which closes FD: it is close-on-exec by then), or one
// status byte if the stage fails (see Main and reaper.Config.StageFD).
// Before it writes secret files (--secrets-as files) it sends
// reaper.StageLeavesFiles, a byte that is no status: from then on PID 1
// removes the files when the app or the stage ends (deliver.go).
// Nothing passes through text encodings: every path, name and argument
// arrives with the bytes it had, valid UTF-8 or not.

// maxConfig bounds what the stage reads from the socket: a config holds
// names and paths, each far below this.
const maxConfig = 1 << 20

// Argv is the exec stage's command line for an app with argv, the socket
// at fd, started by prog: "ov" for `ov run`, else "ov-init". prog is the
// stage's argv[0], and the name its lines start with (see Prog).
func Argv(prog string, fd int, argv []string) []string {
	return append([]string{prog, Arg, strconv.Itoa(fd)}, argv...)
}

// Prog is the name the stage started with args gives itself at the start
// of each line: "ov" when Argv put it there (the stage of `ov run`), else
// "ov-init". Nothing else: argv[0] is whatever started the stage.
func Prog(args []string) string {
	if len(args) > 0 && args[0] == ovProg {
		return ovProg
	}
	return ovInitProg
}

// The two programs a stage can speak for.
const (
	ovInitProg = "ov-init"
	ovProg     = "ov"
)

// Requested reports whether args start the exec stage.
func Requested(args []string) bool {
	return len(args) >= 4 && args[1] == Arg
}

// The config's keys. Each field is "key\x00value\x00": no field can hold
// a NUL byte (they come from argv and the environment, which cannot), so
// the encoding needs no escaping and reads back exactly.
const (
	keyApp         = "app"
	keyMachineKey  = "machine-key"
	keyVault       = "vault"
	keySecret      = "secret" // once per name; none means every secret
	keySecretsSet  = "secrets-given"
	keyPreserveEnv = "preserve-env"
	keyUser        = "user"
	keyVerbose     = "verbose"
	keyNoNewPrivs  = "no-new-privs"
	keySecretsAs   = "secrets-as"
	keySecretsDir  = "secrets-dir"
)

// MarshalBinary encodes c for the hand-off socket.
func (c Config) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	add := func(key, value string) error {
		if bytes.IndexByte([]byte(value), 0) >= 0 {
			return fmt.Errorf("exec-stage setting %s holds a NUL byte", key)
		}
		b.WriteString(key)
		b.WriteByte(0)
		b.WriteString(value)
		b.WriteByte(0)
		return nil
	}
	flag := func(on bool) string {
		if on {
			return "1"
		}
		return "0"
	}
	fields := [][2]string{
		{keyApp, c.App},
		{keyMachineKey, c.MachineKey},
		{keyVault, c.Vault},
		{keySecretsSet, flag(c.Secrets != nil)},
		{keyPreserveEnv, flag(c.PreserveEnv)},
		{keyUser, c.User},
		{keyVerbose, strconv.Itoa(c.Verbose)},
		{keyNoNewPrivs, flag(c.NoNewPrivs)},
		{keySecretsAs, c.SecretsAs},
		{keySecretsDir, c.SecretsDir},
	}
	for _, name := range c.Secrets {
		fields = append(fields, [2]string{keySecret, name})
	}
	for _, f := range fields {
		if err := add(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote. It is strict: every
// key but secret exactly once, nothing unknown, nothing after the last NUL.
func (c *Config) UnmarshalBinary(data []byte) error {
	*c = Config{}
	seen := map[string]bool{}
	var secretsGiven bool
	for len(data) > 0 {
		key, rest, ok := bytes.Cut(data, []byte{0})
		if !ok {
			return errors.New("truncated key")
		}
		value, rest, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			return fmt.Errorf("truncated value of %q", key)
		}
		data = rest
		k, v := string(key), string(value)
		if k != keySecret {
			if seen[k] {
				return fmt.Errorf("%q twice", k)
			}
			seen[k] = true
		}
		var err error
		switch k {
		case keyApp:
			c.App = v
		case keyMachineKey:
			c.MachineKey = v
		case keyVault:
			c.Vault = v
		case keySecret:
			c.Secrets = append(c.Secrets, v)
		case keySecretsSet:
			secretsGiven, err = parseFlag(v)
		case keyPreserveEnv:
			c.PreserveEnv, err = parseFlag(v)
		case keyUser:
			c.User = v
		case keyVerbose:
			c.Verbose, err = strconv.Atoi(v)
		case keyNoNewPrivs:
			c.NoNewPrivs, err = parseFlag(v)
		case keySecretsAs:
			c.SecretsAs = v
		case keySecretsDir:
			c.SecretsDir = v
		default:
			return fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	for _, k := range []string{keyApp, keyMachineKey, keyVault, keySecretsSet, keyPreserveEnv, keyUser, keyVerbose, keyNoNewPrivs, keySecretsAs, keySecretsDir} {
		if !seen[k] {
			return fmt.Errorf("missing %q", k)
		}
	}
	if secretsGiven != (c.Secrets != nil) {
		if !secretsGiven {
			return errors.New("secrets listed but not given")
		}
		c.Secrets = []string{} // given and empty: inject none
	}
	return nil
}

func parseFlag(v string) (bool, error) {
	switch v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("want 0 or 1, not %q", v)
}
