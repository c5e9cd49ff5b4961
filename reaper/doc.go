// Package reaper is the PID-1 runtime of ov-init: it starts the app, forwards
// signals to it, reaps every zombie and turns the app's wait status into
// ov-init's exit status.
//
// Invariants:
//   - reaper is the only caller of wait4(-1) in the process, and the app is
//     never waited for any other way, so its status cannot be stolen;
//   - the signals that would kill or stop PID 1 are subscribed before the
//     app starts (the others follow in the background, see [Listen]); a
//     subscribed signal that arrives before the app runs is held and
//     delivered once it does, never sent to the exec stage;
//   - the app starts with default signal dispositions and an empty signal
//     mask;
//   - while the app runs, the process blocks on signals: no polling, no
//     periodic timer. The only timers are one-shot: --term-delay, armed by
//     a SIGTERM, and --grace, armed by a forwarded TERM, INT or QUIT. Once
//     the app has exited, processes it left behind get a deadline, and after
//     their SIGKILL are checked every 100ms until none is left.
//
// The code reads in the order of a life: start.go forks the app (or ov-init's
// exec stage, see [Config.StageFD]), reaper.go is the loop while it runs,
// stop.go ends what it left behind and picks ov-init's exit status.
package reaper
