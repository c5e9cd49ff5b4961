// Package initcmd is the ov-init command: its flags and OV_* variables, its
// help, and the wiring from them to a run: a reaper.Config, and in secrets
// mode ov-init's own exec stage in front of the app. bin/ov-init (init/) and
// `ov run` (ov/) both use it, so they behave the same; they parse with kong
// and call [New], or [Main] for ov-init's own command line.
//
// The rule for every main that calls [Run]: route the exec stage first.
//
//	if execstage.Requested(os.Args) {
//		os.Exit(execstage.Main(os.Args))
//	}
//
// In secrets mode Run re-executes the running binary (/proc/self/exe) as
// `ov-init __ov_exec_stage FD ARGV...`; a main that did not route those
// words to execstage would take them for its own command line. Under `ov
// run` argv[0] is "ov": every line of the run, the stage's included, starts
// "ov: " (Options.Prog), and ov-init's "ov-init: ".
//
// How a run goes in secrets mode, and the way a signal and the key each go:
//
//	main            exec stage? no: reaper.Listen, so signals are PID 1's from here
//	initcmd         flags → reaper.Config + execstage.Config (names and paths, no secret)
//	reaper          socketpair; fork /proc/self/exe __ov_exec_stage FD ARGV: the app's pid
//	reaper → stage  the execstage.Config over FD, then end of file
//	execstage       key file → locked page → vault → key wiped → secrets dir checked and
//	                given to the app's user → --user → environment (NAME or NAME_FILE)
//	stage → reaper  --secrets-as files: a 1 byte (reaper.StageLeavesFiles), then the files,
//	                written as the app's user; memfd: sealed memfds, as the app's user
//	stage → reaper  a 0 byte just before execve; execve closes FD (close-on-exec): app runs
//	stage → reaper  or one status byte (78, 125, 126, 127): reaper exits with it, never
//	                remapped; end of file and no byte: the stage died, its status is ov-init's
//	a signal        PID 1's channel → reaper.handle → held while the stage runs (it would
//	                die of it) → after the 0 and end of file, kill(app); the app's status
//	                is ov-init's
//	the key         file → the stage's locked page → wiped before execve; never in PID 1
//	secret files    after the 1 byte, when the app (or the stage) ends, however it ends:
//	                PID 1 removes them by name (secretfiles.Clear), never reading one
package initcmd
