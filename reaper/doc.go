// Package reaper is the PID-1 runtime of ov-init: it starts the app, forwards
// signals to it, reaps every zombie and turns the app's wait status into
// ov-init's exit status.
//
// Invariants:
//   - reaper is the only caller of wait4(-1) in the process, and the app is
//     never waited for any other way, so its status cannot be stolen;
//   - every catchable signal is subscribed before the app starts, so none can
//     kill PID 1 or be lost: signals that arrive before the app runs are
//     queued and delivered once it does;
//   - the app starts with default signal dispositions and an empty signal mask;
//   - while the app runs, the process blocks on signals: no timer, no polling.
package reaper
