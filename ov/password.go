package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/ov-init/ov-init/vault"
)

// maxPasswordLine bounds the first line of a password file.
const maxPasswordLine = 64 << 10

// ttyPath is the controlling terminal: prompts use it, not stdin, so that
// they work when stdin is a pipe.
const ttyPath = "/dev/tty"

// readPasswordFile returns the first line of the file at path, without its
// "\n" or "\r\n". The caller wipes it.
func readPasswordFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("password file %q: %v", path, pathErr(err))
	}
	defer f.Close()
	buf := make([]byte, maxPasswordLine+1)
	defer clear(buf)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("password file %q: %v", path, pathErr(err))
	}
	line := buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	} else if n > maxPasswordLine {
		return nil, fmt.Errorf("password file %q: the first line is over %d bytes; put the password alone on it", path, maxPasswordLine)
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, fmt.Errorf("password file %q: the first line is empty; put the password on it", path)
	}
	return bytes.Clone(line), nil
}

// newPassword is a new master password: the first line of file, else typed
// twice on the terminal. flags names where else it can come from.
func newPassword(file, flags string) ([]byte, error) {
	if file != "" {
		return readPasswordFile(file)
	}
	tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("no terminal to ask for the new master password; use %s", flags)
	}
	defer tty.Close()
	pw, err := readHidden(tty, "New master password: ")
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return nil, errors.New("the master password is empty; nothing was changed")
	}
	again, err := readHidden(tty, "Repeat the new master password: ")
	defer clear(again)
	if err != nil || !bytes.Equal(pw, again) {
		clear(pw)
		if err != nil {
			return nil, err
		}
		return nil, errors.New("the two passwords differ; nothing was changed")
	}
	return pw, nil
}

// prompt asks on the terminal without echo; noTTY is the error when there
// is no terminal. The caller wipes the answer. Every prompt of ov reads as
// the product page's "Master password: ": a capital, what is asked for,
// then ": ".
func prompt(text, noTTY string) ([]byte, error) {
	tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
	if err != nil {
		return nil, errors.New(noTTY)
	}
	defer tty.Close()
	return readHidden(tty, text)
}

// readHidden prints text on tty and reads a line with echo off. A signal
// that ends ov meanwhile first turns echo back on (term.ReadPassword leaves
// it off when the process dies).
func readHidden(tty *os.File, text string) ([]byte, error) {
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("%s is not a terminal: %v", ttyPath, err)
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		select {
		case sig := <-sigs:
			term.Restore(fd, state)
			fmt.Fprintln(tty)
			os.Exit(128 + int(sig.(syscall.Signal)))
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(done)
	}()
	defer term.Restore(fd, state)
	// Echo off before the prompt shows, so that nothing typed after it
	// is echoed.
	if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		t.Lflag &^= unix.ECHO
		unix.IoctlSetTermios(fd, unix.TCSETS, t)
	}
	fmt.Fprint(tty, text)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("reading from the terminal: %v", err)
	}
	return b, nil
}

// readValue is a secret's value: all of stdin, less one trailing "\n" or
// "\r\n", when stdin is not a terminal; else typed on the terminal. The
// caller wipes it.
func readValue(name string) ([]byte, error) {
	if term.IsTerminal(int(os.Stdin.Fd())) {
		return prompt(fmt.Sprintf("Value for %s: ", name), "no terminal to ask for the value; pipe it on stdin")
	}
	// Room for the largest value and its line ending, and one byte to
	// notice more.
	buf := make([]byte, vault.MaxValueSize+3)
	n, err := io.ReadFull(os.Stdin, buf)
	switch err {
	case nil:
		clear(buf)
		return nil, fmt.Errorf("the value on stdin is over the limit of %d bytes (one execve string)", vault.MaxValueSize)
	case io.EOF, io.ErrUnexpectedEOF:
	default:
		clear(buf)
		return nil, fmt.Errorf("reading the value from stdin: %v", pathErr(err))
	}
	v := buf[:n]
	if bytes.HasSuffix(v, []byte("\n")) {
		v = bytes.TrimSuffix(v[:len(v)-1], []byte("\r"))
	}
	return v, nil
}

// pathErr drops an *os.PathError's own copy of the path, which the message
// quotes already.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
