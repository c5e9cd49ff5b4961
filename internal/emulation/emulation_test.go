package emulation

import (
	"runtime"
	"syscall"
	"testing"
)

// uname(2)'s machine: the kernel's natively, the emulated one under
// qemu-user.
func unameMachine(t *testing.T) string {
	t.Helper()
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, c := range u.Machine {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// Natively, /proc/sys/kernel/arch and uname(2) agree, so Arm64OnX86 is false
// for this test's own code; under qemu-user uname says aarch64 and the file
// x86_64, and it is true. Either way it is the one the two disagree on.
func TestArm64OnX86(t *testing.T) {
	kernel := KernelMachine()
	if kernel == "" {
		t.Skip("this kernel has no /proc/sys/kernel/arch: nothing is taken for emulated")
	}
	uname := unameMachine(t)
	if got, want := Arm64OnX86(runtime.GOARCH), uname != kernel; got != want {
		t.Errorf("Arm64OnX86(%s) = %v with the kernel's machine %s and uname's %s", runtime.GOARCH, got, kernel, uname)
	}
	if Arm64OnX86("amd64") {
		t.Error("amd64 code is never emulated arm64")
	}
	if got, want := Arm64OnX86("arm64"), kernel == "x86_64"; got != want {
		t.Errorf("Arm64OnX86(arm64) = %v on a %s kernel", got, kernel)
	}
}
