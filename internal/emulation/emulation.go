// Package emulation tells a test whether the code it runs or starts is arm64
// code that qemu-user runs on an x86_64 kernel (make test-arm64, after
// scripts/qemu-arm64), so that the few tests qemu-user cannot pass skip
// there, saying why, and nowhere else. TESTING.md, "arm64 under qemu-user",
// lists them.
//
// The kernel's own machine comes from /proc/sys/kernel/arch: qemu-user
// answers uname(2) itself, with the machine it emulates ("aarch64"), but
// reads of /proc/sys reach the kernel. On a real arm64 machine that file says
// aarch64, so nothing skips there; on a kernel without the file nothing
// skips either, and the tests fail rather than pass unchecked.
package emulation

import (
	"os"
	"strings"
	"testing"
)

// KernelMachine is the kernel's machine name (x86_64, aarch64) from
// /proc/sys/kernel/arch, or "" when the kernel has no such file.
func KernelMachine() string {
	b, err := os.ReadFile("/proc/sys/kernel/arch")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Arm64OnX86 reports whether code built for goarch runs here under
// qemu-user: goarch is arm64 and the kernel is x86_64's.
func Arm64OnX86(goarch string) bool {
	return goarch == "arm64" && KernelMachine() == "x86_64"
}

// Skip skips t when code built for goarch runs here under qemu-user, with
// why as the reason.
func Skip(t testing.TB, goarch, why string) {
	t.Helper()
	if Arm64OnX86(goarch) {
		t.Skip("arm64 under qemu-user: " + why)
	}
}
